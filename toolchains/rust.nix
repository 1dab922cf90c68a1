# The pinned Rust toolchain, for the flake (packages.avac, devShells.default).
#
# Pinned by: rust-toolchain.toml (channel 1.95.0 + components) — the same
# file rustup reads for `cargo` outside Nix — resolved through rust-overlay,
# whose revision and narHash flake.lock pins (rust-overlay carries the
# channel manifests' sha256 of every component, so the toolchain is fetched
# by hash). musl and aarch64 targets are added for static and Android builds.
#
# Update: edit `channel` in rust-toolchain.toml, then
#   nix flake lock --update-input rust-overlay
# (needed only if the new release is newer than the locked rust-overlay), and
# re-run the goldens: `cargo test --release` (a compiler change must not move
# any golden digest; if it does, that is a determinism bug to fix, not bless).
{ rust-bin }:
rust-bin.fromRustupToolchainFile ../rust-toolchain.toml
