#!/usr/bin/env python3
"""Measurements for the side-by-side INT8 benchmark on CLINC150.

Driven by run.sh (see README.md beside this file); each subcommand is one
step, reading and writing files in the work directory:

  prep          CLINC150 -> avac's intents file, calibration text, convert params
  ort-quantize  onnxruntime's quantize_static / quantize_dynamic on avac's FP32 model
  measure       every model: size, accuracy, agreement, kernels, p50 latency
  table         the Markdown table with machine facts

Nothing here writes into the repository except the final table.
"""

import argparse
import hashlib
import inspect
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

CALIB_STRIDE = 75  # every 75th CLINC150 train utterance -> 200 calibration texts

INT_KERNELS = ("MatMulIntegerToFloat", "QLinearMatMul", "MatMulInteger", "QGemm", "DynamicQuantizeMatMul")
FLOAT_KERNELS = ("MatMul", "FusedMatMul", "Gemm")


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_json(path, obj):
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


# ---------------------------------------------------------------- prep


def cmd_prep(a):
    got = sha256_file(a.clinc)
    if got != a.sha256:
        sys.exit(f"{a.clinc}: sha256 {got}, expected {a.sha256}")
    d = json.loads(Path(a.clinc).read_text())
    out = Path(a.out_dir)
    # avac reads {"train": [[text, label]...], "test": [...]}; keep only the 150 in-scope intents.
    intents = {k: [[t, l] for t, l in d[k] if not l.startswith("oos")] for k in ("train", "test")}
    labels = sorted({l for _, l in intents["train"]})
    assert len(labels) == 150, len(labels)
    assert len(intents["test"]) == 4500, len(intents["test"])
    write_json(out / "clinc150.json", intents)
    calib = [t for t, _ in intents["train"]][::CALIB_STRIDE]
    write_json(out / "calibration.json", calib)
    write_json(out / "convert-params.json", {"classes": 150, "pooling": "mean-normalized", "max_seq_len": 128, "overflow": "truncate"})
    print(f"prep: {len(intents['train'])} train, {len(intents['test'])} test, {len(labels)} intents, {len(calib)} calibration texts")


# ---------------------------------------------------------------- tokenization


def load_tokenizer(path, max_len=128):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.enable_truncation(max_length=max_len)
    return tok


def encode(tok, texts):
    return [e.ids for e in tok.encode_batch(texts)]


def pad_batch(seqs, pad_id=0):
    import numpy as np

    n = max(len(s) for s in seqs)
    ids = np.full((len(seqs), n), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), n), dtype=np.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    return ids, mask


# ---------------------------------------------------------------- ORT quantization


