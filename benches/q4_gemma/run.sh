#!/usr/bin/env bash
# Side-by-side 4-bit benchmark on Gemma 3 270M: avac's q4bf16_1 (group 32 and
# 128, max_abs and mse_search scales) vs llama.cpp's reference quantizers
# Q4_0 and Q8_0 from PyPI's gguf package, all on the same dequantized weights.
#
#   bash benches/q4_gemma/run.sh [--gguf PATH] [--avac PATH] [--work DIR] [--cache DIR] [--venv DIR] [--runs N] [--max-tokens N] [--out FILE] [--llama-cpp]
#
# Writes benches/results/q4_gemma.md (or --out) and prints its path.
#
#   --gguf        the Gemma 3 270M Q4_K_M GGUF (253,113,024 bytes, sha256 a5fd3b62…6818, checked).
#                 Default: avac's store, $AVAC_STORE, else $XDG_CACHE_HOME/avac/store, else
#                 ~/.cache/avac/store, at sha256/<digest>; fill it with `avac fetch gemma3-270m-gguf`.
#   --avac        the avac binary. Default: `cargo build --release` in this repository, then
#                 ${CARGO_TARGET_DIR:-target}/release/avac.
#   --work        scratch directory outside the repository, recreated on every run
#                 (default /var/tmp/avac-bench-q4); packages, GGUFs, reports, scores and logs stay there.
#   --cache       where the venv lives (default ${AVAC_BENCH_CACHE:-${XDG_CACHE_HOME:-~/.cache}/avac-bench}).
#   --venv        the Python venv (default <cache>/q4-venv), given gguf and numpy (pinned below) with pip.
#   --runs        timed repetitions of every quantization (default 3; the median is reported).
#   --max-tokens  score only the first N tokens of the eval text (quick trials; noted in the table).
#   --llama-cpp   also run llama_cpp.sh (llama.cpp's own llama-imatrix + llama-quantize, built from
#                 the llama-cpp-python sdist, ~12 min the first time, then cached) in <work>/llama-cpp,
#                 append its rows to the table, and write its own fragment q4_gemma_llama_cpp.md beside
#                 --out (~25 min more).
#
# Steps: (1) every quantizer, timed one after another so they see the same
# machine load: `avac alc quantize` with {"group_size": 32|128, "scale":
# "max_abs"|"mse_search"} under /usr/bin/time -v (wall seconds, max RSS), plus
# one single-thread run of g32 max_abs; then bench.py gguf-quantize for Q4_0 and
# Q8_0 (gguf.GGUFReader + gguf.quants.dequantize of every tensor, timed
# gguf.quants.quantize of every 2-D weight, RMSE, a new GGUF written with
# gguf.GGUFWriter). (2) `avac alc score` (avac's reference float32 forward) of
# data/alc/eval-text.txt on the source GGUF, each avac package directory and
# each gguf-py GGUF. (3) avac's RMSE recomputed from the package files, by
# weight kind, and three diagnostic GGUFs (bench.py mix-gguf) scored the same
# way. (4) bench.py table. About 20 minutes on 2 cores.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

cache=${AVAC_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/avac-bench}
venv=""
work=/var/tmp/avac-bench-q4
avac=""
gguf=""
runs=3
max_tokens=""
out="$repo/benches/results/q4_gemma.md"
llama_cpp=false
command_line="bash benches/q4_gemma/run.sh${*:+ $*}"

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -n 's/^# \{0,1\}//p'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --gguf) gguf=$2; shift 2 ;;
    --avac) avac=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --cache) cache=$2; shift 2 ;;
    --venv) venv=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --max-tokens) max_tokens=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --llama-cpp) llama_cpp=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
venv=${venv:-${AVAC_BENCH_VENV:-$cache/q4-venv}}
case "$runs" in ''|*[!0-9]*|0) echo "run.sh: --runs must be a positive integer" >&2; exit 2 ;; esac
case "$max_tokens" in ''|*[!0-9]*) [ -z "$max_tokens" ] || { echo "run.sh: --max-tokens must be a positive integer" >&2; exit 2; } ;; esac

# Pins.
GGUF_SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
GGUF_SIZE=253113024
# gguf: llama.cpp's gguf-py (its quants.py quantizers are bit-exact with ggml-quants.c's
# reference Q4_0 / Q8_0); numpy: the repository's oracle pin (toolchains/python-oracles.txt).
PY_PINS=(gguf==0.19.0 numpy==2.4.6)
text="$repo/data/alc/eval-text.txt"

