//! Gemma 3 (text): the deterministic reference forward, with a KV cache.
//!
//! # Conventions, and where they come from
//!
//! HF `transformers` `models/gemma3/modeling_gemma3.py` is the reference; the
//! f32 oracle test compares with candle-transformers' `gemma3.rs`.
//!
//! - **Embedding**: `x = E[id] * normalizer`, with HF's
//!   `normalizer = torch.tensor(hidden_size**0.5, dtype)`: the square root in
//!   f64, rounded once to f32, one f32 multiply.
//! - **RMSNorm** (`Gemma3RMSNorm`): `y = x * rsqrt(mean(x²) + eps) * (1 + w)`
//!   in f32; HF stores `w` (the GGUF and MLC store `1 + w`). Here the sum of
//!   squares runs left to right, `r = 1 / sqrt(ms + eps)` with IEEE `sqrt`,
//!   then `(x * r) * (1 + w)`, with `1 + w` rounded to f32 once as HF does.
//! - **Layer**: `h = x + post_attention_norm(attn(input_layernorm(x)))`,
//!   `out = h + post_feedforward_norm(mlp(pre_feedforward_layernorm(h)))`.
//! - **Attention**: `q, k, v` projections (no bias); RMSNorm `(1 + w)` over
//!   each head of `q` (`q_norm`) and `k` (`k_norm`), then RoPE, both before
//!   caching; grouped-query heads (query head `h` reads KV head
//!   `h / (heads / kv_heads)`); scores `(q·k) * query_pre_attn_scalar^-0.5`
//!   (HF's `self.scaling`, applied after the dot product as in
//!   `eager_attention_forward`); optional softcapping; softmax in f32.
//! - **Masks**: global layers see keys `j <= i`; sliding layers see keys
//!   with `i - j < sliding_window` (HF's `sliding_window_overlay`, llama.cpp's
//!   `LLAMA_SWA_TYPE_STANDARD`): the query itself and `sliding_window - 1`
//!   earlier positions.
//! - **RoPE**: rotate-half (NeoX) convention, local base
//!   `rope_local_base_freq` on sliding layers, `rope_theta` (and linear
//!   `rope_scaling`) on global ones; see [`attention`] for the f32 details.
//! - **MLP**: `down(gelu_tanh(gate(x)) * up(x))` (`gelu_pytorch_tanh`).
//! - **Head**: final RMSNorm, then logits against the tied embedding table;
//!   optional final softcapping. An `lm_head.weight` in the source is ignored.
//!
//! # Determinism
//!
//! Every output element has one fixed sequence of IEEE f32 operations (no
//! FMA, `libm` transcendentals): projections use [`crate::kernels::linear`],
//! whose per-row result does not depend on how many rows are processed
//! together; attention sums over keys in position order and its key set
//! depends only on the query position. So the bits are the same for any
//! thread count and any split of a prompt into [`Gemma3::forward`] calls.
//! Parallel work spans independent outputs only: row blocks and column
//! chunks of the projections, (position, head) pairs of attention.

mod attention;
pub mod calibrate;
mod config;
pub mod gguf;
mod layer;
mod linear;
pub mod names;

#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod tests_candle;
#[cfg(test)]
mod tests_real;

use std::collections::BTreeMap;

use rayon::prelude::*;

pub use attention::Cache;
pub use config::{Gemma3Config, LayerType};

use layer::{Layer, Ropes};
use linear::{rms_norm_rows, Linear};
use names::{Field, Name};

/// Failures configuring, loading or running Gemma 3.
#[derive(Debug, thiserror::Error)]
pub enum Gemma3Error {
    /// A config field is missing or has a value this forward does not support.
    #[error("Gemma 3 config: field {field}: {why}")]
    Config {
        /// The field (dotted for nested ones).
        field: String,
        /// What is wrong with it.
        why: String,
    },
    /// The weight source has no tensor of that name.
    #[error("missing tensor {name}")]
    MissingTensor {
        /// HF name.
        name: String,
    },
    /// The weight source could not produce the tensor.
    #[error("tensor {name}: {why}")]
    Read {
        /// HF name.
        name: String,
        /// What went wrong.
        why: String,
    },
    /// A GGUF tensor that is not in the Gemma 3 names table.
    #[error("{file}: tensor '{tensor}' has no Hugging Face name for gemma3")]
    UnmappedGgufTensor {
        /// The GGUF file.
        file: String,
        /// The GGUF tensor name.
        tensor: String,
    },
    /// A tensor's shape disagrees with the config.
    #[error("tensor {name} has shape {found:?}, expected {expected:?}")]
    Shape {
        /// HF name.
        name: String,
        /// Shape the config implies (HF order).
        expected: Vec<usize>,
        /// Shape found.
        found: Vec<usize>,
    },
    /// A token id is outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab}")]
    TokenOutOfRange {
        /// The id.
        id: u32,
        /// Vocabulary size.
        vocab: usize,
    },
    /// The cache was made by a model with a different layout.
    #[error("the KV cache has {found} layers, the model {expected}")]
    ForeignCache {
        /// Layers of the model.
        expected: usize,
        /// Layers in the cache.
        found: usize,
    },
}