def cmd_ort_quantize(a):
    import numpy as np
    import onnxruntime
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    # Record the installed version's defaults (they change between releases).
    def defaults(fn, names):
        sig = inspect.signature(fn)
        return {n: str(sig.parameters[n].default) for n in names if n in sig.parameters}

    info = {
        "onnxruntime": onnxruntime.__version__,
        "quantize_static_defaults": defaults(
            quantize_static, ["quant_format", "per_channel", "reduce_range", "activation_type", "weight_type", "calibrate_method"]
        ),
        "quantize_dynamic_defaults": defaults(quantize_dynamic, ["per_channel", "reduce_range", "weight_type"]),
    }

    tok = load_tokenizer(a.tokenizer)
    calib = json.loads(Path(a.calibration).read_text())
    seqs = encode(tok, calib)

    # MinMax: one [1, len] sequence per text, each at its own length (as avac
    # calibrates). onnxruntime's histogram calibrators (Entropy) stack every
    # batch's activations with np.asarray and fail on ragged lengths
    # ("inhomogeneous shape"), so for them every text is padded to the longest
    # calibration text with attention_mask 0; padded positions then reach the
    # histograms too.
    pad_to = max(len(s) for s in seqs) if a.method == "entropy" else 0

    class Reader(CalibrationDataReader):
        """The calibration texts, one [1, len] sequence each."""

        def __init__(self):
            self.it = iter(seqs)

        def get_next(self):
            s = next(self.it, None)
            if s is None:
                return None
            n = max(len(s), pad_to)
            ids = np.zeros((1, n), dtype=np.int64)
            mask = np.zeros((1, n), dtype=np.int64)
            ids[0, : len(s)] = s
            mask[0, : len(s)] = 1
            return {"input_ids": ids, "attention_mask": mask}

        def rewind(self):
            self.it = iter(seqs)

    out = Path(a.out)
    tmp = out.with_name(out.name + ".partial.onnx")
    t0 = time.perf_counter()
    exclude = []
    if a.float_head:
        # Diagnostic variant: keep the classifier head (the graph's one Gemm) in float.
        import onnx

        exclude = [n.name for n in onnx.load(a.fp32).graph.node if n.op_type == "Gemm"]
        assert len(exclude) == 1, exclude
        if a.method == "dynamic":
            # quantize_dynamic first rewrites Gemm as MatMul + Add, the MatMul named "<gemm>_MatMul".
            exclude.append(exclude[0] + "_MatMul")
    if a.method == "dynamic":
        args = dict(per_channel=False, reduce_range=False, weight_type=QuantType.QInt8, nodes_to_exclude=exclude)
        quantize_dynamic(a.fp32, tmp, **args)
    else:
        method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy}[a.method]
        args = dict(
            quant_format=QuantFormat.QDQ,
            per_channel=False,
            reduce_range=False,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=method,
            nodes_to_exclude=exclude,
        )
        quantize_static(a.fp32, tmp, Reader(), **args)
    seconds = time.perf_counter() - t0
    tmp.replace(out)
    info.update(method=a.method, args={k: str(v) for k, v in args.items()}, calibration_texts=len(seqs), calibration_padded_to=pad_to or None)
    if a.method == "dynamic":
        describe = "onnxruntime `quantize_dynamic`, weights QInt8 per-tensor, activations quantized at run time"
    else:
        describe = (
            f"onnxruntime `quantize_static`, QDQ, CalibrationMethod.{'MinMax' if a.method == 'minmax' else 'Entropy'}, "
            "activations QUInt8, weights QInt8, per-tensor"
        )
        if pad_to:
            describe += f" (calibration texts padded to {pad_to} tokens, see notes)"
    if exclude:
        describe += "; classifier head Gemm excluded (kept float)"
    write_json(a.info, {"seconds": seconds, "describe": describe + ".", "ort": info})
    print(f"ort {a.method}: {seconds:.1f} s -> {out}")


# ---------------------------------------------------------------- measuring


