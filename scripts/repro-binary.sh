#!/usr/bin/env bash
# Reproducible avac binary: builds the release binary (cargo profile `dist`,
# the one dist's release workflow uses) from two copies of the source tree
# in different directories and compares the bytes.
#
#   bash scripts/repro-binary.sh [TARGET]      # default x86_64-unknown-linux-musl
#
# What makes the bytes independent of the directory and the machine:
#   - profile `dist` (Cargo.toml): debug = 0, strip = "symbols", lto = "thin",
#     codegen-units = 1, panic = "unwind" — no DWARF (no comp_dir), no symbol
#     table, one codegen unit;
#   - RUSTFLAGS --remap-path-prefix for the source tree (→ /avac), the
#     target directory (→ /target: build-script outputs under OUT_DIR are
#     compiled in) and CARGO_HOME (→ /cargo), so no path of the builder's
#     machine reaches the binary (std's are already /rustc/<commit>/…);
#   - the same RUSTFLAGS text for both builds (it names both source
#     directories): RUSTFLAGS feed the metadata hashes in OUT_DIR paths, so
#     a per-build text would itself make the bytes differ — the first run of
#     this script differed, but it had copied a working tree that changed
#     between the two builds — the script now takes one snapshot;
#   - Cargo.lock (--locked), the toolchain pinned in rust-toolchain.toml, and
#     a static musl target (no host glibc).
# Both builds use one target directory (AVAC_REPRO_TARGET_DIR, default
# /var/tmp/avac-repro-target): dependencies compile once — their paths are
# already remapped — and the avac crates compile once per source directory.
set -euo pipefail
target="${1:-x86_64-unknown-linux-musl}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
tdir="${AVAC_REPRO_TARGET_DIR:-/var/tmp/avac-repro-target}"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
work="$(mktemp -d /tmp/avac-repro-XXXXXX)"
trap 'rm -rf "$work"' EXIT
rustup target add "$target" >/dev/null 2>&1 || true

src_a="$work/a/avac"
src_b="$work/b/elsewhere/src"
flags="--remap-path-prefix=$src_a=/avac --remap-path-prefix=$src_b=/avac --remap-path-prefix=$tdir=/target --remap-path-prefix=$cargo_home=/cargo"
# One snapshot of the tree for both builds (the working tree may change while they run).
git -C "$repo" ls-files -z --cached --others --exclude-standard | (cd "$repo" && xargs -0 tar -cf - --) >"$work/tree.tar"
build() { # SRC_DIR OUT
  local src="$1" out="$2"
  mkdir -p "$src"
  tar -xf "$work/tree.tar" -C "$src"
  # The avac crates are rebuilt from this directory (cargo would otherwise reuse the other build's).
  (cd "$src" && RUSTFLAGS="$flags" CARGO_TARGET_DIR="$tdir" cargo clean --profile dist --target "$target" -p avac)
  (cd "$src" && RUSTFLAGS="$flags" CARGO_TARGET_DIR="$tdir" cargo build --locked --profile dist --target "$target" --bin avac)
  cp "$tdir/$target/dist/avac" "$out"
}
start=$(date +%s)
build "$src_a" "$work/avac-a"
mid=$(date +%s)
build "$src_b" "$work/avac-b"
end=$(date +%s)
a=$(sha256sum "$work/avac-a" | cut -d' ' -f1)
b=$(sha256sum "$work/avac-b" | cut -d' ' -f1)
echo "build 1 ($work/a/avac): $a  ($((mid - start)) s)"
echo "build 2 ($work/b/elsewhere/src): $b  ($((end - mid)) s)"
if [ "$a" = "$b" ]; then
  echo "reproducible: $target avac $(stat -c %s "$work/avac-a") bytes, sha256 $a"
else
  echo "NOT reproducible: the two binaries differ" >&2
  cmp "$work/avac-a" "$work/avac-b" | head -1 >&2 || true
  keep="${AVAC_REPRO_KEEP:-/var/tmp/avac-repro-differs}"
  mkdir -p "$keep" && cp "$work/avac-a" "$work/avac-b" "$keep/" && echo "kept both binaries in $keep" >&2
  exit 1
fi
