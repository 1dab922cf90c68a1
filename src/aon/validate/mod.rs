//! `avac aon validate`: the exported model must load and run in tract, agree
//! with the reference forward, and meet the target's gates; an INT8 model is
//! further judged against its FP32 parent (see [`int8`]).
//!
//! tract loads each model with its own symbolic `[batch, seq]` inputs and
//! runs each test utterance right-padded by a few positions with an
//! attention mask, so the padding path is exercised on every test
//! utterance; the reference forward runs each utterance unpadded. Latency
//! is measured at `[1, max_seq_len]` in tract and, when a Python with
//! onnxruntime is given, in onnxruntime (1 thread). Accuracies, agreements
//! and logit errors are deterministic; latency is measured and reported but
//! never gated.

pub mod int8;

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
pub struct AonValidateParams {
    /// Largest allowed |tract − reference| over all FP32 test logits.
    pub max_abs_logit_diff: f32,
    /// Minimum top-1 agreement between the FP32 model in tract and the reference, in [0, 1].
    pub min_agreement: f32,
    /// Minimum test accuracy of the reference forward, in [0, 1].
    pub min_accuracy: f32,
    /// Timed runs for each latency figure.
    pub latency_runs: usize,
    /// INT8 gates (used when an FP32 parent is given).
    pub int8: int8::Int8Gates,
}

impl Default for AonValidateParams {
    fn default() -> Self {
        AonValidateParams { max_abs_logit_diff: 1e-3, min_agreement: 1.0, min_accuracy: 0.0, latency_runs: 20, int8: Default::default() }
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
    /// The model could not be parsed or simulated by the reference evaluator.
    #[error("{path}: {why}")]
    Graph {
        /// The model.
        path: PathBuf,
        /// What failed.
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
    /// Sequence length of the latency runs.
    pub seq_len: usize,
    /// Accuracy of the reference forward on the test split.
    pub accuracy_reference: f64,
    /// The FP32 model against the reference forward.
    pub fp32: Fp32Report,
    /// The INT8 model against the FP32 model, when validating an INT8 model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub int8: Option<int8::Int8Report>,
    /// onnxruntime latency (1 thread), when a Python with onnxruntime was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub onnxruntime: Option<serde_json::Value>,
}

/// The FP32 model in tract.
#[derive(Clone, Debug, Serialize)]
pub struct Fp32Report {
    /// Accuracy in tract.
    pub accuracy_tract: f64,
    /// Top-1 agreement tract vs reference.
    pub agreement: f64,
    /// Largest |tract − reference| logit difference.
    pub max_abs_logit_diff: f32,
    /// Mean |tract − reference| logit difference.
    pub mean_abs_logit_diff: f64,
    /// The declared bound.
    pub logit_bound: f32,
    /// Median tract latency for one `[1, seq_len]` input, milliseconds (measured, not gated).
    pub tract_p50_ms: f64,
    /// File size in bytes.
    pub model_bytes: u64,
}

/// A model loaded in tract, run one right-padded utterance at a time.
pub(crate) struct TractModel {
    path: PathBuf,
    plan: std::sync::Arc<TypedRunnableModel>,
    pad: i64,
    classes: usize,
}

impl TractModel {
    pub(crate) fn load(path: &Path, bytes: &[u8], pad: i64, classes: usize) -> Result<Self, ValidateError> {
        let plan = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| ValidateError::Tract { path: path.into(), why: format!("{e:#}") })?;
        Ok(TractModel { path: path.into(), plan, pad, classes })
    }

    /// Logits of `ids` right-padded to `len` positions.
    pub(crate) fn run(&self, ids: &[u32], len: usize) -> Result<Vec<f32>, ValidateError> {
        let tract_err = |e: TractError| ValidateError::Tract { path: self.path.clone(), why: format!("{e:#}") };
        let mut input = vec![self.pad; len];
        let mut mask = vec![0i64; len];
        for (i, &id) in ids.iter().enumerate() {
            input[i] = id as i64;
            mask[i] = 1;
        }
        let a = tract_ndarray::Array2::from_shape_vec((1, len), input).expect("shape");
        let m = tract_ndarray::Array2::from_shape_vec((1, len), mask).expect("shape");
        let out = self.plan.run(tvec![Tensor::from(a).into(), Tensor::from(m).into()]).map_err(tract_err)?;
        let v: Vec<f32> = out[0].to_plain_array_view::<f32>().map_err(tract_err)?.iter().copied().collect();
        if v.len() != self.classes {
            return Err(ValidateError::Tract { path: self.path.clone(), why: format!("logits have {} values, expected {}", v.len(), self.classes) });
        }
        Ok(v)
    }

    /// Logits of every sequence, each padded by [`PAD_EXTRA`] positions (within `cap`).
    pub(crate) fn run_all(&self, seqs: &[Vec<u32>], cap: usize) -> Result<Vec<f32>, ValidateError> {
        let mut all = Vec::with_capacity(seqs.len() * self.classes);
        for ids in seqs {
            all.extend(self.run(ids, (ids.len() + PAD_EXTRA).min(cap.max(ids.len())))?);
        }
        Ok(all)
    }

    /// Median latency of one full-length input, milliseconds.
    pub(crate) fn p50_ms(&self, full: &[u32], runs: usize) -> Result<f64, ValidateError> {
        let mut times = Vec::with_capacity(runs.max(1));
        for _ in 0..runs.max(1) {
            let t0 = Instant::now();
            self.run(full, full.len())?;
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(|a, b| a.total_cmp(b));
        Ok(times[times.len() / 2])
    }
}

pub(crate) fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold(0, |b, (i, x)| if *x > v[b] { i } else { b })
}

/// Agreement and logit differences of two `[n, classes]` logit sets.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Comparison {
    pub agreement: f64,
    pub max_abs: f32,
    pub mean_abs: f64,
    pub rms: f64,
}

