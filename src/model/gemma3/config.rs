//! Gemma 3's hyper-parameters under Hugging Face's names, read from a
//! `config.json` whose `model_type` is `gemma3_text`, or from the
//! `text_config` of a multimodal `gemma3` config.
//!
//! Reading is strict: an unknown `model_type`, activation, layer type or RoPE
//! scaling type, a missing dimension, and bidirectional attention
//! (EmbeddingGemma) are errors naming the field. Only the fields whose
//! defaults Gemma 3 never varies get defaults:
//!
//! | field                                  | default                               | source                                   |
//! |----------------------------------------|---------------------------------------|------------------------------------------|
//! | `rope_local_base_freq`                 | 10,000                                | `Gemma3TextConfig`, llama.cpp            |
//! | `sliding_window_pattern` (`_sliding…`) | 6                                     | `Gemma3TextConfig`, llama.cpp            |
//! | `layer_types`                          | from the pattern: `(i + 1) % 6 == 0` is global | `Gemma3TextConfig.__init__`     |
//! | `hidden_activation`                    | `gelu_pytorch_tanh`                   | `Gemma3TextConfig`                       |
//! | `rope_scaling`                         | none                                  |                                          |
//! | `*_logit_softcapping`                  | none                                  | Gemma 3 dropped Gemma 2's softcapping    |
//!
//! Note that the sparse `text_config` of HF's multimodal checkpoints (4B and
//! up) leaves most dimensions to `Gemma3TextConfig`'s defaults; those are
//! refused here rather than guessed: fill them in from the model card.

use serde_json::Value;

use super::Gemma3Error;

/// Upper bounds on the dimensions, checked before anything is allocated
/// from them: far above every Gemma 3 (27B: 62 layers, width 5376, MLP
/// 21504, 32 heads of 128, 262,144 tokens, 131,072 positions), low enough
/// that a hostile config cannot ask for terabytes.
pub const MAX_LAYERS: usize = 1024;
/// See [`MAX_LAYERS`]: `hidden_size`, `intermediate_size`.
pub const MAX_WIDTH: usize = 1 << 18;
/// See [`MAX_LAYERS`]: `num_attention_heads`, `num_key_value_heads`, `head_dim`.
pub const MAX_HEADS: usize = 1 << 12;
/// See [`MAX_LAYERS`]: `vocab_size`.
pub const MAX_VOCAB: usize = crate::formats::tokenizer::MAX_VOCAB;
/// See [`MAX_LAYERS`]: `max_position_embeddings`, `sliding_window`.
pub const MAX_POSITIONS: usize = 1 << 24;

/// Whether a layer attends to a sliding window or to the whole prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerType {
    /// HF `sliding_attention`: keys `j` with `i - j < sliding_window`, local RoPE base.
    SlidingAttention,
    /// HF `full_attention`: every key `j <= i`, global RoPE base (and scaling).
    FullAttention,
}

/// Gemma 3's text-model hyper-parameters (HF names).
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(try_from = "serde_json::Value")]
pub struct Gemma3Config {
    /// Rows of the (tied) embedding table.
    pub vocab_size: usize,
    /// Residual width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention).
    pub num_key_value_heads: usize,
    /// Width of one head (not `hidden_size / heads` in Gemma 3).
    pub head_dim: usize,
    /// RMSNorm epsilon (used as f32, as torch adds it to an f32 tensor).
    pub rms_norm_eps: f64,
    /// RoPE base of the global (full-attention) layers.
    pub rope_theta: f64,
    /// RoPE base of the sliding-window layers.
    pub rope_local_base_freq: f64,
    /// Keys a sliding layer sees, the query's own position included.
    pub sliding_window: usize,
    /// Every `sliding_window_pattern`-th layer is global (when `layer_types` is absent).
    pub sliding_window_pattern: usize,
    /// The kind of each layer, resolved from `layer_types` or the pattern.
    pub layer_types: Vec<LayerType>,
    /// Queries are scaled by `query_pre_attn_scalar^-0.5`.
    pub query_pre_attn_scalar: f64,
    /// Positions the model was trained for.
    pub max_position_embeddings: usize,
    /// Linear RoPE scaling factor of the global layers (`rope_scaling.rope_type == "linear"`).
    pub rope_scaling_factor: Option<f64>,
    /// `logits = tanh(logits / c) * c` when set.
    pub final_logit_softcapping: Option<f64>,
    /// `scores = tanh(scores / c) * c` when set.
    pub attn_logit_softcapping: Option<f64>,
}

impl Gemma3Config {
    /// Parses a Hugging Face `config.json`.
    pub fn from_json(text: &str) -> Result<Self, Gemma3Error> {
        let v: Value = serde_json::from_str(text).map_err(|e| Gemma3Error::Config { field: "<json>".into(), why: e.to_string() })?;
        Self::from_value(&v)
    }