/// A source of Gemma 3 tensors under Hugging Face names
/// (`model.layers.N.self_attn.q_proj.weight`, ...), in HF (PyTorch) shape
/// order and row-major f32, with norm weights in HF's convention (the model
/// multiplies by `1 + w`).
pub trait Gemma3Weights {
    /// The tensor's shape and values, or [`Gemma3Error::MissingTensor`].
    fn tensor(&self, hf_name: &str) -> Result<(Vec<usize>, Vec<f32>), Gemma3Error>;
}

impl Gemma3Weights for BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    fn tensor(&self, hf_name: &str) -> Result<(Vec<usize>, Vec<f32>), Gemma3Error> {
        self.get(hf_name).cloned().ok_or_else(|| Gemma3Error::MissingTensor { name: hf_name.into() })
    }
}

/// A tensor as the forward uses it, its shape checked against `cfg`: a norm
/// as its effective scale `1 + w` ([`names::norm_scale`]).
fn load(src: &dyn Gemma3Weights, cfg: &Gemma3Config, tensor: Name) -> Result<Vec<f32>, Gemma3Error> {
    let (name, shape) = (tensor.hf(), tensor.shape(cfg));
    let (found, v) = src.tensor(&name)?;
    if found != shape {
        return Err(Gemma3Error::Shape { name, expected: shape, found });
    }
    if v.len() != shape.iter().product::<usize>() {
        return Err(Gemma3Error::Read { why: format!("{} values for shape {shape:?}", v.len()), name });
    }
    Ok(if tensor.kind().stored_plus_one() { v.into_iter().map(names::norm_scale).collect() } else { v })
}

/// A loaded Gemma 3 text model.
#[derive(Clone, Debug)]
pub struct Gemma3 {
    /// The configuration it was built from.
    pub cfg: Gemma3Config,
    /// `[vocab, hidden]`, row-major.
    embed: Vec<f32>,
    /// The tied head: the embedding table packed for [`crate::kernels::linear`].
    lm_head: Linear,
    layers: Vec<Layer>,
    final_norm: Vec<f32>,
    ropes: Ropes,
    normalizer: f32,
}

/// Positions per block when computing logits: bounds the logits buffer to
/// `LOGIT_ROWS * vocab` floats.
const LOGIT_ROWS: usize = 8;

impl Gemma3 {
    /// Builds the model, checking every tensor's shape against `cfg`.
    pub fn load(cfg: &Gemma3Config, src: &dyn Gemma3Weights) -> Result<Self, Gemma3Error> {
        cfg.validate()?;
        let h = cfg.hidden_size;
        let embed = load(src, cfg, Field::EmbedTokens.model())?;
        let layers = (0..cfg.num_hidden_layers).map(|i| Layer::load(src, cfg, i)).collect::<Result<Vec<_>, _>>()?;
        let final_norm = load(src, cfg, Field::Norm.model())?;
        Ok(Gemma3 {
            cfg: cfg.clone(),
            lm_head: Linear::new(&embed, cfg.vocab_size, h),
            embed,
            layers,
            final_norm,
            ropes: Ropes::new(cfg),
            normalizer: (h as f64).sqrt() as f32,
        })
    }

    /// An empty KV cache for this model.
    pub fn new_cache(&self) -> Cache {
        Cache::new(&self.cfg)
    }

    /// Runs `tokens` at positions `cache.len()..`, appending them to `cache`,
    /// and calls `out(position, logits)` for each in order with its
    /// full-vocabulary logits. All tokens go through each layer together
    /// (batched projections); the bits do not depend on the chunking.
    pub fn forward(&self, tokens: &[u32], cache: &mut Cache, out: &mut dyn FnMut(usize, &[f32])) -> Result<(), Gemma3Error> {
        let x = self.hidden(tokens, cache)?;
        self.logits(&x, cache.len - tokens.len(), out);
        Ok(())
    }

    /// Final hidden states (before the final norm) of `tokens`, appended to `cache`.
    fn hidden(&self, tokens: &[u32], cache: &mut Cache) -> Result<Vec<f32>, Gemma3Error> {
        let cfg = &self.cfg;
        if cache.layers.len() != self.layers.len() {
            return Err(Gemma3Error::ForeignCache { expected: self.layers.len(), found: cache.layers.len() });
        }
        if let Some(&id) = tokens.iter().find(|&&id| id as usize >= cfg.vocab_size) {
            return Err(Gemma3Error::TokenOutOfRange { id, vocab: cfg.vocab_size });
        }
        let h = cfg.hidden_size;
        let mut x = Vec::with_capacity(tokens.len() * h);
        for &id in tokens {
            x.extend(self.embed[id as usize * h..(id as usize + 1) * h].iter().map(|&e| e * self.normalizer));
        }
        let start = cache.len;
        for (layer, lc) in self.layers.iter().zip(cache.layers.iter_mut()) {
            layer.forward(cfg, &self.ropes, lc, &mut x, start);
        }
        cache.len += tokens.len();
        Ok(x)
    }

