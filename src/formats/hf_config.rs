//! Hugging Face `config.json` for the encoder families avac compiles
//! (`bert`, `albert`). Unknown keys are ignored, as transformers does;
//! values that change the architecture in ways avac does not implement are
//! refused by name.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Failures reading a `config.json`.
#[derive(Debug, thiserror::Error)]
pub enum HfConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read config: {source}")]
    Io {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not the JSON shape of a config.
    #[error("{path}: not a valid Hugging Face config.json: {source}")]
    Json {
        /// The config file.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// `model_type` is not one avac implements.
    #[error("{path}: unsupported model_type {model_type:?} (supported: \"albert\", \"bert\")")]
    UnsupportedModelType {
        /// The config file.
        path: PathBuf,
        /// The model type found.
        model_type: String,
    },
    /// A field has a value avac cannot compile.
    #[error("{path}: unsupported {field} = {value} ({why})")]
    Unsupported {
        /// The config file.
        path: PathBuf,
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
        /// Why it is refused.
        why: &'static str,
    },
}

/// The encoder family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// BERT and its distillations (MiniLM, …): one set of weights per layer.
    Bert,
    /// ALBERT: factorised embeddings and one set of layer weights shared by all layers.
    Albert,
}

/// The hidden activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Exact, erf-based GELU (`gelu`).
    GeluErf,
    /// Tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
}

#[derive(Deserialize)]
struct Raw {
    model_type: String,
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    hidden_act: String,
    max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    type_vocab_size: usize,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    embedding_size: Option<usize>,
    num_hidden_groups: Option<usize>,
    inner_group_num: Option<usize>,
    position_embedding_type: Option<String>,
    id2label: Option<BTreeMap<String, String>>,
}

fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}

/// A validated encoder configuration.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EncoderConfig {
    /// BERT or ALBERT.
    pub family: Family,
    /// Rows of the word embedding table.
    pub vocab_size: usize,
    /// Width of the embeddings (ALBERT's factorised size; BERT: hidden size).
    pub embedding_size: usize,
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Encoder layers applied (ALBERT: applications of the shared layer).
    pub num_layers: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Feed-forward width.
    pub intermediate_size: usize,
    /// Hidden activation.
    pub activation: Activation,
    /// Rows of the position embedding table.
    pub max_positions: usize,
    /// Rows of the token type table.
    pub type_vocab_size: usize,
    /// LayerNorm epsilon, as f32 (the precision the forward uses).
    pub layer_norm_eps: f32,
    /// Intent labels when the checkpoint carries a classifier (`id2label`), by id.
    pub labels: Option<Vec<String>>,
}

impl EncoderConfig {
    /// Reads and validates `config.json`.
    pub fn read(path: &Path) -> Result<Self, HfConfigError> {
        let bytes = std::fs::read(path).map_err(|source| HfConfigError::Io { path: path.into(), source })?;
        Self::parse(&bytes, path)
    }

    /// Parses and validates config bytes; `path` names the file in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, HfConfigError> {
        let raw: Raw = serde_json::from_slice(bytes).map_err(|source| HfConfigError::Json { path: path.into(), source })?;
        let unsupported = |field, value: String, why| HfConfigError::Unsupported { path: path.into(), field, value, why };
        let family = match raw.model_type.as_str() {
            "bert" => Family::Bert,
            "albert" => Family::Albert,
            other => return Err(HfConfigError::UnsupportedModelType { path: path.into(), model_type: other.into() }),
        };
        let activation = match raw.hidden_act.as_str() {
            "gelu" => Activation::GeluErf,
            "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
            other => return Err(unsupported("hidden_act", other.into(), "supported: gelu, gelu_new, gelu_pytorch_tanh")),
        };
        if let Some(p) = &raw.position_embedding_type {
            if p != "absolute" {
                return Err(unsupported("position_embedding_type", p.clone(), "only absolute positions"));
            }
        }
        if family == Family::Albert {
            for (field, v) in [("num_hidden_groups", raw.num_hidden_groups), ("inner_group_num", raw.inner_group_num)] {
                if let Some(v) = v.filter(|&v| v != 1) {
                    return Err(unsupported(field, v.to_string(), "avac compiles ALBERT with one shared layer"));
                }
            }
        }
        let sizes = [
            ("vocab_size", raw.vocab_size),
            ("hidden_size", raw.hidden_size),
            ("num_hidden_layers", raw.num_hidden_layers),
            ("num_attention_heads", raw.num_attention_heads),
            ("intermediate_size", raw.intermediate_size),
            ("max_position_embeddings", raw.max_position_embeddings),
            ("type_vocab_size", raw.type_vocab_size),
        ];
        for (field, v) in sizes {
            if v == 0 || v > 1 << 24 {
                return Err(unsupported(field, v.to_string(), "must be between 1 and 2^24"));
            }
        }
        if raw.hidden_size % raw.num_attention_heads != 0 {
            return Err(unsupported("num_attention_heads", raw.num_attention_heads.to_string(), "must divide hidden_size"));
        }
        let embedding_size = match family {
            Family::Bert => raw.hidden_size,
            Family::Albert => raw.embedding_size.unwrap_or(128),
        };
        let labels = match raw.id2label {
            Some(m) if !m.is_empty() => {
                let mut labels = vec![None; m.len()];
                for (k, v) in m {
                    let i: usize = k.parse().ok().filter(|&i| i < labels.len()).ok_or_else(|| unsupported("id2label", k.clone(), "ids must be 0..N-1"))?;
                    labels[i] = Some(v);
                }
                Some(labels.into_iter().map(|l| l.unwrap_or_default()).collect())
            }
            _ => None,
        };
        Ok(EncoderConfig {
            family,
            vocab_size: raw.vocab_size,
            embedding_size,
            hidden_size: raw.hidden_size,
            num_layers: raw.num_hidden_layers,
            num_heads: raw.num_attention_heads,
            intermediate_size: raw.intermediate_size,
            activation,
            max_positions: raw.max_position_embeddings,
            type_vocab_size: raw.type_vocab_size,
            layer_norm_eps: raw.layer_norm_eps as f32,
            labels,
        })
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_unknown_model_type() {
        let e = EncoderConfig::parse(br#"{"model_type":"gpt2","vocab_size":1,"hidden_size":4,"num_hidden_layers":1,"num_attention_heads":1,"intermediate_size":4,"hidden_act":"gelu","max_position_embeddings":8}"#, Path::new("m/config.json")).unwrap_err();
        assert_eq!(e.to_string(), "m/config.json: unsupported model_type \"gpt2\" (supported: \"albert\", \"bert\")");
    }
}
