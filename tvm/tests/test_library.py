"""The compiled outputs: deterministic bytes, the archive format, ELF headers, the manifest."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess

import pytest
import tvm
from tvm.script import ir as I
from tvm.script import tirx as T
from conftest import TVM_DIR, tool

from gemma3 import archive, pipeline


def digests(d):
    return {n: hashlib.sha256(open(os.path.join(d, n), "rb").read()).hexdigest() for n in sorted(os.listdir(d))}


@pytest.mark.parametrize("target", ["android-arm64", "host"])
def test_two_builds_give_the_same_bytes(tiny, target, tmp_path):
    outs = []
    for i in (1, 2):
        work = tmp_path / f"w{i}"
        (work / "tmp").mkdir(parents=True)
        env = {"PYTHONHASHSEED": str(i * 17), "TVM_NUM_THREADS": str(i), "TMPDIR": str(work / "tmp")}
        r = tool("compile.py", "--package-dir", tiny, "--out-dir", str(work / "out"), "--target", target, env=env, cwd=str(work))
        assert r.returncode == 0 and r.stderr == "", r.stderr
        outs.append(digests(work / "out"))
    assert outs[0] == outs[1]
    assert len(outs[0]) == 2


def test_archive_is_what_ar_rcsD_writes(tiny_android, tmp_path):
    if shutil.which("ar") is None:
        pytest.skip("no GNU ar")
    data = open(os.path.join(tiny_android, "model-arm64-v8a.a"), "rb").read()
    members = archive.read_archive(data)
    for name, body in members:
        (tmp_path / name).write_bytes(body)
    subprocess.run(["ar", "rcsD", "gnu.a", *[n for n, _ in members]], cwd=tmp_path, check=True)
    assert (tmp_path / "gnu.a").read_bytes() == data
    assert archive.write_archive(members) == data


def test_android_objects_are_aarch64_system_lib(tiny_android):
    manifest = json.load(open(os.path.join(tiny_android, "model-arm64-v8a.json")))
    data = open(os.path.join(tiny_android, "model-arm64-v8a.a"), "rb").read()
    assert manifest["library"]["sha256"] == hashlib.sha256(data).hexdigest()
    prefix = manifest["system_lib_prefix"]
    assert prefix == "gemma3_text_q4bf16_1_"
    members = archive.read_archive(data)
    assert [m["name"] for m in manifest["objects"]] == [n for n, _ in members]
    symbols = []
    for name, body in members:
        assert name.startswith(prefix)
        info = archive.elf_info(name, body)
        assert (info["type"], info["machine"]) == (archive.ET_REL, archive.EM_AARCH64)
        symbols += archive.defined_symbols(name, body)
    # TVM's own registration symbols carry the prefix too; the only others are the weak
    # half-float helpers LLVM's code may call (weak, so two libraries link together).
    assert {s for s in symbols if not s.startswith(("__tvm_ffi_" + prefix, prefix + "__tvm_ffi_"))} <= {"__truncsfhf2", "__extendhfsf2"}
    assert set(manifest["undefined_symbols"]) >= {"TVMBackendParallelLaunch", "TVMFFIEnvModRegisterSystemLibSymbol"}
    # Kernels are native symbols; embed/prefill/... are VM bytecode inside the executable blob.
    assert f"__tvm_ffi_{prefix}dequant_matmul" in symbols and f"{prefix}__tvm_ffi__library_bin" in symbols
    assert manifest["functions"] == ["embed", "prefill", "decode", "lm_head", "create_kv_cache"]


def test_no_build_paths_in_objects(tiny_android, tiny_host):
    data = open(os.path.join(tiny_android, "model-arm64-v8a.a"), "rb").read() + open(tiny_host, "rb").read()
    for needle in (b"/tmp", b"/var/tmp", b"/work", os.path.expanduser("~").encode()):
        assert needle not in data, needle


def _shape_func(order, dependent=False):
    """A module with one `shape_func` like `VMShapeLower` emits, its stores in `order`."""
    lines = [f"H[T.int64({slot})] = T.int64({slot + 1}) * H[T.int64(0)]" for slot in order]
    if dependent:
        lines.insert(0, f"H[T.int64(1)] = H[T.int64({order[0]})] + T.int64(1)")
    src = "\n".join(
        [
            "@I.ir_module",
            "class Module:",
            "  @T.prim_func(private=True, s_tir=True)",
            "  def shape_func(H: T.Buffer((T.int64(8),), 'int64')):",
            "    T.func_attr({'tirx.is_host_func': True})",
            *["    " + ln for ln in lines],
        ]
    )
    return tvm.script.from_source(src, extra_vars={"I": I, "T": T})


def test_sort_pass_orders_independent_stores():
    a = pipeline.SortShapeFuncStores(_shape_func([5, 3, 7, 4]))
    b = pipeline.SortShapeFuncStores(_shape_func([4, 7, 3, 5]))
    assert a["shape_func"].script() == b["shape_func"].script()
    slots = [int(s.indices[0].value) for s in a["shape_func"].body.seq]
    assert slots == [3, 4, 5, 7]


def test_sort_pass_refuses_dependent_stores():
    with pytest.raises(Exception, match="depend on each other"):
        pipeline.SortShapeFuncStores(_shape_func([5, 3], dependent=True))
