# aonModel: an `rule = "aon"` target — encoder → intent classifier → ONNX
# (INT8) — as one derivation per step:
#   params, convert → export → optimize → [quantize] → validate, then publish.
# The command lines are those of src/build/plan.rs (checked at build time).
#
# Injected:
#   avacStep, avacParams, avacPublish  rules/avacStep.nix, avacParams.nix, avacPublish.nix
#   source    function  source name → its materialised directory (declaredSource)
#   fileName  function  source name → the file name it is materialised under
#
# Arguments (the `[targets.NAME]` table; see rules/README.md):
#   name         string           the target's name
#   description  string           default ""; one line for `avac targets`
#   default      bool             default false; the README's main job
#   model        list of strings  sources forming the model directory
#   intents      string           source of the labelled intents
#   calibration  string or null   default null; source of the calibration text
#   artifact     string           the artifact's file name
#   convert      attrset          conversion parameters (written by avac)
#   quantize     attrset or null  default null: an FP32 artifact
#   validate     attrset          default {}: validation gates
{ avacStep, avacParams, avacPublish, source, fileName }:
{ name, description ? "", default ? false, model, intents, calibration ? null, artifact, convert, quantize ? null, validate ? { } }:
let
  params = avacParams name;
  p = f: { rel = "work/${f}"; path = "${params}/work/${f}"; };
  w = drv: rel: { inherit rel; path = "${drv}/${rel}"; };
  intentsFile = "in/intents/${fileName intents}";
  calibrationFile = "in/calibration/${fileName calibration}";
  modelIn = map (s: { rel = "in/model"; path = source s; }) model;
  intentsIn = { rel = "in/intents"; path = source intents; };
  calibrationIn = if calibration == null then [ ] else [{ rel = "in/calibration"; path = source calibration; }];
  int8 = quantize != null;
  step = avacStep;
  steps = rec {
    convert = step {
      target = name;
      step = "convert";
      inputs = modelIn ++ [ intentsIn (p "convert.json") ] ++ calibrationIn;
      keep = [ "work/classifier" ];
      args = [ "aon" "convert" "--model" "in/model" "--intents" intentsFile "--params" "work/convert.json" "--out" "work/classifier" ]
        ++ (if calibration == null then [ ] else [ "--calibration" calibrationFile ]);
    };
    export = step {
      target = name;
      step = "export";
      inputs = [ (w convert "work/classifier") (p "metadata.json") ];
      keep = [ "work/model.onnx" ];
      args = [ "aon" "export" "--classifier" "work/classifier" "--metadata" "work/metadata.json" "--out" "work/model.onnx" ];
    };
    optimize = step {
      target = name;
      step = "optimize";
      inputs = [ (w export "work/model.onnx") ];
      keep = [ "work/model.opt.onnx" "work/optimize.json" ];
      args = [ "aon" "optimize" "--in" "work/model.onnx" "--out" "work/model.opt.onnx" "--report" "work/optimize.json" ];
    };
    quantize =
      if !int8 then null
      else if calibration == null then throw "rules: target ${name}: static INT8 needs a `calibration` source in the target"
      else
        step {
          target = name;
          step = "quantize";
          inputs = [ (w optimize "work/model.opt.onnx") (w convert "work/classifier") (p "quantize.json") ] ++ calibrationIn;
          keep = [ "work/model.int8.onnx" "work/quantize.json" ];
          args = [ "aon" "quantize" "--in" "work/model.opt.onnx" "--classifier" "work/classifier" "--calibration" calibrationFile "--params" "work/quantize.json" "--out" "work/model.int8.onnx" "--report" "work/quantize.json" ];
        };
    validate = step {
      target = name;
      step = "validate";
      inputs = [ (w convert "work/classifier") intentsIn (p "validate.json") (w optimize "work/model.opt.onnx") ]
        ++ (if int8 then [ (w quantize "work/model.int8.onnx") ] else [ ]);
      keep = [ "work/validation.json" ];
      args = [ "aon" "validate" "--classifier" "work/classifier" "--intents" intentsFile "--params" "work/validate.json" "--report" "work/validation.json" ]
        ++ (if int8 then [ "--model" "work/model.int8.onnx" "--fp32" "work/model.opt.onnx" ] else [ "--model" "work/model.opt.onnx" ]);
    };
  };
in
avacPublish {
  target = name;
  from = [ steps.optimize steps.validate ] ++ (if int8 then [ steps.quantize ] else [ ]);
  steps = steps // { inherit params; };
}
