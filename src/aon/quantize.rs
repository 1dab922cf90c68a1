//! `avac aon quantize`: static INT8 in QDQ form (opset 17).
//!
//! Layout, chosen so that runtimes fuse every weight product into an
//! integer kernel:
//!
//! ```text
//! W (f32 [K, N])  →  W.q (int8) ─ DequantizeLinear(W.scale, W.zero_point) ─┐
//! A (activation)  →  QuantizeLinear(A.scale, A.zero_point: uint8) ─ DequantizeLinear ─┴→ MatMul / Gemm
//! embedding table →  int8 ─ Gather(input_ids) ─ DequantizeLinear   (gathered before dequantization)
//! ```
//!
//! Weights are int8 symmetric, per tensor (the default) or per output
//! channel (`axis = 1` of the `[K, N]` MatMul weight); activations are
//! uint8 asymmetric with ranges from calibration. Every weight initializer is
//! quantized once and keeps its single name, so ALBERT's shared layer stays
//! one int8 tensor referenced by every layer. Attention's activation ×
//! activation MatMuls get a QDQ pair on both inputs.
//!
//! Calibration runs the FP32 graph in [`crate::graph::eval`] (the project's
//! deterministic reference math) over the calibration token sequences, each
//! at its own length, and feeds every quantized activation into a
//! [`crate::quant::calibrate::Observer`] — twice when the method needs a
//! histogram. Same inputs ⇒ same ranges ⇒ same bytes, on any machine.

use crate::graph::eval::{EvalError, Evaluator, Value};
use crate::graph::{Attr, DType, Model, Node, Tensor};
use crate::quant::calibrate::{self, CalibrateError, Method, Observer, QuantParams};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Quantization parameters, as declared in a target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuantizeParams {
    /// Activation range calibration method.
    pub calibration: Method,
    /// One weight scale per output channel instead of per tensor.
    pub per_channel: bool,
    /// Quantize both inputs of activation × activation MatMuls (attention).
    pub attention: bool,
    /// Store the word embedding table as int8.
    pub embedding: bool,
    /// Weights with fewer elements stay float.
    pub min_weight_elements: usize,
}

impl Default for QuantizeParams {
    fn default() -> Self {
        QuantizeParams { calibration: Method::MinMax, per_channel: false, attention: true, embedding: true, min_weight_elements: 1024 }
    }
}

