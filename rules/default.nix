# avac's Nix rules: the public entry. Reads the plan avac generated from the
# one declaration (rules/plan.json, with builtins.fromJSON; made by `avac
# plan --all --out rules/plan.json` from rules/targets.toml) and returns one
# package per target: a chain of one-derivation-per-step actions whose
# builder is avac itself (no stdenv, no network except the fixed-output
# fetches, no host paths). Every step's inputs, outputs and command line
# come from the plan; nothing about a pipeline is decided here.
#
#   rules = import ./rules { avac = …; system = "x86_64-linux"; fetchers.pypi = pkgs.fetchPypi; };
#   rules.targets.malbert-tiny-int8          # the published outputs
#   rules.targets.malbert-tiny-int8.steps    # each step's derivation
#   rules.sources.minilm                     # a materialised source
#
# Arguments:
#   avac         derivation or path  an avac whose `bin/avac` runs in the sandbox
#                                    (statically linked, or with its closure)
#   system       string              e.g. "x86_64-linux"
#   declaration  path                default ./targets.toml: handed to avac, which
#                                    re-plans and checks every step against the plan
#   plan         path                default ./plan.json: generated from `declaration`;
#                                    evaluation fails if it was planned from other bytes
#   root         path                default ../. (the repository): `file`
#                                    sources' paths are relative to it
#   fetchers     attrset             default {}: overrides per kind —
#                                    file { name, path, sha256 }   default: fetchLocal from `root`
#                                    pypi { name, package, version, sha256 }
#                                         default: fetchPypiWheel with `fetchPypi`
#                                    hf   { name, repo, revision, file, sha256 }  default: fetchHf
#                                    url  { name, url, sha256 }    default: fetchUrl
#   fetchPypi    function or null    default null: nixpkgs' fetchPypi, for pypi sources
#   hfEndpoint   string or null      default null (the hub): a Hugging Face mirror
{ avac, system, declaration ? ./targets.toml, plan ? ./plan.json, root ? ../., fetchers ? { }, fetchPypi ? null, hfEndpoint ? null }:
let
  planned = builtins.fromJSON (builtins.readFile plan);
  fresh = planned.declaration_sha256 == builtins.hashFile "sha256" declaration;
  checked =
    if fresh then planned
    else throw "rules: ${toString plan} was not planned from ${toString declaration} (its sha256 differs)\nhelp: run `avac plan --all --out rules/plan.json` and commit it";

  fetchLocal = import ./fetchLocal.nix { inherit avac system; };
  fetchUrl = import ./fetchUrl.nix { };
  fetchHf = import ./fetchHf.nix { inherit fetchUrl; };
  fetchPypiWheel = import ./fetchPypiWheel.nix { inherit fetchPypi; };
  defaultFetchers = {
    file = { name, path, sha256 }: fetchLocal { inherit name sha256; file = root + "/${path}"; };
    pypi = fetchPypiWheel;
    hf = args: fetchHf (args // (if hfEndpoint == null then { } else { endpoint = hfEndpoint; }));
    url = fetchUrl;
  };
  allFetchers = defaultFetchers // fetchers;

  declaredSource = import ./declaredSource.nix { inherit avac system declaration; fetchers = allFetchers; };
  sources = builtins.mapAttrs declaredSource checked.sources;
  avacTarget = import ./avacTarget.nix {
    inherit sources;
    avacStep = import ./avacStep.nix { inherit avac system declaration; };
    avacParams = import ./avacParams.nix { inherit avac system declaration; };
    avacPublish = import ./avacPublish.nix { inherit avac system declaration; };
  };
in
{
  targets = builtins.mapAttrs avacTarget checked.targets;
  inherit sources;
  defaultTarget = checked.default;
  fetchers = allFetchers;
  inherit fetchLocal fetchUrl fetchHf fetchPypiWheel;
}
