//! `avac aon validate`: the exported model must load and run in tract, agree
//! with the reference forward, and meet the target's gates.
//!
//! tract loads the model with its own symbolic `[batch, seq]` inputs and
//! runs each test utterance right-padded by a few positions with an
//! attention mask, so the padding path is exercised on every test
//! utterance; the reference forward runs each utterance unpadded. Latency
//! is measured at `[1, max_seq_len]`. The report's accuracies and logit
//! errors are deterministic; latency is
//! measured and reported but never gated.

use super::classifier::{Classifier, ClassifierError};
use super::intents::{Intents, IntentsError};
use crate::formats::tokenizer::TokenizerError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tract_onnx::prelude::*;

/// Padding positions added to each test utterance when run in tract.
const PAD_EXTRA: usize = 3;

/// Gates and settings, as declared in a target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidateParams {
    /// Largest allowed |tract − reference| over all test logits.
    pub max_abs_logit_diff: f32,
    /// Minimum top-1 agreement between tract and the reference, in [0, 1].
    pub min_agreement: f32,
    /// Minimum test accuracy of the reference forward, in [0, 1].
    pub min_accuracy: f32,
    /// Timed runs for the latency figure.
    pub latency_runs: usize,
}

impl Default for ValidateParams {
    fn default() -> Self {
        ValidateParams { max_abs_logit_diff: 1e-3, min_agreement: 1.0, min_accuracy: 0.0, latency_runs: 20 }
    }
}

