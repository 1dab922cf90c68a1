#!/usr/bin/env bash
# Cross-machine reproducibility proof: build one AON target (default
# malbert-tiny-int8) with a static x86_64-unknown-linux-musl avac natively and
# with a static aarch64-unknown-linux-musl avac under qemu-user, and compare
# the bytes (and golden/<target>.sha256).
#
# Usage: scripts/cross-arch.sh [TARGET]
#
# Environment:
#   CARGO_TARGET_DIR     cargo target dir (default /var/tmp/avac-cross-target)
#   AVAC_CROSS_WORK      scratch dir for the runs (default: a fresh mktemp -d; kept)
#   AVAC_CROSS_RESULTS   Markdown report (default benches/results/cross-arch.md)
#   AVAC_CROSS_INSTALL   0: never install missing pieces, only name them (default 1)
#
# Every cross setting is passed through the environment of the cargo
# invocation; nothing is written to .cargo/config.toml.
#
# `avac build` runs each step as a child process of itself
# (std::env::current_exe). Under qemu-user that child is an aarch64 ELF,
# which the kernel runs only if binfmt_misc has a qemu-aarch64 handler. When
# it has one, the aarch64 run is `avac build` under qemu. When it has not (a
# container without binfmt_misc), the script drives the same plan one step
# at a time, every step under qemu-aarch64-static, with avac's own
# `build-step` commands: `params` (the plan's parameter files), `source` (the
# inputs, generated sources generated on aarch64), the planned command line
# of each step (read from avac's plan via `build-step exec`, which prints it)
# run in a cleared environment like the runner does, and `publish`. The same
# step driver is also run with the x86-64 binary, so that every intermediate
# file can be compared between the two architectures.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET="${1:-malbert-tiny-int8}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/avac-cross-target}"
RESULTS="${AVAC_CROSS_RESULTS:-$ROOT/benches/results/cross-arch.md}"
INSTALL="${AVAC_CROSS_INSTALL:-1}"
X86=x86_64-unknown-linux-musl
A64=aarch64-unknown-linux-musl
COMMAND="scripts/cross-arch.sh${*:+ $*}"

