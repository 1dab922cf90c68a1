//! `avac aon convert`: a Hugging Face encoder checkpoint becomes an mALBERT
//! intent classifier directory (see [`super::classifier`]).
//!
//! 1. Load `config.json`, `model.safetensors` (pickle checkpoints are refused,
//!    never executed) and `tokenizer.json`.
//! 2. Prune the vocabulary to the special tokens plus every piece needed by
//!    the declared corpus (intent texts and calibration text); embedding rows
//!    are remapped and tokenization of the corpus is checked unchanged.
//! 3. Cap the sequence length: the position table keeps `max_seq_len` rows.
//! 4. Take the head from the checkpoint's `classifier.*` tensors when present
//!    (labels from `id2label`), otherwise fit it deterministically on the
//!    training split's pooled features ([`super::head`]).

use super::classifier::{self, ClassifierError, ClassifierInfo, OverflowMode};
use super::head::{fit, FitParams};
use super::intents::{Intents, IntentsError};
use super::prune::{prune, remap_rows, PruneError};
use crate::formats::hf_config::EncoderConfig;
use crate::formats::safetensors::{sniff_pickle, SafeTensors};
use crate::formats::tokenizer::{Overflow, SeqPolicy, Tokenizer, TokenizerError};
use crate::model::encoder::Dense;
use crate::model::{Encoder, Pooling, Weights};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Conversion parameters, as declared in a target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AonConvertParams {
    /// Number of intent classes (checked against the data and any checkpoint head).
    pub classes: usize,
    /// Maximum sequence length, special tokens included.
    #[serde(default = "default_seq")]
    pub max_seq_len: usize,
    /// What happens to longer inputs.
    #[serde(default = "default_overflow")]
    pub overflow: OverflowMode,
    /// Pooling rule.
    pub pooling: Pooling,
    /// Prune the vocabulary to the corpus.
    #[serde(default = "default_true")]
    pub prune_vocab: bool,
    /// Head fitting.
    #[serde(default)]
    pub fit: FitParams,
}

fn default_seq() -> usize {
    128
}
fn default_overflow() -> OverflowMode {
    OverflowMode::Reject
}
fn default_true() -> bool {
    true
}