/// Failures validating.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// The model file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// tract could not load or run the model.
    #[error("{path}: tract cannot run the model: {why}")]
    Tract {
        /// The model.
        path: PathBuf,
        /// tract's error chain.
        why: String,
    },
    /// Classifier directory error.
    #[error(transparent)]
    Classifier(#[from] ClassifierError),
    /// Intent data error.
    #[error(transparent)]
    Intents(#[from] IntentsError),
    /// Tokenization error.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// Reference forward error.
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    /// A gate failed.
    #[error("{path}: validation failed: {gate}")]
    Gate {
        /// The model.
        path: PathBuf,
        /// Which gate and by how much.
        gate: String,
        /// The full report, for the caller to show.
        report: Box<ValidateReport>,
    },
}

/// The validation report (written as JSON beside the artifact).
#[derive(Clone, Debug, Serialize)]
pub struct ValidateReport {
    /// Test utterances.
    pub test_examples: usize,
    /// Classes.
    pub classes: usize,
    /// Accuracy of the reference forward on the test split.
    pub accuracy_reference: f64,
    /// Accuracy of the model in tract.
    pub accuracy_tract: f64,
    /// Top-1 agreement tract vs reference.
    pub agreement: f64,
    /// Largest |tract − reference| logit difference.
    pub max_abs_logit_diff: f32,
    /// Mean |tract − reference| logit difference.
    pub mean_abs_logit_diff: f64,
    /// The declared bound.
    pub logit_bound: f32,
    /// Median tract latency for one `[1, max_seq_len]` input, milliseconds (measured, not gated).
    pub tract_p50_ms: f64,
    /// Sequence length used by tract.
    pub seq_len: usize,
    /// Model file size in bytes.
    pub model_bytes: u64,
}

/// Runs validation; on success returns the report, on a failed gate an error carrying it.
pub fn validate(model_path: &Path, classifier_dir: &Path, intents_path: &Path, params: &ValidateParams) -> Result<ValidateReport, ValidateError> {
    let bytes = std::fs::read(model_path).map_err(|source| ValidateError::Io { path: model_path.into(), source })?;
    let c = Classifier::load(classifier_dir)?;
    let data = Intents::read(intents_path, c.labels.len())?;
    let seq = c.info.max_seq_len;
    let tract_err = |e: TractError| ValidateError::Tract { path: model_path.into(), why: format!("{e:#}") };
    let plan = tract_onnx::onnx().model_for_read(&mut bytes.as_slice()).and_then(|m| m.into_optimized()).and_then(|m| m.into_runnable()).map_err(tract_err)?;
    let pad = c.tokenizer.pad_id().unwrap_or(0) as i64;
    let policy = c.seq_policy();
    let seqs: Vec<Vec<u32>> = c.tokenizer.encode_batch_capped(&data.test.texts, &policy)?.into_iter().map(|e| e.ids).collect();
    let reference = c.logits(&seqs)?;
    let classes = c.labels.len();
    // Runs one utterance right-padded to `len` positions.
    let run = |ids: &[u32], len: usize| -> Result<Vec<f32>, ValidateError> {
        let mut input = vec![pad; len];
        let mut mask = vec![0i64; len];
        for (i, &id) in ids.iter().enumerate() {
            input[i] = id as i64;
            mask[i] = 1;
        }
        let a = tract_ndarray::Array2::from_shape_vec((1, len), input).expect("shape");
        let m = tract_ndarray::Array2::from_shape_vec((1, len), mask).expect("shape");
        let out = plan.run(tvec![Tensor::from(a).into(), Tensor::from(m).into()]).map_err(tract_err)?;
        let v = out[0].to_plain_array_view::<f32>().map_err(tract_err)?;
        Ok(v.iter().copied().collect())
    };
    let argmax = |v: &[f32]| v.iter().enumerate().fold(0, |b, (i, x)| if *x > v[b] { i } else { b });
    let (mut max_diff, mut sum_diff) = (0.0f32, 0.0f64);
    let (mut ok_ref, mut ok_tract, mut agree) = (0usize, 0usize, 0usize);
    for (i, ids) in seqs.iter().enumerate() {
        // A few padded positions exercise the attention mask and masked pooling.
        let t = run(ids, (ids.len() + PAD_EXTRA).min(seq.max(ids.len())))?;
        let r = &reference[i * classes..(i + 1) * classes];
        if t.len() != classes {
            return Err(ValidateError::Tract { path: model_path.into(), why: format!("logits have {} values, expected {classes}", t.len()) });
        }
        for (a, b) in t.iter().zip(r) {
            let d = (a - b).abs();
            max_diff = if d.is_nan() { f32::INFINITY } else { max_diff.max(d) };
            sum_diff += d as f64;
        }
        let (pt, pr) = (argmax(&t), argmax(r));
        ok_ref += (pr == data.test.labels[i]) as usize;
        ok_tract += (pt == data.test.labels[i]) as usize;
        agree += (pt == pr) as usize;
    }
    let n = seqs.len().max(1) as f64;
    // Latency: one full-length input.
    let full: Vec<u32> = (0..seq).map(|i| seqs[0].get(i % seqs[0].len()).copied().unwrap_or(0)).collect();
    let mut times = Vec::with_capacity(params.latency_runs);
    for _ in 0..params.latency_runs.max(1) {
        let t0 = Instant::now();
        run(&full, seq)?;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let report = ValidateReport {
        test_examples: seqs.len(),
        classes,
        accuracy_reference: ok_ref as f64 / n,
        accuracy_tract: ok_tract as f64 / n,
        agreement: agree as f64 / n,
        max_abs_logit_diff: max_diff,
        mean_abs_logit_diff: sum_diff / (n * classes as f64),
        logit_bound: params.max_abs_logit_diff,
        tract_p50_ms: times[times.len() / 2],
        seq_len: seq,
        model_bytes: bytes.len() as u64,
    };
    let gate = if report.max_abs_logit_diff > params.max_abs_logit_diff {
        Some(format!("max |tract - reference| logit difference {:.3e} exceeds the bound {:.3e}", report.max_abs_logit_diff, params.max_abs_logit_diff))
    } else if report.agreement < params.min_agreement as f64 {
        Some(format!("top-1 agreement {:.4} is below {:.4}", report.agreement, params.min_agreement))
    } else if report.accuracy_reference < params.min_accuracy as f64 {
        Some(format!("test accuracy {:.4} is below {:.4}", report.accuracy_reference, params.min_accuracy))
    } else {
        None
    };
    match gate {
        Some(gate) => Err(ValidateError::Gate { path: model_path.into(), gate, report: Box::new(report) }),
        None => Ok(report),
    }
}
