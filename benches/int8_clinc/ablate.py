"""Which quantized activations cost agreement with FP32? (a diagnostic)

For an avac static INT8 model from `run.sh`, removes the QuantizeLinear →
DequantizeLinear pair of chosen activations (the product then reads the float
activation; weights stay int8) and reports CLINC150 accuracy and top-1
agreement with the FP32 model, in onnxruntime, for each choice:

    python benches/int8_clinc/ablate.py MODEL.onnx none all kind=gelu layer=3 ...

  none           the model as it is
  all            every activation float: what the int8 weights alone cost
  kind=K         one kind: ln (LayerNorm outputs feeding Q/K/V and the FFN),
                 gelu (the FFN-down input), ctx (the attention-output input),
                 softmax, attn (Q, K, V in the attention products), pool (the head input)
  layer=N        every activation of encoder layer N

Run it with the bench's venv, after `run.sh` (it reads the work directory's
`clinc150.json`, `fp32.onnx` and `classifier/tokenizer.json`).
"""

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402


def kinds(model):
    """Each activation QuantizeLinear's output name → (kind, layer)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    out = {}
    for n in model.graph.node:
        if n.op_type != "QuantizeLinear":
            continue
        src = n.input[0]
        p = producer.get(src)
        if p is None:  # not an activation (avac stores weights already int8)
            continue
        before = producer.get(p.input[0]) if p.op_type == "Mul" else None
        if src.startswith("pool"):
            k = "pool"
        elif p.op_type == "Softmax":
            k = "softmax"
        elif p.op_type == "Transpose":
            k = "attn"
        elif before is not None and before.op_type == "Gelu":
            k = "gelu"
        elif before is not None and before.op_type == "Reshape":
            k = "ctx"
        elif before is not None and before.op_type == "LayerNormalization":
            k = "ln"
        else:
            k = "other"
        m = re.match(r"layer\.(\d+)/", src)
        out[n.output[0]] = (k, m.group(1) if m else "-")
    return out


def bypass(model, chosen):
    """A copy of `model` whose chosen activations skip their QDQ pair."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    nodes = list(m.graph.node)
    quant = {n.output[0]: n.input[0] for n in nodes if n.op_type == "QuantizeLinear" and n.output[0] in chosen}
    rename, keep = {}, []
    for n in nodes:
        if n.op_type == "QuantizeLinear" and n.output[0] in quant:
            continue
        if n.op_type == "DequantizeLinear" and n.input[0] in quant:
            rename[n.output[0]] = quant[n.input[0]]
            continue
        c = onnx.NodeProto()
        c.CopyFrom(n)
        keep.append(c)
    for n in keep:
        for i, x in enumerate(n.input):
            n.input[i] = rename.get(x, x)
    del m.graph.node[:]
    m.graph.node.extend(keep)
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("choices", nargs="+")
    ap.add_argument("--work", default="/var/tmp/avac-bench-int8")
    ap.add_argument("--batch", type=int, default=32)
    a = ap.parse_args()
    work = Path(a.work)
    clinc = json.loads((work / "clinc150.json").read_text())
    ids = {l: i for i, l in enumerate(sorted({l for _, l in clinc["train"]}))}
    texts = [t for t, _ in clinc["test"]]
    gold = [ids[l] for _, l in clinc["test"]]
    scratch = work / "ablate"
    scratch.mkdir(exist_ok=True)

    def evaluate(path, name):
        spec = {"name": name, "path": str(path), "tokenizer": str(work / "classifier/tokenizer.json"), "kind": "classifier"}
        return bench.evaluate(bench.Model(spec, str(scratch)), texts, gold, a.batch)

    ref, acc = evaluate(work / "fp32.onnx", "fp32")
    print(f"fp32: accuracy {acc * 100:.2f}%")
    model = onnx.load(a.model)
    acts = kinds(model)
    for c in a.choices:
        if c == "none":
            chosen = set()
        elif c == "all":
            chosen = set(acts)
        elif c.startswith("kind="):
            chosen = {o for o, (k, _) in acts.items() if k == c[5:]}
        elif c.startswith("layer="):
            chosen = {o for o, (_, l) in acts.items() if l == c[6:]}
        else:
            sys.exit(f"ablate.py: unknown choice {c!r} (none, all, kind=K, layer=N)")
        if c != "none" and not chosen:
            sys.exit(f"ablate.py: {c} matches no activation of {a.model}")
        path = scratch / f"{re.sub(r'[^a-z0-9]+', '-', c)}.onnx"
        onnx.save(bypass(model, chosen), path)
        pred, acc = evaluate(path, path.stem)
        agree = float(np.mean(pred == ref))
        print(f"{c}: {len(chosen)} of {len(acts)} activations float: accuracy {acc * 100:.2f}%, "
              f"agreement {agree * 100:.2f}% ({int(np.sum(pred != ref))} of {len(ref)} differ)", flush=True)


if __name__ == "__main__":
    main()
