# internalFileName: the name a one-file source's content goes by once it is
# materialised, as `Source::file_name` in src/store/source.rs computes it
# (the step command lines name it: `in/intents/<file name>`). A
# disagreement is caught at build time: `avac build-step exec` checks every
# command line against src/build/plan.rs.
name: decl:
let
  basename = p: let parts = builtins.filter builtins.isString (builtins.split "/" p); in builtins.elemAt parts (builtins.length parts - 1);
  # PEP 427: runs of `-_.` become `_`, lowercased.
  wheelName = p: builtins.concatStringsSep "_" (builtins.filter (s: builtins.isString s && s != "") (builtins.split "[-_.]+" (builtins.replaceStrings [ "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M" "N" "O" "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" ] [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" ] p)));
  urlPath = u: builtins.head (builtins.split "[?#]" u);
in
{
  hf = basename decl.file;
  url = basename (urlPath decl.url);
  file = basename decl.path;
  pypi = "${wheelName decl.package}-${decl.version}";
  concat = decl.file;
  generated = name;
}.${decl.kind}
