"""Inputs the tools refuse: one line on stderr naming the file, exit 1, nothing written."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from conftest import tool

from gemma3.config import CHAT_CONFIG, TENSOR_CACHE


def edited(tiny, tmp_path, chat=None, cache=None):
    pkg = tmp_path / "pkg"
    shutil.copytree(tiny, pkg)
    if chat:
        c = json.load(open(pkg / CHAT_CONFIG))
        chat(c)
        json.dump(c, open(pkg / CHAT_CONFIG, "w"))
    if cache:
        c = json.load(open(pkg / TENSOR_CACHE))
        cache(c)
        json.dump(c, open(pkg / TENSOR_CACHE, "w"))
    return str(pkg)


def text(c):
    return c["model_config"]["text_config"]


CASES = {
    "model_type": (lambda c: c.update(model_type="llama"), None, "model_type"),
    "head_dim": (lambda c: text(c).update(head_dim=36), None, "head_dim"),
    "quantization": (lambda c: c.update(quantization="q4f16_1"), None, "quantization"),
    "activation": (lambda c: text(c).update(hidden_activation="silu"), None, "hidden_activation"),
    "group_size": (None, lambda c: [r.update(shape=[r["shape"][0], r["shape"][1] * 2]) for s in c["records"] for r in s["records"] if r["name"].endswith("embed_tokens.q_scale")], "group size 16"),
    "missing_record": (None, lambda c: c["records"][0]["records"].pop(), "no record"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_compile_refuses(case, tiny, tmp_path):
    chat, cache, needle = CASES[case]
    pkg = edited(tiny, tmp_path, chat, cache)
    out = tmp_path / "out"
    r = tool("compile.py", "--package-dir", pkg, "--out-dir", str(out), "--target", "android-arm64")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and pkg in lines[0], r.stderr
    assert not out.exists()
    assert sorted(os.listdir(tmp_path)) == ["pkg"]


def test_compile_refuses_a_non_empty_out_dir(tiny, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("")
    r = tool("compile.py", "--package-dir", tiny, "--out-dir", str(tmp_path / "out"), "--target", "host")
    assert r.returncode == 1 and "not an empty directory" in r.stderr


def test_run_refuses_out_of_vocabulary_ids(tiny, tiny_host, tmp_path):
    (tmp_path / "ids.json").write_text("[1, 2, 300]")
    r = tool("run.py", "--package-dir", tiny, "--lib", tiny_host, "--tokens", str(tmp_path / "ids.json"), "--out", str(tmp_path / "o.json"))
    assert r.returncode == 1 and "outside the vocabulary" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.json").exists()


def test_run_refuses_a_library_for_another_package(wide, tiny_host, tmp_path):
    (tmp_path / "ids.json").write_text("[1, 2, 3]")
    r = tool("run.py", "--package-dir", wide, "--lib", tiny_host, "--tokens", str(tmp_path / "ids.json"), "--out", str(tmp_path / "o.json"))
    assert r.returncode == 1 and "other parameters" in r.stderr
