"""The host library in TVM's VM against a float64 numpy oracle and against avac's own forward."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
from conftest import tool

import fixture

IDS = [int(i) for i in np.random.default_rng(3).integers(3, 300, 37)]


def run(pkg, lib, tmp, name, *extra, ids=IDS):
    tokens = os.path.join(tmp, name + "-ids.json")
    with open(tokens, "w") as f:
        json.dump(ids, f)
    out = os.path.join(tmp, name + ".json")
    r = tool("run.py", "--package-dir", pkg, "--lib", lib, "--tokens", tokens, "--out", out, *extra)
    assert r.returncode == 0, r.stderr
    with open(out, "rb") as f:
        return f.read()


@pytest.mark.parametrize("which", ["tiny", "wide"])
def test_logits_match_the_float64_oracle(which, request, tmp_path):
    pkg, lib = request.getfixturevalue(which), request.getfixturevalue(which + "_host")
    out = json.loads(run(pkg, lib, str(tmp_path), "o", "--chunk", "6", "--logits", str(tmp_path / "l.bin"), "--logits-rows", f"0:{len(IDS)}"))
    ref = fixture.reference_logits(pkg, IDS)
    got = np.fromfile(tmp_path / "l.bin", "<f4").reshape(len(IDS), -1)
    assert np.abs(got - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())
    assert out["argmax"] == [int(a) for a in np.argmax(ref, 1)[:-1]]
    lse = np.log(np.exp(ref - ref.max(1, keepdims=True)).sum(1)) + ref.max(1)
    want = [ref[i, IDS[i + 1]] - lse[i] for i in range(len(IDS) - 1)]
    assert np.allclose(out["log_probs"], want, atol=1e-4)


def test_output_is_independent_of_chunking_and_threads(tiny, tiny_host, tmp_path):
    a = run(tiny, tiny_host, str(tmp_path), "a", "--chunk", "37", "--max-logits")
    b = run(tiny, tiny_host, str(tmp_path), "b", "--chunk", "5", "--max-logits", "--threads", "2")
    c = run(tiny, tiny_host, str(tmp_path), "c", "--chunk", "1", "--max-logits")
    assert a == b == c


def test_decode_continues_like_the_oracle(wide, wide_host, tmp_path):
    out = json.loads(run(wide, wide_host, str(tmp_path), "g", "--decode", "6"))
    seq = list(IDS)
    for tok in out["greedy"]:
        assert tok == int(np.argmax(fixture.reference_logits(wide, seq)[-1]))
        seq.append(tok)


def test_agrees_with_avac_alc_score(tiny, tiny_host, tmp_path):
    """avac's reference forward over the same package: the gate avac alc validate will apply."""
    avac = fixture.avac_binary()
    if avac is None:
        pytest.skip("no avac binary")
    text = tmp_path / "text.txt"
    text.write_text(" ".join(f"w{i}" for i in IDS))
    score = tmp_path / "score.json"
    r = subprocess.run([avac, "alc", "score", tiny, "--text", str(text), "--out", str(score)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ref = json.loads(score.read_text())
    assert ref["ids"] == IDS
    out = json.loads(run(tiny, tiny_host, str(tmp_path), "s", ids=ref["ids"]))
    assert np.mean(np.array(out["argmax"]) == np.array(ref["argmax"])) >= 0.99
    assert np.abs(np.array(out["log_probs"]) - np.array(ref["log_probs"])).max() < 1e-3
    assert abs(out["perplexity"] / ref["perplexity"] - 1) < 0.005
