# declaredSource: one `[sources.NAME]` of the declaration, materialised as
# `avac build` places it in a step's input directory (a plain file under its
# name, a wheel member, an unpacked archive, a generated tree, or the joined
# parts of a concat source). The bytes come from a fixed-output fetch per
# kind; `avac build-step source` verifies them against the pin again and
# lays them out with the runner's own code.
#
# Injected:
#   avac         derivation or path  avac (the builder)
#   system       string
#   declaration  path                rules/targets.toml
#   sources      attrset             the declaration's `sources` table
#   fetchers     attrset             one function per fetched kind, each returning
#                                    the pinned file (a fixed-output derivation):
#                  file  { name, path, sha256 }                  (path: from the repo root)
#                  pypi  { name, package, version, sha256 }
#                  hf    { name, repo, revision, file, sha256 }
#                  url   { name, url, sha256 }
#
# Arguments:
#   name  string  the source's name
{ avac, system, declaration, sources, fetchers }:
name:
let
  decl = sources.${name} or (throw "rules: unknown source \"${name}\" (not in ${toString declaration})");
  locked = s: d:
    if (d.sha256 or "") == ""
    then throw "rules: source ${s} is not locked (no sha256 pin)\nhelp: on a machine that can reach it, set its pinned revision in rules/targets.toml and run `avac lock ${s}`, then commit the pin"
    else d;
  blob = s:
    let d = locked s (sources.${s} or (throw "rules: concat source ${name}: unknown part \"${s}\""));
    in
    {
      file = fetchers.file { name = s; inherit (d) path sha256; };
      pypi = fetchers.pypi { name = s; inherit (d) package version sha256; };
      hf = fetchers.hf { name = s; inherit (d) repo revision file sha256; };
      url = fetchers.url { name = s; inherit (d) url sha256; };
    }.${d.kind} or (throw "rules: source ${s}: kind \"${d.kind}\" cannot be fetched");
  parts =
    if decl.kind == "generated" then [ ]
    else if decl.kind == "concat" then decl.parts
    else [ name ];
in
derivation {
  name = "source-${name}";
  inherit system;
  builder = "${avac}/bin/avac";
  args = [ "--targets" "${declaration}" "build-step" "source" name ]
    ++ builtins.concatMap (p: [ "--blob" "${p}=${blob p}" ]) (if (locked name decl).kind == "generated" then [ ] else parts)
    ++ [ "--out" (builtins.placeholder "out") ];
}
