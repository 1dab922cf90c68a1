//! An INT8 model judged against its FP32 parent.
//!
//! Both run in tract on the whole test split (padded as in [`super`]); the
//! gates compare them: top-1 agreement, accuracy drop, file size (a ratio to
//! FP32 and optionally an absolute cap: the seed's "a model over 15 MB was
//! not quantized"), and float weights left behind. The project's evaluator
//! ([`crate::graph::eval`]) also simulates the INT8 graph, as an oracle for
//! tract, and runs both graphs on the first test utterances to report the
//! error each layer adds (at every LayerNormalization output, then the logits).

use super::{accuracy, compare, AonValidateParams, TractModel, ValidateError, ValidateReport};
use crate::graph::eval::{Evaluator, Value};
use crate::graph::{DType, Model};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// INT8 gates, as declared in a target's `validate.int8` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Int8Gates {
    /// Minimum top-1 agreement of INT8 with FP32 (both in tract), in [0, 1].
    pub min_agreement: f32,
    /// Largest accuracy loss of INT8 against FP32, in accuracy units (0.01 = one point).
    pub max_accuracy_drop: f32,
    /// Largest INT8 file size as a fraction of the FP32 file.
    pub max_size_ratio: f32,
    /// Largest INT8 file size in bytes, if set.
    pub max_model_bytes: Option<u64>,
    /// Float initializers of rank ≥ 2 with at least this many elements fail validation.
    pub float_weight_threshold: usize,
    /// Minimum top-1 agreement of tract with the reference INT8 simulation.
    pub min_simulation_agreement: f32,
    /// Test utterances used for the per-layer error figures.
    pub layer_examples: usize,
}

impl Default for Int8Gates {
    fn default() -> Self {
        Int8Gates {
            min_agreement: 0.99,
            max_accuracy_drop: 0.01,
            max_size_ratio: 0.27,
            max_model_bytes: None,
            float_weight_threshold: 1024,
            min_simulation_agreement: 0.99,
            layer_examples: 32,
        }
    }
}

/// Error statistics of one set of values against its FP32 counterpart.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ErrorStats {
    /// Largest absolute difference.
    pub max_abs: f32,
    /// Mean absolute difference.
    pub mean_abs: f64,
    /// Root-mean-square difference over root-mean-square FP32 value.
    pub rel_rms: f64,
}

/// The error one layer's output carries.
#[derive(Clone, Debug, Serialize)]
pub struct LayerError {
    /// The FP32 graph's value name.
    pub tensor: String,
    /// Its error against FP32.
    #[serde(flatten)]
    pub error: ErrorStats,
}

/// The INT8 part of the validation report.
#[derive(Clone, Debug, Serialize)]
pub struct Int8Report {
    /// INT8 file size in bytes.
    pub model_bytes: u64,
    /// INT8 size / FP32 size.
    pub size_ratio: f64,
    /// INT8 accuracy in tract.
    pub accuracy_tract: f64,
    /// FP32 accuracy in tract minus INT8 accuracy in tract.
    pub accuracy_drop: f64,
    /// Top-1 agreement with FP32 (both in tract).
    pub agreement_fp32: f64,
    /// INT8 logits against FP32 logits (tract).
    pub logits_vs_fp32: ErrorStats,
    /// Top-1 agreement of tract with the reference INT8 simulation.
    pub simulation_agreement: f64,
    /// Largest |tract − simulation| INT8 logit difference.
    pub simulation_max_abs_logit_diff: f32,
    /// Per-layer error of the reference INT8 simulation against the FP32 graph, in graph order.
    pub layers: Vec<LayerError>,
    /// Test utterances behind `layers`.
    pub layer_examples: usize,
    /// Float weights (rank ≥ 2, at or above the threshold) left unquantized: name → elements.
    pub float_weights: BTreeMap<String, usize>,
    /// Initializers stored as 8-bit integers.
    pub int8_initializers: usize,
    /// Median tract latency of the INT8 model, milliseconds.
    pub tract_p50_ms: f64,
    /// FP32 tract latency / INT8 tract latency.
    pub tract_speedup: f64,
}