die() { echo "cross-arch: $*" >&2; exit 1; }
note() { echo "cross-arch: $*" >&2; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# --- 1. the pieces ----------------------------------------------------------
apt_install() { # apt_install PACKAGE WHAT
    if [[ "$INSTALL" == 1 && $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        note "installing $1 ($2) with apt-get"
        apt-get install -y "$1" >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y "$1" >/dev/null 2>&1; } ||
            die "missing $2: \`apt-get install -y $1\` failed; install it and rerun"
    else
        die "missing $2: install the Debian package $1 (apt-get install -y $1) and rerun"
    fi
}
command -v cargo >/dev/null || die "missing cargo: install Rust through rustup (https://rustup.rs)"
command -v rustup >/dev/null || die "missing rustup: the musl targets are added with rustup"
command -v python3 >/dev/null || die "missing python3 (reads rules/targets.toml for the step driver)"
command -v qemu-aarch64-static >/dev/null || apt_install qemu-user-static "qemu-aarch64-static"
command -v aarch64-linux-gnu-gcc >/dev/null || apt_install gcc-aarch64-linux-gnu "aarch64-linux-gnu-gcc (C of zstd-sys, ring, tract-linalg for aarch64)"
command -v musl-gcc >/dev/null || apt_install musl-tools "musl-gcc (C of zstd-sys, ring for x86_64 musl)"
command -v file >/dev/null || apt_install file "file"
for t in $X86 $A64; do # rustup acts on the toolchain of rust-toolchain.toml (we are in $ROOT)
    if ! rustup target list --installed | grep -qx "$t"; then
        [[ "$INSTALL" == 1 ]] || die "missing Rust target $t: rustup target add $t"
        note "rustup target add $t"
        rustup target add "$t" >&2 || die "missing Rust target $t: \`rustup target add $t\` failed"
    fi
done
SYSROOT="$(rustc --print sysroot)"
HOST="$(rustc -vV | sed -n 's/^host: //p')"
[[ -x "$SYSROOT/lib/rustlib/$HOST/bin/rust-lld" ]] || die "missing rust-lld in $SYSROOT/lib/rustlib/$HOST/bin (the toolchain ships it)"

# The tree the binaries are built from (others may commit or edit meanwhile).
COMMIT0=$(git rev-parse HEAD)
DIRTY0=$(git --no-optional-locks status --porcelain 2>/dev/null | wc -l)

# --- 2. the binaries --------------------------------------------------------
# aarch64: rust-lld links (rustc finds it in its own sysroot); C dependencies
# are compiled by Debian's aarch64-linux-gnu-gcc (freestanding enough for
# libzstd, ring's C/asm and tract-linalg's NEON asm; libc comes from the
# musl that the Rust target ships, self-contained). Both musl targets link
# statically by default (+crt-static); no RUSTFLAGS are set, so the cache of
# a plain `cargo build --target …` is reused. x86_64 musl C goes through
# cc-rs' default, musl-gcc.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld
export CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_musl=aarch64-linux-gnu-ar

declare -A BUILD_S BIN COLD
for t in $X86 $A64; do
    [[ -d "$CARGO_TARGET_DIR/$t/release/.fingerprint" ]] && COLD[$t]="warm: target dir already populated" || COLD[$t]="cold: empty target dir"
    note "cargo build --release --locked --target $t (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    t0=$(now)
    nice -n 10 cargo build --release --locked --target "$t" >&2
    BUILD_S[$t]=$(secs "$t0" "$(now)")
    BIN[$t]="$CARGO_TARGET_DIR/$t/release/avac"
    f="$(file -b "${BIN[$t]}")"
    [[ "$f" == *"statically linked"* || "$f" == *"static-pie linked"* ]] || die "${BIN[$t]} is not static: $f"
done
file -b "${BIN[$A64]}" | grep -q 'ARM aarch64' || die "${BIN[$A64]} is not an aarch64 ELF"

# --- 3. the runs ------------------------------------------------------------
WORK="${AVAC_CROSS_WORK:-$(mktemp -d /var/tmp/avac-cross-run.XXXXXX)}"
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
note "scratch: $WORK"
QEMU=(qemu-aarch64-static)
A64_CMD=("${QEMU[@]}" "${BIN[$A64]}")
X86_CMD=("${BIN[$X86]}")

# The x86-64 reference: `avac build`, natively, 2 threads, fresh store, run
# outside the repo (the binary's embedded declaration and data).
rm -rf "$WORK/x86-build" "$WORK/x86-build.store"
t0=$(now)
(cd "$WORK" && AVAC_STORE="$WORK/x86-build.store" "${X86_CMD[@]}" --threads 2 build "$TARGET" --out "$WORK/x86-build/out" >&2)
RUN_X86_BUILD=$(secs "$t0" "$(now)")

# The step driver (see the header): run_steps NAME THREADS CMD…
run_steps() {
    local name=$1 threads=$2
    shift 2
    local cmd=("$@") d="$WORK/$name"
    rm -rf "$d"
    mkdir -p "$d"
    export AVAC_STORE="$d/store"
    mkdir -p "$AVAC_STORE"
    local r="$d/root"
    mkdir -p "$r/work"
    (cd "$d" && "${cmd[@]}" build-step params "$TARGET" --out "$d/params")
    cp -r "$d/params/work/." "$r/work/"
    # The sources of an AON target and where the runner places them (src/build/plan.rs, plan_aon).
    python3 - "$ROOT/rules/targets.toml" "$TARGET" >"$d/sources.tsv" <<'PY'
import sys, tomllib
d = tomllib.load(open(sys.argv[1], "rb"))
t = d["targets"][sys.argv[2]]
if t["rule"] != "aon":
    sys.exit(f"cross-arch: {sys.argv[2]} is not an AON target; the step driver handles AON targets")
roles = [(s, "in/model") for s in t["model"]] + [(t["intents"], "in/intents")]
if "calibration" in t:
    roles.append((t["calibration"], "in/calibration"))
for s, rel in roles:
    src = d["sources"][s]
    blob = src.get("path", "") if src["kind"] == "file" else ""
    if src["kind"] not in ("file", "generated"):
        sys.exit(f"cross-arch: source {s} is {src['kind']}; the step driver handles file and generated sources")
    print(f"{s}\t{rel}\t{blob}")
PY
    while IFS=$'\t' read -r src rel blob; do
        local args=(build-step source "$src" --out "$d/src-$src")
        [[ -z "$blob" ]] || args+=(--blob "$src=$ROOT/$blob")
        (cd "$d" && "${cmd[@]}" "${args[@]}")
        mkdir -p "$r/$rel"
        cp -r "$d/src-$src/." "$r/$rel/"
    done <"$d/sources.tsv"
    # The plan's steps and command lines, from avac itself.
    local steps
    steps=$(cd "$d" && "${cmd[@]}" build-step exec "$TARGET" '?' --out "$d/none" -- '?' 2>&1 | sed -n 's/.*its steps: //p' | tr -d ,) || true
    [[ -n "$steps" ]] || die "could not read the steps of $TARGET from avac"
    : >"$d/steps.txt"
    for s in $steps; do
        local planned
        planned=$(cd "$d" && "${cmd[@]}" build-step exec "$TARGET" "$s" --out "$d/none" -- '?' 2>&1 | sed -n 's/^ *planned: avac //p') || true
        [[ -n "$planned" ]] || die "could not read the command line of step $s from avac"
        echo "$s avac --threads $threads $planned" >>"$d/steps.txt"
        local t0
        t0=$(now)
        # shellcheck disable=SC2086 # the planned arguments hold no spaces
        (cd "$r" && env -i "${cmd[@]}" --threads "$threads" $planned) >"$d/$s.log" 2>&1 || {
            cat "$d/$s.log" >&2
            die "$name: step $s failed"
        }
        echo "$s $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')" >>"$d/times.txt"
    done
    (cd "$d" && "${cmd[@]}" build-step publish "$TARGET" --from "$r" --out "$d/out" >/dev/null)
    unset AVAC_STORE
}

A64_MODE=""
if [[ -r /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] && grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64; then
    A64_MODE="avac build under qemu-aarch64-static (binfmt_misc handles the step children)"
    rm -rf "$WORK/a64-build" "$WORK/a64-build.store"
    t0=$(now)
    (cd "$WORK" && AVAC_STORE="$WORK/a64-build.store" "${A64_CMD[@]}" --threads 1 build "$TARGET" --out "$WORK/a64-build/out" >&2)
    RUN_A64_BUILD=$(secs "$t0" "$(now)")
else
    A64_MODE="no binfmt_misc handler for aarch64 here: \`avac build\` under qemu cannot exec its own step children (Exec format error), so the plan is driven step by step, each step under qemu-aarch64-static"
    note "$A64_MODE"
    RUN_A64_BUILD=""
fi
t0=$(now)
run_steps x86-steps 2 "${X86_CMD[@]}"
RUN_X86_STEPS=$(secs "$t0" "$(now)")
t0=$(now)
run_steps a64-steps 1 "${A64_CMD[@]}"
RUN_A64_STEPS=$(secs "$t0" "$(now)")
A64_OUT="$WORK/a64-steps/out"
[[ -z "$RUN_A64_BUILD" ]] || A64_OUT="$WORK/a64-build/out"

# --- 4. the report ----------------------------------------------------------
ARTIFACT=$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["targets"][sys.argv[2]]["artifact"])' "$ROOT/rules/targets.toml" "$TARGET")
GOLDEN="$ROOT/golden/$TARGET.sha256"
golden_of() { [[ -f "$GOLDEN" ]] && awk -v f="$1" '$2 == f { print $1 }' "$GOLDEN" || true; }
short() { [[ -n "$1" ]] && echo "\`${1:0:16}…\`" || echo "—"; }
# Provenance with the two fields that name the builder (engine id and the
# avac binary's own digest) masked: what must still agree.
masked() { python3 - "$1" <<'PY'
import hashlib, json, sys
v = json.load(open(sys.argv[1]))
r = v["predicate"]["runDetails"]
r["builder"]["id"] = "*"
for b in r.get("byproducts", []):
    if b.get("name") == "avac":
        b["digest"]["sha256"] = "*"
print(hashlib.sha256(json.dumps(v, sort_keys=True).encode()).hexdigest())
PY
}

ARTIFACT_OK=1
table() { # table XDIR ADIR: every file of the two output dirs
    echo "| file | x86-64 sha256 | aarch64 sha256 | golden sha256 | equal? |"
    echo "| --- | --- | --- | --- | --- |"
    local f
    for f in $( (ls "$1"; ls "$2") | sort -u); do
        local x="" a="" g eq
        [[ -f "$1/$f" ]] && x=$(sha "$1/$f")
        [[ -f "$2/$f" ]] && a=$(sha "$2/$f")
        g=$(golden_of "$f")
        if [[ "$x" == "$a" && -n "$x" ]]; then eq="yes"; else eq="**no**"; fi
        if [[ -n "$g" ]]; then
            if [[ "$x" == "$g" && "$a" == "$g" ]]; then eq="$eq; = golden"; else eq="$eq; **≠ golden**"; fi
        fi
        case "$f" in
            *.provenance.json)
                local mx ma
                mx=$(masked "$1/$f"); ma=$(masked "$2/$f")
                if [[ "$mx" == "$ma" ]]; then eq="$eq (equal with builder id and avac digest masked)"; else eq="$eq (**differ** even with builder id and avac digest masked)"; fi ;;
            *.validation.json) [[ "$x" == "$a" ]] || eq="$eq (report; not pinned: see below)" ;;
            *.json) eq="$eq (report; not pinned)" ;;
        esac
        echo "| \`$f\` | $(short "$x") | $(short "$a") | $(short "$g") | $eq |"
        if [[ "$f" == "$ARTIFACT" ]]; then
            [[ -n "$x" && "$x" == "$a" ]] || ARTIFACT_OK=0
            [[ -z "$g" || "$x" == "$g" ]] || ARTIFACT_OK=0
        fi
    done
}
step_table() { # intermediate files of the two step-driver runs
    echo "| work file (step output) | x86-64 sha256 | aarch64 sha256 | equal? |"
    echo "| --- | --- | --- | --- |"
    local f
    for f in $(cd "$WORK/x86-steps/root" && find in work -type f | LC_ALL=C sort); do
        local x a eq
        x=$(sha "$WORK/x86-steps/root/$f")
        a=$( [[ -f "$WORK/a64-steps/root/$f" ]] && sha "$WORK/a64-steps/root/$f" || echo missing)
        [[ "$x" == "$a" ]] && eq=yes || eq="**no**"
        case "$f" in work/optimize.json | work/quantize.json | work/validation.json) eq="$eq (report; not pinned)" ;; esac
        echo "| \`$f\` | $(short "$x") | $(short "$a") | $eq |"
    done
}
step_times() {
    echo "| step | x86-64 native, 2 threads (s) | aarch64 qemu-user, 1 thread (s) | ratio |"
    echo "| --- | --- | --- | --- |"
    paste -d' ' "$WORK/x86-steps/times.txt" "$WORK/a64-steps/times.txt" |
        awk '{ r = ($2 >= 0.1 ? sprintf("%.0f×", $4 / $2) : "—"); printf "| %s | %.2f | %.2f | %s |\n", $1, $2, $4, r }'
}
# Keys of two JSON reports whose values differ, with both values.
json_diff() { python3 - "$1" "$2" <<'PY'
import json, sys
def flat(v, p=""):
    if isinstance(v, dict):
        for k, x in v.items():
            yield from flat(x, f"{p}/{k}")
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from flat(x, f"{p}/{i}")
    else:
        yield p, v
a, b = (dict(flat(json.load(open(f)))) for f in sys.argv[1:3])
keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
print(f"{len(keys)} of {len(set(a) | set(b))} values differ.")
if keys:
    print()
    print("| key | x86-64 | aarch64 |")
    print("| --- | --- | --- |")
    for k in keys:
        print(f"| `{k}` | {a.get(k, '—')} | {b.get(k, '—')} |")
PY
}