def session(path, optimized=None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if optimized:
        so.optimized_model_filepath = str(optimized)
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


class Model:
    """One benchmarked model: an avac-style classifier (logits out) or the peer encoder + avac's head."""

    def __init__(self, spec, work):
        self.name, self.path = spec["name"], Path(spec["path"])
        self.peer = spec.get("kind") == "peer"
        self.tok = load_tokenizer(spec["tokenizer"])
        pad = self.tok.token_to_id("[PAD]")
        self.pad = 0 if pad is None else pad
        self.optimized = Path(work) / "ort-optimized" / f"{self.name}.onnx"
        self.optimized.parent.mkdir(exist_ok=True)
        self.sess = session(self.path, self.optimized)
        self.inputs = [i.name for i in self.sess.get_inputs()]
        self.head = None

    def feeds(self, ids, mask):
        import numpy as np

        f = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            f["token_type_ids"] = np.zeros_like(ids)
        return {k: v for k, v in f.items() if k in self.inputs}

    def logits(self, ids, mask):
        import numpy as np

        out = self.sess.run(None, self.feeds(ids, mask))[0]
        if not self.peer:
            return out
        # sentence-transformers' Pooling(mean) + Normalize, then avac's classifier head.
        m = mask[..., None].astype(np.float32)
        pooled = (out * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        w, b = self.head
        return pooled @ w + b


def classifier_head(fp32_path):
    """The final Gemm's weight ([features, classes]) and bias from avac's FP32 ONNX."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(fp32_path))
    init = {i.name: i for i in m.graph.initializer}
    gemms = [n for n in m.graph.node if n.op_type == "Gemm"]
    if len(gemms) != 1:
        sys.exit(f"{fp32_path}: expected one Gemm (the classifier head), found {len(gemms)}")
    g = gemms[0]
    attrs = {x.name: onnx.helper.get_attribute_value(x) for x in g.attribute}
    if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
        sys.exit(f"{fp32_path}: unexpected Gemm attributes {attrs}")
    w = numpy_helper.to_array(init[g.input[1]]).astype("float32")
    if attrs.get("transB", 0):
        w = w.T
    b = numpy_helper.to_array(init[g.input[2]]).astype("float32")
    return w, b


def kernel_counts(path):
    import collections

    import onnx

    m = onnx.load(str(path), load_external_data=False)
    ops = collections.Counter(n.op_type for n in m.graph.node)
    integer = {k: ops[k] for k in INT_KERNELS if ops[k]}
    flt = {k: ops[k] for k in FLOAT_KERNELS if ops[k]}
    fused = {k: v for k, v in ops.items() if "Attention" in k}
    return {"int": sum(integer.values()), "float": sum(flt.values()), "int_ops": integer, "float_ops": flt, "attention_ops": fused, "all_ops": dict(sorted(ops.items()))}


def evaluate(model, texts, labels, batch):
    import numpy as np

    seqs = encode(model.tok, texts)
    order = sorted(range(len(seqs)), key=lambda i: (len(seqs[i]), i))  # length buckets: little padding
    preds = np.zeros(len(seqs), dtype=np.int64)
    for s in range(0, len(order), batch):
        idx = order[s : s + batch]
        ids, mask = pad_batch([seqs[i] for i in idx], model.pad)
        preds[idx] = model.logits(ids, mask).argmax(1)
    acc = float((preds == np.asarray(labels)).mean())
    return preds, acc


def latency_input(tok, texts, n=128):
    """A fixed batch-1 input of exactly n tokens: test utterances joined until the cap truncates them."""
    import numpy as np

    joined, i = "", 0
    while True:
        joined = (joined + " " + texts[i % len(texts)]).strip()
        i += 1
        ids = tok.encode(joined).ids
        if len(ids) >= n:
            break
    ids = np.asarray([ids[:n]], dtype=np.int64)
    assert ids.shape == (1, n)
    return ids, np.ones_like(ids)


def cmd_measure(a):
    import numpy as np

    specs = json.loads(Path(a.models).read_text())
    clinc = json.loads(Path(a.clinc).read_text())
    labels_sorted = sorted({l for _, l in clinc["train"]})
    lid = {l: i for i, l in enumerate(labels_sorted)}
    texts = [t for t, _ in clinc["test"]]
    gold = [lid[l] for _, l in clinc["test"]]
    head = classifier_head(a.fp32)
    results = {}
    models = []
    # Accuracy and kernels: one model at a time.
    for spec in specs:
        t0 = time.perf_counter()
        m = Model(spec, a.work)
        if m.peer:
            m.head = head
        preds, acc = evaluate(m, texts, gold, a.eval_batch)
        np.save(Path(a.work) / "preds" / f"{m.name}.npy", preds) if (Path(a.work) / "preds").is_dir() else None
        k = kernel_counts(m.optimized)
        results[m.name] = {
            "path": str(m.path),
            "bytes": m.path.stat().st_size,
            "sha256": sha256_file(m.path),
            "accuracy": acc,
            "kernels": k,
            "inputs": m.inputs,
            "preds": preds.tolist(),
        }
        print(f"{m.name}: accuracy {acc:.4f}, kernels float {k['float']} int {k['int']} ({time.perf_counter() - t0:.0f} s)", flush=True)
        models.append(m)
    ref = np.asarray(results[specs[0]["name"]]["preds"])
    for r in results.values():
        r["agreement"] = float((np.asarray(r.pop("preds")) == ref).mean())

    # Latency: batch 1, 128 tokens, 1 thread. Rounds interleave the models so that
    # load from other processes on the machine falls on all of them alike.
    feeds = {}
    for m in models:
        ids, mask = latency_input(m.tok, texts, 128)
        feeds[m.name] = m.feeds(ids, mask)
        for _ in range(a.warmup):
            m.sess.run(None, feeds[m.name])
    times = {m.name: [] for m in models}
    load_before = os.getloadavg()
    for r in range(a.rounds):
        for m in models:
            f = feeds[m.name]
            for _ in range(a.runs_per_round):
                t0 = time.perf_counter_ns()
                m.sess.run(None, f)
                times[m.name].append((time.perf_counter_ns() - t0) / 1e6)
        print(f"latency round {r + 1}/{a.rounds}: " + ", ".join(f"{n} {statistics.median(v):.1f}" for n, v in times.items()), flush=True)
    load_after = os.getloadavg()
    for n, v in times.items():
        v.sort()
        results[n]["latency_ms"] = {
            "p50": statistics.median(v),
            "p10": v[int(0.1 * (len(v) - 1))],
            "p90": v[int(0.9 * (len(v) - 1))],
            "min": v[0],
            "runs": len(v),
        }
    write_json(
        a.out,
        {
            "models": results,
            "order": [s["name"] for s in specs],
            "latency": {
                "rounds": a.rounds,
                "runs_per_round": a.runs_per_round,
                "warmup": a.warmup,
                "loadavg_before": load_before,
                "loadavg_after": load_after,
            },
            "eval_batch": a.eval_batch,
            "test_utterances": len(texts),
        },
    )


# ---------------------------------------------------------------- table


def cpu_facts():
    model, flags = "?", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "?":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return model, isa


def fmt_ratio(x, ref):
    if x is None or ref in (None, 0):
        return "–"
    return f"{x / ref:.2f}×"


def cmd_table(a):
    import onnxruntime
    import tokenizers

    meas = json.loads(Path(a.measurements).read_text())
    timing = {p.stem: json.loads(p.read_text()) for p in sorted(Path(a.timings).glob("*.json"))}
    facts = json.loads(Path(a.facts).read_text())
    notes_in = [l.strip() for l in Path(a.notes).read_text().splitlines() if l.strip()] if a.notes and Path(a.notes).exists() else []
    ms = meas["models"]
    order = meas["order"]
    fp = ms[order[0]]
    ref_name = "ort-static-minmax"
    ref = ms.get(ref_name)
    cpu, isa = cpu_facts()

    ort_info = timing.get(ref_name, {}).get("ort")

    def qtime(n):
        t = timing.get(n)
        return None if t is None else t.get("seconds")

    lines = []
    lines.append("# INT8 side by side on CLINC150: avac vs onnxruntime vs a published peer")
    lines.append("")
    lines.append("Generated by `bash benches/int8_clinc/run.sh` (see `benches/int8_clinc/README.md`). Do not edit by hand.")
    lines.append("")
    lines.append("| fact | value |")
    lines.append("| --- | --- |")
    lines.append(f"| date (UTC) | {facts['date']} |")
    lines.append(f"| CPU | {cpu} ({', '.join(isa) if isa else 'no AVX2'}; no VNNI: {'yes' if not any('vnni' in f for f in isa) else 'no'}) |")
    lines.append(f"| cores | {os.cpu_count()} logical |")
    lines.append(f"| OS / Python | {platform.system()} {platform.release()} / Python {platform.python_version()} |")
    lines.append(f"| onnxruntime / onnx / numpy / tokenizers | {onnxruntime.__version__} / {facts['onnx']} / {facts['numpy']} / {tokenizers.__version__} |")
    lines.append(f"| avac commit | `{facts['commit']}`{' (working tree modified)' if facts.get('dirty') else ''} |")
    lines.append(f"| avac binary | `{facts['avac_version']}`, sha256 `{facts['avac_sha256'][:16]}…` |")
    lat = meas["latency"]
    lines.append(
        f"| load average (1/5/15 min) during latency | before {'/'.join(f'{x:.1f}' for x in lat['loadavg_before'])}, after {'/'.join(f'{x:.1f}' for x in lat['loadavg_after'])} |"
    )
    lines.append(f"| total benchmark time | {facts.get('total_seconds', 0) / 60:.1f} min |")
    lines.append("")
    lines.append(
        f"All models come from the same FP32 model (`avac aon convert` → `export` → `optimize` of all-MiniLM-L6-v2 with a fitted 150-intent head) "
        f"and the same {facts['calibration_texts']} calibration texts (every {CALIB_STRIDE}th CLINC150 train utterance). "
        f"Accuracy: the {meas['test_utterances']:,} in-scope CLINC150 test utterances, batches of {meas['eval_batch']} sorted by length, padded with attention_mask 0. "
        f"Agreement: top-1 equal to avac FP32. Latency: onnxruntime CPU, 1 intra-op and 1 inter-op thread, ORT_ENABLE_ALL, batch 1 × 128 tokens, "
        f"p50 of {lat['rounds'] * lat['runs_per_round']} runs after {lat['warmup']} warm-up runs, in {lat['rounds']} rounds interleaving the models. "
        f"Kernels: MatMul/Gemm-type nodes in onnxruntime's optimized graph (`optimized_model_filepath`), float = MatMul, FusedMatMul, Gemm; "
        f"integer = MatMulIntegerToFloat, QLinearMatMul, MatMulInteger, QGemm, DynamicQuantizeMatMul. "
        f"Ratios: first vs avac FP32, second vs ORT static MinMax (`{ref_name}`)."
    )
    lines.append("")
    hdr = [
        "model",
        "size (bytes)",
        "size vs FP32 / ORT-MM",
        "accuracy",
        "Δacc vs FP32 / ORT-MM (pp)",
        "agree w/ FP32",
        "p50 ms",
        "p50 vs FP32 / ORT-MM",
        "float / int MatMul-Gemm",
        "quantize s",
        "quantize vs ORT-MM",
    ]
    lines.append("| " + " | ".join(hdr) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(hdr) - 1)) + "|")
    for n in order:
        m = ms[n]
        p50 = m["latency_ms"]["p50"]
        qt = qtime(n)
        dacc_fp = 100 * (m["accuracy"] - fp["accuracy"])
        dacc_ref = 100 * (m["accuracy"] - ref["accuracy"]) if ref else None
        row = [
            f"`{n}`",
            f"{m['bytes']:,}",
            f"{fmt_ratio(m['bytes'], fp['bytes'])} / {fmt_ratio(m['bytes'], ref['bytes'] if ref else None)}",
            f"{100 * m['accuracy']:.2f}%",
            f"{dacc_fp:+.2f} / {('%+.2f' % dacc_ref) if dacc_ref is not None else '–'}",
            f"{100 * m['agreement']:.2f}%",
            f"{p50:.1f}",
            f"{fmt_ratio(p50, fp['latency_ms']['p50'])} / {fmt_ratio(p50, ref['latency_ms']['p50'] if ref else None)}",
            f"{m['kernels']['float']} / {m['kernels']['int']}",
            "–" if qt is None else f"{qt:.1f}",
            fmt_ratio(qt, qtime(ref_name)),
        ]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append("Models:")
    lines.append("")
    for n in order:
        d = timing.get(n, {}).get("describe", "")
        k = ms[n]["kernels"]
        kinds = ", ".join(f"{op} {c}" for op, c in {**k["float_ops"], **k["int_ops"]}.items())
        att = ", ".join(f"{op} {c}" for op, c in k["attention_ops"].items())
        lat = ms[n]["latency_ms"]
        lines.append(
            f"- `{n}`: {d} Kernels: {kinds or 'none'}{'; fused attention: ' + att if att else ''}. "
            f"Latency p10/p50/p90/min {lat['p10']:.1f}/{lat['p50']:.1f}/{lat['p90']:.1f}/{lat['min']:.1f} ms. sha256 `{ms[n]['sha256'][:16]}…`."
        )
    if ort_info:
        lines.append("")
        lines.append(
            f"onnxruntime {ort_info['onnxruntime']} defaults, as installed: quantize_static {ort_info['quantize_static_defaults']}; "
            f"quantize_dynamic {ort_info['quantize_dynamic_defaults']}. This benchmark overrides activation_type to QUInt8 for static "
            f"(weights QInt8, per-tensor, reduce_range False)."
        )
    # Measured facts worth a note.
    import numpy as np

    w, _ = classifier_head(a.fp32)
    aw = np.abs(w)
    step = aw.max() / 127
    zero = float((aw < step / 2).mean())
    notes_in.append(
        f"The head that `avac aon convert` fits has weights with a very wide range (standardisation folded into them): "
        f"|w| median {np.median(aw):.2f}, 99.9th percentile {np.percentile(aw, 99.9):.0f}, max {aw.max():.0f}. "
        f"A per-tensor symmetric int8 scale (max/127 = {step:.2f}) rounds {100 * zero:.1f}% of the head's weights to 0, "
        f"so a quantizer that quantizes the head per tensor loses most of it; the `*-floathead` rows keep the head float to separate that from the encoder's error."
    )
    for n in order:
        pad = (timing.get(n, {}).get("ort") or {}).get("calibration_padded_to")
        if pad:
            notes_in.append(
                f"`{n}`: onnxruntime's histogram calibrators stack every calibration batch with np.asarray and fail on texts of different lengths "
                f"(\"inhomogeneous shape\"), so its calibration texts were padded to {pad} tokens with attention_mask 0 (padded positions reach the histograms); "
                f"MinMax calibrations (avac's and onnxruntime's) see each text at its own length. onnxruntime {ort_info['onnxruntime'] if ort_info else ''} "
                f"`quantize_static` passes no bin-count option to its calibrators (only CalibTensorRangeSymmetric, CalibMovingAverage, CalibMovingAverageConstant, "
                f"CalibMaxIntermediateOutputs, CalibPercentile), so Entropy runs with its defaults, num_bins 128 and num_quantized_bins 128."
            )
    notes_in.append(
        f"Accuracy is measured in batches of {meas['eval_batch']}: dynamic quantization chooses one activation range per batch, "
        f"so its batch-1 accuracy can differ slightly."
    )
    if notes_in:
        lines.append("")
        lines.append("Notes:")
        lines.append("")
        for s in notes_in:
            lines.append(f"- {s}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(a.out) + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(a.out)
    print("\n".join(lines))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("prep")
    s.add_argument("--clinc", required=True)
    s.add_argument("--sha256", required=True)
    s.add_argument("--out-dir", required=True)
    s.set_defaults(fn=cmd_prep)
    s = sub.add_parser("ort-quantize")
    s.add_argument("--fp32", required=True)
    s.add_argument("--tokenizer", required=True)
    s.add_argument("--calibration", required=True)
    s.add_argument("--method", choices=["minmax", "entropy", "dynamic"], required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--info", required=True)
    s.add_argument("--float-head", action="store_true", help="exclude the classifier head (Gemm) from quantization")
    s.set_defaults(fn=cmd_ort_quantize)
    s = sub.add_parser("measure")
    s.add_argument("--models", required=True, help="JSON list of {name, path, tokenizer, kind}; the first is the FP32 reference")
    s.add_argument("--fp32", required=True, help="avac's FP32 ONNX (its Gemm is the head applied to the peer encoder)")
    s.add_argument("--clinc", required=True)
    s.add_argument("--work", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--eval-batch", type=int, default=32)
    s.add_argument("--warmup", type=int, default=10)
    s.add_argument("--rounds", type=int, default=6)
    s.add_argument("--runs-per-round", type=int, default=10)
    s.set_defaults(fn=cmd_measure)
    s = sub.add_parser("table")
    s.add_argument("--measurements", required=True)
    s.add_argument("--fp32", required=True, help="avac's FP32 ONNX (for the head's weight statistics)")
    s.add_argument("--timings", required=True, help="directory of NAME.json: {seconds, describe, ort}")
    s.add_argument("--facts", required=True)
    s.add_argument("--notes", help="text file, one note a line")
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_table)
    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
