"""What the model definition needs from a package, read and checked.

A package directory holds `mlc-chat-config.json` (avac's
`src/alc/chat_config.rs` writes it) and `tensor-cache.json` (MLC's layout,
`src/package/tensor_cache.rs`). `ModelConfig.from_package` reads the sizes
from `model_config.text_config` (Hugging Face `gemma3_text` names) and the
quantization group from the tensor shapes (the chat config only says
`q4bf16_1`), and refuses anything the kernels cannot run, naming the file and
the field.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

CHAT_CONFIG = "mlc-chat-config.json"
TENSOR_CACHE = "tensor-cache.json"

#: Parameter-name prefix of the text model (`names::MLC_PREFIX` + `model.`).
PREFIX = "language_model.model."

#: Group sizes the kernels are written for (MLC's 32, the seed's 128).
GROUP_SIZES = (32, 128)

#: Widest head the attention kernel's per-head local buffers take.
MAX_HEAD_DIM = 512


class ConfigError(Exception):
    """A package the model definition cannot compile or run; the message names the file."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Gemma 3 text hyper-parameters under Hugging Face's names, plus the quantization group."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    rope_local_base_freq: float
    rope_scaling_factor: float | None
    query_pre_attn_scalar: float
    sliding_window: int
    sliding: tuple[bool, ...]
    final_logit_softcapping: float | None
    attn_logit_softcapping: float | None
    group_size: int
    prefill_chunk_size: int
    context_window_size: int

    @staticmethod
    def from_package(package_dir: str) -> "ModelConfig":
        """Reads and checks `mlc-chat-config.json` and `tensor-cache.json` of `package_dir`."""
        chat_path = os.path.join(package_dir, CHAT_CONFIG)
        chat = _read_json(chat_path)
        records = tensor_records(package_dir)
        return ModelConfig.from_chat(chat, records, chat_path, os.path.join(package_dir, TENSOR_CACHE))

    @staticmethod
    def from_chat(chat: dict, records: dict[str, dict], chat_path: str = CHAT_CONFIG, cache_path: str = TENSOR_CACHE) -> "ModelConfig":
        """Builds the config from a parsed chat config and the tensor records by name."""

        def bad(field: str, why: str) -> ConfigError:
            return ConfigError(f"{chat_path}: field {field}: {why}")

        model_type = chat.get("model_type")
        if model_type not in ("gemma3_text", "gemma3"):
            raise bad("model_type", f'expected "gemma3_text" or "gemma3", found {model_type!r}')
        if chat.get("quantization") != "q4bf16_1":
            raise bad("quantization", f'the kernels read q4bf16_1, found {chat.get("quantization")!r}')
        text = (chat.get("model_config") or {}).get("text_config")
        if not isinstance(text, dict):
            raise bad("model_config.text_config", "missing")
        if text.get("model_type", "gemma3_text") != "gemma3_text":
            raise bad("model_config.text_config.model_type", f'expected "gemma3_text", found {text.get("model_type")!r}')

        def req_int(name: str) -> int:
            v = text.get(name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise bad(f"model_config.text_config.{name}", f"expected a positive integer, found {v!r}")
            return v

        def req_num(name: str, default=None, optional=False) -> float | None:
            v = text.get(name, default)
            if v is None and optional:
                return None
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
                raise bad(f"model_config.text_config.{name}", f"expected a finite non-negative number, found {v!r}")
            return float(v)

        act = text.get("hidden_activation", text.get("hidden_act", "gelu_pytorch_tanh"))
        if act != "gelu_pytorch_tanh":
            raise bad("model_config.text_config.hidden_activation", f'expected "gelu_pytorch_tanh", found {act!r}')
        if text.get("attention_bias", False):
            raise bad("model_config.text_config.attention_bias", "the projections have no bias in Gemma 3")
        layers = req_int("num_hidden_layers")
        types = text.get("layer_types")
        if types is None:
            pattern = text.get("sliding_window_pattern", 6)
            if not isinstance(pattern, int) or pattern <= 0:
                raise bad("model_config.text_config.sliding_window_pattern", f"expected a positive integer, found {pattern!r}")
            sliding = tuple((i + 1) % pattern != 0 for i in range(layers))
        else:
            if not isinstance(types, list) or len(types) != layers:
                raise bad("model_config.text_config.layer_types", f"expected {layers} entries, found {types!r}")
            for i, t in enumerate(types):
                if t not in ("sliding_attention", "full_attention"):
                    raise bad(f"model_config.text_config.layer_types[{i}]", f"unknown layer type {t!r}")
            sliding = tuple(t == "sliding_attention" for t in types)
        scaling = text.get("rope_scaling")
        factor = None
        if scaling is not None:
            kind = scaling.get("rope_type", scaling.get("type")) if isinstance(scaling, dict) else None
            if kind == "linear":
                factor = scaling.get("factor")
                if not isinstance(factor, (int, float)) or factor <= 0:
                    raise bad("model_config.text_config.rope_scaling.factor", f"expected a positive number, found {factor!r}")
                factor = float(factor)
            elif kind != "default":
                raise bad("model_config.text_config.rope_scaling", f'only "linear" scaling is supported, found {scaling!r}')
        heads, kv_heads, head_dim = req_int("num_attention_heads"), req_int("num_key_value_heads"), req_int("head_dim")
        if heads % kv_heads:
            raise bad("model_config.text_config.num_key_value_heads", f"{kv_heads} does not divide num_attention_heads {heads}")
        if head_dim % 8 or head_dim > MAX_HEAD_DIM:
            raise bad(
                "model_config.text_config.head_dim",
                f"{head_dim} cannot be scheduled: the kernels take a multiple of 8 up to {MAX_HEAD_DIM}",
            )
        hidden, inter, vocab = req_int("hidden_size"), req_int("intermediate_size"), req_int("vocab_size")
        prefill = chat.get("prefill_chunk_size", 512)
        context = chat.get("context_window_size", text.get("context_window_size", 8192))
        cfg = ModelConfig(
            vocab_size=vocab,
            hidden_size=hidden,
            intermediate_size=inter,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            head_dim=head_dim,
            rms_norm_eps=req_num("rms_norm_eps"),
            rope_theta=req_num("rope_theta"),
            rope_local_base_freq=req_num("rope_local_base_freq", 10000.0),
            rope_scaling_factor=factor,
            query_pre_attn_scalar=req_num("query_pre_attn_scalar"),
            sliding_window=req_int("sliding_window"),
            sliding=sliding,
            final_logit_softcapping=req_num("final_logit_softcapping", optional=True),
            attn_logit_softcapping=req_num("attn_logit_softcapping", optional=True),
            group_size=0,
            prefill_chunk_size=int(prefill),
            context_window_size=int(context),
        )
        group = _group_size(cfg, records, cache_path)
        return dataclasses.replace(cfg, group_size=group)

    def expected_params(self) -> list[tuple[str, tuple[int, ...], str]]:
        """Every parameter the model declares, in MLC's record order: (name, shape, dtype)."""
        h, d, f, g = self.hidden_size, self.head_dim, self.intermediate_size, self.group_size
        out: list[tuple[str, tuple[int, ...], str]] = []

        def q(stem: str, n: int, k: int):
            out.append((stem + ".q_weight", (n, k // 8), "uint32"))
            out.append((stem + ".q_scale", (n, k // g), "bfloat16"))

        q(PREFIX + "embed_tokens", self.vocab_size, h)
        for i in range(self.num_hidden_layers):
            p = f"{PREFIX}layers.{i}."
            q(p + "self_attn.q_proj", self.num_attention_heads * d, h)
            q(p + "self_attn.k_proj", self.num_key_value_heads * d, h)
            q(p + "self_attn.v_proj", self.num_key_value_heads * d, h)
            q(p + "self_attn.o_proj", h, self.num_attention_heads * d)
            out.append((p + "self_attn.q_norm.weight", (d,), "bfloat16"))
            out.append((p + "self_attn.k_norm.weight", (d,), "bfloat16"))
            q(p + "mlp.gate_up_proj", 2 * f, h)
            q(p + "mlp.down_proj", h, f)
            for norm in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"):
                out.append((p + norm + ".weight", (h,), "bfloat16"))
        out.append((PREFIX + "norm.weight", (h,), "bfloat16"))
        return out

    def to_json(self) -> dict:
        """The config as recorded in the manifest (sorted keys when dumped)."""
        d = dataclasses.asdict(self)
        d["sliding"] = list(self.sliding)
        return d


def _read_json(path: str):
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        raise ConfigError(f"{path}: missing") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: {e}") from None


def tensor_records(package_dir: str) -> dict[str, dict]:
    """The records of `tensor-cache.json` by name, each with its shard's `dataPath` added."""
    path = os.path.join(package_dir, TENSOR_CACHE)
    cache = _read_json(path)
    out: dict[str, dict] = {}
    try:
        for shard in cache["records"]:
            for rec in shard["records"]:
                if rec["name"] in out:
                    raise ConfigError(f"{path}: record {rec['name']} appears twice")
                out[rec["name"]] = dict(rec, dataPath=shard["dataPath"])
    except (KeyError, TypeError) as e:
        raise ConfigError(f"{path}: not a tensor cache ({e!r})") from None
    return out


def _group_size(cfg: ModelConfig, records: dict[str, dict], path: str) -> int:
    """The quantization group, from the embedding's scale shape, checked against every record."""
    name = PREFIX + "embed_tokens.q_scale"
    rec = records.get(name)
    if rec is None:
        raise ConfigError(f"{path}: no record {name}")
    cols = rec["shape"][-1] if rec.get("shape") else 0
    if not cols or cfg.hidden_size % cols:
        raise ConfigError(f"{path}: {name} has shape {rec.get('shape')}, which gives no group size for hidden {cfg.hidden_size}")
    group = cfg.hidden_size // cols
    if group not in GROUP_SIZES:
        raise ConfigError(f"{path}: group size {group} (from {name}); the kernels take {' or '.join(map(str, GROUP_SIZES))}")
    full = dataclasses.replace(cfg, group_size=group)
    for pname, shape, dtype in full.expected_params():
        r = records.get(pname)
        if r is None:
            raise ConfigError(f"{path}: no record {pname}")
        if tuple(r["shape"]) != shape or r["dtype"] != dtype:
            raise ConfigError(f"{path}: {pname} is {r['dtype']}{list(r['shape'])}, the config implies {dtype}{list(shape)}")
    extra = sorted(set(records) - {p[0] for p in full.expected_params()})
    if extra:
        raise ConfigError(f"{path}: record {extra[0]} is not a Gemma 3 text parameter")
    return group
