//! Gemma 3 in GGUF: tensor names back to Hugging Face's, the `gemma3.*` config
//! keys, and the embedded tokenizer arrays.
//!
//! # Conventions (checked against llama.cpp, `ggml-org/llama.cpp`)
//!
//! - **Names**: gguf-py's `constants.py` (`TENSOR_NAMES`) and
//!   `tensor_mapping.py` give `ATTN_NORM blk.N.attn_norm ← input_layernorm`,
//!   `ATTN_POST_NORM blk.N.post_attention_norm ← post_attention_layernorm`,
//!   `FFN_PRE_NORM blk.N.ffn_norm ← pre_feedforward_layernorm` (Gemma 2/3
//!   reuse the `ffn_norm` name for the *pre*-FFN norm),
//!   `FFN_POST_NORM blk.N.post_ffw_norm ← post_feedforward_layernorm`,
//!   `ATTN_Q_NORM/ATTN_K_NORM ← self_attn.q_norm/k_norm`, and the usual
//!   `attn_q/k/v/output`, `ffn_gate/up/down`, `token_embd`, `output_norm`.
//! - **Norm weights are stored as `w + 1`**: the converter's
//!   `Gemma3Model.modify_tensors` adds `norm_shift = 1.0` to every HF tensor
//!   whose name ends in `norm.weight` ("ref code in Gemma3RMSNorm: output *
//!   (1.0 + self.weight.float())"), after widening bf16 to f32. So GGUF holds
//!   the *effective* RMSNorm scale, which is what MLC's Gemma 3 loader also
//!   stores; the HF value is `gguf - 1` ([`HfTensorName::norm_plus_one`]).
//!   Gemma 3n (`norm_shift = 0.0`) differs and is not covered here.
//! - **No Q/K permutation**: unlike Llama, `Gemma3Model.modify_tensors` does
//!   not permute `q_proj`/`k_proj` (llama.cpp runs Gemma with NeoX-style RoPE),
//!   so GGUF rows are HF rows.
//! - **Shapes**: GGUF lists `ne[0]` (the fastest-varying, contiguous
//!   dimension) first; HF/PyTorch lists it last. An HF `[out, in]` weight has
//!   `ne = [in, out]`, and the bytes are the same row-major array. See
//!   [`super::TensorInfo::hf_shape`].
//! - **Embedding rows**: the converter truncates `embed_tokens` to the
//!   tokenizer's length (`data_torch[:len(tokens)]`); for Gemma 3 both are
//!   262,144.
//! - **Not in the file**: llama.cpp's loader (`llama-model.cpp`, `case
//!   LLM_ARCH_GEMMA3`) hard-codes the sliding-window pattern (every 6th layer
//!   global: `set_swa_pattern(6)`) and the local RoPE base
//!   (`rope_freq_base_train_swa = 10000.0f`); `gemma3.rope.freq_base` is the
//!   global layers' base. [`Gemma3Config`] returns the same defaults when the
//!   optional keys are absent.

use super::error::{GgufError, Result};
use super::{GgufFile, TensorInfo};

/// The `general.architecture` of a Gemma 3 GGUF.
pub const ARCH: &str = "gemma3";
/// llama.cpp's hard-coded local (sliding-window) RoPE base for Gemma 3.
pub const DEFAULT_ROPE_FREQ_BASE_SWA: f32 = 10_000.0;
/// llama.cpp's hard-coded sliding-window pattern for Gemma 3: every 6th layer is global.
pub const DEFAULT_SLIDING_WINDOW_PATTERN: u64 = 6;

/// The Hugging Face name of a GGUF tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HfTensorName {
    /// The `gemma3_text` name, e.g. `model.layers.3.self_attn.q_proj.weight`.
    pub name: String,
    /// The GGUF value is the HF value plus one (RMSNorm weights; see the module docs).
    pub norm_plus_one: bool,
}

/// Per-layer suffixes: GGUF `blk.N.<gguf>` ↔ HF `model.layers.N.<hf>`.
const LAYER_NAMES: [(&str, &str); 13] = [
    ("attn_q.weight", "self_attn.q_proj.weight"),
    ("attn_k.weight", "self_attn.k_proj.weight"),
    ("attn_v.weight", "self_attn.v_proj.weight"),
    ("attn_output.weight", "self_attn.o_proj.weight"),
    ("attn_q_norm.weight", "self_attn.q_norm.weight"),
    ("attn_k_norm.weight", "self_attn.k_norm.weight"),
    ("attn_norm.weight", "input_layernorm.weight"),
    ("post_attention_norm.weight", "post_attention_layernorm.weight"),
    ("ffn_norm.weight", "pre_feedforward_layernorm.weight"),
    ("post_ffw_norm.weight", "post_feedforward_layernorm.weight"),
    ("ffn_gate.weight", "mlp.gate_proj.weight"),
    ("ffn_up.weight", "mlp.up_proj.weight"),
    ("ffn_down.weight", "mlp.down_proj.weight"),
];

/// Model-level names. `output.weight` (an untied LM head) does not occur in
/// Gemma 3, whose embeddings are tied, but maps like every `lm_head`.
const MODEL_NAMES: [(&str, &str); 3] =
    [("token_embd.weight", "model.embed_tokens.weight"), ("output_norm.weight", "model.norm.weight"), ("output.weight", "lm_head.weight")];

