"""Builds the model library for a target and writes it deterministically.

Targets:

| name | TVM target | output | form |
|---|---|---|---|
| `android-arm64` | `{"kind": "llvm", "mtriple": "aarch64-linux-android", "mattr": ["+neon"]}` | `model-arm64-v8a.a` | system library (`system_lib=True`, module attribute `system_lib_prefix`): ELF relocatable aarch64 objects in a static archive, as MLC's Android build links them |
| `host` | `{"kind": "llvm", "mtriple": "x86_64-linux-gnu", "mcpu": "x86-64-v3"}` | `model-x86_64.so` | shared library for TVM's Relax VM (validation); linked by the system C compiler driver |

`export_library` is called with a collecting `fcompile`, so TVM only writes
its objects (`lib0.o` kernels and VM functions, `<prefix>devc.o` the
executable) into a scratch directory; the archive is then written by
`archive.write_archive` (no timestamps, owners or modes), and the shared
object is linked there with relative paths. The objects themselves are
deterministic once `pipeline.SortShapeFuncStores` has run; DWARF carries no
paths (TVM writes `comp_dir` "."), which the tests check with two builds in
different directories.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile

import tvm
from tvm import relax

from . import archive, model
from .config import ModelConfig
from .pipeline import relax_pipeline

TARGETS = {
    "android-arm64": {
        "tvm": {"kind": "llvm", "mtriple": "aarch64-linux-android", "mattr": ["+neon"]},
        "abi": "arm64-v8a",
        "machine": archive.EM_AARCH64,
        "file": "model-arm64-v8a.a",
        "system_lib": True,
    },
    "host": {
        "tvm": {"kind": "llvm", "mtriple": "x86_64-linux-gnu", "mcpu": "x86-64-v3"},
        "abi": "x86_64",
        "machine": archive.EM_X86_64,
        "file": "model-x86_64.so",
        "system_lib": False,
    },
}

MANIFEST_FORMAT = "avac-gemma3-model-lib/1"


class BuildError(Exception):
    """The library could not be built or written; the message names the file."""


def default_prefix(chat: dict) -> str:
    """MLC's system-lib prefix rule: `{model_type}_{quantization}_`, `-` as `_`."""
    return f"{chat.get('model_type')}_{chat.get('quantization')}_".replace("-", "_")


def build(cfg: ModelConfig, target: str, prefix: str):
    """The Relax VM executable of `cfg` for `target`, and the parameter list."""
    t = TARGETS[target]
    mod, params = model.export(cfg)
    if t["system_lib"]:
        mod = mod.with_attr("system_lib_prefix", prefix)
    ex = relax.build(mod, target=tvm.target.Target(t["tvm"]), relax_pipeline=relax_pipeline(), system_lib=t["system_lib"])
    return ex, params


def _objects(ex, scratch: str) -> list[tuple[str, bytes]]:
    """The object files `export_library` produces, by base name, in its order."""
    collected: list[str] = []

    def collect(_output, files, **_kwargs):
        collected.extend(files)

    collect.object_format = "o"
    ex.export_library(os.path.join(scratch, "unused"), fcompile=collect, workspace_dir=scratch)
    out = []
    for path in collected:
        with open(path, "rb") as f:
            out.append((os.path.basename(path), f.read()))
    return out


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(cfg: ModelConfig, target: str, prefix: str, out_dir: str, chat: dict) -> list[str]:
    """Builds and writes the library and its manifest into `out_dir` (which must exist); returns the file names."""
    t = TARGETS[target]
    ex, params = build(cfg, target, prefix)
    with tempfile.TemporaryDirectory(prefix="avac-tvm-") as scratch:
        objects = _objects(ex, scratch)
        members = []
        for name, data in objects:
            info = archive.elf_info(name, data)
            if info["type"] != archive.ET_REL or info["machine"] != t["machine"]:
                raise BuildError(f"{name}: ELF type {info['type']} machine {info['machine']}, expected relocatable machine {t['machine']}")
            # Prefix every member so that two model libraries can be extracted side by side.
            members.append((name if name.startswith(prefix) else prefix + name, data))
        if t["system_lib"]:
            lib = archive.write_archive(members)
        else:
            lib = _link_shared(scratch, members)
    lib_path = os.path.join(out_dir, t["file"])
    with open(lib_path, "wb") as f:
        f.write(lib)
    manifest = {
        "format": MANIFEST_FORMAT,
        "target": target,
        "abi": t["abi"],
        "tvm_target": t["tvm"],
        "system_lib": t["system_lib"],
        "system_lib_prefix": prefix if t["system_lib"] else None,
        "library": {"file": t["file"], "size": len(lib), "sha256": _sha(lib)},
        "objects": [{"name": n, "size": len(d), "sha256": _sha(d)} for n, d in members],
        # What the objects need at link time: the TVM runtime's C ABI and libc/libm.
        "undefined_symbols": sorted({s for n, d in members for s in archive.undefined_symbols(n, d)}),
        "functions": list(model.FUNCTIONS),
        "kv_cache": {"dtype": "float32", "shape": model.kv_cache_shape(cfg, "capacity")},
        "params": [{"name": n, "shape": list(s), "dtype": d} for n, s, d in params],
        "model_type": chat.get("model_type"),
        "quantization": chat.get("quantization"),
        "config": cfg.to_json(),
        "toolchain": {"apache-tvm": tvm.__version__},
    }
    manifest_name = t["file"].rsplit(".", 1)[0] + ".json"
    with open(os.path.join(out_dir, manifest_name), "wb") as f:
        f.write(json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n")
    return [t["file"], manifest_name]


def _link_shared(scratch: str, members: list[tuple[str, bytes]]) -> bytes:
    """Links the objects into a shared library with the system `cc`, from `scratch`, by relative names."""
    link_dir = os.path.join(scratch, "link")
    os.mkdir(link_dir)
    names = []
    for name, data in members:
        with open(os.path.join(link_dir, name), "wb") as f:
            f.write(data)
        names.append(name)
    cmd = ["cc", "-shared", "-fPIC", "-Wl,--build-id=none", "-o", "out.so", *names]
    r = subprocess.run(cmd, cwd=link_dir, capture_output=True, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"})
    if r.returncode != 0:
        raise BuildError(f"linking the host library with {' '.join(cmd)}: {r.stderr.decode(errors='replace').strip().splitlines()[-1:]}")
    with open(os.path.join(link_dir, "out.so"), "rb") as f:
        return f.read()