COMMIT1=$(git rev-parse HEAD)
DIRTY1=$(git --no-optional-locks status --porcelain 2>/dev/null | wc -l)
tree() { echo "\`$1\`; working tree modified: $([[ $2 -gt 0 ]] && echo "yes ($2 paths in \`git status --porcelain\`; the binaries are built from the working tree as cargo saw it)" || echo no)"; }
{
    echo "# Cross-architecture reproducibility: $TARGET"
    echo
    echo "x86-64 (native) against aarch64 (qemu-user), both static musl builds of avac."
    echo "Written by \`scripts/cross-arch.sh\`; do not edit by hand."
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "- commit (before the cargo builds): $(tree "$COMMIT0" "$DIRTY0")"
    [[ "$COMMIT1" == "$COMMIT0" && "$DIRTY1" == "$DIRTY0" ]] || echo "- commit (at the end of the run; the tree changed meanwhile): $(tree "$COMMIT1" "$DIRTY1")"
    echo "- toolchain: \`$(rustc -V)\`, \`$(cargo -V)\`; qemu: \`$(qemu-aarch64-static --version | head -1)\`; C: \`$(aarch64-linux-gnu-gcc --version | head -1)\`"
    echo "- host: \`$(uname -srm)\`, $(nproc) cores"
    echo "- command: \`$COMMAND\` with \`CARGO_TARGET_DIR=$CARGO_TARGET_DIR\`"
    echo "- cross flags (environment only): \`CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld\`, \`CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc\`, \`AR_aarch64_unknown_linux_musl=aarch64-linux-gnu-ar\`; no RUSTFLAGS (both musl targets default to +crt-static)"
    echo "- aarch64 run: $A64_MODE"
    echo
    echo "## Binaries"
    echo
    echo "| target | sha256 | \`file\` |"
    echo "| --- | --- | --- |"
    for t in $X86 $A64; do
        echo "| $t | \`$(sha "${BIN[$t]}")\` | $(file -b "${BIN[$t]}" | sed 's/|/\\|/g') |"
    done
    echo
    echo "The aarch64 binary runs under \`qemu-aarch64-static\` (no \`uname -m\` inside a"
    echo "static avac; the architecture is the ELF header above)."
    echo
    echo "## Outputs"
    echo
    echo "x86-64: \`avac --threads 2 build $TARGET\` (native, fresh \`AVAC_STORE\`)."
    if [[ -n "$RUN_A64_BUILD" ]]; then
        echo "aarch64: \`qemu-aarch64-static avac --threads 1 build $TARGET\` (fresh \`AVAC_STORE\`)."
    else
        echo "aarch64: the step driver under \`qemu-aarch64-static\`, \`--threads 1\` (fresh \`AVAC_STORE\`);"
        echo "\`build-step publish\` records builder \`urn:avac:builder:nix\` where \`avac build\` records"
        echo "\`urn:avac:builder:avac-build\`, and each provenance names its own avac binary's digest."
    fi
    echo
    table "$WORK/x86-build/out" "$A64_OUT"
    echo
    echo "Same step driver on both (x86-64 \`--threads 2\`, aarch64 \`--threads 1\`), published outputs:"
    echo
    table "$WORK/x86-steps/out" "$WORK/a64-steps/out"
    echo
    echo "### \`$ARTIFACT.validation.json\` (x86-64 \`avac build\` against aarch64)"
    echo
    echo "Validation reports are not pinned: they hold tract latencies, and the logit"
    echo "differences measured by running the model in tract, whose kernels are chosen per"
    echo "architecture (NEON/FMA assembly on aarch64). The gates pass on both."
    echo
    json_diff "$WORK/x86-build/out/$ARTIFACT.validation.json" "$A64_OUT/$ARTIFACT.validation.json"
    echo
    echo "## Every input and intermediate file"
    echo
    step_table
    echo
    echo "Step command lines (from avac's plan):"
    echo
    echo '```'
    cat "$WORK/a64-steps/steps.txt"
    echo '```'
    echo
    echo "## Timings"
    echo
    echo "| part | seconds |"
    echo "| --- | --- |"
    echo "| \`cargo build --release --target $X86\` (${COLD[$X86]}) | ${BUILD_S[$X86]} |"
    echo "| \`cargo build --release --target $A64\` (${COLD[$A64]}) | ${BUILD_S[$A64]} |"
    echo "| x86-64 \`avac build\`, native, 2 threads | $RUN_X86_BUILD |"
    [[ -z "$RUN_A64_BUILD" ]] || echo "| aarch64 \`avac build\`, qemu-user, 1 thread | $RUN_A64_BUILD |"
    echo "| x86-64 step driver (params, sources, steps, publish), native, 2 threads | $RUN_X86_STEPS |"
    echo "| aarch64 step driver (params, sources, steps, publish), qemu-user, 1 thread | $RUN_A64_STEPS |"
    echo
    step_times
    echo
    echo "Scratch directory (kept): \`$WORK\`."
} >"$RESULTS.tmp"
mv "$RESULTS.tmp" "$RESULTS"
cat "$RESULTS"
if [[ $ARTIFACT_OK != 1 ]]; then
    note "the artifact $ARTIFACT differs between x86-64 and aarch64 (or from golden)"
    exit 1
fi
