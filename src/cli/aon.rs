//! `avac aon <step>`: the AON pipeline steps.

use crate::aon::{convert, export, validate};
use crate::atomic;
use clap::Subcommand;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub(super) enum AonCmd {
    /// Checkpoint directory → classifier directory (head, sequence cap, vocabulary pruning).
    Convert {
        /// Hugging Face model directory (config.json, model.safetensors, tokenizer.json).
        #[arg(long)]
        model: PathBuf,
        /// Labelled intents ({"train": [[text, label]…], "test": …}).
        #[arg(long)]
        intents: PathBuf,
        /// Calibration text (JSON array of strings), part of the pruning corpus.
        #[arg(long)]
        calibration: Option<PathBuf>,
        /// Conversion parameters (JSON).
        #[arg(long)]
        params: PathBuf,
        /// Output classifier directory (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Classifier directory → ONNX opset 17.
    Export {
        /// Classifier directory.
        #[arg(long)]
        classifier: PathBuf,
        /// Extra metadata_props (JSON object of strings).
        #[arg(long)]
        metadata: Option<PathBuf>,
        /// Output model.
        #[arg(long)]
        out: PathBuf,
    },
    /// ONNX → optimized ONNX (folding, DCE, fusions, dedup, shapes).
    Optimize {
        /// Input model.
        #[arg(long = "in")]
        input: PathBuf,
        /// Output model.
        #[arg(long)]
        out: PathBuf,
        /// Where to write the before/after report (JSON).
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// FP32 ONNX → static INT8 QDQ ONNX, calibrated with the reference evaluator.
    Quantize {
        /// Input (optimized FP32) model.
        #[arg(long = "in")]
        input: PathBuf,
        /// Classifier directory (its tokenizer and sequence policy encode the calibration text).
        #[arg(long)]
        classifier: PathBuf,
        /// Calibration text (JSON array of strings).
        #[arg(long)]
        calibration: PathBuf,
        /// Quantization parameters (JSON); defaults when absent.
        #[arg(long)]
        params: Option<PathBuf>,
        /// Output model.
        #[arg(long)]
        out: PathBuf,
        /// Where to write the quantization report (JSON).
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Run the model in tract against the reference forward (and an INT8 model against its FP32 parent) and the gates.
    Validate {
        /// The model.
        #[arg(long)]
        model: PathBuf,
        /// The FP32 parent of an INT8 `--model`: enables the INT8 gates.
        #[arg(long)]
        fp32: Option<PathBuf>,
        /// A Python with onnxruntime: also report onnxruntime latency (1 thread).
        #[arg(long)]
        ort_python: Option<PathBuf>,
        /// Classifier directory it was exported from.
        #[arg(long)]
        classifier: PathBuf,
        /// Labelled intents (the test split is used).
        #[arg(long)]
        intents: PathBuf,
        /// Gates (JSON); defaults when absent.
        #[arg(long)]
        params: Option<PathBuf>,
        /// Where to write the report (JSON).
        #[arg(long)]
        report: PathBuf,
    },
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Result<T, String> {
    let b = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", p.display()))
}

fn pretty(v: &impl serde::Serialize) -> Vec<u8> {
    let mut b = serde_json::to_vec_pretty(v).expect("serialisable");
    b.push(b'\n');
    b
}

pub(super) fn run(cmd: AonCmd) -> Result<i32, Box<dyn std::error::Error>> {
    match cmd {
        AonCmd::Convert { model, intents, calibration, params, out } => {
            let p: convert::AonConvertParams = read_json(&params)?;
            if out.exists() {
                return Err(format!("{}: already exists", out.display()).into());
            }
            let mut report = None;
            atomic::dir(&out, |tmp| -> Result<(), Box<dyn std::error::Error>> {
                report = Some(convert::convert(&model, &intents, calibration.as_deref(), &p, tmp)?);
                Ok(())
            })?;
            eprintln!("{}", serde_json::to_string(&report).expect("serialisable"));
            Ok(0)
        }
        AonCmd::Export { classifier, metadata, out } => {
            let c = crate::aon::classifier::Classifier::load(&classifier)?;
            let mut meta: BTreeMap<String, String> = match metadata {
                Some(p) => read_json(&p)?,
                None => BTreeMap::new(),
            };
            meta.insert("avac.version".into(), crate::VERSION.into());
            meta.insert("avac.intent_labels".into(), serde_json::to_string(&c.labels)?);
            meta.insert("avac.max_seq_len".into(), c.info.max_seq_len.to_string());
            meta.insert("avac.tokenizer_sha256".into(), c.tokenizer.digest());
            meta.insert("avac.pooling".into(), serde_json::to_value(c.pooling)?.as_str().unwrap_or_default().into());
            let m = export::export(&c, meta);
            atomic::write(&out, &crate::graph::onnx::to_bytes(&m)).map_err(|e| format!("{}: {e}", out.display()))?;
            Ok(0)
        }
        AonCmd::Optimize { input, out, report } => {
            let bytes = std::fs::read(&input).map_err(|e| format!("{}: {e}", input.display()))?;
            let mut m = crate::graph::onnx::from_bytes(&bytes, &input.display().to_string())?;
            let mut r = crate::graph::passes::optimize(&mut m)?;
            let out_bytes = crate::graph::onnx::to_bytes(&m);
            let sizes = serde_json::json!({ "before": bytes.len(), "after": out_bytes.len() });
            atomic::write(&out, &out_bytes).map_err(|e| format!("{}: {e}", out.display()))?;
            if let Some(rp) = report {
                let mut v = serde_json::to_value(&mut r)?;
                v["file_bytes"] = sizes;
                atomic::write(&rp, &pretty(&v)).map_err(|e| format!("{}: {e}", rp.display()))?;
            }
            Ok(0)
        }
        AonCmd::Quantize { input, classifier, calibration, params, out, report } => {
            let p: crate::aon::quantize::AonQuantizeParams = match params {
                Some(p) => read_json(&p)?,
                None => Default::default(),
            };
            let c = crate::aon::classifier::Classifier::load(&classifier)?;
            let texts = crate::aon::intents::read_calibration(&calibration)?;
            let seqs: Vec<Vec<u32>> = c.tokenizer.encode_batch_capped(&texts, &c.seq_policy())?.into_iter().map(|e| e.ids).collect();
            let bytes = std::fs::read(&input).map_err(|e| format!("{}: {e}", input.display()))?;
            let m = crate::graph::onnx::from_bytes(&bytes, &input.display().to_string())?;
            let (q, r) = crate::aon::quantize::run(&m, &seqs, &p)?;
            if !r.constant_activations.is_empty() {
                eprintln!(
                    "warning: {}: {} activation(s) took a single value on all calibration text (exact, but the text may not exercise the model): {}",
                    calibration.display(),
                    r.constant_activations.len(),
                    r.constant_activations.join(", ")
                );
            }
            atomic::write(&out, &crate::graph::onnx::to_bytes(&q)).map_err(|e| format!("{}: {e}", out.display()))?;
            if let Some(rp) = report {
                atomic::write(&rp, &pretty(&r)).map_err(|e| format!("{}: {e}", rp.display()))?;
            }
            Ok(0)
        }
        AonCmd::Validate { model, fp32, ort_python, classifier, intents, params, report } => {
            let p: validate::AonValidateParams = match params {
                Some(p) => read_json(&p)?,
                None => Default::default(),
            };
            match validate::validate(&model, fp32.as_deref(), &classifier, &intents, &p, ort_python.as_deref()) {
                Ok(r) => {
                    atomic::write(&report, &pretty(&r)).map_err(|e| format!("{}: {e}", report.display()))?;
                    eprintln!("{}", serde_json::to_string(&r)?);
                    Ok(0)
                }
                Err(validate::ValidateError::Gate { path, gate, report: r }) => {
                    // The report is written either way: it is what explains the failure.
                    atomic::write(&report, &pretty(&r)).map_err(|e| format!("{}: {e}", report.display()))?;
                    eprintln!("error: {}: validation failed: {gate}\n{}", path.display(), serde_json::to_string_pretty(&r)?);
                    Ok(super::EXIT_GATE)
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}
