# avacPublish: a target's outputs as `avac build --out` publishes them,
# collected from the step outputs by `avac build-step publish` (the same
# provenance code as the runner: the artifacts match golden/, and the
# in-toto statement differs from `avac build`'s only in runDetails — the
# builder id `urn:avac:builder:nix` and the digest of this avac binary).
#
# The package itself holds the deterministic outputs — the artifact(s) and
# `<artifact>.provenance.json` — so `nix build --rebuild` reproduces it bit
# for bit; its `reports` attribute adds the validation, optimization and
# quantization reports (they carry latency figures, outside every digest,
# as in `avac build`). Both depend on the validate step: nothing is
# published unless validation passed.
#
# Injected:
#   avac, system, declaration  as in avacStep
#
# Arguments:
#   target  string               the target's name
#   from    list of derivations  step outputs holding work/… (the validate step included)
#   steps   attrset              exposed as the attribute `steps`
{ avac, system, declaration }:
{ target, from, steps }:
let
  publish = name: flags: derivation {
    inherit name system;
    builder = "${avac}/bin/avac";
    args = [ "--targets" "${declaration}" "build-step" "publish" target ]
      ++ builtins.concatMap (d: [ "--from" "${d}" ]) from
      ++ flags
      ++ [ "--out" (builtins.placeholder "out") ];
  };
in
publish target [ "--deterministic-only" ] // {
  inherit steps;
  reports = publish "${target}-reports" [ ];
}