    /// Final norm, tied head and softcapping, [`LOGIT_ROWS`] positions at a time.
    fn logits(&self, x: &[f32], start: usize, out: &mut dyn FnMut(usize, &[f32])) {
        let (h, vocab) = (self.cfg.hidden_size, self.cfg.vocab_size);
        let eps = self.cfg.rms_norm_eps as f32;
        let softcap = self.cfg.final_logit_softcapping.map(|c| c as f32);
        let mut logits = vec![0.0f32; LOGIT_ROWS.min(x.len() / h) * vocab];
        for (b, block) in x.chunks(LOGIT_ROWS * h).enumerate() {
            let rows = block.len() / h;
            let mut t = block.to_vec();
            rms_norm_rows(&mut t, &self.final_norm, eps);
            let buf = &mut logits[..rows * vocab];
            self.lm_head.apply(&t, rows, buf);
            if let Some(cap) = softcap {
                buf.par_chunks_mut(4096).for_each(|c| c.iter_mut().for_each(|v| *v = libm::tanhf(*v / cap) * cap));
            }
            for (r, row) in buf.chunks_exact(vocab).enumerate() {
                out(start + b * LOGIT_ROWS + r, row);
            }
        }
    }

    /// Greedy decoding: feeds `prompt`, then the arg-max token (lowest id on
    /// ties) until `max_new` tokens or one of `eos` (included in the result).
    /// Returns the new tokens only.
    pub fn greedy(&self, prompt: &[u32], max_new: usize, eos: &[u32]) -> Result<Vec<u32>, Gemma3Error> {
        let mut cache = self.new_cache();
        let mut new = Vec::new();
        if max_new == 0 || prompt.is_empty() {
            return Ok(new);
        }
        let mut next = 0u32;
        let last = prompt.len() - 1;
        self.forward_last(prompt, &mut cache, &mut |p, l| {
            if p == last {
                next = argmax(l);
            }
        })?;
        loop {
            new.push(next);
            if new.len() == max_new || eos.contains(&next) {
                return Ok(new);
            }
            let tok = next;
            self.forward(&[tok], &mut cache, &mut |_, l| next = argmax(l))?;
        }
    }

    /// Like [`Self::forward`] but computes logits of the last position only.
    pub fn forward_last(&self, tokens: &[u32], cache: &mut Cache, out: &mut dyn FnMut(usize, &[f32])) -> Result<(), Gemma3Error> {
        let x = self.hidden(tokens, cache)?;
        let h = self.cfg.hidden_size;
        if let Some(last) = x.len().checked_sub(h) {
            self.logits(&x[last..], cache.len - 1, out);
        }
        Ok(())
    }

    /// `log p(tokens[i + 1] | tokens[..=i])` for every `i`, the prompt fed
    /// `chunk` tokens per [`Self::forward`] call (the values do not depend on
    /// `chunk`). The perplexity is `exp(-mean)`.
    pub fn log_probs(&self, tokens: &[u32], chunk: usize) -> Result<Vec<f64>, Gemma3Error> {
        let mut cache = self.new_cache();
        let mut lp = Vec::with_capacity(tokens.len().saturating_sub(1));
        for c in tokens.chunks(chunk.max(1)) {
            self.forward(c, &mut cache, &mut |p, l| {
                if let Some(&next) = tokens.get(p + 1) {
                    lp.push(log_softmax_at(l, next as usize));
                }
            })?;
        }
        Ok(lp)
    }
}

/// Index of the largest value (the first on ties; NaN never wins).
pub fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] || v[best].is_nan() && !x.is_nan() {
            best = i;
        }
    }
    best as u32
}

/// `log softmax(logits)[id]` in f64: `l[id] - max - ln Σ exp(l - max)`, the
/// sum taken left to right with `libm::exp`.
pub fn log_softmax_at(logits: &[f32], id: usize) -> f64 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m }) as f64;
    let mut sum = 0.0f64;
    for &x in logits {
        sum += libm::exp(f64::from(x) - max);
    }
    f64::from(logits[id]) - max - libm::log(sum)
}

/// `exp(-mean(log_probs))`.
pub fn perplexity(log_probs: &[f64]) -> f64 {
    let mut sum = 0.0f64;
    for &l in log_probs {
        sum += l;
    }
    libm::exp(-sum / log_probs.len() as f64)
}