t_start=$EPOCHREALTIME
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { echo "run.sh: $*" >&2; exit 1; }

# 1. Inputs.
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

# 2. Python environment (pinned).
if [ ! -x "$venv/bin/python" ]; then
  log "creating venv $venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
fi
log "installing ${PY_PINS[*]} into $venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "${PY_PINS[@]}"
py="$venv/bin/python"
bench() { "$py" "$here/bench.py" "$@"; }

# 3. Work directory: recreated on every run.
log "work directory $work"
rm -rf "$work"
mkdir -p "$work"/{params,pkg,reports,timings,gguf,scores,rmse,diag,logs}
cd "$work"
# One avac for the whole run, even if the binary is rebuilt meanwhile.
cp "$avac" ./avac
avac=$work/avac
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
load_start=$(loadavg)

json_timing() { # file seconds [max-rss-bytes]
  "$py" -c 'import json,sys; d={"seconds": float(sys.argv[2])}; d.update({"max_rss_bytes": int(sys.argv[3])} if len(sys.argv) > 3 else {}); json.dump(d, open(sys.argv[1], "w"))' "$@"
}
max_rss_of() { # /usr/bin/time -v output -> bytes
  awk -F': ' '/Maximum resident set size \(kbytes\)/ {print $2 * 1024}' "$1"
}

# 4. Quantize, every method one after another.
# name|group|scale|method: round-to-nearest, or GPTQ with the gemma3-270m-q4bf16
# target's settings on data/alc/calibration-text.txt (timed once: minutes each).
avac_variants=(
  "avac-g32|32|max_abs|rtn"
  "avac-g128|128|max_abs|rtn"
  "avac-g32-mse|32|mse_search|rtn"
  "avac-g128-mse|128|mse_search|rtn"
  "avac-g32-gptq|32|max_abs|gptq"
  "avac-g128-gptq|128|max_abs|gptq"
)
calibration="$repo/data/alc/calibration-text.txt"
GPTQ='{"calibration_samples": 512, "seq_len": 32, "damp": 0.01, "act_order": true, "seed": 0, "embedding": "head_gptq", "head_damp": 0.1}'
avac_quantize() { # name params-file out-dir tag [avac global options...]
  local name=$1 params=$2 dir=$3 tag=$4; shift 4
  local t0=$EPOCHREALTIME
  /usr/bin/time -v -o "logs/$tag.time" "$avac" "$@" alc quantize --source "$gguf" --params "$params" \
    --calibration "$calibration" --out "$dir" --report "reports/$tag.json" --timing "reports/$tag.timing.json" 2>"logs/$tag.err"
  local t1=$EPOCHREALTIME
  json_timing "timings/$tag.json" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" "$(max_rss_of "logs/$tag.time")"
}
for v in "${avac_variants[@]}"; do
  IFS='|' read -r name group scale method <<<"$v"
  variant_runs=$runs
  if [ "$method" = gptq ]; then
    printf '{"group_size": %s, "scale": "%s", "gptq": %s}\n' "$group" "$scale" "$GPTQ" >"params/$name.json"
    variant_runs=1
  else
    printf '{"group_size": %s, "scale": "%s"}\n' "$group" "$scale" >"params/$name.json"
  fi
  for ((i = 0; i < variant_runs; i++)); do
    log "avac alc quantize $name (run $((i + 1))/$runs)"
    if [ "$i" = 0 ]; then
      avac_quantize "$name" "params/$name.json" "pkg/$name" "$name-$i"
    else
      avac_quantize "$name" "params/$name.json" "pkg/$name.again" "$name-$i"
      cmp -s "pkg/$name/tensor-cache.json" "pkg/$name.again/tensor-cache.json" \
        || die "$name: run $i wrote a different tensor-cache.json than run 0"
      rm -rf "pkg/$name.again"
    fi
  done
done
log "avac --threads 1 alc quantize avac-g32"
avac_quantize avac-g32 params/avac-g32.json pkg/avac-g32.1thread avac-g32-1thread --threads 1
if cmp -s pkg/avac-g32/tensor-cache.json pkg/avac-g32.1thread/tensor-cache.json; then same=true; else same=false; fi
"$py" -c 'import json,sys; p=sys.argv[1]; d=json.load(open(p)); d["identical_to_all_threads"]=sys.argv[2]=="true"; json.dump(d, open(p, "w"))' \
  timings/avac-g32-1thread.json "$same"
