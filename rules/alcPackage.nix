# alcPackage: an `rule = "alc"` target — Gemma 3 → q4bf16_1 MLC package
# (`.tar`) — as one derivation per step:
#   params, quantize → package → validate, then publish. The package step
#   carries the build definition that params wrote (`avac-build-definition.json`).
# The command lines are those of src/build/plan.rs (checked at build time).
#
# Injected:
#   avacStep, avacParams, avacPublish, source, fileName  as in aonModel
#
# Arguments (the `[targets.NAME]` table; see rules/README.md):
#   name         string           the target's name
#   description  string           default ""
#   default      bool             default false
#   model        list of strings  sources forming the checkpoint: one .gguf, or a HF directory's files
#   text         string           source of the fixed validation text
#   artifact     string           the package's file name (….tar)
#   quantize     attrset          q4bf16_1 parameters (written by avac)
#   package      attrset          default {}: `zstd` (bool, default false), `libs`
#                                 (list of { abi, name, source }, default [])
#   validate     attrset          default {}: validation gates
{ avacStep, avacParams, avacPublish, source, fileName }:
{ name, description ? "", default ? false, model, text, artifact, quantize, package ? { }, validate ? { } }:
let
  params = avacParams name;
  p = f: { rel = "work/${f}"; path = "${params}/work/${f}"; };
  w = drv: rel: { inherit rel; path = "${drv}/${rel}"; };
  zstd = package.zstd or false;
  libs = package.libs or [ ];
  checkpoint =
    let f = fileName (builtins.head model);
    in if builtins.length model == 1 && builtins.match ".*\\.gguf" f != null then "in/model/${f}" else "in/model";
  modelIn = map (s: { rel = "in/model"; path = source s; }) model;
  textFile = "in/text/${fileName text}";
  step = avacStep;
  steps = rec {
    quantize = step {
      target = name;
      step = "quantize";
      inputs = modelIn ++ [ (p "quantize-params.json") ];
      keep = [ "work/params" "work/quantize.json" ];
      args = [ "alc" "quantize" "--source" checkpoint "--params" "work/quantize-params.json" "--out" "work/params" "--report" "work/quantize.json" ];
    };
    package = step {
      target = name;
      step = "package";
      inputs = [ (w quantize "work/params") (p "build-definition.json") ] ++ map (l: { rel = "in/libs/${l.abi}"; path = source l.source; }) libs;
      keep = [ "work/${artifact}" ] ++ (if zstd then [ "work/${artifact}.zst" ] else [ ]);
      args = [ "alc" "package" "--dir" "work/params" "--build-definition" "work/build-definition.json" "--out" "work/${artifact}" ]
        ++ builtins.concatMap (l: [ "--lib" "${l.abi}=${l.name}=in/libs/${l.abi}/${fileName l.source}" ]) libs
        ++ (if zstd then [ "--zstd" ] else [ ]);
    };
    validate = step {
      target = name;
      step = "validate";
      inputs = [ (w package "work/${artifact}") (p "validate-params.json") { rel = "in/text"; path = source text; } ] ++ modelIn;
      keep = [ "work/validation.json" ];
      args = [ "alc" "validate" "--package" "work/${artifact}" "--source" checkpoint "--text" textFile "--params" "work/validate-params.json" "--report" "work/validation.json" ];
    };
  };
in
avacPublish {
  target = name;
  from = [ steps.package steps.validate steps.quantize ];
  steps = steps // { inherit params; };
}
