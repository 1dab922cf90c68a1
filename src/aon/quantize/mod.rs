//! `avac aon quantize`: INT8 ONNX (opset 17) from the optimized FP32 model.
//!
//! Two modes. **Static** (the default, the seed's mode) writes QDQ form with
//! activation ranges from calibration; **dynamic** quantizes weights only and
//! lets the runtime quantize activations per inference (for comparison).
//! Both are laid out so that onnxruntime fuses every weight product into an
//! integer kernel, checked against its optimized-graph dump in the tests:
//!
//! ```text
//! static   W.q (int8) ─ DequantizeLinear ───────────────────────────────┐
//!          A ─ QuantizeLinear(uint8) ─ DequantizeLinear ────────────────┴→ MatMul / Gemm
//!          bias of a Gemm: int32 at scale A.scale × W.scale ─ DequantizeLinear ─→ Gemm input C
//!                                                (→ MatMulIntegerToFloat / QGemm in onnxruntime)
//! dynamic  A ─ DynamicQuantizeLinear ─ MatMulInteger(A.q, W.q, A.zp, W.zp) ─ Cast ─ Mul(A.scale × W.scale) [─ Add bias]
//!                                                (→ DynamicQuantizeMatMul in onnxruntime)
//! both     embedding table int8 ─ Gather(input_ids) ─ DequantizeLinear   (gathered before dequantization)
//!          any other float weight ≥ `min_weight_elements` ─ int8 ─ DequantizeLinear (weight-only)
//! ```
//!
//! Weights are int8 symmetric, per tensor (the default) or per output
//! channel (`axis = 1` of the `[K, N]` MatMul weight); static activations
//! are uint8 asymmetric with ranges from calibration. Every weight
//! initializer is quantized once and keeps its single name, so ALBERT's
//! shared layer stays one int8 tensor referenced by every layer. Attention's
//! activation × activation MatMuls get both inputs quantized (QDQ pairs, or
//! two DynamicQuantizeLinear in dynamic mode) unless `attention = false`.
//!
//! Calibration runs the FP32 graph in [`crate::graph::eval`] (the project's
//! deterministic reference math) over the calibration token sequences, each
//! at its own length, and feeds every quantized activation into a
//! [`crate::quant::observers::Observer`] — twice when the method needs a
//! histogram. Same inputs ⇒ same ranges ⇒ same bytes, on any machine.
//! An activation whose calibrated range is a single value (a constant) is
//! listed in the report's `constant_activations`: its quantization is exact
//! but it usually means the calibration text does not exercise the model.
//!
//! # Where each part lives
//!
//! [`run`] takes the steps in this order; each file is one of them, over the
//! graph. The arithmetic is in [`crate::quant`] (no graphs there).
//!
//! - `mod.rs`: the parameters, the report, which products and tensors are
//!   selected, and [`run`].
//! - `smooth.rs`: smoothing (SmoothQuant), an exact FP32 rewrite.
//! - `bias.rs`: bias correction for the int8 weights' mean shift.
//! - `calibrate.rs`: the FP32 graph over the calibration text, feeding
//!   [`crate::quant::observers`] (ranges) and per-channel statistics.
//! - `qdq.rs`: the rewrite into QDQ (static) or DynamicQuantizeLinear
//!   chains (dynamic), with int8 weights and int32 biases from
//!   [`crate::quant::int8`].

mod bias;
mod calibrate;
mod qdq;
mod smooth;

use crate::graph::eval::EvalError;
use crate::graph::{DType, Model};
use crate::quant::int8::Int8Error;
use crate::quant::observers::{CalibrateError, Method};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Static (calibrated QDQ) or dynamic (weights only, activations at run time).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// QDQ with calibrated activation ranges.
    #[default]
    Static,
    /// int8 weights, DynamicQuantizeLinear on activations.
    Dynamic,
}

/// Quantization parameters, as declared in a target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AonQuantizeParams {
    /// Static or dynamic.
    pub mode: Mode,
    /// Activation range calibration method (static mode).
    pub calibration: Method,
    /// One weight scale per output channel instead of per tensor.
    pub per_channel: bool,
    /// Quantize both inputs of activation × activation MatMuls (attention).
    pub attention: bool,
    /// Store the word embedding table as int8.
    pub embedding: bool,
    /// Weights with fewer elements stay float.
    pub min_weight_elements: usize,
    /// Smoothing strength α in [0, 1] (see [`smooth`]); `null` turns smoothing off.
    pub smoothing: Option<f32>,
    /// Subtract the mean shift int8 weights cause from each product's bias (see [`bias`]).
    pub bias_correction: bool,
}

