//! Gemma 3 read from a GGUF (llama.cpp's layout): the config from the
//! `gemma3.*` keys and the tensors under their Hugging Face names,
//! dequantized to f32, norm weights shifted back from the GGUF's `1 + w` to
//! HF's `w` (see [`crate::formats::gguf::gemma3`]).
//!
//! Two values are not in the file and follow llama.cpp: the query scale is
//! `head_dim^-0.5` (`query_pre_attn_scalar = head_dim`, right for every size
//! but 27B), and no logit softcapping.

use super::{Gemma3Config, Gemma3Error, Gemma3Weights, LayerType};
use crate::formats::gguf::{gemma3 as g3, GgufError, GgufFile};
use std::collections::BTreeMap;

fn read_err(name: &str) -> impl Fn(GgufError) -> Gemma3Error + '_ {
    move |e| Gemma3Error::Read { name: name.to_string(), why: e.to_string() }
}

/// The GGUF's tensors under HF names.
pub struct GgufWeights<'a> {
    g: &'a GgufFile,
    /// HF name → (GGUF name, stored as `1 + w`).
    names: BTreeMap<String, (String, bool)>,
}

impl<'a> GgufWeights<'a> {
    /// Maps every tensor of `g`; a tensor the Gemma 3 mapping does not know is an error.
    pub fn new(g: &'a GgufFile) -> Result<Self, Gemma3Error> {
        let tensors = g.gemma3_hf_tensors().map_err(read_err(g.file()))?;
        let names = tensors.into_iter().map(|(hf, t)| (hf.name, (t.name().to_string(), hf.norm_plus_one))).collect();
        Ok(GgufWeights { g, names })
    }

    /// The HF names of every tensor, sorted.
    pub fn hf_names(&self) -> impl Iterator<Item = &str> {
        self.names.keys().map(String::as_str)
    }
}

impl Gemma3Weights for GgufWeights<'_> {
    fn tensor(&self, hf_name: &str) -> Result<(Vec<usize>, Vec<f32>), Gemma3Error> {
        let (name, plus_one) = self.names.get(hf_name).ok_or_else(|| Gemma3Error::MissingTensor { name: hf_name.into() })?;
        let shape = self.g.tensor(name).map_err(read_err(hf_name))?.hf_shape();
        let mut v = self.g.dequantize(name).map_err(read_err(hf_name))?;
        if *plus_one {
            v.iter_mut().for_each(|x| *x -= 1.0);
        }
        Ok((shape, v))
    }
}

/// The forward's config from the GGUF's `gemma3.*` keys and its embedding shape.
pub fn config_from_gguf(g: &GgufFile) -> Result<Gemma3Config, Gemma3Error> {
    let c = g3::Gemma3Config::from_gguf(g).map_err(|e| Gemma3Error::Config { field: "gemma3.*".into(), why: e.to_string() })?;
    let vocab = g.tensor("token_embd.weight").map_err(read_err("token_embd.weight"))?.hf_shape()[0];
    let n = c.block_count as usize;
    let pattern = c.sliding_window_pattern as usize;
    if pattern == 0 {
        return Err(Gemma3Error::Config { field: "gemma3.attention.sliding_window_pattern".into(), why: "is 0".into() });
    }
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
        layer_types: (0..n).map(|i| if (i + 1) % pattern == 0 { LayerType::FullAttention } else { LayerType::SlidingAttention }).collect(),
        query_pre_attn_scalar: c.key_length as f64,
        max_position_embeddings: c.context_length as usize,
        rope_scaling_factor: c.rope_scaling.map(|(_, f)| f64::from(f)),
        final_logit_softcapping: None,
        attn_logit_softcapping: None,
    };
    cfg.validate()?;
    Ok(cfg)
}