rm -rf pkg/avac-g32.1thread

for q in Q4_0 Q8_0; do
  name=gguf-$(echo "$q" | tr 'A-Z' 'a-z')
  log "gguf-py quantize $q"
  t0=$EPOCHREALTIME
  bench gguf-quantize --gguf "$gguf" --qtype "$q" --out "gguf/$name.gguf" --info "gguf/$name.info.json" --runs "$runs" 2>"logs/$name.err" \
    || { cat "logs/$name.err" >&2; die "gguf-py $q failed"; }
  t1=$EPOCHREALTIME
  json_timing "timings/$name.json" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')"
  tail -n 1 "logs/$name.err" >&2
done
load_quantized=$(loadavg)

# 5. Perplexity and arg-max through avac's reference forward.
score_opts=(--text "$text")
[ -z "$max_tokens" ] || score_opts+=(--max-tokens "$max_tokens")
score() { # name what...
  local name=$1; shift
  log "avac alc score $name"
  "$avac" alc score "$@" "${score_opts[@]}" --out "scores/$name.json" 2>"logs/score-$name.err" \
    || { cat "logs/score-$name.err" >&2; die "avac alc score $name failed"; }
}
score source --source "$gguf"
for v in "${avac_variants[@]}"; do
  IFS='|' read -r name _ <<<"$v"
  score "$name" "pkg/$name"
done
# If avac rejects a gguf-py GGUF, the run stops here with avac's message.
score gguf-q4_0 --source gguf/gguf-q4_0.gguf
score gguf-q8_0 --source gguf/gguf-q8_0.gguf

# 6. Cross-checks and diagnostics. avac's RMSE recomputed from each package's
# files, by weight kind. Then GGUFs mixing one method's weights with source
# tensors, scored the same way: the avac g32 weights alone (float32, source
# norms: the package's other storage taken out), and avac g32 / gguf-py Q4_0
# with the source's own token_embd (the tied LM head) put back.
for v in "${avac_variants[@]}"; do
  IFS='|' read -r name _ <<<"$v"
  log "package RMSE $name"
  bench package-rmse --gguf "$gguf" --package "pkg/$name" --out "rmse/$name.json"
done
diag() { # name label mix-gguf-args...
  local name=$1 label=$2; shift 2
  log "diagnostic GGUF $name"
  bench mix-gguf --gguf "$gguf" "$@" --out "diag/$name.gguf"
  score "$name" --source "diag/$name.gguf"
  rm -f "diag/$name.gguf"
  diags+=("$name|$label")
}
diags=()
diag diag-avac-g32-f32 "avac g32 max_abs weights as float32, everything else from the source" --package pkg/avac-g32
diag diag-avac-g32-srcemb "avac g32 max_abs weights, source token_embd (Q8_0)" --package pkg/avac-g32 --from-source token_embd.weight
diag diag-gguf-q4_0-srcemb "gguf-py Q4_0 weights, source token_embd (Q8_0)" --quantized gguf/gguf-q4_0.gguf --from-source token_embd.weight
"$py" -c 'import json,sys; json.dump([dict(zip(("name", "label"), d.split("|", 1))) for d in sys.argv[1:]], open("diagnostics.json", "w"), indent=1)' "${diags[@]}"

# 7. Facts and the table.
commit=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)
# Modified = any change outside benches/ (this benchmark's own files do not count).
dirty=$([ -n "$(git -C "$repo" status --porcelain -- . ':(exclude)benches' 2>/dev/null)" ] && echo true || echo false)
"$py" - "$runs" "${avac_variants[@]}" <<'EOF'
import json, sys
runs = int(sys.argv[1])
rows = []
for v in sys.argv[2:]:
    name, group, scale, method = v.split("|")
    tc = json.load(open(f"pkg/{name}/tensor-cache.json"))
    recs = [r for shard in tc["records"] for r in shard["records"]]
    qbytes = sum(r["nbytes"] for r in recs if r["name"].endswith((".q_weight", ".q_scale")))
    # q_weight is [rows, in/8] uint32: 8 weights per word.
    elems = sum(r["shape"][0] * r["shape"][1] * 8 for r in recs if r["name"].endswith(".q_weight"))
    label = f"avac q4bf16_1 {scale}" + (" GPTQ" if method == "gptq" else "")
    rows.append({"name": name, "kind": "avac", "label": label, "group": int(group), "runs": runs if method == "rtn" else 1,
                 "params": open(f"params/{name}.json").read().strip(), "bits_per_weight": 8 * qbytes / elems})