impl Default for AonQuantizeParams {
    fn default() -> Self {
        AonQuantizeParams {
            mode: Mode::Static,
            calibration: Method::MinMax,
            per_channel: false,
            attention: true,
            embedding: true,
            min_weight_elements: 1024,
            smoothing: Some(0.5),
            bias_correction: true,
        }
    }
}

/// Failures quantizing.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    /// The FP32 graph could not be evaluated for calibration.
    #[error("calibration run failed: {0}")]
    Eval(#[from] EvalError),
    /// A calibration error.
    #[error(transparent)]
    Calibrate(#[from] CalibrateError),
    /// An int8 weight could not be quantized.
    #[error(transparent)]
    Int8(#[from] Int8Error),
    /// No calibration text.
    #[error("no calibration sequences: static INT8 needs calibration text (a JSON array of strings, e.g. [\"set an alarm for 7\", \"what's the weather\"])")]
    NoCalibration,
    /// The graph is not one this step understands.
    #[error("node {node}: {why}")]
    Graph {
        /// The node.
        node: String,
        /// What is wrong.
        why: String,
    },
}

/// What quantization did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct QuantizeReport {
    /// Static or dynamic.
    pub mode: Mode,
    /// Smoothing strength used, if any.
    pub smoothing: Option<f32>,
    /// Activations smoothed (each now read through `<name>.smooth`).
    pub smoothed_activations: Vec<String>,
    /// Biases corrected for the int8 weights' mean shift.
    pub corrected_biases: Vec<String>,
    /// Weight initializers stored as int8 and read by an integer product.
    pub int8_weights: Vec<String>,
    /// Other weights stored as int8 and dequantized before use (embedding tables, position tables).
    pub int8_weight_only: Vec<String>,
    /// Gemm biases stored as int32 at the product's scale.
    pub int32_biases: Vec<String>,
    /// Activations with a QDQ pair, with their calibrated range (static mode).
    pub activations: BTreeMap<String, [f32; 2]>,
    /// Activations quantized at run time (dynamic mode).
    pub dynamic_activations: Vec<String>,
    /// Activations whose calibrated range is a single value.
    pub constant_activations: Vec<String>,
    /// Float initializers left with more than one element (name → elements).
    pub float_initializers: BTreeMap<String, usize>,
    /// Calibration sequences used.
    pub calibration_sequences: usize,
}

/// What the graph offers to quantize.
struct Selection {
    /// `[K, N]` float weights read by MatMul/Gemm input 1.
    weights: BTreeSet<String>,
    /// `(node, input)` activations read by a quantized product.
    act_uses: BTreeSet<(usize, usize)>,
    /// The word embedding: (Gather node, table).
    embedding: Option<(usize, String)>,
}

impl Selection {
    fn activations<'m>(&self, m: &'m Model) -> BTreeSet<&'m str> {
        self.act_uses.iter().map(|&(i, k)| m.graph.nodes[i].inputs[k].as_str()).collect()
    }

    /// Weight products as (node, activation, weight), in graph order.
    fn weight_products<'m>(&self, m: &'m Model) -> Vec<(usize, &'m str, &'m str)> {
        let g = &m.graph;
        self.act_uses
            .iter()
            .filter(|&&(i, k)| k == 0 && self.weights.contains(&g.nodes[i].inputs[1]))
            .map(|&(i, _)| (i, g.nodes[i].inputs[0].as_str(), g.nodes[i].inputs[1].as_str()))
            .collect()
    }
}

fn select(m: &Model, p: &AonQuantizeParams) -> Result<Selection, QuantizeError> {
    let g = &m.graph;
    let mut s = Selection { weights: BTreeSet::new(), act_uses: BTreeSet::new(), embedding: None };
    for (i, n) in g.nodes.iter().enumerate() {
        let is_init = |k: usize| n.inputs.get(k).is_some_and(|x| g.initializers.contains_key(x));
        match n.op.as_str() {
            "MatMul" | "Gemm" => {
                if n.op == "Gemm" {
                    if n.int("transA").unwrap_or(0) != 0 || n.int("transB").unwrap_or(0) != 0 {
                        return Err(QuantizeError::Graph { node: n.name.clone(), why: "Gemm with transposed inputs".into() });
                    }
                    for a in ["alpha", "beta"] {
                        if let Some(crate::graph::Attr::Float(v)) = n.attrs.get(a) {
                            if *v != 1.0 {
                                return Err(QuantizeError::Graph { node: n.name.clone(), why: format!("Gemm with {a} = {v} (only 1 is supported)") });
                            }
                        }
                    }
                }
                if is_init(1) {
                    let w = &g.initializers[&n.inputs[1]];
                    if w.dtype == DType::F32 && w.dims.len() == 2 && w.numel() >= p.min_weight_elements && !is_init(0) {
                        s.weights.insert(n.inputs[1].clone());
                        s.act_uses.insert((i, 0));
                    }
                } else if p.attention && !is_init(0) && n.op == "MatMul" {
                    s.act_uses.insert((i, 0));
                    s.act_uses.insert((i, 1));
                }
            }
            "Gather" if p.embedding && is_init(0) && n.int("axis").unwrap_or(0) == 0 && s.embedding.is_none() => {
                let t = &g.initializers[&n.inputs[0]];
                if t.dtype == DType::F32 && t.dims.len() == 2 && t.numel() >= p.min_weight_elements {
                    s.embedding = Some((i, n.inputs[0].clone()));
                }
            }
            _ => {}
        }
    }
    Ok(s)
}

