#!/usr/bin/env python3
"""Oracle check of an avac ONNX model with tools avac did not write.

usage: onnx_oracle.py MODEL.onnx CASES.json

CASES.json: {"tolerance": float, "min_top1_agree": int (optional; default all cases),
             "cases": [{"input_ids": [[int...]], "attention_mask": [[int...]],
                        "logits": [[float...]]}, ...]}
where "logits" come from avac's reference forward.

Runs onnx.checker.check_model(full_check=True), then onnxruntime (1 thread,
all graph optimizations) on every case, and compares its logits with the
reference. Prints one JSON line; exits 0 only when the checker passes and
every logit is within tolerance and enough top-1 classes agree.
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main() -> int:
    model_path, cases_path = sys.argv[1], sys.argv[2]
    with open(cases_path) as f:
        spec = json.load(f)
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    max_diff, agree = 0.0, 0
    for case in spec["cases"]:
        feeds = {n: np.asarray(case[n], dtype=np.int64) for n in names}
        (logits,) = sess.run(["logits"], feeds)
        ref = np.asarray(case["logits"], dtype=np.float32)
        if logits.shape != ref.shape:
            print(json.dumps({"ok": False, "error": f"shape {logits.shape} != {ref.shape}"}))
            return 1
        max_diff = max(max_diff, float(np.max(np.abs(logits - ref))))
        agree += int(np.all(np.argmax(logits, -1) == np.argmax(ref, -1)))
    n = len(spec["cases"])
    ok = max_diff <= spec["tolerance"] and agree >= spec.get("min_top1_agree", n)
    print(json.dumps({
        "ok": ok, "checker": "passed", "onnxruntime": ort.__version__, "onnx": onnx.__version__,
        "cases": n, "top1_agree": agree, "max_abs_diff": max_diff, "tolerance": spec["tolerance"],
        "inputs": names,
    }))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
