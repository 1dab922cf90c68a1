# declaredSource: one source of the plan, materialised as `avac build`
# places it in a step's input directory (a plain file under its name, a
# wheel member, an unpacked archive, a generated tree, or the joined parts
# of a concat source). The bytes come from a fixed-output fetch per blob
# the plan lists (`fetch`: the fetcher's kind and its arguments); `avac
# build-step source` verifies them against the pin again and lays them out
# with the runner's own code. A source the plan lists as `unlocked` still
# evaluates: building it fails with the `avac lock` command that pins it.
#
# Injected:
#   avac         derivation or path  avac (the builder)
#   system       string
#   declaration  path                rules/targets.toml
#   fetchers     attrset             one function per fetched kind, each returning
#                                    the pinned file (a fixed-output derivation):
#                  file  { name, path, sha256 }                  (path: from the repo root)
#                  pypi  { name, package, version, sha256 }
#                  hf    { name, repo, revision, file, sha256 }
#                  url   { name, url, sha256 }
#
# Arguments:
#   name    string   the source's name
#   source  attrset  its entry in rules/plan.json: { kind, unlocked, fetch }
{ avac, system, declaration, fetchers }:
name: source:
let
  blob = f: (fetchers.${f.fetcher} or (throw "rules: source ${name}: no fetcher for kind \"${f.fetcher}\"")) f.args;
in
derivation {
  name = "source-${name}";
  inherit system;
  builder = "${avac}/bin/avac";
  args = [ "--targets" "${declaration}" "build-step" "source" name ]
    ++ builtins.concatMap (f: [ "--blob" "${f.args.name}=${blob f}" ]) source.fetch
    ++ [ "--out" (builtins.placeholder "out") ];
}
