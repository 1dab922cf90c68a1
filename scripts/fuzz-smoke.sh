#!/usr/bin/env bash
# Fuzz smoke test for CI: builds every fuzz target of fuzz/ once, then runs
# each for a short while on its committed corpus and regression inputs;
# fails when any target crashes, leaks, runs out of memory or hangs.
#
# Usage: scripts/fuzz-smoke.sh [TARGET...]   (default: every target)
#
# Environment:
#   AVAC_FUZZ_SECONDS    seconds per target (default 30)
#   AVAC_FUZZ_TOOLCHAIN  the nightly toolchain cargo-fuzz builds with (default nightly)
#   CARGO_TARGET_DIR     cargo target dir (default /var/tmp/avac-fuzz-target, reused across runs)
#   AVAC_FUZZ_ARTIFACTS  where crashing inputs are written (default fuzz/artifacts, git-ignored)
#
# The committed corpus is only read: what a run finds goes to a scratch
# directory. Inputs listed in fuzz/regressions/KNOWN still crash a reader
# whose fix is pending; they are skipped (and named) so that only a new crash
# fails the run. When a fix lands, delete its line and the input is run.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
seconds=${AVAC_FUZZ_SECONDS:-30}
toolchain=${AVAC_FUZZ_TOOLCHAIN:-nightly}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/avac-fuzz-target}
artifacts=$(realpath -m "${AVAC_FUZZ_ARTIFACTS:-fuzz/artifacts}")

if [ "$(cargo-fuzz --version 2>/dev/null || true)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
  cargo "+$toolchain" install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

work=$(mktemp -d -p "$([ -d /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}")" avac-fuzz-smoke.XXXXXX)
trap 'rm -rf "$work"' EXIT
# Targets that read a path get their input through a file under $TMPDIR.
export TMPDIR=$work

(cd fuzz && cargo "+$toolchain" fuzz build)
bin=$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cd fuzz && cargo "+$toolchain" fuzz list | grep -vx seed)
fi

dict_of() {
  case $1 in
    gguf | gemma3_gguf) echo fuzz/dict/gguf.dict ;;
    tar | package) echo fuzz/dict/tar.dict ;;
    declaration) echo fuzz/dict/toml.dict ;;
    onnx_graph | diff) ;;
    *) echo fuzz/dict/json.dict ;;
  esac
}

known=()
[ -f fuzz/regressions/KNOWN ] && mapfile -t known < <(grep -v '^\s*\(#\|$\)' fuzz/regressions/KNOWN)

failed=()
for t in "${targets[@]}"; do
  mkdir -p "$work/$t/new" "$work/$t/regressions" "$artifacts/$t"
  for f in fuzz/regressions/"$t"/*; do
    [ -f "$f" ] || continue
    if printf '%s\n' "${known[@]}" | grep -qxF "$f"; then
      echo "fuzz-smoke: $t: skipping $f (fuzz/regressions/KNOWN: fix pending)"
    else
      cp "$f" "$work/$t/regressions/"
    fi
  done
  dict=$(dict_of "$t")
  args=(-max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/$t/")
  [ -n "$dict" ] && args+=(-dict="$dict")
  echo "fuzz-smoke: $t for ${seconds}s"
  if ! "$bin/$t" "${args[@]}" "$work/$t/new" "fuzz/corpus/$t" "$work/$t/regressions" >"$work/$t.log" 2>&1; then
    failed+=("$t")
    tail -n 60 "$work/$t.log"
    echo "fuzz-smoke: $t FAILED; inputs in $artifacts/$t/"
  fi
  grep -h '^stat::number_of_executed_units\|^stat::peak_rss_mb' "$work/$t.log" | sed "s/^/fuzz-smoke: $t: /" || true
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz-smoke: crashes in: ${failed[*]}"
  exit 1
fi
echo "fuzz-smoke: ${#targets[@]} targets, no crash"
