# A test double of rust-overlay: `rust-bin.fromRustupToolchainFile` reads
# the toolchain file (as the real overlay does) and returns an unbuildable
# derivation named after its channel. See ../stub-nixpkgs/flake.nix.
{
  description = "stub rust-overlay for evaluating avac's root flake";
  outputs = { self }: {
    overlays.default = final: prev: {
      rust-bin.fromRustupToolchainFile = file:
        let channel = (builtins.fromTOML (builtins.readFile file)).toolchain.channel;
        in derivation { name = "rust-${channel}"; system = final.python3.system; builder = "/bin/sh"; args = [ "-c" "exit 1" ]; };
    };
  };
}
