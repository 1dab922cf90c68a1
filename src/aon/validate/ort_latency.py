"""p50 latency of ONNX models in onnxruntime (run by `avac aon validate --ort-python`).

usage: python3 -c SCRIPT SEQ RUNS INPUT_IDS_JSON MODEL...
One intra-op and one inter-op thread, all graph optimizations, batch 1,
sequence SEQ; prints one JSON object: version and p50 milliseconds per model.
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort

seq, runs, ids = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
feeds = {"input_ids": np.asarray([ids[:seq]], dtype=np.int64), "attention_mask": np.ones((1, seq), dtype=np.int64)}
out = {"onnxruntime": ort.__version__, "p50_ms": {}}
for path in sys.argv[4:]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    for _ in range(3):
        sess.run(None, feeds)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    out["p50_ms"][path] = float(np.median(times))
print(json.dumps(out))
