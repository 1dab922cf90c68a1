# internalCheckArgs: rejects arguments a rule does not know, naming the
# caller (e.g. `target minilm-intent-int8`) — a TOML table's typo must fail
# at evaluation with the table's name, not be ignored.
#
#   internalCheckArgs { what = "target t"; allowed = [ "a" "b" ]; } args
#   => args, or throws "rules: target t: unknown argument(s) c (allowed: a, b)"
{ what, allowed }:
args:
let
  unknown = builtins.filter (n: !(builtins.elem n allowed)) (builtins.attrNames args);
  join = builtins.concatStringsSep ", ";
in
if unknown == [ ] then args
else throw "rules: ${what}: unknown argument(s) ${join unknown} (allowed: ${join allowed})"
