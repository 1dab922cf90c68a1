# `import nixpkgs { system; overlays; }`: the packages the root flake uses,
# as unbuildable derivations (their attributes are forced, so a path or
# source filter that fails in pure evaluation fails here too).
{ system, overlays ? [ ] }:
let
  lib = import ./lib.nix;
  stub = name: attrs: derivation ({ inherit name system; builder = "/bin/sh"; args = [ "-c" "echo stub nixpkgs: never built >&2; exit 1" ]; } // attrs);
  base = final: {
    inherit lib;
    makeRustPlatform = { cargo, rustc }: {
      buildRustPackage = a: stub "${a.pname}-${a.version}" { inherit (a) src; inherit rustc; lock = a.cargoLock.lockFile; } // { meta = a.meta or { }; };
    };
    python3 = stub "python3" { };
    python3Packages.fetchPypi = a: stub "${a.pname}-${a.version}-${a.python}-${a.abi}-${a.platform}.whl" {
      outputHashMode = "flat";
      outputHashAlgo = "sha256";
      outputHash = a.sha256;
    };
    runCommand = name: env: script: stub name (env // { inherit script; });
    coreutils = stub "coreutils" { };
    linkFarm = name: entries: stub name { paths = map (e: "${e.name}=${e.path}") entries; };
    mkShell = a: stub "shell" { packages = a.packages; shellHook = a.shellHook or ""; };
    writeShellScript = name: text: stub name { inherit text; };
    zstd = stub "zstd" { };
    nixpkgs-fmt = stub "nixpkgs-fmt" { };
  };
  pkgs = builtins.foldl' (acc: overlay: acc // overlay pkgs acc) (base pkgs) overlays;
in
pkgs