/// Failures converting a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A pickle checkpoint was offered.
    #[error("{path}: PyTorch pickle checkpoints are refused (never executed); convert it to model.safetensors first, e.g. with `transformers` save_pretrained(safe_serialization=True)")]
    Pickle {
        /// The file.
        path: PathBuf,
    },
    /// A required file is missing.
    #[error("{path}: missing ({what})")]
    Missing {
        /// The file.
        path: PathBuf,
        /// What it should be.
        what: &'static str,
    },
    /// Config error.
    #[error(transparent)]
    Config(#[from] crate::formats::hf_config::HfConfigError),
    /// Weights error.
    #[error(transparent)]
    Safetensors(#[from] crate::formats::safetensors::SafetensorsError),
    /// Tokenizer error.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// Tensor/config mismatch.
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    /// Intent data error.
    #[error(transparent)]
    Intents(#[from] IntentsError),
    /// Pruning error.
    #[error(transparent)]
    Prune(#[from] PruneError),
    /// Writing the result.
    #[error(transparent)]
    Classifier(#[from] ClassifierError),
    /// A parameter is out of range.
    #[error("parameter {name}: {why}")]
    Param {
        /// The parameter.
        name: &'static str,
        /// Why it is refused.
        why: String,
    },
    /// The checkpoint's head disagrees with the declaration.
    #[error("{path}: the checkpoint's classifier has {found} classes but the target declares {declared}")]
    HeadClasses {
        /// The weights file.
        path: PathBuf,
        /// Classes in the checkpoint.
        found: usize,
        /// Classes declared.
        declared: usize,
    },
}

/// What conversion did, for reports.
#[derive(Clone, Debug, Serialize)]
pub struct ConvertReport {
    /// Vocabulary before and after pruning.
    pub vocab: [usize; 2],
    /// Position rows before and after the cap.
    pub positions: [usize; 2],
    /// `checkpoint` or `fitted`.
    pub head: String,
    /// Final training loss of a fitted head.
    pub fit_loss: Option<f32>,
    /// Training examples used.
    pub train_examples: usize,
}

/// Loads a checkpoint directory, refusing pickle files.
pub fn load_checkpoint(dir: &Path) -> Result<(EncoderConfig, SafeTensors, Tokenizer), ConvertError> {
    let st_path = dir.join("model.safetensors");
    if !st_path.exists() {
        for pickle in ["pytorch_model.bin", "model.bin", "model.pt", "model.pth"] {
            if dir.join(pickle).exists() {
                return Err(ConvertError::Pickle { path: dir.join(pickle) });
            }
        }
        return Err(ConvertError::Missing { path: st_path, what: "safetensors weights" });
    }
    let head = {
        use std::io::Read;
        let mut b = [0u8; 8];
        let n = std::fs::File::open(&st_path).and_then(|mut f| f.read(&mut b)).unwrap_or(0);
        b[..n].to_vec()
    };
    if sniff_pickle(&head) {
        return Err(ConvertError::Pickle { path: st_path });
    }
    let cfg = EncoderConfig::read(&dir.join("config.json"))?;
    let st = SafeTensors::read(&st_path)?;
    let tok = Tokenizer::load(dir.join("tokenizer.json"))?;
    Ok((cfg, st, tok))
}

/// Converts `model_dir` into a classifier directory at `out_dir` (which must exist and be empty).
pub fn convert(
    model_dir: &Path,
    intents_path: &Path,
    calibration: Option<&Path>,
    params: &AonConvertParams,
    out_dir: &Path,
) -> Result<ConvertReport, ConvertError> {
    if params.max_seq_len < 3 {
        return Err(ConvertError::Param { name: "max_seq_len", why: "must be at least 3".into() });
    }
    let (mut cfg, st, tok) = load_checkpoint(model_dir)?;
    if params.max_seq_len > cfg.max_positions {
        return Err(ConvertError::Param { name: "max_seq_len", why: format!("{} exceeds the model's {} positions", params.max_seq_len, cfg.max_positions) });
    }
    let data = Intents::read(intents_path, params.classes)?;
    let encoder = Encoder::load(&cfg, &st)?;

    // Vocabulary pruning over the declared corpus.
    let mut corpus: Vec<String> = data.train.texts.iter().chain(&data.test.texts).cloned().collect();
    if let Some(c) = calibration {
        corpus.extend(super::intents::read_calibration(c)?);
    }
    let vocab_before = cfg.vocab_size;
    let (tok_json, word) = if params.prune_vocab {
        let pruned = prune(&tok, &corpus)?;
        let word = remap_rows(&encoder.word, cfg.embedding_size, &pruned.old_ids)?;
        (pruned.tokenizer_json, word)
    } else {
        (tok.bytes().to_vec(), encoder.word.clone())
    };
    cfg.vocab_size = word.len() / cfg.embedding_size;
    let pos_before = cfg.max_positions;
    cfg.max_positions = params.max_seq_len;
    let pos = encoder.pos[..params.max_seq_len * cfg.embedding_size].to_vec();
    let enc = Encoder::assemble(
        cfg.clone(),
        word,
        pos,
        encoder.token_type.clone(),
        encoder.emb_norm.clone(),
        encoder.proj.clone(),
        encoder.layers.clone(),
        encoder.schedule.clone(),
        encoder.pooler.clone(),
    );
    let tok = Tokenizer::from_bytes(format!("{}/tokenizer.json (pruned)", model_dir.display()), tok_json.clone())?;
    let overflow = match params.overflow {
        OverflowMode::Reject => Overflow::Reject,
        OverflowMode::Truncate => Overflow::Truncate,
    };
    let policy = SeqPolicy { max_len: params.max_seq_len, overflow };

    let h = cfg.hidden_size;
    let (head, labels, source, loss) = if st.has("classifier.weight") {
        let found = st.get("classifier.weight")?.shape.first().copied().unwrap_or(0);
        if found != params.classes {
            return Err(ConvertError::HeadClasses { path: model_dir.join("model.safetensors"), found, declared: params.classes });
        }
        let w = st.expect(&[""], "classifier.weight", &[found, h])?;
        let b = st.expect(&[""], "classifier.bias", &[found])?;
        let labels = cfg.labels.clone().unwrap_or_else(|| data.labels.clone());
        (Dense::new(w, b, found, h), labels, "checkpoint", None)
    } else {
        let seqs: Vec<Vec<u32>> = tok.encode_batch_capped(&data.train.texts, &policy)?.into_iter().map(|e| e.ids).collect();
        let feats = enc.embed(&seqs, params.pooling, 4096)?;
        let fitted = fit(&feats, &data.train.labels, h, data.labels.len(), &params.fit);
        (Dense::new(fitted.w, fitted.b, data.labels.len(), h), data.labels.clone(), "fitted", Some(fitted.final_loss))
    };
    let info = ClassifierInfo {
        pooling: params.pooling,
        labels,
        max_seq_len: params.max_seq_len,
        overflow: params.overflow,
        head: source.into(),
        vocab: [vocab_before, cfg.vocab_size],
    };
    classifier::save(out_dir, &enc, &head, &tok_json, &info)?;
    Ok(ConvertReport {
        vocab: [vocab_before, cfg.vocab_size],
        positions: [pos_before, params.max_seq_len],
        head: source.into(),
        fit_loss: loss,
        train_examples: data.train.texts.len(),
    })
}