    /// Reads a parsed `config.json` (`gemma3_text`, or `gemma3` with a `text_config`).
    pub fn from_value(v: &Value) -> Result<Self, Gemma3Error> {
        let obj = match v.get("model_type").and_then(Value::as_str) {
            Some("gemma3_text") => v,
            Some("gemma3") => {
                let t = v.get("text_config").ok_or_else(|| missing("text_config"))?;
                match t.get("model_type").map(|m| m.as_str()) {
                    None | Some(Some("gemma3_text")) => t,
                    Some(other) => return Err(bad("text_config.model_type", format!("expected \"gemma3_text\", found {other:?}"))),
                }
            }
            Some(other) => return Err(bad("model_type", format!("expected \"gemma3_text\" or \"gemma3\", found {other:?}"))),
            None => return Err(missing("model_type")),
        };
        parse_text(obj)
    }

    /// Whether layer `i` uses sliding-window attention.
    pub fn is_sliding(&self, i: usize) -> bool {
        self.layer_types[i] == LayerType::SlidingAttention
    }

    /// Checks the relations between fields that the forward relies on.
    pub fn validate(&self) -> Result<(), Gemma3Error> {
        let bounded = [
            ("vocab_size", self.vocab_size, MAX_VOCAB),
            ("hidden_size", self.hidden_size, MAX_WIDTH),
            ("intermediate_size", self.intermediate_size, MAX_WIDTH),
            ("num_hidden_layers", self.num_hidden_layers, MAX_LAYERS),
            ("num_attention_heads", self.num_attention_heads, MAX_HEADS),
            ("num_key_value_heads", self.num_key_value_heads, MAX_HEADS),
            ("head_dim", self.head_dim, MAX_HEADS),
            ("sliding_window", self.sliding_window, MAX_POSITIONS),
            ("sliding_window_pattern", self.sliding_window_pattern, MAX_LAYERS),
            ("max_position_embeddings", self.max_position_embeddings, MAX_POSITIONS),
        ];
        for (field, n, max) in bounded {
            in_range(field, n, max)?;
        }
        if !self.num_attention_heads.is_multiple_of(self.num_key_value_heads) {
            return Err(bad("num_key_value_heads", format!("{} does not divide num_attention_heads {}", self.num_key_value_heads, self.num_attention_heads)));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(bad("head_dim", format!("{} is odd; rotate-half RoPE needs an even width", self.head_dim)));
        }
        if self.layer_types.len() != self.num_hidden_layers {
            return Err(bad("layer_types", format!("{} entries for {} layers", self.layer_types.len(), self.num_hidden_layers)));
        }
        let finite = [
            ("rms_norm_eps", Some(self.rms_norm_eps)),
            ("rope_theta", Some(self.rope_theta)),
            ("rope_local_base_freq", Some(self.rope_local_base_freq)),
            ("query_pre_attn_scalar", Some(self.query_pre_attn_scalar)),
            ("rope_scaling.factor", self.rope_scaling_factor),
            ("final_logit_softcapping", self.final_logit_softcapping),
            ("attn_logit_softcapping", self.attn_logit_softcapping),
        ];
        for (field, x) in finite {
            if let Some(x) = x {
                if !(x.is_finite() && (x > 0.0 || field == "rms_norm_eps" && x == 0.0)) {
                    return Err(bad(field, format!("{x} is not a positive finite number")));
                }
            }
        }
        Ok(())
    }
}

impl TryFrom<Value> for Gemma3Config {
    type Error = Gemma3Error;
    fn try_from(v: Value) -> Result<Self, Gemma3Error> {
        Self::from_value(&v)
    }
}

/// `n` in `1..=max`, or an error naming `field`.
fn in_range(field: &str, n: usize, max: usize) -> Result<(), Gemma3Error> {
    if n == 0 {
        return Err(bad(field, "must be positive".into()));
    }
    if n > max {
        return Err(bad(field, format!("{n} is more than the {max} accepted")));
    }
    Ok(())
}

/// The layer kinds of `n` layers where every `pattern`-th is global
/// (`Gemma3TextConfig.__init__`, llama.cpp's `set_swa_pattern`); `n` and
/// `pattern` are bounded first, under the names `fields` gives them.
pub(super) fn layers_from_pattern(n: usize, pattern: usize, fields: [&str; 2]) -> Result<Vec<LayerType>, Gemma3Error> {
    in_range(fields[0], n, MAX_LAYERS)?;
    in_range(fields[1], pattern, MAX_LAYERS)?;
    Ok((0..n).map(|i| if (i + 1) % pattern == 0 { LayerType::FullAttention } else { LayerType::SlidingAttention }).collect())
}

fn missing(field: &str) -> Gemma3Error {
    Gemma3Error::Config { field: field.into(), why: "missing".into() }
}