pub(crate) fn compare(a: &[f32], b: &[f32], classes: usize) -> Comparison {
    let n = (a.len() / classes.max(1)).max(1);
    let (mut max_abs, mut sum, mut sq, mut agree) = (0.0f32, 0.0f64, 0.0f64, 0usize);
    for (ra, rb) in a.chunks(classes).zip(b.chunks(classes)) {
        for (x, y) in ra.iter().zip(rb) {
            let d = (x - y).abs();
            max_abs = if d.is_nan() { f32::INFINITY } else { max_abs.max(d) };
            sum += f64::from(d);
            sq += f64::from(d) * f64::from(d);
        }
        agree += (argmax(ra) == argmax(rb)) as usize;
    }
    let count = (n * classes).max(1) as f64;
    Comparison { agreement: agree as f64 / n as f64, max_abs, mean_abs: sum / count, rms: (sq / count).sqrt() }
}

pub(crate) fn accuracy(logits: &[f32], classes: usize, labels: &[usize]) -> f64 {
    let ok = logits.chunks(classes).zip(labels).filter(|(l, &y)| argmax(l) == y).count();
    ok as f64 / labels.len().max(1) as f64
}

fn read(path: &Path) -> Result<Vec<u8>, ValidateError> {
    std::fs::read(path).map_err(|source| ValidateError::Io { path: path.into(), source })
}