/// Failures quantizing.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    /// The FP32 graph could not be evaluated for calibration.
    #[error("calibration run failed: {0}")]
    Eval(#[from] EvalError),
    /// A calibration or weight quantization error.
    #[error(transparent)]
    Calibrate(#[from] CalibrateError),
    /// No calibration text.
    #[error("no calibration sequences: static INT8 needs calibration text")]
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
    /// Weight initializers stored as int8.
    pub int8_weights: Vec<String>,
    /// Activations with a QDQ pair, with their calibrated range.
    pub activations: BTreeMap<String, [f32; 2]>,
    /// Float initializers left (name → elements).
    pub float_initializers: BTreeMap<String, usize>,
    /// Calibration sequences used.
    pub calibration_sequences: usize,
}

fn f32_init(m: &Model, name: &str) -> Option<(Vec<i64>, Vec<f32>)> {
    let t = m.graph.initializers.get(name)?;
    Some((t.dims.clone(), t.to_f32()?))
}

fn i8_tensor(dims: &[i64], v: &[i8]) -> Tensor {
    Tensor { dtype: DType::I8, dims: dims.to_vec(), data: v.iter().map(|&x| x as u8).collect() }
}

fn node(name: String, op: &str, inputs: Vec<String>, output: String, attrs: Vec<(&str, Attr)>) -> Node {
    Node { name, op: op.into(), domain: String::new(), inputs, outputs: vec![output], attrs: attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect() }
}

/// Quantizes `fp32`, calibrating on `calibration` token sequences.
pub fn quantize(fp32: &Model, calibration: &[Vec<u32>], p: &QuantizeParams) -> Result<(Model, QuantizeReport), QuantizeError> {
    if calibration.is_empty() {
        return Err(QuantizeError::NoCalibration);
    }
    let g = &fp32.graph;
    // 1. What to quantize.
    let mut weights: BTreeSet<String> = BTreeSet::new(); // [K, N] weights of MatMul/Gemm
    let mut acts: BTreeSet<String> = BTreeSet::new();
    let mut act_uses: BTreeSet<(usize, usize)> = BTreeSet::new(); // (node, input) rewired to the DQ
    let mut embedding: Option<(usize, String)> = None;
    for (i, n) in g.nodes.iter().enumerate() {
        let is_init = |k: usize| n.inputs.get(k).is_some_and(|x| g.initializers.contains_key(x));
        match n.op.as_str() {
            "MatMul" | "Gemm" => {
                if n.op == "Gemm" && (n.int("transA").unwrap_or(0) != 0 || n.int("transB").unwrap_or(0) != 0) {
                    return Err(QuantizeError::Graph { node: n.name.clone(), why: "Gemm with transposed inputs".into() });
                }
                if is_init(1) {
                    let w = &g.initializers[&n.inputs[1]];
                    if w.dtype == DType::F32 && w.dims.len() == 2 && w.numel() >= p.min_weight_elements {
                        weights.insert(n.inputs[1].clone());
                        if !is_init(0) {
                            acts.insert(n.inputs[0].clone());
                            act_uses.insert((i, 0));
                        }
                    }
                } else if p.attention && !is_init(0) && n.op == "MatMul" {
                    for k in 0..2 {
                        acts.insert(n.inputs[k].clone());
                        act_uses.insert((i, k));
                    }
                }
            }
            "Gather" if p.embedding && is_init(0) && n.int("axis").unwrap_or(0) == 0 && embedding.is_none() => {
                let t = &g.initializers[&n.inputs[0]];
                if t.dtype == DType::F32 && t.dims.len() == 2 {
                    embedding = Some((i, n.inputs[0].clone()));
                }
            }
            _ => {}
        }
    }

    // 2. Calibrate the activations on the FP32 graph.
    let ev = Evaluator::new(fp32)?;
    let mut observers: BTreeMap<String, Observer> = acts.iter().map(|a| (a.clone(), Observer::new(a.clone()))).collect();
    let passes = if p.calibration.needs_histogram() { 2 } else { 1 };
    for pass in 0..passes {
        if pass == 1 {
            for o in observers.values_mut() {
                o.start_histogram_pass()?;
            }
        }
        for seq in calibration {
            let len = seq.len();
            let ids = Value::i64(&[1, len], seq.iter().map(|&v| v as i64).collect());
            let mask = Value::i64(&[1, len], vec![1; len]);
            let mut err = None;
            ev.run(&[("input_ids", ids), ("attention_mask", mask)], &mut |name, v| {
                if let (Some(o), Some(a)) = (observers.get_mut(name), v.as_f32()) {
                    if err.is_none() {
                        if let Err(e) = o.observe(&a.data) {
                            err = Some(e);
                        }
                    }
                }
            })?;
            if let Some(e) = err {
                return Err(e.into());
            }
        }
    }

    // 3. Rewrite.
    let mut m = fp32.clone();
    let mut report = QuantizeReport { calibration_sequences: calibration.len(), ..Default::default() };
    let mut prologue: Vec<Node> = Vec::new();
    let mut dq_of: BTreeMap<String, String> = BTreeMap::new();
    for w in &weights {
        let (dims, v) = f32_init(&m, w).expect("selected above");
        let (k, n) = (dims[0] as usize, dims[1] as usize);
        let (q, scale_t, zp_t, attrs) = if p.per_channel {
            // Per output channel = per column of [K, N]: quantize the transpose's rows.
            let mut t = vec![0.0f32; v.len()];
            for r in 0..k {
                for c in 0..n {
                    t[c * k + r] = v[r * n + c];
                }
            }
            let (qt, scales) = calibrate::quantize_weights_per_channel(w, &t, n, k)?;
            let mut q = vec![0i8; qt.len()];
            for r in 0..k {
                for c in 0..n {
                    q[r * n + c] = qt[c * k + r];
                }
            }
            (q, Tensor::f32(&[n as i64], &scales), i8_tensor(&[n as i64], &vec![0; n]), vec![("axis", Attr::Int(1))])
        } else {
            let (q, s) = calibrate::quantize_weights_per_tensor(w, &v)?;
            (q, Tensor::scalar_f32(s), i8_tensor(&[], &[0]), vec![])
        };
        let gi = &mut m.graph.initializers;
        gi.remove(w);
        gi.insert(format!("{w}.q"), i8_tensor(&dims, &q));
        gi.insert(format!("{w}.scale"), scale_t);
        gi.insert(format!("{w}.zero_point"), zp_t);
        let out = format!("{w}.dq");
        prologue.push(node(
            format!("quant/{w}/DequantizeLinear"),
            "DequantizeLinear",
            vec![format!("{w}.q"), format!("{w}.scale"), format!("{w}.zero_point")],
            out.clone(),
            attrs,
        ));
        dq_of.insert(w.clone(), out);
        report.int8_weights.push(w.clone());
    }
    let mut act_nodes: BTreeMap<String, Vec<Node>> = BTreeMap::new();
    for a in &acts {
        let range = observers[a].range(&p.calibration)?;
        let qp = QuantParams::uint8_asymmetric(range);
        let (s, z) = (format!("{a}.scale"), format!("{a}.zero_point"));
        m.graph.initializers.insert(s.clone(), Tensor::scalar_f32(qp.scale));
        m.graph.initializers.insert(z.clone(), Tensor { dtype: DType::U8, dims: vec![], data: vec![qp.zero_point as u8] });
        let q = format!("{a}.q");
        let dq = format!("{a}.dq");
        act_nodes.insert(
            a.clone(),
            vec![
                node(format!("quant/{a}/QuantizeLinear"), "QuantizeLinear", vec![a.clone(), s.clone(), z.clone()], q.clone(), vec![]),
                node(format!("quant/{a}/DequantizeLinear"), "DequantizeLinear", vec![q, s, z], dq.clone(), vec![]),
            ],
        );
        report.activations.insert(a.clone(), [range.min, range.max]);
    }
    // Embedding: int8 table, Gather, then DequantizeLinear.
    let mut after_gather: Option<(usize, Vec<Node>, String, String)> = None;
    if let Some((gi_idx, table)) = &embedding {
        let (dims, v) = f32_init(&m, table).expect("selected above");
        let (q, s) = calibrate::quantize_weights_per_tensor(table, &v)?;
        let inits = &mut m.graph.initializers;
        inits.remove(table);
        inits.insert(format!("{table}.q"), i8_tensor(&dims, &q));
        inits.insert(format!("{table}.scale"), Tensor::scalar_f32(s));
        inits.insert(format!("{table}.zero_point"), i8_tensor(&[], &[0]));
        let gathered = m.graph.nodes[*gi_idx].outputs[0].clone();
        let raw = format!("{gathered}.int8");
        let dq = node(
            format!("quant/{table}/DequantizeLinear"),
            "DequantizeLinear",
            vec![raw.clone(), format!("{table}.scale"), format!("{table}.zero_point")],
            gathered.clone(),
            vec![],
        );
        after_gather = Some((*gi_idx, vec![dq], raw, format!("{table}.q")));
        report.int8_weights.push(table.clone());
    }
    let old = std::mem::take(&mut m.graph.nodes);
    let mut nodes = prologue;
    for (i, mut n) in old.into_iter().enumerate() {
        for (k, input) in n.inputs.iter_mut().enumerate() {
            if let Some(dq) = dq_of.get(input.as_str()) {
                *input = dq.clone();
            } else if act_uses.contains(&(i, k)) {
                *input = format!("{input}.dq");
            }
        }
        let mut extra = Vec::new();
        if let Some((gi, dq, raw, table_q)) = &after_gather {
            if *gi == i {
                n.inputs[0] = table_q.clone();
                n.outputs[0] = raw.clone();
                extra.extend(dq.iter().cloned());
            }
        }
        let outs = n.outputs.clone();
        nodes.push(n);
        nodes.extend(extra);
        for o in outs {
            if let Some(qdq) = act_nodes.remove(&o) {
                nodes.extend(qdq);
            }
        }
    }
    if let Some((a, _)) = act_nodes.into_iter().next() {
        return Err(QuantizeError::Graph { node: a, why: "activation is not produced by any node".into() });
    }
    m.graph.nodes = nodes;
    m.graph.value_info.clear();
    crate::graph::passes::shapes::run(&mut m).map_err(|e| QuantizeError::Graph { node: "shape inference".into(), why: e.to_string() })?;
    report.float_initializers =
        m.graph.initializers.iter().filter(|(_, t)| t.dtype == DType::F32 && t.numel() > 1).map(|(k, t)| (k.clone(), t.numel())).collect();
    Ok((m, report))
}
