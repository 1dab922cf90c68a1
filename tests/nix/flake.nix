# The Nix rules under test, with no nixpkgs (crane's test/flake.nix pattern):
# `rules/` imported with a statically linked avac (x86_64-unknown-linux-musl)
# as every builder, and every fetched source seeded from a local file named
# by its pinned sha256.
#
# tests/nix.rs stages this flake in a scratch directory next to:
#   rules/          a copy of the repository's rules/ (targets.toml included)
#   avac/bin/avac   the static avac
#   seeds/<sha256>  one file per fetched source (data files, the PyPI wheels)
# and builds it through `path:` (the seeds are not tracked by git):
#   nix build path:$DIR#malbert-tiny-int8 --option sandbox true
{
  description = "avac's Nix rules, tested without nixpkgs";

  outputs = { self }:
    let
      system = "x86_64-linux";
      avac = ./avac;
      fetchLocal = import ./rules/fetchLocal.nix { inherit avac system; };
      # Every fetched kind comes from ./seeds, by pin: the same fixed-output
      # derivation (so a wrong seed is Nix's own hash mismatch).
      seeded = args@{ name, sha256, ... }:
        let file = ./seeds + "/${sha256}";
        in
        if builtins.pathExists file then fetchLocal { inherit name sha256 file; }
        else throw "tests/nix: no seed for source ${name} (seeds/${sha256})";
      rules = import ./rules {
        inherit avac system;
        fetchers = { file = seeded; pypi = seeded; hf = seeded; url = seeded; };
      };
    in
    {
      packages.${system} = rules.targets;
      legacyPackages.${system} = { inherit (rules) sources; };
      checks.${system} = {
        inherit (rules.targets) malbert-tiny-int8 minilm-intent-int8;
      };
    };
}
