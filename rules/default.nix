# avac's Nix rules: the public entry. Reads the one declaration
# (rules/targets.toml, with builtins.fromTOML — never a second copy) and
# returns one package per target, each a chain of one-derivation-per-step
# actions whose builder is avac itself (no stdenv, no network except the
# fixed-output fetches, no host paths).
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
#   declaration  path                default ./targets.toml
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
{ avac, system, declaration ? ./targets.toml, root ? ../., fetchers ? { }, fetchPypi ? null, hfEndpoint ? null }:
let
  decl = builtins.fromTOML (builtins.readFile declaration);
  sourcesDecl = decl.sources or { };
  targetsDecl = decl.targets or { };

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

  fileName = s: import ./internalFileName.nix s (sourcesDecl.${s} or (throw "rules: unknown source \"${s}\""));
  sources = builtins.mapAttrs (n: _: import ./declaredSource.nix { inherit avac system declaration; sources = sourcesDecl; fetchers = allFetchers; } n) sourcesDecl;
  source = s: sources.${s} or (throw "rules: unknown source \"${s}\"");

  avacStep = import ./avacStep.nix { inherit avac system declaration; };
  avacParams = import ./avacParams.nix { inherit avac system declaration; };
  avacPublish = import ./avacPublish.nix { inherit avac system declaration; };
  ruleArgs = { inherit avacStep avacParams avacPublish source fileName; };
  rules = {
    aon = {
      fn = import ./aonModel.nix ruleArgs;
      args = [ "description" "default" "model" "intents" "calibration" "artifact" "convert" "quantize" "validate" ];
      uses = t: t.model ++ [ t.intents ] ++ (if t ? calibration then [ t.calibration ] else [ ]);
    };
    alc = {
      fn = import ./alcPackage.nix ruleArgs;
      args = [ "description" "default" "model" "text" "artifact" "quantize" "package" "validate" ];
      uses = t: t.model ++ [ t.text ] ++ map (l: l.source) (t.package.libs or [ ]);
    };
  };
  checkArgs = import ./internalCheckArgs.nix;

  # A target: its rule known, its sources declared, its fields known —
  # each failure an evaluation error naming the target.
  target = name: t:
    let
      ruleName = t.rule or (throw "rules: target ${name} has no `rule`");
      rule = rules.${ruleName} or (throw "rules: target ${name} uses unknown rule \"${ruleName}\" (known: ${builtins.concatStringsSep ", " (builtins.attrNames rules)})");
      fields = checkArgs { what = "target ${name}"; allowed = rule.args; } (builtins.removeAttrs t [ "rule" ]);
      unknown = builtins.filter (s: !(sourcesDecl ? ${s})) (rule.uses fields);
    in
    if unknown != [ ] then throw "rules: target ${name} uses unknown source \"${builtins.head unknown}\""
    else rule.fn (fields // { inherit name; });
in
{
  targets = builtins.mapAttrs target targetsDecl;
  inherit sources;
  defaultTarget = builtins.head (builtins.filter (n: targetsDecl.${n}.default or false) (builtins.attrNames targetsDecl) ++ [ null ]);
  fetchers = allFetchers;
  inherit fetchLocal fetchUrl fetchHf fetchPypiWheel;
}
