# avacParams: a target's parameter files (`$out/work/*.json`), written by
# `avac build-step params` byte for byte as `avac build` writes them (serde's
# defaults filled in; the source pins embedded in the AON model's metadata).
#
# Injected:
#   avac, system, declaration  as in avacStep
#
# Arguments:
#   target  string  the target's name
{ avac, system, declaration }:
target:
derivation {
  name = "${target}-params";
  inherit system;
  builder = "${avac}/bin/avac";
  args = [ "--targets" "${declaration}" "build-step" "params" target "--out" (builtins.placeholder "out") ];
}
