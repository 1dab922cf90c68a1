# A test double of nixpkgs (which cannot be fetched on the machines that
# test avac): exactly the attributes the root flake.nix uses, each package a
# derivation that evaluates but is never built. tests/nix.rs runs
# `nix flake check --no-build` on the root flake with this in place of the
# pinned nixpkgs, so every package, check, app and dev shell of the root
# flake is evaluated in pure mode by the Nix under test.
{
  description = "stub nixpkgs for evaluating avac's root flake";
  outputs = { self }: {
    lib = import ./lib.nix;
  };
}
