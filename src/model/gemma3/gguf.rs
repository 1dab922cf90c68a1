//! Gemma 3 read from a GGUF (llama.cpp's layout): the config from the
//! `gemma3.*` keys and the tensors under their Hugging Face names,
//! dequantized to f32, norm weights shifted back from the GGUF's `1 + w` to
//! HF's `w`.
//!
//! # Conventions (checked against llama.cpp, `ggml-org/llama.cpp`)
//!
//! - **Names**: the GGUF column of [`super::names::TENSORS`] (gguf-py's
//!   `constants.py` and `tensor_mapping.py`). A tensor the table does not
//!   name is an error, not silently dropped.
//! - **Norm weights are stored as `w + 1`**: the converter's
//!   `Gemma3Model.modify_tensors` adds `norm_shift = 1.0` to every HF tensor
//!   whose name ends in `norm.weight`, after widening bf16 to f32 (see
//!   [`super::names`]). Gemma 3n (`norm_shift = 0.0`) differs and is not
//!   covered here.
//! - **No Q/K permutation**: unlike Llama, `Gemma3Model.modify_tensors` does
//!   not permute `q_proj`/`k_proj` (llama.cpp runs Gemma with NeoX-style RoPE),
//!   so GGUF rows are HF rows.
//! - **Shapes**: GGUF lists `ne[0]` first, HF last; the bytes are the same
//!   row-major array ([`TensorInfo::hf_shape`]).
//! - **Embedding rows**: the converter truncates `embed_tokens` to the
//!   tokenizer's length; for Gemma 3 both are 262,144.
//! - **Not in the file**: llama.cpp's loader (`llama-model.cpp`, `case
//!   LLM_ARCH_GEMMA3`) hard-codes the sliding-window pattern (every 6th layer
//!   global: `set_swa_pattern(6)`) and the local RoPE base
//!   (`rope_freq_base_train_swa = 10000.0f`); `gemma3.rope.freq_base` is the
//!   global layers' base. [`GgufKeys`] returns the same defaults when the
//!   optional keys are absent. The query scale is `head_dim^-0.5`
//!   (`query_pre_attn_scalar = head_dim`, right for every size but 27B), and
//!   there is no logit softcapping.

use super::config::layers_from_pattern;
use super::names::{self, Name};
use super::{Gemma3Config, Gemma3Error, Gemma3Weights};
use crate::formats::gguf::{GgufError, GgufFile, TensorInfo};
use std::collections::BTreeMap;

/// The `general.architecture` of a Gemma 3 GGUF.
pub const ARCH: &str = "gemma3";
/// llama.cpp's hard-coded local (sliding-window) RoPE base for Gemma 3.
pub const DEFAULT_ROPE_FREQ_BASE_SWA: f32 = 10_000.0;
/// llama.cpp's hard-coded sliding-window pattern for Gemma 3: every 6th layer is global.
pub const DEFAULT_SLIDING_WINDOW_PATTERN: u64 = 6;

fn read_err(name: &str) -> impl Fn(GgufError) -> Gemma3Error + '_ {
    move |e| Gemma3Error::Read { name: name.to_string(), why: e.to_string() }
}

/// Every tensor of `g` with its place in the names table, in file order; a
/// tensor the table does not know is [`Gemma3Error::UnmappedGgufTensor`].
pub fn hf_tensors(g: &GgufFile) -> Result<Vec<(Name, &TensorInfo)>, Gemma3Error> {
    g.tensors()
        .iter()
        .map(|t| {
            Name::from_gguf(t.name())
                .map(|n| (n, t))
                .ok_or_else(|| Gemma3Error::UnmappedGgufTensor { file: g.file().to_string(), tensor: t.name().to_string() })
        })
        .collect()
}

/// The GGUF's tensors under HF names.
pub struct GgufWeights<'a> {
    g: &'a GgufFile,
    /// HF name → (GGUF name, table row).
    names: BTreeMap<String, (String, Name)>,
}

impl<'a> GgufWeights<'a> {
    /// Maps every tensor of `g`; a tensor the Gemma 3 table does not know is an error.
    pub fn new(g: &'a GgufFile) -> Result<Self, Gemma3Error> {
        let names = hf_tensors(g)?.into_iter().map(|(n, t)| (n.hf(), (t.name().to_string(), n))).collect();
        Ok(GgufWeights { g, names })
    }

