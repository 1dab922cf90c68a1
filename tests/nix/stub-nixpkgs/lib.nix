# The few nixpkgs lib functions the root flake calls, with nixpkgs' semantics.
rec {
  genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
  hasPrefix = pre: s: builtins.substring 0 (builtins.stringLength pre) s == pre;
  removePrefix = pre: s: if hasPrefix pre s then builtins.substring (builtins.stringLength pre) (builtins.stringLength s) s else s;
  mapAttrsToList = f: a: map (n: f n a.${n}) (builtins.attrNames a);
}