/// The Hugging Face (`gemma3_text`) name of a Gemma 3 GGUF tensor, or `None`
/// for a name llama.cpp's converter does not produce. Layer numbers must be
/// canonical decimals (`blk.7`, not `blk.07`) so the mapping is one-to-one.
pub fn hf_name(gguf_name: &str) -> Option<HfTensorName> {
    let hf = if let Some(&(_, hf)) = MODEL_NAMES.iter().find(|(g, _)| *g == gguf_name) {
        hf.to_string()
    } else {
        let rest = gguf_name.strip_prefix("blk.")?;
        let (layer, suffix) = rest.split_once('.')?;
        let canonical = !layer.is_empty() && layer.bytes().all(|b| b.is_ascii_digit()) && (layer == "0" || !layer.starts_with('0'));
        if !canonical || layer.len() > 9 {
            return None;
        }
        let &(_, hf) = LAYER_NAMES.iter().find(|(g, _)| *g == suffix)?;
        format!("model.layers.{layer}.{hf}")
    };
    // The converter's own test: `name.endswith("norm.weight")` on the HF name.
    let norm_plus_one = hf.ends_with("norm.weight");
    Some(HfTensorName { name: hf, norm_plus_one })
}

/// Gemma 3's hyper-parameters as stored under `gemma3.*`, with HF's names in the docs.
#[derive(Debug, Clone, PartialEq)]
pub struct Gemma3Config {
    /// `context_length` (HF `max_position_embeddings`).
    pub context_length: u64,
    /// `embedding_length` (HF `hidden_size`).
    pub embedding_length: u64,
    /// `block_count` (HF `num_hidden_layers`).
    pub block_count: u64,
    /// `feed_forward_length` (HF `intermediate_size`).
    pub feed_forward_length: u64,
    /// `attention.head_count` (HF `num_attention_heads`).
    pub head_count: u64,
    /// `attention.head_count_kv` (HF `num_key_value_heads`).
    pub head_count_kv: u64,
    /// `attention.key_length` (HF `head_dim`).
    pub key_length: u64,
    /// `attention.value_length` (HF `head_dim`).
    pub value_length: u64,
    /// `attention.layer_norm_rms_epsilon` (HF `rms_norm_eps`).
    pub rms_norm_eps: f32,
    /// `rope.freq_base`: the global layers' base (HF `rope_theta`).
    pub rope_freq_base: f32,
    /// `rope.freq_base_swa` if present, else llama.cpp's 10,000 (HF `rope_local_base_freq`).
    pub rope_freq_base_swa: f32,
    /// `attention.sliding_window` (HF `sliding_window`).
    pub sliding_window: u64,
    /// `attention.sliding_window_pattern` if present as an integer, else llama.cpp's 6.
    pub sliding_window_pattern: u64,
    /// `rope.scaling.type` and `rope.scaling.factor` when present (global layers only).
    pub rope_scaling: Option<(String, f32)>,
}

impl Gemma3Config {
    /// Reads the config, refusing a file whose architecture is not `gemma3`.
    pub fn from_gguf(g: &GgufFile) -> Result<Gemma3Config> {
        let arch = g.get_str("general.architecture")?;
        if arch != ARCH {
            return Err(GgufError::WrongArchitecture { file: g.file().to_string(), expected: ARCH, found: arch.to_string() });
        }
        let key = |k: &str| format!("{ARCH}.{k}");
        let u = |k: &str| g.get_u64(&key(k));
        let f = |k: &str| g.get_f32(&key(k));
        let rope_scaling = match g.opt_str(&key("rope.scaling.type"))? {
            Some(t) => Some((t.to_string(), f("rope.scaling.factor")?)),
            None => None,
        };
        Ok(Gemma3Config {
            context_length: u("context_length")?,
            embedding_length: u("embedding_length")?,
            block_count: u("block_count")?,
            feed_forward_length: u("feed_forward_length")?,
            head_count: u("attention.head_count")?,
            head_count_kv: u("attention.head_count_kv")?,
            key_length: u("attention.key_length")?,
            value_length: u("attention.value_length")?,
            rms_norm_eps: f("attention.layer_norm_rms_epsilon")?,
            rope_freq_base: f("rope.freq_base")?,
            rope_freq_base_swa: g.opt_f32(&key("rope.freq_base_swa"))?.unwrap_or(DEFAULT_ROPE_FREQ_BASE_SWA),
            sliding_window: u("attention.sliding_window")?,
            sliding_window_pattern: g.opt_u64(&key("attention.sliding_window_pattern"))?.unwrap_or(DEFAULT_SLIDING_WINDOW_PATTERN),
            rope_scaling,
        })
    }
}

impl GgufFile {
    /// Every tensor with its Hugging Face name, in file order; a tensor the
    /// Gemma 3 mapping does not know is an error, not silently dropped.
    pub fn gemma3_hf_tensors(&self) -> Result<Vec<(HfTensorName, &TensorInfo)>> {
        self.tensors()
            .iter()
            .map(|t| {
                hf_name(t.name()).map(|hf| (hf, t)).ok_or_else(|| GgufError::UnmappedTensor {
                    file: self.file().to_string(),
                    tensor: t.name().to_string(),
                    arch: ARCH,
                })
            })
            .collect()
    }
}
