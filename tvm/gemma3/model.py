"""Gemma 3 (text) as a Relax `nn.Module`, over the package's own `q4bf16_1` parameters.

Parameter names are the package's `tensor-cache.json` records
(`language_model.model.layers.N.self_attn.q_proj.q_weight`, ...), declared
in MLC's record order, so the exported parameter list *is* the record list.
Every size comes from `ModelConfig` (the package's `mlc-chat-config.json`).

Functions (all take the parameters as one packed tuple, MLC's
`param_mode="packed"`, after their own arguments):

| function | arguments | result |
|---|---|---|
| `embed` | `input_ids: int32[n]` | `float32[n, hidden]`, already scaled by `sqrt(hidden)` |
| `prefill` | `embeds: float32[n, hidden]`, `kv_cache`, `start: Shape[1]` | `(float32[n, hidden], kv_cache)`: final-normed hidden states |
| `decode` | `embeds: float32[1, hidden]`, `kv_cache`, `start: Shape[1]` | `(float32[1, vocab], kv_cache)`: logits |
| `lm_head` | `hidden: float32[m, hidden]` (final-normed) | `float32[m, vocab]` logits |
| `create_kv_cache` | `capacity: Shape[1]` | zeros `float32[layers, 2, capacity, kv_heads, head_dim]` |

The KV cache is one fixed-capacity tensor passed in and returned (updated in
place by `call_tir_inplace`): index 0 keys (after `k_norm` and RoPE), 1
values, positions by absolute index. `start` is the position of the first
token of the call (= tokens already in the cache). Keys are read by absolute
position, so the sliding window is exact for any chunk length; `prefill`
is called on chunks of at most `prefill_chunk_size` tokens only to bound the
activations. Why not TVM's paged KV cache: it takes a single RoPE theta
(Gemma 3 has 10k local / 1M global) and does not apply the sliding window
inside one prefill chunk longer than the window.
"""

from __future__ import annotations

import math

from tvm import tirx
from tvm.relax.frontend import nn
from tvm.relax.frontend.nn import op, spec

from . import kernels as K
from .config import ModelConfig

F32 = "float32"


def _call(func, name: str, args, shape):
    return op.tensor_ir_op(_anonymous(func), name, args, out=nn.Tensor.placeholder(shape, F32))


def _anonymous(func):
    """The kernel without its script name as symbol: `AttachGlobalSymbol` names it after its
    `GlobalVar` (deduplicated by the block builder), so no kernel can clash with a Relax function."""
    return func.without_attr("global_symbol")


