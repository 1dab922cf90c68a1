#!/usr/bin/env python3
"""Oracle for avac's GGUF dequantization, from llama.cpp's own gguf-py.

usage: gguf_dequant.py MODEL.gguf [--all]

Reads MODEL.gguf with gguf.GGUFReader and dequantizes tensors to float32 with
gguf.quants.dequantize (numpy). Prints one JSON object:

  {"gguf_version": "...", "numpy_version": "...", "tensor_count": int,
   "types": {type: count}, "seconds_all": float,
   "all_sha256": sha256 over the lines "<name> <sha256>\n" of every tensor in
                 file order (the per-tensor sha256 of its float32 LE bytes),
   "tensors": [{"name", "type", "ne", "sha256", "first8_bits"}]}

"tensors" holds, for every tensor type present, its first two and its last
tensor in file order (all of them with --all). "first8_bits" are the first 8
values as uint32 bit patterns, so the comparison is exact. The float32 bytes
are the array in C order, which is GGUF element order (ne[0] fastest).
"""
import hashlib
import json
import sys
import time
from collections import Counter, defaultdict

import numpy as np
import gguf
from gguf.quants import dequantize


def main() -> int:
    path = sys.argv[1]
    everything = "--all" in sys.argv[2:]
    reader = gguf.GGUFReader(path)
    tensors = list(reader.tensors)
    by_type = defaultdict(list)
    for t in tensors:
        by_type[t.tensor_type.name].append(t.name)
    chosen = set()
    for names in by_type.values():
        chosen.update(names[:2] + names[-1:])

    lines, records = [], []
    start = time.perf_counter()
    for t in tensors:
        values = np.ascontiguousarray(dequantize(t.data, t.tensor_type), dtype="<f4")
        assert values.size == int(np.prod(t.shape)), t.name
        digest = hashlib.sha256(values.tobytes()).hexdigest()
        lines.append(f"{t.name} {digest}\n")
        if everything or t.name in chosen:
            records.append({
                "name": t.name,
                "type": t.tensor_type.name,
                "ne": [int(d) for d in t.shape],
                "sha256": digest,
                "first8_bits": [int(b) for b in values.reshape(-1)[:8].view("<u4")],
            })
    seconds = time.perf_counter() - start

    out = {
        "gguf_version": getattr(gguf, "__version__", None) or _dist_version("gguf"),
        "numpy_version": np.__version__,
        "tensor_count": len(tensors),
        "types": dict(sorted(Counter(t.tensor_type.name for t in tensors).items())),
        "seconds_all": round(seconds, 3),
        "all_sha256": hashlib.sha256("".join(lines).encode()).hexdigest(),
        "tensors": records,
    }
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


def _dist_version(name: str) -> str:
    from importlib.metadata import version
    return version(name)


if __name__ == "__main__":
    sys.exit(main())