/// The `quantize` step: quantizes `fp32`; static mode calibrates on
/// `calibration` token sequences.
pub fn run(fp32: &Model, calibration: &[Vec<u32>], p: &AonQuantizeParams) -> Result<(Model, QuantizeReport), QuantizeError> {
    if p.mode == Mode::Static && calibration.is_empty() {
        return Err(QuantizeError::NoCalibration);
    }
    if let Some(a) = p.smoothing.filter(|a| !(0.0..=1.0).contains(a)) {
        return Err(QuantizeError::Graph { node: "parameters".into(), why: format!("smoothing {a} is outside [0, 1]") });
    }
    let sel = select(fp32, p)?;
    // Smoothing needs calibration text; dynamic mode without any skips it.
    let (base, smoothed, alpha) = match p.smoothing {
        Some(alpha) if !calibration.is_empty() && !sel.weights.is_empty() => {
            let (m, acts) = smooth::smooth(fp32, &sel, calibration, alpha)?;
            (std::borrow::Cow::Owned(m), acts, Some(alpha))
        }
        _ => (std::borrow::Cow::Borrowed(fp32), Vec::new(), None),
    };
    let sel = if smoothed.is_empty() { sel } else { select(&base, p)? };
    let (base, corrected) = if p.bias_correction && !calibration.is_empty() {
        let (m, c) = bias::correct(&base, &sel, calibration, p.per_channel)?;
        (std::borrow::Cow::Owned(m), c)
    } else {
        (base, Vec::new())
    };
    let base: &Model = &base;
    let ranges = match p.mode {
        Mode::Static => calibrate::ranges(base, &sel.activations(base), calibration, &p.calibration)?,
        Mode::Dynamic => BTreeMap::new(),
    };
    let (mut m, mut report) = qdq::rewrite(base, &sel, &ranges, p)?;
    report.smoothing = alpha;
    report.smoothed_activations = smoothed;
    report.corrected_biases = corrected;
    report.calibration_sequences = calibration.len();
    m.graph.value_info.clear();
    crate::graph::passes::shapes::run(&mut m).map_err(|e| QuantizeError::Graph { node: "shape inference".into(), why: e.to_string() })?;
    report.float_initializers =
        m.graph.initializers.iter().filter(|(_, t)| t.dtype == DType::F32 && t.numel() > 1).map(|(k, t)| (k.clone(), t.numel())).collect();
    Ok((m, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::eval::Evaluator;
    use crate::graph::passes::testgraph::{tiny_encoder, Act, Pool};
    use crate::graph::Tensor;

    #[test]
    fn constant_activation_is_reported_and_quantized_exactly() {
        let mut m = tiny_encoder(Act::Erf, Pool::Mean, 1, false);
        // Zero the first FFN projection: GELU(0) = 0 is the next product's input everywhere.
        let names: Vec<String> = m.graph.initializers.keys().filter(|k| k.ends_with(".ffn.weight") || k.ends_with(".ffn.bias")).cloned().collect();
        assert_eq!(names.len(), 2, "{names:?}");
        for n in &names {
            let t = &m.graph.initializers[n];
            let zeros = Tensor::f32(&t.dims.clone(), &vec![0.0; t.numel()]);
            m.graph.initializers.insert(n.clone(), zeros);
        }
        crate::graph::passes::optimize(&mut m).unwrap();
        let p = AonQuantizeParams { min_weight_elements: 1, ..Default::default() };
        let cal = vec![vec![1, 5, 9, 2], vec![3, 4, 7, 8, 11, 2]];
        let (q, r) = run(&m, &cal, &p).unwrap();
        assert!(!r.constant_activations.is_empty(), "{r:?}");
        // The zero range gets scale 1 and zero point 0: 0 quantizes exactly, and the model still runs.
        let a = &r.constant_activations[0];
        assert_eq!(r.activations[a], [0.0, 0.0]);
        let ev = Evaluator::new(&q).unwrap();
        let out = ev.run(&calibrate::calibration_inputs(&cal[0]), &mut |_, _| {}).unwrap();
        assert!(out["logits"].as_f32().unwrap().data.iter().all(|x| x.is_finite()));
    }
}
