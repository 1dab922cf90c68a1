# avacTarget: one target of the plan as derivations — its parameter files,
# one derivation per step, and the published outputs. The steps, their
# inputs, outputs and command lines are the plan's (rules/plan.json); this
# rule only resolves each input to the store path that holds it:
#   { kind = "source"; source; at; }  the materialised source, copied to `at`
#   { kind = "param"; path; }         the target's parameter files
#   { kind = "step"; step; path; }    an earlier step's output
#
# Injected:
#   avacStep, avacParams, avacPublish  rules/avacStep.nix, avacParams.nix, avacPublish.nix
#   sources   attrset  source name → its materialised directory (declaredSource)
#
# Arguments:
#   name  string   the target's name
#   plan  attrset  its entry in rules/plan.json: { rule, artifact, params, steps, publish }
{ avacStep, avacParams, avacPublish, sources }:
name: plan:
let
  params = avacParams name;
  input = steps: i: {
    source = { rel = i.at; path = sources.${i.source}; };
    param = { rel = i.path; path = "${params}/${i.path}"; };
    step = { rel = i.path; path = "${steps.${i.step}}/${i.path}"; };
  }.${i.kind};
  steps = builtins.listToAttrs (map
    (s: {
      inherit (s) name;
      value = avacStep {
        target = name;
        step = s.name;
        inputs = map (input steps) s.inputs;
        keep = s.outputs;
        inherit (s) args;
      };
    })
    plan.steps);
  # The steps whose outputs are published; the validate step is one of them,
  # so nothing is published unless validation passed.
  from = map (n: steps.${n}) (builtins.attrNames (builtins.listToAttrs (map (p: { name = p.step; value = null; }) plan.publish)));
in
avacPublish {
  target = name;
  inherit from;
  steps = steps // { inherit params; };
}