rows.append({"name": "gguf-q4_0", "kind": "gguf", "label": "gguf-py Q4_0 (llama.cpp reference)", "group": 32})
rows.append({"name": "gguf-q8_0", "kind": "gguf", "label": "gguf-py Q8_0 (llama.cpp reference)", "group": 32})
json.dump(rows, open("rows.json", "w"), indent=1)
EOF
"$py" - facts.json "$command_line" "$commit" "$dirty" "$("$avac" --version 2>/dev/null || echo '?')" "$(sha256sum "$avac" | cut -d' ' -f1)" \
  "$gguf" "$GGUF_SIZE" "$GGUF_SHA" "$runs" "${max_tokens:-0}" "$load_start" "$load_quantized" "$(loadavg)" "$t_start" "$EPOCHREALTIME" <<'EOF'
import datetime, json, os, sys
from importlib.metadata import version
(_, path, command, commit, dirty, avac_version, avac_sha, gguf, size, sha, runs, max_tokens,
 l0, l1, l2, t0, t1) = sys.argv
mem = next(int(l.split()[1]) * 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal:"))
json.dump({
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
    "command": command, "commit": commit, "dirty": dirty == "true",
    "avac_version": avac_version, "avac_sha256": avac_sha,
    "gguf_name": os.path.basename(gguf), "gguf_bytes": int(size), "gguf_sha256": sha,
    "runs": int(runs), "max_tokens": int(max_tokens),
    "nproc": int(os.popen("nproc").read().strip() or 0), "mem_total_gb": mem / 1e9,
    "gguf_version": version("gguf"), "numpy_version": version("numpy"),
    "loadavg_start": [float(x) for x in l0.split()], "loadavg_after_quantize": [float(x) for x in l1.split()],
    "loadavg_end": [float(x) for x in l2.split()], "total_seconds": float(t1) - float(t0),
}, open(path, "w"), indent=1)
EOF
mkdir -p "$(dirname "$out")"
bench table --work . --facts facts.json --repo "$repo" --out "$out"

# 8. Optional (--llama-cpp): llama.cpp's own quantizers as peers, by llama_cpp.sh (its
# own work directory, Markdown fragment and rows.json); its rows, in this table's
# columns, appended to the table.
if $llama_cpp; then
  log "llama_cpp.sh (llama-imatrix + llama-quantize)"
  lc_opts=(--gguf "$gguf" --avac "$avac" --work "$work/llama-cpp" --cache "$cache" --source-score "$work/scores/source.json"
    --out "$(dirname "$out")/q4_gemma_llama_cpp.md")
  [ -z "$max_tokens" ] || lc_opts+=(--max-tokens "$max_tokens")
  bash "$here/llama_cpp.sh" "${lc_opts[@]}" >&2
  {
    echo
    echo "llama.cpp's own quantizers, run by \`--llama-cpp\` (\`benches/q4_gemma/llama_cpp.sh\`; details, commands and its own forward's cross-check in"
    echo "\`$(basename "$(dirname "$out")")/q4_gemma_llama_cpp.md\`): \`llama-quantize\` of the same float32 weights, with and without an importance matrix"
    echo "from \`llama-imatrix\` on \`data/alc/calibration-text.txt\`, scored by the same \`avac alc score\`. Quantize MB/s here is the whole"
    echo "\`llama-quantize\` process (reading the F32 GGUF, all cores, writing), one run; group 32/256 = a mix of 32-block and 256-superblock types."
    echo
    echo "| method | group | bits/weight | quantize MB/s | peak RSS MB | rel. RMSE | rel. RMSE w/o embedding | perplexity | ppl ratio vs source | top-1 agreement |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    cat "$work/llama-cpp/rows-main-table.md"
  } >>"$out"
fi
log "done in $(( ${EPOCHREALTIME%.*} - ${t_start%.*} )) s"
echo "$out"
