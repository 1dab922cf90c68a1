//! The converted intent classifier: an encoder, a pooling rule and a head,
//! stored as a directory that every later step reads.
//!
//! ```text
//! DIR/config.json        Hugging Face config (vocab and positions after conversion, id2label)
//! DIR/model.safetensors  encoder tensors (HF names, no prefix) + classifier.{weight,bias}
//! DIR/tokenizer.json     the (pruned) tokenizer
//! DIR/classifier.json    pooling, labels, sequence policy, what conversion did
//! ```

use crate::formats::hf_config::{Activation, EncoderConfig, Family};
use crate::formats::safetensors::{self, OwnedTensor, SafeTensors};
use crate::formats::tokenizer::{Overflow, SeqPolicy, Tokenizer};
use crate::model::encoder::Dense;
use crate::model::{Encoder, Pooling, Weights};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Failures reading or writing a classifier directory.
#[derive(Debug, thiserror::Error)]
pub enum ClassifierError {
    /// I/O on a file of the directory.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// `classifier.json` is malformed.
    #[error("{path}: invalid classifier description: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The error.
        source: serde_json::Error,
    },
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] crate::formats::hf_config::HfConfigError),
    /// The weights file is invalid.
    #[error(transparent)]
    Safetensors(#[from] safetensors::SafetensorsError),
    /// The tokenizer is invalid.
    #[error(transparent)]
    Tokenizer(#[from] crate::formats::tokenizer::TokenizerError),
    /// The tensors do not fit the config.
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    /// Labels and head disagree.
    #[error("{path}: {labels} labels but the head has {rows} rows")]
    LabelCount {
        /// The directory.
        path: PathBuf,
        /// Labels listed.
        labels: usize,
        /// Head rows.
        rows: usize,
    },
}

/// `classifier.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierInfo {
    /// Pooling rule.
    pub pooling: Pooling,
    /// Intent labels, by class id.
    pub labels: Vec<String>,
    /// Maximum sequence length including special tokens.
    pub max_seq_len: usize,
    /// What happens to longer inputs.
    pub overflow: OverflowMode,
    /// Where the head came from: `checkpoint` or `fitted`.
    pub head: String,
    /// Vocabulary size before and after pruning.
    pub vocab: [usize; 2],
}

/// Serialisable overflow policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverflowMode {
    /// Longer inputs are an error.
    Reject,
    /// Longer inputs are cut, keeping the final separator.
    Truncate,
}

/// A loaded classifier.
pub struct Classifier {
    /// The encoder (vocabulary pruned, positions capped).
    pub encoder: Encoder,
    /// The intent head.
    pub head: Dense,
    /// Pooling rule.
    pub pooling: Pooling,
    /// Labels, by class id.
    pub labels: Vec<String>,
    /// The tokenizer.
    pub tokenizer: Tokenizer,
    /// Everything `classifier.json` says.
    pub info: ClassifierInfo,
}

impl Classifier {
    /// The sequence policy for tokenization.
    pub fn seq_policy(&self) -> SeqPolicy {
        SeqPolicy {
            max_len: self.info.max_seq_len,
            overflow: match self.info.overflow {
                OverflowMode::Reject => Overflow::Reject,
                OverflowMode::Truncate => Overflow::Truncate,
            },
        }
    }

    /// Reads a classifier directory.
    pub fn load(dir: &Path) -> Result<Self, ClassifierError> {
        let info_path = dir.join("classifier.json");
        let bytes = std::fs::read(&info_path).map_err(|source| ClassifierError::Io { path: info_path.clone(), source })?;
        let info: ClassifierInfo = serde_json::from_slice(&bytes).map_err(|source| ClassifierError::Json { path: info_path, source })?;
        let cfg = EncoderConfig::read(&dir.join("config.json"))?;
        let st = SafeTensors::read(&dir.join("model.safetensors"))?;
        let encoder = Encoder::load(&cfg, &st)?;
        let rows = info.labels.len();
        let head_w = st.expect(&[""], "classifier.weight", &[rows, cfg.hidden_size])?;
        let head_b = st.expect(&[""], "classifier.bias", &[rows])?;
        let tokenizer = Tokenizer::load(dir.join("tokenizer.json"))?;
        Ok(Classifier { encoder, head: Dense::new(head_w, head_b, rows, cfg.hidden_size), pooling: info.pooling, labels: info.labels.clone(), tokenizer, info })
    }

