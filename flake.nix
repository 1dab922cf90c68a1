# avac: hermetic, bit-reproducible model builds with Nix.
#
#   nix build .#malbert-int8        a target (one package per [targets.NAME] in rules/targets.toml)
#   nix build .#avac                the compiler, with the Rust toolchain of rust-toolchain.toml
#   nix run .#avac -- targets
#   nix flake check                 rebuilds the offline targets and compares them with golden/
#   nix develop                     pinned Rust + the Python oracle tools
#
# The rules (rules/*.nix) run every step with avac itself as the builder;
# the test flake under tests/nix runs the same rules without nixpkgs.
{
  description = "avac — a hermetic, bit-reproducible compiler for on-device models";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.11";
    rust-overlay = {
      url = "github:oxalica/rust-overlay";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs = { self, nixpkgs, rust-overlay }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f system (import nixpkgs { inherit system; overlays = [ rust-overlay.overlays.default ]; }));
      cargoToml = builtins.fromTOML (builtins.readFile ./Cargo.toml);

      avacFor = pkgs:
        let
          rust = import ./toolchains/rust.nix { inherit (pkgs) rust-bin; };
          platform = pkgs.makeRustPlatform { cargo = rust; rustc = rust; };
        in
        # As every rule's builder, its runtime closure (glibc) enters each
        # step's sandbox through the builder path's references.
        platform.buildRustPackage {
          pname = "avac";
          inherit (cargoToml.package) version;
          # builtins.path with a filter, not lib.fileset: on Nix < 2.14
          # lib.fileset lists /nix/store and fails in pure evaluation.
          src = builtins.path {
            name = "avac-source";
            path = ./.;
            filter = path: type:
              let
                rel = pkgs.lib.removePrefix (toString ./. + "/") (toString path);
                keep = [ "Cargo.toml" "Cargo.lock" "src" "rules/targets.toml" "rules/plan.json" "data" "benches" "tests" "tvm" "toolchains/tvm" ];
              in
              builtins.any (k: rel == k || pkgs.lib.hasPrefix "${k}/" rel || pkgs.lib.hasPrefix "${rel}/" k) keep;
          };
          cargoLock.lockFile = ./Cargo.lock;
          doCheck = false; # the tests need the network and the oracles: `nix flake check` runs the goldens instead
          meta.mainProgram = "avac";
        };

      rulesFor = system: pkgs: avac: import ./rules {
        inherit avac system;
        fetchPypi = pkgs.python3Packages.fetchPypi;
      };

      goldenCheck = pkgs: name: drv: pkgs.runCommand "golden-${name}" { } ''
        cd ${drv}
        ${pkgs.coreutils}/bin/sha256sum -c ${./golden}/${name}.sha256
        touch $out
      '';
    in
    {
      packages = forAll (system: pkgs:
        let
          avac = avacFor pkgs;
          rules = rulesFor system pkgs avac;
        in
        rules.targets // {
          inherit avac;
          default = rules.targets.${rules.defaultTarget};
          runtime-libs = pkgs.linkFarm "avac-runtime-libs" (pkgs.lib.mapAttrsToList (path: source: { name = path; path = rules.sources.${source}; }) (import ./toolchains/runtime-libs.nix { }));
        });

      apps = forAll (system: pkgs: {
        avac = { type = "app"; program = "${self.packages.${system}.avac}/bin/avac"; };
        default = self.apps.${system}.avac;
      });

      # The offline targets, rebuilt and compared with golden/ (the Hugging
      # Face ones are checked once their sources are locked).
      checks = forAll (system: pkgs:
        builtins.mapAttrs (n: drv: goldenCheck pkgs n drv) {
          inherit (self.packages.${system}) malbert-tiny-int8 minilm-intent-int8 gemma3-270m-q4bf16;
        });

      devShells = forAll (system: pkgs:
        let oracles = import ./toolchains/python-oracles.nix { inherit (pkgs) python3 writeShellScript; };
        in {
          default = pkgs.mkShell {
            packages = [ (import ./toolchains/rust.nix { inherit (pkgs) rust-bin; }) oracles.python pkgs.zstd ];
            shellHook = "source ${oracles.setup}";
          };
        });

      formatter = forAll (system: pkgs: pkgs.nixpkgs-fmt);
    };
}
