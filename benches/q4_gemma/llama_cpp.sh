#!/usr/bin/env bash
# llama.cpp's own importance-matrix quantization of Gemma 3 270M, as peers of
# avac's rows in benches/q4_gemma (issue 15, item 6).
#
#   bash benches/q4_gemma/llama_cpp.sh [--gguf PATH] [--avac PATH] [--work DIR] [--cache DIR] [--max-tokens N] [--no-perplexity] [--source-score FILE] [--resume] [--build-only] [--out FILE]
#
# Writes benches/results/q4_gemma_llama_cpp.md (or --out), and <work>/rows.json
# (one object per row, the same fields as run.sh's table) and prints the
# Markdown path.
#
#   --gguf        the Gemma 3 270M Q4_K_M GGUF (sha256 a5fd3b62…6818, checked). Default: avac's
#                 store ($AVAC_STORE, else $XDG_CACHE_HOME/avac/store, else ~/.cache/avac/store).
#   --avac        the avac binary that scores (default: `cargo build --release` here).
#   --work        scratch directory outside the repository, recreated on every run
#                 (default /var/tmp/llama-bench/work).
#   --cache       where the tools venv, the sdist and the built llama.cpp tools are kept
#                 (default ${AVAC_BENCH_CACHE:-${XDG_CACHE_HOME:-~/.cache}/avac-bench}); a second run
#                 finds the tools there and skips the build (~12 min on 2 cores).
#   --max-tokens  score only the first N tokens of the eval text (quick trials).
#   --no-perplexity  skip llama.cpp's own llama-perplexity cross-check.
#   --source-score  reuse `avac alc score` of the source on the same eval text (run.sh's
#                 scores/source.json, same avac and options) instead of scoring it again.
#   --resume      keep the work directory and skip the steps whose outputs are there (the F32
#                 GGUF, the imatrix, each quantized GGUF with its info, each score); the
#                 commands are still listed. For finishing a run that stopped (same avac).
#   --build-only  stop after building (or finding) the tools.
#
# Steps: (1) a venv with cmake and ninja (pinned, wheels from PyPI) and the
# llama-cpp-python sdist (pinned version and sha256) fetched with pip; the
# llama.cpp it vendors is built CPU-only, Release, static, with no network
# features (LLAMA_OPENSSL, LLAMA_CURL, GGML_CCACHE off), targets llama-imatrix,
# llama-quantize, llama-perplexity only, `nice -n 10`, 2 jobs. (2) bench.py
# f32-gguf: the source dequantized to an F32 GGUF (gguf-py; every metadata pair
# kept). (3) llama-imatrix on data/alc/calibration-text.txt (avac's calibration
# corpus, never the eval text), then llama-quantize Q4_0 and Q4_K_M with and
# without --imatrix, plus --pure Q4_0 (every 2-D weight Q4_0, llama.cpp's own
# reference of gguf-py's Q4_0); each timed. (4) `avac alc score` of the source
# and every GGUF on data/alc/eval-text.txt; (5) optionally llama-perplexity on
# the eval text; (6) bench.py llama-table.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

cache=${AVAC_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/avac-bench}
work=/var/tmp/llama-bench/work
avac=""
gguf=""
max_tokens=""
perplexity=true
build_only=false
source_score=""
resume=false
out="$repo/benches/results/q4_gemma_llama_cpp.md"
command_line="bash benches/q4_gemma/llama_cpp.sh${*:+ $*}"

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -n 's/^# \{0,1\}//p'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --gguf) gguf=$2; shift 2 ;;
    --avac) avac=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --cache) cache=$2; shift 2 ;;
    --max-tokens) max_tokens=$2; shift 2 ;;
    --no-perplexity) perplexity=false; shift ;;
    --build-only) build_only=true; shift ;;
    --source-score) source_score=$2; shift 2 ;;
    --resume) resume=true; shift ;;
    --out) out=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "llama_cpp.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
case "$max_tokens" in ''|*[!0-9]*) [ -z "$max_tokens" ] || { echo "llama_cpp.sh: --max-tokens must be a positive integer" >&2; exit 2; } ;; esac

