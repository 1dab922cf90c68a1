# avacStep: one pipeline step as one derivation (a Bazel-style action). The
# builder is avac itself: `avac build-step exec` copies the declared inputs
# into the runner's relative layout (in/…, work/…), checks the command line
# and outputs against its own plan (a stale rules/plan.json is refused) and
# runs the step with the plan's environment only; the outputs are the
# derivation's output (`$out/work/…`).
#
# Injected:
#   avac         derivation or path  avac
#   system       string
#   declaration  path                rules/targets.toml
#
# Arguments:
#   target  string           the target's name
#   step    string           the step's name in the plan (convert, export, …)
#   inputs  list of {rel, path}  each copied to `rel` (a directory's entries
#                            into it; several may share one `rel`)
#   keep    list of strings  the step's outputs (work paths) that form the output
#   args    list of strings  the command line after `avac --threads N`
# (The step's environment is the plan's, applied by `avac build-step exec`.)
{ avac, system, declaration }:
{ target, step, inputs ? [ ], keep, args }:
derivation {
  name = "${target}-${step}";
  inherit system;
  builder = "${avac}/bin/avac";
  args = [ "--targets" "${declaration}" "build-step" "exec" target step ]
    ++ builtins.concatMap (i: [ "--in" "${i.rel}=${i.path}" ]) inputs
    ++ builtins.concatMap (k: [ "--keep" k ]) keep
    ++ [ "--out" (builtins.placeholder "out") "--" ]
    ++ args;
}
