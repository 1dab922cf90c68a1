"""Reads a package's parameters from its own `params_shard_N.bin` files with numpy.

Each record of `tensor-cache.json` is `nbytes` bytes at `byteOffset` of its
shard `dataPath`, row-major little-endian; bfloat16 comes back as
`ml_dtypes.bfloat16`. Only `raw` records are read (and `f32-to-bf16`
records of other dtypes than float32, which are raw too); a float32 record
stored as bfloat16 does not occur in `q4bf16_1` and is refused.
"""

from __future__ import annotations

import os

import ml_dtypes
import numpy as np

from .config import ConfigError, TENSOR_CACHE, tensor_records

DTYPES = {"uint32": np.dtype("<u4"), "bfloat16": np.dtype(ml_dtypes.bfloat16), "float32": np.dtype("<f4")}


def load(package_dir: str, names: list[tuple[str, tuple[int, ...], str]]) -> list[np.ndarray]:
    """The arrays of `names` ((name, shape, dtype), the library's parameter order), checked against the records."""
    records = tensor_records(package_dir)
    shards: dict[str, np.memmap] = {}
    out = []
    for name, shape, dtype in names:
        rec = records.get(name)
        if rec is None:
            raise ConfigError(f"{os.path.join(package_dir, TENSOR_CACHE)}: no record {name}")
        if tuple(rec["shape"]) != tuple(shape) or rec["dtype"] != dtype:
            raise ConfigError(f"{os.path.join(package_dir, TENSOR_CACHE)}: {name} is {rec['dtype']}{rec['shape']}, the library takes {dtype}{list(shape)}")
        if rec.get("format", "raw") not in ("raw", "f32-to-bf16") or (rec.get("format") == "f32-to-bf16" and dtype == "float32"):
            raise ConfigError(f"{os.path.join(package_dir, TENSOR_CACHE)}: {name}: record format {rec.get('format')!r} is not read")
        path = os.path.join(package_dir, rec["dataPath"])
        if os.path.basename(rec["dataPath"]) != rec["dataPath"]:
            raise ConfigError(f"{os.path.join(package_dir, TENSOR_CACHE)}: dataPath {rec['dataPath']!r} is not a plain file name")
        if path not in shards:
            try:
                shards[path] = np.memmap(path, dtype=np.uint8, mode="r")
            except OSError as e:
                raise ConfigError(f"{path}: {e.strerror}") from None
        dt = DTYPES[dtype]
        nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        off = int(rec["byteOffset"])
        if nbytes != rec["nbytes"] or off + nbytes > shards[path].size:
            raise ConfigError(f"{path}: record {name} ({nbytes} bytes at {off}) runs past the shard or disagrees with its nbytes")
        out.append(np.frombuffer(shards[path][off : off + nbytes].tobytes(), dtype=dt).reshape(shape))
    return out
