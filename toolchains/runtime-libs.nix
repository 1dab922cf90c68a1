# Native runtime libraries shipped inside ALC packages (`lib/<abi>/*.so`,
# e.g. the MLC/TVM runtime for arm64-v8a).
#
# Pinned by: rules/targets.toml — each library is a `[sources.NAME]` (kind
# "url", "hf" or "file") with its sha256 and size, named by a target's
# `package.libs = [{ abi, name, source }]`; `avac alc package` checks each
# ELF header against its ABI. This file only lists which declared sources
# are runtime libraries, for `nix build .#runtime-libs` and audits; it holds
# no second copy of any pin.
#
# Today no target ships a native library (the declared Gemma packages have
# `libs = []`), so the set is empty.
#
# Update: declare the library as a source, `avac lock NAME`, add it to a
# target's `package.libs`; it appears here automatically.
{ declaration ? ../rules/targets.toml }:
let
  decl = builtins.fromTOML (builtins.readFile declaration);
  libs = builtins.concatMap (t: (t.package or { }).libs or [ ]) (builtins.attrValues (decl.targets or { }));
in
builtins.listToAttrs (map (l: { name = "${l.abi}/${l.name}"; value = l.source; }) libs)
