"""Tiny Gemma 3 packages for the tests, and a float64 numpy oracle over a package.

`tiny_package(dir, **config)` writes a Hugging Face directory (bfloat16
safetensors, `config.json`, a word-level `tokenizer.json`) with weights
drawn from a fixed numpy seed and turns it into a `q4bf16_1` parameter
directory with `avac alc quantize` (the binary is `$AVAC`, else
`/var/tmp/avac-helper-bin/avac`, else `avac` on `PATH`); without avac it
quantizes in numpy the way `src/quant/q4.rs` does (max-abs scale,
round-half-even) so the suite still runs, and `AVAC_REQUIRED=1` makes a
missing avac an error.

`reference_logits(package_dir, ids)` is an independent oracle: the package's
weights dequantized in float64 and the Gemma 3 forward in numpy
(`src/model/gemma3/mod.rs` conventions, two-pass softmax).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import subprocess
import sys

import ml_dtypes
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gemma3 import params as params_mod  # noqa: E402
from gemma3.config import PREFIX, ModelConfig  # noqa: E402

TINY = {
    "model_type": "gemma3_text",
    "vocab_size": 300,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 6,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 32,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "rope_local_base_freq": 10000.0,
    "sliding_window": 4,
    "query_pre_attn_scalar": 32,
    "max_position_embeddings": 4096,
    "hidden_activation": "gelu_pytorch_tanh",
    "rope_scaling": None,
    "final_logit_softcapping": None,
    "attn_logit_softcapping": None,
    "bos_token_id": 2,
    "eos_token_id": 1,
    "pad_token_id": 0,
}


def avac_binary() -> str | None:
    for cand in (os.environ.get("AVAC"), "/var/tmp/avac-helper-bin/avac", shutil.which("avac")):
        if cand and os.access(cand, os.X_OK):
            return cand
    if os.environ.get("AVAC_REQUIRED") == "1":
        raise RuntimeError("AVAC_REQUIRED=1 but no avac binary ($AVAC, /var/tmp/avac-helper-bin/avac, PATH)")
    return None


def _hf_tensors(cfg: dict, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    h, f, d, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["head_dim"], cfg["vocab_size"]
    nq, nkv = cfg["num_attention_heads"] * d, cfg["num_key_value_heads"] * d
    out = {"model.embed_tokens.weight": rng.standard_normal((v, h)) * 0.3}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        for name, (o, k) in {
            "self_attn.q_proj": (nq, h),
            "self_attn.k_proj": (nkv, h),
            "self_attn.v_proj": (nkv, h),
            "self_attn.o_proj": (h, nq),
            "mlp.gate_proj": (f, h),
            "mlp.up_proj": (f, h),
            "mlp.down_proj": (h, f),
        }.items():
            out[p + name + ".weight"] = rng.standard_normal((o, k)) / math.sqrt(k)
        for name, w in (("self_attn.q_norm", d), ("self_attn.k_norm", d)) + tuple(
            (n, h) for n in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm")
        ):
            out[p + name + ".weight"] = rng.standard_normal(w) * 0.3
    out["model.norm.weight"] = rng.standard_normal(h) * 0.3
    return {k: v.astype(np.float32).astype(ml_dtypes.bfloat16) for k, v in out.items()}


def write_safetensors(path: str, tensors: dict[str, np.ndarray]) -> None:
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        b = a.tobytes()
        header[name] = {"dtype": "BF16", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def write_hf_dir(path: str, cfg: dict, seed: int = 7) -> None:
    os.makedirs(path)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    write_safetensors(os.path.join(path, "model.safetensors"), _hf_tensors(cfg, seed))
    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2}
    vocab.update({f"w{i}": i for i in range(3, cfg["vocab_size"])})
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [],
        "normalizer": None,
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": None,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<pad>"},
    }
    with open(os.path.join(path, "tokenizer.json"), "w") as f:
        json.dump(tok, f)


def tiny_package(root: str, group_size: int = 32, seed: int = 7, **overrides) -> str:
    """Writes `root/hf` and `root/pkg` (a q4bf16_1 parameter directory); returns the latter."""
    cfg = dict(TINY, **overrides)
    hf, pkg = os.path.join(root, "hf"), os.path.join(root, "pkg")
    write_hf_dir(hf, cfg, seed)
    avac = avac_binary()
    if avac:
        q = os.path.join(root, "quantize.json")
        with open(q, "w") as f:
            json.dump({"group_size": group_size, "scale": "max_abs"}, f)
        subprocess.run([avac, "alc", "quantize", "--source", hf, "--params", q, "--out", pkg], check=True, capture_output=True)
    else:
        _numpy_package(hf, pkg, cfg, group_size, seed)
    return pkg


def _quantize(w: np.ndarray, group: int) -> tuple[np.ndarray, np.ndarray]:
    """`q4bf16_1` of an f32 `[out, in]` weight: scale = bf16(max|w| / 7), q = clamp(rne(w / scale + 7), 0, 14)."""
    o, k = w.shape
    g = w.reshape(o, k // group, group)
    scale = (np.abs(g).max(-1) / np.float32(7)).astype(np.float32).astype(ml_dtypes.bfloat16)
    s = scale.astype(np.float32)[..., None]
    q = np.where(s > 0, np.clip(np.rint(g / np.where(s > 0, s, 1) + np.float32(7)), 0, 14), 7).astype(np.uint32).reshape(o, k // 8, 8)
    words = np.zeros((o, k // 8), np.uint32)
    for r in range(8):
        words |= q[..., r] << np.uint32(4 * r)
    return words, scale


def _numpy_package(hf: str, pkg: str, cfg: dict, group: int, seed: int) -> None:
    """The parameter directory `avac alc quantize` writes, in numpy (one shard, `raw` records)."""
    t = {k: v.astype(np.float32) for k, v in _hf_tensors(cfg, seed).items()}
    records = []

    def add(name, a):
        records.append((name, np.ascontiguousarray(a)))

    def q(stem, w):
        words, scale = _quantize(w, group)
        add(PREFIX + stem + ".q_weight", words)
        add(PREFIX + stem + ".q_scale", scale)

    def norm(name):
        add(PREFIX + name, (np.float32(1) + t["model." + name]).astype(ml_dtypes.bfloat16))

    q("embed_tokens", t["model.embed_tokens.weight"])
    for i in range(cfg["num_hidden_layers"]):
        p = f"layers.{i}."
        for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
            q(p + "self_attn." + n, t[f"model.{p}self_attn.{n}.weight"])
        norm(p + "self_attn.q_norm.weight")
        norm(p + "self_attn.k_norm.weight")
        q(p + "mlp.gate_up_proj", np.concatenate([t[f"model.{p}mlp.gate_proj.weight"], t[f"model.{p}mlp.up_proj.weight"]]))
        q(p + "mlp.down_proj", t[f"model.{p}mlp.down_proj.weight"])
        for n in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"):
            norm(p + n + ".weight")
    norm("norm.weight")
    os.makedirs(pkg)
    blob, recs = b"", []
    for name, a in records:
        recs.append({"name": name, "shape": list(a.shape), "dtype": str(a.dtype), "format": "raw", "nbytes": a.nbytes, "byteOffset": len(blob)})
        blob += a.tobytes()
    with open(os.path.join(pkg, "params_shard_0.bin"), "wb") as f:
        f.write(blob)
    cache = {"metadata": {}, "records": [{"dataPath": "params_shard_0.bin", "format": "raw-shard", "nbytes": len(blob), "records": recs}]}
    with open(os.path.join(pkg, "tensor-cache.json"), "w") as f:
        json.dump(cache, f, indent=4)
    text = {k: v for k, v in cfg.items() if not k.endswith("_token_id")}
    chat = {"model_type": "gemma3_text", "quantization": "q4bf16_1", "model_config": {"text_config": text}, "prefill_chunk_size": 8192, "context_window_size": 8192}
    with open(os.path.join(pkg, "mlc-chat-config.json"), "w") as f:
        json.dump(chat, f, indent=2)


def reference_logits(package_dir: str, ids: list[int]) -> np.ndarray:
    """Logits of every position, float64, from the package's dequantized weights."""
    cfg = ModelConfig.from_package(package_dir)
    names = cfg.expected_params()
    arrays = dict(zip([n for n, _, _ in names], params_mod.load(package_dir, names)))

    def weight(stem):
        qw, qs = arrays[stem + ".q_weight"], arrays[stem + ".q_scale"]
        nib = (qw[:, :, None] >> (np.arange(8, dtype=np.uint32) * 4)) & 15
        o = qw.shape[0]
        return (nib.reshape(o, -1).astype(np.float64) - 7) * np.repeat(qs.astype(np.float64), cfg.group_size, axis=1)

    def norm(x, w):
        w = arrays[w].astype(np.float64)
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + cfg.rms_norm_eps) * w

    def rope(x, pos, base, factor):
        d = cfg.head_dim
        inv = 1.0 / base ** (np.arange(0, d, 2) / d)
        if factor:
            inv = inv / factor
        ang = pos[:, None] * inv[None, :]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        a, b = x[..., : d // 2], x[..., d // 2 :]
        return np.concatenate([a * c - b * s, b * c + a * s], -1)

    n, d = len(ids), cfg.head_dim
    heads, kvh = cfg.num_attention_heads, cfg.num_key_value_heads
    emb = weight(PREFIX + "embed_tokens")
    x = emb[ids] * float(np.float32(math.sqrt(cfg.hidden_size)))
    pos = np.arange(n, dtype=np.float64)
    for i in range(cfg.num_hidden_layers):
        p = f"{PREFIX}layers.{i}."
        t = norm(x, p + "input_layernorm.weight")
        q = (t @ weight(p + "self_attn.q_proj").T).reshape(n, heads, d)
        k = (t @ weight(p + "self_attn.k_proj").T).reshape(n, kvh, d)
        v = (t @ weight(p + "self_attn.v_proj").T).reshape(n, kvh, d)
        q, k = norm(q, p + "self_attn.q_norm.weight"), norm(k, p + "self_attn.k_norm.weight")
        sliding = cfg.sliding[i]
        base, factor = (cfg.rope_local_base_freq, None) if sliding else (cfg.rope_theta, cfg.rope_scaling_factor)
        q, k = rope(q, pos, base, factor), rope(k, pos, base, factor)
        ctx = np.zeros((n, heads, d))
        for h in range(heads):
            g = h // (heads // kvh)
            s = (q[:, h] @ k[:, g].T) * cfg.query_pre_attn_scalar**-0.5
            if cfg.attn_logit_softcapping:
                s = np.tanh(s / cfg.attn_logit_softcapping) * cfg.attn_logit_softcapping
            jj, ii = np.meshgrid(np.arange(n), np.arange(n))
            mask = jj <= ii
            if sliding:
                mask &= ii - jj < cfg.sliding_window
            s = np.where(mask, s, -np.inf)
            w = np.exp(s - s.max(-1, keepdims=True))
            ctx[:, h] = (w / w.sum(-1, keepdims=True)) @ v[:, g]
        x = x + norm(ctx.reshape(n, -1) @ weight(p + "self_attn.o_proj").T, p + "post_attention_layernorm.weight")
        t = norm(x, p + "pre_feedforward_layernorm.weight")
        gu = t @ weight(p + "mlp.gate_up_proj").T
        gate, up = gu[:, : cfg.intermediate_size], gu[:, cfg.intermediate_size :]
        act = 0.5 * gate * (1 + np.tanh(math.sqrt(2 / math.pi) * (gate + 0.044715 * gate**3))) * up
        x = x + norm(act @ weight(p + "mlp.down_proj").T, p + "post_feedforward_layernorm.weight")
    logits = norm(x, PREFIX + "norm.weight") @ emb.T
    if cfg.final_logit_softcapping:
        logits = np.tanh(logits / cfg.final_logit_softcapping) * cfg.final_logit_softcapping
    return logits