/// Runs validation of `model_path` (FP32), or of an INT8 model against its
/// FP32 parent `fp32_path`; on success returns the report, on a failed gate
/// an error carrying it. `ort_python` measures onnxruntime latency.
pub fn validate(
    model_path: &Path,
    fp32_path: Option<&Path>,
    classifier_dir: &Path,
    intents_path: &Path,
    params: &AonValidateParams,
    ort_python: Option<&Path>,
) -> Result<ValidateReport, ValidateError> {
    let c = Classifier::load(classifier_dir)?;
    let data = Intents::read(intents_path, c.labels.len())?;
    let seq = c.info.max_seq_len;
    let classes = c.labels.len();
    let pad = c.tokenizer.pad_id().unwrap_or(0) as i64;
    let seqs: Vec<Vec<u32>> = c.tokenizer.encode_batch_capped(&data.test.texts, &c.seq_policy())?.into_iter().map(|e| e.ids).collect();
    let reference = c.logits(&seqs)?;
    let full: Vec<u32> = (0..seq).map(|i| seqs[0].get(i % seqs[0].len()).copied().unwrap_or(0)).collect();

    let fp32_file = fp32_path.unwrap_or(model_path);
    let fp32_bytes = read(fp32_file)?;
    let fp32 = TractModel::load(fp32_file, &fp32_bytes, pad, classes)?;
    let fp32_logits = fp32.run_all(&seqs, seq)?;
    let cmp = compare(&fp32_logits, &reference, classes);
    let mut report = ValidateReport {
        test_examples: seqs.len(),
        classes,
        seq_len: seq,
        accuracy_reference: accuracy(&reference, classes, &data.test.labels),
        fp32: Fp32Report {
            accuracy_tract: accuracy(&fp32_logits, classes, &data.test.labels),
            agreement: cmp.agreement,
            max_abs_logit_diff: cmp.max_abs,
            mean_abs_logit_diff: cmp.mean_abs,
            logit_bound: params.max_abs_logit_diff,
            tract_p50_ms: fp32.p50_ms(&full, params.latency_runs)?,
            model_bytes: fp32_bytes.len() as u64,
        },
        int8: None,
        onnxruntime: None,
    };
    let mut gate = if report.fp32.max_abs_logit_diff > params.max_abs_logit_diff {
        Some(format!("max |tract - reference| logit difference {:.3e} exceeds the bound {:.3e}", report.fp32.max_abs_logit_diff, params.max_abs_logit_diff))
    } else if report.fp32.agreement < params.min_agreement as f64 {
        Some(format!("top-1 agreement {:.4} is below {:.4}", report.fp32.agreement, params.min_agreement))
    } else if report.accuracy_reference < params.min_accuracy as f64 {
        Some(format!("test accuracy {:.4} is below {:.4}", report.accuracy_reference, params.min_accuracy))
    } else {
        None
    };
    if fp32_path.is_some() {
        let bytes = read(model_path)?;
        let ctx = int8::Context {
            path: model_path,
            bytes: &bytes,
            fp32_bytes: &fp32_bytes,
            fp32_logits: &fp32_logits,
            seqs: &seqs,
            labels: &data.test.labels,
            pad,
            classes,
            seq,
            full: &full,
        };
        let (r, g) = int8::validate(&ctx, &report, params)?;
        report.int8 = Some(r);
        gate = gate.or(g);
    }
    if let Some(py) = ort_python {
        let models: Vec<&Path> = if fp32_path.is_some() { vec![fp32_file, model_path] } else { vec![model_path] };
        report.onnxruntime = Some(ort_latency(py, &models, &full, params.latency_runs.max(5)));
    }
    match gate {
        Some(gate) => Err(ValidateError::Gate { path: model_path.into(), gate, report: Box::new(report) }),
        None => Ok(report),
    }
}

/// onnxruntime p50 latencies through `python`; a failure is reported, not fatal.
fn ort_latency(python: &Path, models: &[&Path], full: &[u32], runs: usize) -> serde_json::Value {
    let ids = serde_json::to_string(full).expect("serialisable");
    let mut cmd = std::process::Command::new(python);
    cmd.args(["-c", include_str!("ort_latency.py"), &full.len().to_string(), &runs.to_string(), &ids]).args(models);
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => return serde_json::json!({ "error": format!("{}: {e}", python.display()) }),
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return serde_json::json!({ "error": err.lines().last().unwrap_or("failed").to_string() });
    }
    let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }));
    // Name models by role, not by path.
    if let Some(p50) = v.get("p50_ms").and_then(|p| p.as_object()).cloned() {
        let role = |p: &Path| {
            if models.len() == 2 && p == models[0] {
                "fp32"
            } else if models.len() == 2 {
                "int8"
            } else {
                "model"
            }
        };
        let mut named = serde_json::Map::new();
        for m in models {
            if let Some(t) = p50.get(&m.display().to_string()) {
                named.insert(role(m).to_string(), t.clone());
            }
        }
        if let (Some(a), Some(b)) = (named.get("fp32").and_then(|x| x.as_f64()), named.get("int8").and_then(|x| x.as_f64())) {
            named.insert("speedup".into(), serde_json::json!(a / b));
        }
        v["p50_ms"] = serde_json::Value::Object(named);
    }
    v
}