fn bad(field: &str, why: String) -> Gemma3Error {
    Gemma3Error::Config { field: field.into(), why }
}

/// A present, non-null field.
fn field<'a>(o: &'a Value, name: &str) -> Option<&'a Value> {
    o.get(name).filter(|v| !v.is_null())
}

fn req_usize(o: &Value, name: &str) -> Result<usize, Gemma3Error> {
    opt_usize(o, name)?.ok_or_else(|| missing(name))
}

fn opt_usize(o: &Value, name: &str) -> Result<Option<usize>, Gemma3Error> {
    match field(o, name) {
        None => Ok(None),
        Some(v) => v.as_u64().and_then(|n| usize::try_from(n).ok()).map(Some).ok_or_else(|| bad(name, format!("expected a non-negative integer, found {v}"))),
    }
}

fn req_f64(o: &Value, name: &str) -> Result<f64, Gemma3Error> {
    opt_f64(o, name)?.ok_or_else(|| missing(name))
}

fn opt_f64(o: &Value, name: &str) -> Result<Option<f64>, Gemma3Error> {
    match field(o, name) {
        None => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| bad(name, format!("expected a number, found {v}"))),
    }
}

fn parse_text(o: &Value) -> Result<Gemma3Config, Gemma3Error> {
    if !o.is_object() {
        return Err(bad("text_config", "expected an object".into()));
    }
    let activation = match field(o, "hidden_activation").or_else(|| field(o, "hidden_act")) {
        None => "gelu_pytorch_tanh",
        Some(v) => v.as_str().ok_or_else(|| bad("hidden_activation", format!("expected a string, found {v}")))?,
    };
    if activation != "gelu_pytorch_tanh" {
        return Err(bad("hidden_activation", format!("expected \"gelu_pytorch_tanh\", found {activation:?}")));
    }
    if field(o, "use_bidirectional_attention").and_then(Value::as_bool) == Some(true) {
        return Err(bad("use_bidirectional_attention", "bidirectional (EmbeddingGemma) attention is not a causal Gemma 3".into()));
    }
    let num_hidden_layers = req_usize(o, "num_hidden_layers")?;
    let pattern = match opt_usize(o, "sliding_window_pattern")? {
        Some(p) => p,
        None => opt_usize(o, "_sliding_window_pattern")?.unwrap_or(6),
    };
    let layer_types = match field(o, "layer_types") {
        None => layers_from_pattern(num_hidden_layers, pattern, ["num_hidden_layers", "sliding_window_pattern"])?,
        Some(Value::Array(a)) if a.len() > MAX_LAYERS => return Err(bad("layer_types", format!("{} entries, more than the {MAX_LAYERS} accepted", a.len()))),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, t)| match t.as_str() {
                Some("sliding_attention") => Ok(LayerType::SlidingAttention),
                Some("full_attention") => Ok(LayerType::FullAttention),
                _ => Err(bad(&format!("layer_types[{i}]"), format!("expected \"sliding_attention\" or \"full_attention\", found {t}"))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(v) => return Err(bad("layer_types", format!("expected an array, found {v}"))),
    };
    let rope_scaling_factor = match field(o, "rope_scaling") {
        None => None,
        Some(s) => {
            let ty = field(s, "rope_type").or_else(|| field(s, "type")).and_then(Value::as_str);
            match ty {
                Some("linear") => Some(req_f64(s, "factor").map_err(|_| missing("rope_scaling.factor"))?),
                Some("default") => None,
                other => return Err(bad("rope_scaling.rope_type", format!("only \"linear\" scaling is supported, found {other:?}"))),
            }
        }
    };
    let cfg = Gemma3Config {
        vocab_size: req_usize(o, "vocab_size")?,
        hidden_size: req_usize(o, "hidden_size")?,
        intermediate_size: req_usize(o, "intermediate_size")?,
        num_hidden_layers,
        num_attention_heads: req_usize(o, "num_attention_heads")?,
        num_key_value_heads: req_usize(o, "num_key_value_heads")?,
        head_dim: req_usize(o, "head_dim")?,
        rms_norm_eps: req_f64(o, "rms_norm_eps")?,
        rope_theta: req_f64(o, "rope_theta")?,
        rope_local_base_freq: opt_f64(o, "rope_local_base_freq")?.unwrap_or(10_000.0),
        sliding_window: req_usize(o, "sliding_window")?,
        sliding_window_pattern: pattern,
        layer_types,
        query_pre_attn_scalar: req_f64(o, "query_pre_attn_scalar")?,
        max_position_embeddings: req_usize(o, "max_position_embeddings")?,
        rope_scaling_factor,
        final_logit_softcapping: opt_f64(o, "final_logit_softcapping")?,
        attn_logit_softcapping: opt_f64(o, "attn_logit_softcapping")?,
    };
    cfg.validate()?;
    Ok(cfg)
}
