"""Session fixtures: tiny packages and their compiled libraries (each built once)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TVM_DIR = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, TVM_DIR)

import fixture  # noqa: E402

#: group 128 needs widths that are multiples of 128; this one also turns on
#: every optional path: both softcappings, linear RoPE scaling, explicit layer types.
WIDE = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=32,
    sliding_window=5,
    query_pre_attn_scalar=24,
    final_logit_softcapping=30.0,
    attn_logit_softcapping=50.0,
    rope_scaling={"rope_type": "linear", "factor": 8.0},
    layer_types=["sliding_attention", "full_attention", "sliding_attention"],
)


def tool(script: str, *args: str, env: dict | None = None, cwd: str | None = None) -> subprocess.CompletedProcess:
    """Runs `tvm/<script>` with this Python, capturing its output."""
    full_env = dict(os.environ, TVM_NUM_THREADS=os.environ.get("TVM_NUM_THREADS", "1"))
    full_env.update(env or {})
    return subprocess.run([sys.executable, os.path.join(TVM_DIR, script), *args], capture_output=True, text=True, env=full_env, cwd=cwd)


def compile_lib(pkg: str, out: str, target: str, **kw) -> str:
    r = tool("compile.py", "--package-dir", pkg, "--out-dir", out, "--target", target, **kw)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""
    return out


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> str:
    return fixture.tiny_package(str(tmp_path_factory.mktemp("tiny")), group_size=32)


@pytest.fixture(scope="session")
def wide(tmp_path_factory) -> str:
    return fixture.tiny_package(str(tmp_path_factory.mktemp("wide")), group_size=128, seed=11, **WIDE)


@pytest.fixture(scope="session")
def tiny_host(tiny, tmp_path_factory) -> str:
    return os.path.join(compile_lib(tiny, str(tmp_path_factory.mktemp("h") / "out"), "host"), "model-x86_64.so")


@pytest.fixture(scope="session")
def wide_host(wide, tmp_path_factory) -> str:
    return os.path.join(compile_lib(wide, str(tmp_path_factory.mktemp("w") / "out"), "host"), "model-x86_64.so")


@pytest.fixture(scope="session")
def tiny_android(tiny, tmp_path_factory) -> str:
    return compile_lib(tiny, str(tmp_path_factory.mktemp("a") / "out"), "android-arm64")