class QLinear(nn.Module):
    """A `q4bf16_1` weight `[out, in]`: `q_weight` uint32 `[out, in/8]`, `q_scale` bfloat16 `[out, in/group]`."""

    def __init__(self, out_features: int, in_features: int, group: int):
        self.out_features, self.in_features, self.group = out_features, in_features, group
        self.q_weight = nn.Parameter((out_features, in_features // 8), "uint32")
        self.q_scale = nn.Parameter((out_features, in_features // group), "bfloat16")

    def forward(self, x: nn.Tensor) -> nn.Tensor:
        rows = x.shape[0]
        static = rows if isinstance(rows, int) else None
        func = K.dequant_matmul(self.out_features, self.in_features, self.group, static)
        return _call(func, "dequant_matmul", [x, self.q_weight, self.q_scale], [rows, self.out_features])


class Norm(nn.Module):
    """An RMSNorm scale, stored as `1 + w` in bfloat16."""

    def __init__(self, width: int):
        self.weight = nn.Parameter((width,), "bfloat16")


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        h, d, g = cfg.hidden_size, cfg.head_dim, cfg.group_size
        self.q_proj = QLinear(cfg.num_attention_heads * d, h, g)
        self.k_proj = QLinear(cfg.num_key_value_heads * d, h, g)
        self.v_proj = QLinear(cfg.num_key_value_heads * d, h, g)
        self.o_proj = QLinear(h, cfg.num_attention_heads * d, g)
        self.q_norm = Norm(d)
        self.k_norm = Norm(d)


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        h, f, g = cfg.hidden_size, cfg.intermediate_size, cfg.group_size
        self.gate_up_proj = QLinear(2 * f, h, g)
        self.down_proj = QLinear(h, f, g)


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig, index: int):
        self.self_attn = Attention(cfg)
        self.mlp = MLP(cfg)
        self.input_layernorm = Norm(cfg.hidden_size)
        self.post_attention_layernorm = Norm(cfg.hidden_size)
        self.pre_feedforward_layernorm = Norm(cfg.hidden_size)
        self.post_feedforward_layernorm = Norm(cfg.hidden_size)
        self._cfg, self._index = cfg, index

    def forward(self, x: nn.Tensor, cache: nn.Tensor, start: tirx.Var, rope: nn.Tensor) -> tuple[nn.Tensor, nn.Tensor]:
        cfg, a = self._cfg, self.self_attn
        n, h, d = x.shape[0], cfg.hidden_size, cfg.head_dim
        heads, kv, layers = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.num_hidden_layers
        eps = cfg.rms_norm_eps
        layer = tirx.IntImm("int64", self._index)

        t = _call(K.rms_norm(h, eps), "rms_norm", [x, self.input_layernorm.weight], [n, h])
        q = _call(K.q_norm_rope(heads, d, eps), "q_norm_rope", [a.q_proj(t), a.q_norm.weight, rope], [n, heads * d])
        cache = op.tensor_ir_inplace_op(
            _anonymous(K.kv_append(kv, d, eps, layers)),
            "kv_append",
            [a.k_proj(t), a.v_proj(t), a.k_norm.weight, rope, cache, layer, start],
            inplace_indices=[4],
            out=nn.Tensor.placeholder(cache.shape, F32),
        )
        window = cfg.sliding_window if cfg.sliding[self._index] else None
        attend = K.attention(heads, kv, d, layers, K.attention_scaling(cfg.query_pre_attn_scalar), window, cfg.attn_logit_softcapping)
        ctx = _call(attend, "attention", [q, cache, layer, start], [n, heads * d])
        x = _call(K.add_rms_norm(h, eps), "add_rms_norm", [x, a.o_proj(ctx), self.post_attention_layernorm.weight], [n, h])

        t = _call(K.rms_norm(h, eps), "rms_norm", [x, self.pre_feedforward_layernorm.weight], [n, h])
        act = _call(K.gelu_mul(cfg.intermediate_size), "gelu_mul", [self.mlp.gate_up_proj(t)], [n, cfg.intermediate_size])
        x = _call(K.add_rms_norm(h, eps), "add_rms_norm", [x, self.mlp.down_proj(act), self.post_feedforward_layernorm.weight], [n, h])
        return x, cache


class TextModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        self.embed_tokens = QLinear(cfg.vocab_size, cfg.hidden_size, cfg.group_size)
        self.layers = nn.ModuleList([DecoderLayer(cfg, i) for i in range(cfg.num_hidden_layers)])
        self.norm = Norm(cfg.hidden_size)


class LanguageModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        self.model = TextModel(cfg)


class Gemma3(nn.Module):
    """The exported module: see the module docs for its functions."""

    def __init__(self, cfg: ModelConfig):
        self.language_model = LanguageModel(cfg)
        self._cfg = cfg

    def embed(self, input_ids: nn.Tensor) -> nn.Tensor:
        cfg, e = self._cfg, self.language_model.model.embed_tokens
        # HF's normalizer: sqrt(hidden) in f64, rounded once to f32.
        func = K.embed(cfg.vocab_size, cfg.hidden_size, cfg.group_size, float(_f32(math.sqrt(cfg.hidden_size))))
        return _call(func, "embed", [input_ids, e.q_weight, e.q_scale], [input_ids.shape[0], cfg.hidden_size])

    def _layers(self, x: nn.Tensor, cache: nn.Tensor, start: tirx.Var) -> tuple[nn.Tensor, nn.Tensor]:
        cfg = self._cfg
        n, d = x.shape[0], cfg.head_dim
        rope_local = _call(K.rope_table(d, cfg.rope_local_base_freq, None), "rope_table", [start], [n, 2, d // 2])
        rope_global = _call(K.rope_table(d, cfg.rope_theta, cfg.rope_scaling_factor), "rope_table", [start], [n, 2, d // 2])
        for i, layer in enumerate(self.language_model.model.layers):
            x, cache = layer(x, cache, start, rope_local if cfg.sliding[i] else rope_global)
        norm = self.language_model.model.norm.weight
        x = _call(K.rms_norm(cfg.hidden_size, cfg.rms_norm_eps), "rms_norm", [x, norm], [n, cfg.hidden_size])
        return x, cache

    def prefill(self, embeds: nn.Tensor, kv_cache: nn.Tensor, start: tirx.Var):
        return self._layers(embeds, kv_cache, start)

    def decode(self, embeds: nn.Tensor, kv_cache: nn.Tensor, start: tirx.Var):
        x, cache = self._layers(embeds, kv_cache, start)
        return self.lm_head(x), cache

    def lm_head(self, hidden: nn.Tensor) -> nn.Tensor:
        cfg = self._cfg
        logits = self.language_model.model.embed_tokens(hidden)
        if cfg.final_logit_softcapping is not None:
            func = K.softcap(cfg.vocab_size, cfg.final_logit_softcapping)
            logits = _call(func, "softcap", [logits], [hidden.shape[0], cfg.vocab_size])
        return logits

    def create_kv_cache(self, capacity: tirx.Var) -> nn.Tensor:
        cfg = self._cfg
        return op.zeros(kv_cache_shape(cfg, capacity), F32)

    def spec(self) -> dict:
        """The `export_tvm` spec of every function."""
        cfg = self._cfg
        h = cfg.hidden_size
        cache = spec.Tensor(kv_cache_shape(cfg, "capacity"), F32)
        packed = {"param_mode": "packed", "effect_mode": "none"}
        return {
            "embed": {"input_ids": spec.Tensor(["seq_len"], "int32"), "$": packed},
            "prefill": {"embeds": spec.Tensor(["seq_len", h], F32), "kv_cache": cache, "start": spec.Int(), "$": packed},
            "decode": {"embeds": spec.Tensor([1, h], F32), "kv_cache": cache, "start": spec.Int(), "$": packed},
            "lm_head": {"hidden": spec.Tensor(["rows", h], F32), "$": packed},
            "create_kv_cache": {"capacity": spec.Int(), "$": {"param_mode": "none", "effect_mode": "none"}},
        }


def kv_cache_shape(cfg: ModelConfig, capacity):
    """`[layers, 2, capacity, kv_heads, head_dim]`."""
    return [cfg.num_hidden_layers, 2, capacity, cfg.num_key_value_heads, cfg.head_dim]


def _f32(x: float) -> float:
    import numpy as np

    return float(np.float32(x))


#: The functions a library exports, in the order the manifest lists them.
FUNCTIONS = ("embed", "prefill", "decode", "lm_head", "create_kv_cache")


def export(cfg: ModelConfig):
    """The Relax IRModule and the parameter list `[(name, shape, dtype)]` of `cfg`."""
    model = Gemma3(cfg)
    mod, params = model.export_tvm(spec=model.spec())
    named = [(name, tuple(int(s) for s in p.shape), p.dtype) for name, p in params]
    expected = cfg.expected_params()
    if named != expected:
        raise AssertionError(f"model parameters {named[:3]}... differ from the package records {expected[:3]}...")
    return mod, named