    /// The HF names of every tensor, sorted.
    pub fn hf_names(&self) -> impl Iterator<Item = &str> {
        self.names.keys().map(String::as_str)
    }
}

impl Gemma3Weights for GgufWeights<'_> {
    fn tensor(&self, hf_name: &str) -> Result<(Vec<usize>, Vec<f32>), Gemma3Error> {
        let (name, n) = self.names.get(hf_name).ok_or_else(|| Gemma3Error::MissingTensor { name: hf_name.into() })?;
        let shape = self.g.tensor(name).map_err(read_err(hf_name))?.hf_shape();
        let mut v = self.g.dequantize(name).map_err(read_err(hf_name))?;
        if n.kind().stored_plus_one() {
            v.iter_mut().for_each(|x| *x = names::norm_weight(*x));
        }
        Ok((shape, v))
    }
}

/// Gemma 3's hyper-parameters as stored under `gemma3.*`, with HF's names in the docs.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufKeys {
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

impl GgufKeys {
    /// Reads the keys, refusing a file whose architecture is not `gemma3`.
    pub fn from_gguf(g: &GgufFile) -> Result<GgufKeys, GgufError> {
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
        Ok(GgufKeys {
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

/// The forward's config from the GGUF's `gemma3.*` keys and its embedding shape.
pub fn config_from_gguf(g: &GgufFile) -> Result<Gemma3Config, Gemma3Error> {
    let c = GgufKeys::from_gguf(g).map_err(|e| Gemma3Error::Config { field: "gemma3.*".into(), why: e.to_string() })?;
    let embed = names::Field::EmbedTokens.spec().gguf;
    let vocab = g.tensor(embed).map_err(read_err(embed))?.hf_shape()[0];
    let usize_of =
        |field: &str, n: u64| usize::try_from(n).map_err(|_| Gemma3Error::Config { field: field.into(), why: format!("{n} does not fit this machine") });
    let n = usize_of("gemma3.block_count", c.block_count)?;
    let pattern = usize_of("gemma3.attention.sliding_window_pattern", c.sliding_window_pattern)?;
    let layer_types = layers_from_pattern(n, pattern, ["gemma3.block_count", "gemma3.attention.sliding_window_pattern"])?;
    let cfg = Gemma3Config {
        vocab_size: vocab,
        hidden_size: c.embedding_length as usize,
        intermediate_size: c.feed_forward_length as usize,
        num_hidden_layers: n,
        num_attention_heads: c.head_count as usize,
        num_key_value_heads: c.head_count_kv as usize,
        head_dim: c.key_length as usize,
        rms_norm_eps: f64::from(c.rms_norm_eps),
        rope_theta: f64::from(c.rope_freq_base),
        rope_local_base_freq: f64::from(c.rope_freq_base_swa),
        sliding_window: c.sliding_window as usize,
        sliding_window_pattern: pattern,
        layer_types,
        query_pre_attn_scalar: c.key_length as f64,
        max_position_embeddings: c.context_length as usize,
        rope_scaling_factor: c.rope_scaling.map(|(_, f)| f64::from(f)),
        final_logit_softcapping: None,
        attn_logit_softcapping: None,
    };
    cfg.validate().map_err(|e| match e {
        Gemma3Error::Config { field, why } => Gemma3Error::Config { field: gguf_field(&field), why },
        other => other,
    })?;
    Ok(cfg)
}

/// The GGUF key a Hugging Face config field was read from, for errors.
fn gguf_field(hf: &str) -> String {
    const KEYS: [(&str, &str); 10] = [
        ("max_position_embeddings", "context_length"),
        ("hidden_size", "embedding_length"),
        ("num_hidden_layers", "block_count"),
        ("intermediate_size", "feed_forward_length"),
        ("num_attention_heads", "attention.head_count"),
        ("num_key_value_heads", "attention.head_count_kv"),
        ("head_dim", "attention.key_length"),
        ("sliding_window", "attention.sliding_window"),
        ("sliding_window_pattern", "attention.sliding_window_pattern"),
        ("rms_norm_eps", "attention.layer_norm_rms_epsilon"),
    ];
    match (hf, KEYS.iter().find(|(h, _)| *h == hf)) {
        ("vocab_size", _) => "token_embd.weight (its rows, HF vocab_size)".into(),
        (_, Some((_, k))) => format!("{ARCH}.{k} (HF {hf})"),
        (_, None) => hf.into(),
    }
}

#[cfg(test)]
mod tests;