/// What [`validate`] needs from the caller.
pub(super) struct Context<'a> {
    pub path: &'a Path,
    pub bytes: &'a [u8],
    pub fp32_bytes: &'a [u8],
    pub fp32_logits: &'a [f32],
    pub seqs: &'a [Vec<u32>],
    pub labels: &'a [usize],
    pub pad: i64,
    pub classes: usize,
    pub seq: usize,
    pub full: &'a [u32],
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Model, ValidateError> {
    crate::graph::onnx::from_bytes(bytes, &path.display().to_string()).map_err(|e| ValidateError::Graph { path: path.into(), why: e.to_string() })
}

fn inputs(ids: &[u32]) -> [(&'static str, Value); 2] {
    let n = ids.len();
    [("input_ids", Value::i64(&[1, n], ids.iter().map(|&v| v as i64).collect())), ("attention_mask", Value::i64(&[1, n], vec![1; n]))]
}

/// Judges the INT8 model; returns its report and the first failed gate.
pub(super) fn validate(ctx: &Context, base: &ValidateReport, params: &AonValidateParams) -> Result<(Int8Report, Option<String>), ValidateError> {
    let g = &params.int8;
    let tract = TractModel::load(ctx.path, ctx.bytes, ctx.pad, ctx.classes)?;
    let logits = tract.run_all(ctx.seqs, ctx.seq)?;
    let vs_fp32 = compare(&logits, ctx.fp32_logits, ctx.classes);
    let accuracy_tract = accuracy(&logits, ctx.classes, ctx.labels);

    let int8 = parse(ctx.path, ctx.bytes)?;
    let fp32 = parse(ctx.path, ctx.fp32_bytes)?;
    let (simulation, layers) = simulate(ctx, &fp32, &int8, g.layer_examples)?;
    let vs_sim = compare(&logits, &simulation, ctx.classes);
    let float_weights: BTreeMap<String, usize> = int8
        .graph
        .initializers
        .iter()
        .filter(|(_, t)| t.dtype == DType::F32 && t.dims.len() >= 2 && t.numel() >= g.float_weight_threshold)
        .map(|(k, t)| (k.clone(), t.numel()))
        .collect();
    let tract_p50_ms = tract.p50_ms(ctx.full, params.latency_runs)?;
    let r = Int8Report {
        model_bytes: ctx.bytes.len() as u64,
        size_ratio: ctx.bytes.len() as f64 / ctx.fp32_bytes.len().max(1) as f64,
        accuracy_tract,
        accuracy_drop: base.fp32.accuracy_tract - accuracy_tract,
        agreement_fp32: vs_fp32.agreement,
        logits_vs_fp32: stats_from(vs_fp32, ctx.fp32_logits),
        simulation_agreement: vs_sim.agreement,
        simulation_max_abs_logit_diff: vs_sim.max_abs,
        layers,
        layer_examples: g.layer_examples.min(ctx.seqs.len()),
        float_weights,
        int8_initializers: int8.graph.initializers.values().filter(|t| matches!(t.dtype, DType::I8 | DType::U8)).count(),
        tract_p50_ms,
        tract_speedup: base.fp32.tract_p50_ms / tract_p50_ms,
    };
    let gate = if r.agreement_fp32 < f64::from(g.min_agreement) {
        Some(format!("INT8 top-1 agreement with FP32 {:.4} is below {:.4}", r.agreement_fp32, g.min_agreement))
    } else if r.accuracy_drop > f64::from(g.max_accuracy_drop) + 1e-9 {
        Some(format!(
            "INT8 accuracy {:.4} is {:.4} below FP32's {:.4} (allowed {:.4})",
            r.accuracy_tract, r.accuracy_drop, base.fp32.accuracy_tract, g.max_accuracy_drop
        ))
    } else if r.size_ratio > f64::from(g.max_size_ratio) {
        Some(format!(
            "INT8 file is {} bytes, {:.1}% of FP32's {} (allowed {:.1}%); float weights left: {}",
            r.model_bytes,
            100.0 * r.size_ratio,
            ctx.fp32_bytes.len(),
            100.0 * g.max_size_ratio,
            list(&r.float_weights)
        ))
    } else if let Some(cap) = g.max_model_bytes.filter(|&cap| r.model_bytes > cap) {
        Some(format!(
            "INT8 file is {} bytes, above the {cap}-byte cap (quantization not applied?); float weights left: {}",
            r.model_bytes,
            list(&r.float_weights)
        ))
    } else if !r.float_weights.is_empty() {
        Some(format!("weights left in FP32 (threshold {} elements): {}", g.float_weight_threshold, list(&r.float_weights)))
    } else if r.simulation_agreement < f64::from(g.min_simulation_agreement) {
        Some(format!(
            "tract agrees with the reference INT8 simulation on {:.4} of the test set (below {:.4})",
            r.simulation_agreement, g.min_simulation_agreement
        ))
    } else {
        None
    };
    Ok((r, gate))
}

fn list(m: &BTreeMap<String, usize>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter().map(|(k, n)| format!("{k} ({n})")).collect::<Vec<_>>().join(", ")
}

fn stats_from(c: super::Comparison, reference: &[f32]) -> ErrorStats {
    let ref_rms = (reference.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / reference.len().max(1) as f64).sqrt();
    ErrorStats { max_abs: c.max_abs, mean_abs: c.mean_abs, rel_rms: if ref_rms > 0.0 { c.rms / ref_rms } else { 0.0 } }
}

/// The INT8 graph in the reference evaluator on every test utterance
/// (unpadded), and per-layer errors against FP32 on the first `examples`.
fn simulate(ctx: &Context, fp32: &Model, int8: &Model, examples: usize) -> Result<(Vec<f32>, Vec<LayerError>), ValidateError> {
    let eval_err = |e: crate::graph::eval::EvalError| ValidateError::Graph { path: ctx.path.into(), why: format!("reference INT8 simulation: {e}") };
    let e8 = Evaluator::new(int8).map_err(eval_err)?;
    let e32 = Evaluator::new(fp32).map_err(eval_err)?;
    let int8_values: BTreeSet<&str> = int8.graph.nodes.iter().flat_map(|n| n.outputs.iter().map(String::as_str)).collect();
    let mut tracked: Vec<&str> =
        fp32.graph.nodes.iter().filter(|n| n.op == "LayerNormalization").map(|n| n.outputs[0].as_str()).filter(|o| int8_values.contains(o)).collect();
    let out_name = fp32.graph.outputs.first().map(|o| o.name.as_str()).unwrap_or("logits");
    tracked.push(out_name);
    // Per tensor: (sum |d|, sum d², sum x², max |d|, count).
    let mut acc: BTreeMap<&str, (f64, f64, f64, f32, usize)> = BTreeMap::new();
    let mut sim = Vec::with_capacity(ctx.seqs.len() * ctx.classes);
    for (i, ids) in ctx.seqs.iter().enumerate() {
        let mut seen8: BTreeMap<String, Vec<f32>> = BTreeMap::new();
        let layer = i < examples;
        let out = e8
            .run(&inputs(ids), &mut |name, v| {
                if layer && tracked.contains(&name) {
                    if let Some(a) = v.as_f32() {
                        seen8.insert(name.to_string(), a.data.clone());
                    }
                }
            })
            .map_err(eval_err)?;
        let l = out
            .get(out_name)
            .and_then(|v| v.as_f32())
            .ok_or_else(|| ValidateError::Graph { path: ctx.path.into(), why: format!("no float output {out_name}") })?;
        sim.extend_from_slice(&l.data);
        if !layer {
            continue;
        }
        e32.run(&inputs(ids), &mut |name, v| {
            if let (Some(q), Some(a)) = (seen8.get(name), v.as_f32()) {
                let e = acc.entry(tracked[tracked.iter().position(|t| *t == name).expect("tracked")]).or_default();
                for (x, y) in a.data.iter().zip(q) {
                    let d = f64::from(x - y);
                    e.0 += d.abs();
                    e.1 += d * d;
                    e.2 += f64::from(*x) * f64::from(*x);
                    e.3 = e.3.max((x - y).abs());
                    e.4 += 1;
                }
            }
        })
        .map_err(eval_err)?;
    }
    let layers = tracked
        .iter()
        .filter_map(|t| acc.get(t).map(|e| (t, e)))
        .map(|(t, &(sa, sd, sx, mx, n))| LayerError {
            tensor: t.to_string(),
            error: ErrorStats { max_abs: mx, mean_abs: sa / n.max(1) as f64, rel_rms: if sx > 0.0 { (sd / sx).sqrt() } else { 0.0 } },
        })
        .collect();
    Ok((sim, layers))
}