# Pins.
GGUF_SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
GGUF_SIZE=253113024
LLAMA_CPP_PYTHON=0.3.36
LLAMA_CPP_PYTHON_SDIST=llama_cpp_python-$LLAMA_CPP_PYTHON.tar.gz
LLAMA_CPP_PYTHON_SHA=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
# Build tools (wheels). scikit-build-core is llama-cpp-python's build backend: pip needs it
# only to read the sdist's metadata while downloading it (--no-build-isolation), nothing is
# built with it.
TOOL_PINS=(cmake==3.31.10 ninja==1.13.0 scikit-build-core==0.11.6)
# Reading and writing GGUFs: the same pins as run.sh.
PY_PINS=(gguf==0.19.0 numpy==2.4.6)
CMAKE_FLAGS=(
  -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF
  -DGGML_CCACHE=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_LLGUIDANCE=OFF
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF
  -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DGGML_RPC=OFF -DGGML_BACKEND_DL=OFF
)
TOOLS=(llama-imatrix llama-quantize llama-perplexity)
calib="$repo/data/alc/calibration-text.txt"
text="$repo/data/alc/eval-text.txt"

t_start=$EPOCHREALTIME
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { echo "llama_cpp.sh: $*" >&2; exit 1; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", b - a}'; }

# 1. llama.cpp's tools, built once per pin set and kept in the cache.
tools_venv=$cache/llama-tools-venv
stamp_text="llama-cpp-python $LLAMA_CPP_PYTHON sha256 $LLAMA_CPP_PYTHON_SHA; ${TOOL_PINS[*]}; ${CMAKE_FLAGS[*]}; ${TOOLS[*]}"
stamp_id=$(printf '%s' "$stamp_text" | sha256sum | cut -c1-12)
llama_dir=$cache/llama.cpp-$LLAMA_CPP_PYTHON-$stamp_id
bin=$llama_dir/bin
if [ -f "$llama_dir/stamp" ] && [ "$(cat "$llama_dir/stamp")" = "$stamp_text" ]; then
  log "llama.cpp tools from the cache: $bin"
else
  mkdir -p "$cache"
  if [ ! -x "$tools_venv/bin/python" ]; then
    log "creating venv $tools_venv"
    python3 -m venv "$tools_venv"
  fi
  log "installing ${TOOL_PINS[*]} into $tools_venv"
  "$tools_venv/bin/python" -m pip install -q --disable-pip-version-check --only-binary :all: "${TOOL_PINS[@]}"
  sdist=$cache/sdist/$LLAMA_CPP_PYTHON_SDIST
  if [ ! -f "$sdist" ] || [ "$(sha256sum "$sdist" | cut -d' ' -f1)" != "$LLAMA_CPP_PYTHON_SHA" ]; then
    log "pip download llama-cpp-python==$LLAMA_CPP_PYTHON (sdist)"
    rm -rf "$cache/sdist.tmp"
    mkdir -p "$cache/sdist.tmp"
    "$tools_venv/bin/python" -m pip download -q --disable-pip-version-check --no-binary :all: --no-deps \
      --no-build-isolation "llama-cpp-python==$LLAMA_CPP_PYTHON" -d "$cache/sdist.tmp"
    got=$(sha256sum "$cache/sdist.tmp/$LLAMA_CPP_PYTHON_SDIST" | cut -d' ' -f1)
    [ "$got" = "$LLAMA_CPP_PYTHON_SHA" ] || die "$LLAMA_CPP_PYTHON_SDIST: sha256 $got, expected $LLAMA_CPP_PYTHON_SHA"
    mkdir -p "$cache/sdist"
    mv "$cache/sdist.tmp/$LLAMA_CPP_PYTHON_SDIST" "$sdist"
    rm -rf "$cache/sdist.tmp"
  fi
  [ "$(sha256sum "$sdist" | cut -d' ' -f1)" = "$LLAMA_CPP_PYTHON_SHA" ] || die "$sdist: sha256 mismatch"
  rm -rf "$llama_dir"
  mkdir -p "$llama_dir"
  log "unpacking the vendored llama.cpp"
  tar -xzf "$sdist" -C "$llama_dir" "llama_cpp_python-$LLAMA_CPP_PYTHON/vendor/llama.cpp"
  srcdir=$llama_dir/llama_cpp_python-$LLAMA_CPP_PYTHON/vendor/llama.cpp
  log "cmake configure (log: $llama_dir/build.log)"
  t0=$EPOCHREALTIME
  PATH=$tools_venv/bin:$PATH nice -n 10 "$tools_venv/bin/cmake" -S "$srcdir" -B "$llama_dir/build" -G Ninja \
    -DCMAKE_MAKE_PROGRAM="$tools_venv/bin/ninja" "${CMAKE_FLAGS[@]}" >"$llama_dir/build.log" 2>&1 \
    || { tail -n 30 "$llama_dir/build.log" >&2; die "cmake configure failed"; }
  log "building ${TOOLS[*]} (nice -n 10, -j2; ~12 min on 2 cores)"
  nice -n 10 "$tools_venv/bin/cmake" --build "$llama_dir/build" -j2 --target "${TOOLS[@]}" >>"$llama_dir/build.log" 2>&1 \
    || { tail -n 30 "$llama_dir/build.log" >&2; die "build failed"; }
  t1=$EPOCHREALTIME
  mkdir -p "$bin"
  for t in "${TOOLS[@]}"; do cp "$llama_dir/build/bin/$t" "$bin/$t"; done
  grep -E "^(CMAKE_C_COMPILER|CMAKE_CXX_COMPILER|GGML_NATIVE|GGML_OPENMP|GGML_AVX[^:]*|GGML_F16C|GGML_FMA|BUILD_NUMBER|BUILD_COMMIT)[:=]" \
    "$llama_dir/build/CMakeCache.txt" >"$llama_dir/cmake-cache-excerpt.txt" || true
  secs "$t0" "$t1" >"$llama_dir/build-seconds"
  rm -rf "$llama_dir/build" "$llama_dir/llama_cpp_python-$LLAMA_CPP_PYTHON"
  printf '%s' "$stamp_text" >"$llama_dir/stamp"
  log "built in $(cat "$llama_dir/build-seconds") s: $bin"
fi
for t in "${TOOLS[@]}"; do [ -x "$bin/$t" ] || die "missing $bin/$t"; done
if $build_only; then echo "$bin"; exit 0; fi

# 2. Inputs.
if [ -z "$gguf" ]; then
  if [ -n "${AVAC_STORE:-}" ]; then store=$AVAC_STORE
  elif [ -n "${XDG_CACHE_HOME:-}" ] && [ "${XDG_CACHE_HOME#/}" != "$XDG_CACHE_HOME" ]; then store=$XDG_CACHE_HOME/avac/store
  else store=$HOME/.cache/avac/store
  fi
  gguf=$store/sha256/$GGUF_SHA
  [ -f "$gguf" ] || die "no Gemma 3 270M GGUF at $gguf; run \`avac fetch gemma3-270m-gguf\` first, or pass --gguf PATH"
fi
[ -f "$gguf" ] || die "--gguf $gguf: no such file"
gguf=$(cd "$(dirname "$gguf")" && pwd)/$(basename "$gguf")
[ "$(stat -L -c %s "$gguf")" = "$GGUF_SIZE" ] || die "$gguf: $(stat -L -c %s "$gguf") bytes, expected $GGUF_SIZE"
log "checking sha256 of $gguf"
got=$(sha256sum "$gguf" | cut -d' ' -f1)
[ "$got" = "$GGUF_SHA" ] || die "$gguf: sha256 $got, expected $GGUF_SHA"
[ -f "$calib" ] || die "$calib: missing"
[ -f "$text" ] || die "$text: missing"
[ -x /usr/bin/time ] || die "/usr/bin/time is needed (Debian package \`time\`)"
if [ -z "$avac" ]; then
  log "cargo build --release"
  (cd "$repo" && cargo build --release >&2)
  target=${CARGO_TARGET_DIR:-target}
  case "$target" in /*) ;; *) target=$repo/$target ;; esac
  avac=$target/release/avac
fi
[ -x "$avac" ] || die "no avac binary at $avac"
avac=$(cd "$(dirname "$avac")" && pwd)/$(basename "$avac")
case "$work" in "$repo"|"$repo"/*) die "--work must be outside the repository" ;; esac
if [ -n "$source_score" ]; then
  [ -f "$source_score" ] || die "--source-score $source_score: no such file"
  source_score=$(cd "$(dirname "$source_score")" && pwd)/$(basename "$source_score")
fi

venv=${AVAC_BENCH_VENV:-$cache/q4-venv}
if [ ! -x "$venv/bin/python" ]; then
  log "creating venv $venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
fi
log "installing ${PY_PINS[*]} into $venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "${PY_PINS[@]}"
py="$venv/bin/python"
lc() { nice -n 10 "$py" "$here/llama_cpp.py" "$@"; }
notes=""

log "work directory $work"
$resume || rm -rf "$work"
mkdir -p "$work"/{gguf,scores,logs}
cd "$work"
cp "$avac" ./avac
avac=$work/avac
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
load_start=$(loadavg)
: >commands.txt
# Runs a command and records it, with the tools and work directories written as $B and $W.
record() {
  printf '%s\n' "$*" | sed -e "s|$bin/|\$B/|g" -e "s|$work/|\$W/|g" -e "s|$py|python|g" -e "s|$repo/||g" -e "s|$gguf|SOURCE.gguf|g" \
    -e "s|/usr/bin/time -v -o [^ ]* ||" >>commands.txt
}
run() { record "$@"; "$@"; }
# once DONE-FILE LOG command...: runs it, stdout and stderr to LOG, unless --resume and
# DONE-FILE is there (then LOG is left as it was).
once() {
  local done=$1 out=$2; shift 2
  if $resume && [ -s "$done" ]; then log "  kept $done (--resume)"; record "$@"; else run "$@" >"$out" 2>&1; fi
}

# 3. The F32 GGUF, the importance matrix, the quantized GGUFs.
log "F32 GGUF of the dequantized source"
once gguf/source-f32.info.json logs/f32-gguf.log nice -n 10 "$py" "$here/llama_cpp.py" f32-gguf --gguf "$gguf" --out "$work/gguf/source-f32.gguf" --info "$work/gguf/source-f32.info.json" \
  || { cat logs/f32-gguf.log >&2; die "F32 GGUF failed"; }

# llama-imatrix's default context, and as many chunks as give avac's GPTQ token budget
# (512 samples x 32 tokens = 16,384 tokens = 32 chunks of 512). The whole text (~78 chunks)
# took an estimated 17 min on the 2 shared cores.
IMATRIX_CTX=512
IMATRIX_CHUNKS=32
log "llama-imatrix on $(basename "$calib") (log: logs/imatrix.log)"
once imatrix.gguf logs/imatrix.log /usr/bin/time -v -o logs/imatrix.time nice -n 10 "$bin/llama-imatrix" -m "$work/gguf/source-f32.gguf" -f "$calib" \
  -o "$work/imatrix.gguf" -c "$IMATRIX_CTX" --chunks "$IMATRIX_CHUNKS" -t 2 --no-ppl \
  || { tail -n 30 logs/imatrix.log >&2; die "llama-imatrix failed"; }
grep -E "computing over|tokenizing the input|tokenization took" logs/imatrix.log >&2 || true

# name|label|imatrix (yes/no)|llama-quantize options|type
variants=(
  "q4_0|llama.cpp Q4_0|no||Q4_0"
  "imx-q4_0|llama.cpp Q4_0 + imatrix|yes||Q4_0"
  "q4_k_m|llama.cpp Q4_K_M|no||Q4_K_M"
  "imx-q4_k_m|llama.cpp Q4_K_M + imatrix|yes||Q4_K_M"
  "pure-q4_0|llama.cpp Q4_0 --pure (every 2-D weight Q4_0)|no|--pure|Q4_0"
  "imx-pure-q4_0|llama.cpp Q4_0 --pure + imatrix|yes|--pure|Q4_0"
)
for v in "${variants[@]}"; do
  IFS='|' read -r name label imx opts qtype <<<"$v"
  args=()
  [ "$imx" = yes ] && args+=(--imatrix "$work/imatrix.gguf")
  [ -z "$opts" ] || args+=($opts)
  log "llama-quantize $name"
  once "gguf/$name.info.json" "logs/quantize-$name.log" /usr/bin/time -v -o "logs/quantize-$name.time" nice -n 10 "$bin/llama-quantize" "${args[@]}" \
    "$work/gguf/source-f32.gguf" "$work/gguf/$name.gguf" "$qtype" 2 \
    || { tail -n 30 "logs/quantize-$name.log" >&2; die "llama-quantize $name failed"; }
  [ -s "gguf/$name.info.json" ] || lc gguf-info --gguf "gguf/$name.gguf" --source gguf/source-f32.gguf --out "gguf/$name.info.json"
done
"$py" -c '
import json, sys
rows = []
for v in sys.argv[1:]:
    name, label, imx, opts, qtype = v.split("|")
    rows.append({"name": name, "label": label, "imatrix": imx == "yes", "options": opts, "type": qtype})
json.dump(rows, open("variants.json", "w"), indent=1)' "${variants[@]}"

# 4. avac's reference forward on the eval text.
score_opts=(--text "$text")
[ -z "$max_tokens" ] || score_opts+=(--max-tokens "$max_tokens")
score() { # name source
  log "avac alc score $1"
  local what=$2
  case "$what" in
    "$work"/gguf/*.gguf) # a tensor type avac does not read (llama-quantize's Q4_1 fallbacks) is dequantized to F32 first
      what=$(run nice -n 10 "$py" "$here/llama_cpp.py" avac-readable --gguf "$what" --out "$work/gguf/$1.avac.gguf" --info "$work/gguf/$1.avac.json") ;;
  esac
  once "scores/$1.json" "logs/score-$1.err" nice -n 10 "$avac" alc score --source "$what" "${score_opts[@]}" --out "$work/scores/$1.json" \
    || { cat "logs/score-$1.err" >&2; die "avac alc score $1 failed (see above: a tensor type avac does not read?)"; }
}
if [ -n "$source_score" ]; then
  log "source score from $source_score"
  cp "$source_score" scores/source.json
else
  score source "$gguf"
fi
for v in "${variants[@]}"; do
  IFS='|' read -r name _ <<<"$v"
  score "$name" "$work/gguf/$name.gguf"
done

# 5. llama.cpp's own forward, as a cross-check of the scorer: perplexity on the
# eval text, then KL divergence and top-1 agreement against the source's logits.
PPL_CTX=1024   # the eval text has 2,440 tokens; llama-perplexity wants 2 × ctx at least
ppl_extra=()
if $perplexity; then
  log "llama-perplexity source (saving its logits)"
  run nice -n 10 "$bin/llama-perplexity" -m "$gguf" -f "$text" -c "$PPL_CTX" -b "$PPL_CTX" -t 2 \
    --kl-divergence-base "$work/source.kld" >logs/perplexity-source.log 2>&1 \
    || { tail -n 30 logs/perplexity-source.log >&2; die "llama-perplexity source failed"; }
  for v in "source-f32|" "${variants[@]}"; do
    IFS='|' read -r name _ <<<"$v"
    log "llama-perplexity $name"
    run nice -n 10 "$bin/llama-perplexity" -m "$work/gguf/$name.gguf" -c "$PPL_CTX" -b "$PPL_CTX" -t 2 \
      --kl-divergence-base "$work/source.kld" --kl-divergence >"logs/perplexity-$name.log" 2>&1 \
      || { tail -n 30 "logs/perplexity-$name.log" >&2; die "llama-perplexity $name failed"; }
  done
  ppl_extra=(source-f32)
  rm -f "$work/source.kld"
fi

# 6. Facts and the table.
commit=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)
dirty=$([ -n "$(git -C "$repo" status --porcelain -- . ':(exclude)benches' 2>/dev/null)" ] && echo true || echo false)
imatrix_line=$(grep -m1 "computing over" logs/imatrix.log || true)
build_seconds="$(cat "$llama_dir/build-seconds" 2>/dev/null || echo '?') s (cmake --build -j2 under nice -n 10; cached, not repeated by later runs)"
compiler=$(cc --version | head -n 1)
llama_version=$(grep -E "^-- (llama.cpp|ggml) version:" "$llama_dir/build.log" | sed 's/^-- //' | paste -sd, - | sed 's/,/, /g' || true)
"$py" - facts.json "$command_line" "$commit" "$dirty" "$("$avac" --version 2>/dev/null || echo '?')" "$(sha256sum "$avac" | cut -d' ' -f1)" \
  "$GGUF_SIZE" "$GGUF_SHA" "${max_tokens:-0}" "$load_start" "$(loadavg)" "$t_start" "$EPOCHREALTIME" \
  "$LLAMA_CPP_PYTHON" "$LLAMA_CPP_PYTHON_SHA" "${TOOL_PINS[*]}" "${CMAKE_FLAGS[*]}" "$build_seconds" "$compiler" "$llama_version" \
  "$imatrix_line" "$IMATRIX_CTX:$IMATRIX_CHUNKS" "$PPL_CTX" "${ppl_extra[*]:-}" <<'EOF_PY'
import datetime, json, os, re, sys
from importlib.metadata import version
(_, path, command, commit, dirty, avac_version, avac_sha, size, sha, max_tokens, l0, l1, t0, t1,
 lcp, lcp_sha, tools, flags, build_s, compiler, llama_version, imx_line, imx_ctx, ppl_ctx, ppl_extra) = sys.argv
mem = next(int(l.split()[1]) * 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal:"))
m = re.search(r"computing over (\d+) chunks, n_ctx=(\d+)", imx_line)
chunks, ctx = (int(m.group(1)), int(m.group(2))) if m else (int(imx_ctx.split(":")[1]), int(imx_ctx.split(":")[0]))
n_eval = len(json.load(open("scores/source.json"))["ids"])
json.dump({
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
    "command": command, "commit": commit, "dirty": dirty == "true",
    "avac_version": avac_version, "avac_sha256": avac_sha,
    "gguf_bytes": int(size), "gguf_sha256": sha, "max_tokens": int(max_tokens),
    "nproc": int(os.popen("nproc").read().strip() or 0), "mem_total_gb": mem / 1e9,
    "gguf_version": version("gguf"), "numpy_version": version("numpy"),
    "loadavg_start": [float(x) for x in l0.split()], "loadavg_end": [float(x) for x in l1.split()],
    "total_seconds": float(t1) - float(t0),
    "llama_cpp_python": lcp, "llama_cpp_python_sha256": lcp_sha, "build_tools": tools.replace(" ", ", "),
    "cmake_flags": flags, "build_seconds": build_s, "compiler": compiler, "llama_cpp_version": llama_version.strip(),
    "imatrix_chunks": chunks, "imatrix_ctx": ctx, "imatrix_tokens": chunks * ctx,
    "ppl_ctx": int(ppl_ctx), "ppl_chunks": n_eval // int(ppl_ctx), "ppl_extra": ppl_extra.split(),
    "commands": [l.rstrip("\n") for l in open("commands.txt")],
}, open(path, "w"), indent=1)
EOF_PY
mkdir -p "$(dirname "$out")"
lc table --work . --facts facts.json ${notes:+--notes "$notes"} --out "$out"
log "done in $(( ${EPOCHREALTIME%.*} - ${t_start%.*} )) s"
echo "$out"
