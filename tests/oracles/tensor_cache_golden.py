"""Golden tensor-cache.json for avac's `matches_tvmjs_golden` test, written by
TVM's own `tvm.contrib.tvmjs.dump_tensor_cache` (apache-tvm 0.27.0.post1).

Same records, bytes, cap and metadata as `golden_records` in
src/package/tensor_cache/tests.rs. Prints the JSON and each shard's md5.
"""

import contextlib
import os
import sys
import tempfile

import ml_dtypes
import numpy as np
from tvm.contrib import tvmjs

RECORDS = [
    ("a.q_weight", "uint32", [4, 16]),
    ("a.q_scale", "bfloat16", [4, 8]),
    ("b.weight", "float32", [10, 20]),
    ("c.weight", "float32", [100]),
    ("d.big", "uint8", [3000]),
    ("e.norm", "bfloat16", [152]),
    ("f.x", "int32", [2, 3]),
]
CAP = 1024
SOURCE_PARAMS = 1000


def record_bytes(k, nbytes):
    return bytes((k * 31 + i * 7 + 3) % 256 for i in range(nbytes))


def main():
    params = []
    total = 0
    for k, (name, dtype, shape) in enumerate(RECORDS):
        np_dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
        itemsize = np.dtype(np_dtype).itemsize
        n = int(np.prod(shape)) * itemsize
        total += n
        arr = np.frombuffer(record_bytes(k, n), dtype=np_dtype).reshape(shape)
        params.append((name, arr))
    meta = {"ParamSize": len(RECORDS), "ParamBytes": float(total), "BitsPerParam": float(total) * 8.0 / SOURCE_PARAMS}
    with tempfile.TemporaryDirectory() as d:
        with contextlib.redirect_stdout(sys.stderr):
            tvmjs.dump_tensor_cache(iter(params), d, encode_format="raw", meta_data=meta, shard_cap_mb=CAP / (1 << 20), show_progress=False)
        text = open(os.path.join(d, "tensor-cache.json")).read()
        print(sorted(os.listdir(d)), file=sys.stderr)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
