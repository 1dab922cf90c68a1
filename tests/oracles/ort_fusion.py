#!/usr/bin/env python3
"""Which kernels onnxruntime runs an INT8 model's products with.

usage: ort_fusion.py MODEL.onnx

Builds an onnxruntime session (1 thread, all graph optimizations), dumps the
optimized graph and counts its products: integer kernels (QGemm,
QLinearMatMul, MatMulInteger, MatMulIntegerToFloat, DynamicQuantizeMatMul)
and float ones (MatMul, FusedMatMul, Gemm). Prints one JSON line.
"""
import collections
import json
import os
import sys
import tempfile

import onnx
import onnxruntime as ort

INTEGER = {"QGemm", "QLinearMatMul", "MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul"}
FLOAT = {"MatMul", "FusedMatMul", "Gemm"}

with tempfile.TemporaryDirectory() as d:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    opts.optimized_model_filepath = os.path.join(d, "optimized.onnx")
    ort.InferenceSession(sys.argv[1], opts, providers=["CPUExecutionProvider"])
    ops = collections.Counter(n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node)
print(json.dumps({
    "onnxruntime": ort.__version__,
    "integer_products": sum(v for k, v in ops.items() if k in INTEGER),
    "float_products": sum(v for k, v in ops.items() if k in FLOAT),
    "ops": dict(sorted(ops.items())),
}))