    /// Logits `[n, classes]` for token sequences.
    pub fn logits(&self, seqs: &[Vec<u32>]) -> Result<Vec<f32>, crate::model::ModelError> {
        let pooled = self.encoder.embed(seqs, self.pooling, 4096)?;
        Ok(self.head.apply(&pooled, seqs.len()))
    }
}

/// Writes a classifier directory (files written whole, directory must exist).
pub fn save(dir: &Path, encoder: &Encoder, head: &Dense, tokenizer_json: &[u8], info: &ClassifierInfo) -> Result<(), ClassifierError> {
    if info.labels.len() != head.out {
        return Err(ClassifierError::LabelCount { path: dir.into(), labels: info.labels.len(), rows: head.out });
    }
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).map_err(|source| ClassifierError::Io { path: p, source })
    };
    write("config.json", &config_json(&encoder.cfg, &info.labels))?;
    write("tokenizer.json", tokenizer_json)?;
    let mut info_json = serde_json::to_vec_pretty(info).expect("serialisable");
    info_json.push(b'\n');
    write("classifier.json", &info_json)?;
    let mut tensors: BTreeMap<String, OwnedTensor> = encoder.tensors().into_iter().map(|(k, (s, v))| (k, OwnedTensor::from_f32(s, &v))).collect();
    tensors.insert("classifier.weight".into(), OwnedTensor::from_f32(vec![head.out, head.inp], &head.w));
    tensors.insert("classifier.bias".into(), OwnedTensor::from_f32(vec![head.out], &head.b));
    safetensors::write(&dir.join("model.safetensors"), &tensors, &BTreeMap::new())?;
    Ok(())
}

/// A Hugging Face `config.json` for an encoder, keys sorted.
pub fn config_json(cfg: &EncoderConfig, labels: &[String]) -> Vec<u8> {
    let mut m = serde_json::Map::new();
    let family = match cfg.family {
        Family::Bert => "bert",
        Family::Albert => "albert",
    };
    let act = match cfg.activation {
        Activation::GeluErf => "gelu",
        Activation::GeluTanh => "gelu_new",
    };
    let mut put = |k: &str, v: serde_json::Value| {
        m.insert(k.into(), v);
    };
    put("model_type", family.into());
    put("vocab_size", cfg.vocab_size.into());
    put("hidden_size", cfg.hidden_size.into());
    put("num_hidden_layers", cfg.num_layers.into());
    put("num_attention_heads", cfg.num_heads.into());
    put("intermediate_size", cfg.intermediate_size.into());
    put("hidden_act", act.into());
    put("max_position_embeddings", cfg.max_positions.into());
    put("type_vocab_size", cfg.type_vocab_size.into());
    put("layer_norm_eps", serde_json::Value::from(cfg.layer_norm_eps as f64));
    if cfg.family == Family::Albert {
        put("embedding_size", cfg.embedding_size.into());
        put("num_hidden_groups", 1.into());
        put("inner_group_num", 1.into());
    }
    let id2label: serde_json::Map<String, serde_json::Value> = labels.iter().enumerate().map(|(i, l)| (i.to_string(), l.clone().into())).collect();
    put("id2label", id2label.into());
    let mut sorted: Vec<_> = m.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let obj: serde_json::Map<_, _> = sorted.into_iter().collect();
    let mut out = serde_json::to_vec_pretty(&obj).expect("serialisable");
    out.push(b'\n');
    out
}
