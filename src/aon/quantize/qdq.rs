//! The graph rewrite behind [`super::run`]: int8 initializers, QDQ
//! pairs or DynamicQuantizeLinear chains, int32 Gemm biases, the int8
//! embedding gather and weight-only int8 tensors (layouts in the module docs
//! of [`super`]). The numbers themselves come from [`crate::quant::int8`];
//! this file decides where they go in the graph.
//!
//! New nodes are named `quant/<value>/<Op>` and new values `<value>.<role>`,
//! so a reader of the INT8 graph can find the FP32 tensor each came from.

use super::{AonQuantizeParams, Mode, QuantizeError, QuantizeReport, Selection};
use crate::graph::{Attr, DType, Model, Node, Tensor};
use crate::quant::int8::{self, QuantParams, Range};
use std::collections::{BTreeMap, BTreeSet};

fn node(name: String, op: &str, inputs: Vec<String>, outputs: Vec<String>, attrs: Vec<(&str, Attr)>) -> Node {
    Node { name, op: op.into(), domain: String::new(), inputs, outputs, attrs: attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect() }
}

fn i8_tensor(dims: &[i64], v: &[i8]) -> Tensor {
    Tensor { dtype: DType::I8, dims: dims.to_vec(), data: v.iter().map(|&x| x as u8).collect() }
}

fn i32_tensor(dims: &[i64], v: &[i32]) -> Tensor {
    Tensor { dtype: DType::I32, dims: dims.to_vec(), data: v.iter().flat_map(|x| x.to_le_bytes()).collect() }
}

/// An initializer stored as int8: its value names and scales.
struct Int8 {
    q: String,
    scale: String,
    zero_point: String,
    /// One scale (per tensor) or one per output column.
    scales: Vec<f32>,
    /// `axis` for DequantizeLinear when per column.
    axis: Option<i64>,
}

impl Int8 {
    fn dequantize(&self, name: &str, out: String) -> Node {
        let attrs = self.axis.map(|a| vec![("axis", Attr::Int(a))]).unwrap_or_default();
        node(format!("quant/{name}/DequantizeLinear"), "DequantizeLinear", vec![self.q.clone(), self.scale.clone(), self.zero_point.clone()], vec![out], attrs)
    }
}

/// Replaces float initializer `name` by int8 symmetric values, per tensor or
/// (for a rank-2 tensor) per column.
fn store_int8(m: &mut Model, name: &str, per_column: bool) -> Result<Int8, QuantizeError> {
    let t = m.graph.initializers.remove(name).expect("selected from the initializers");
    let v = t.to_f32().expect("selected as F32");
    let dims = t.dims.clone();
    let shape: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
    let q = int8::quantize_int8_weight(name, &v, &shape, per_column)?;
    let axis = q.axis.map(|a| a as i64);
    let w = Int8 { q: format!("{name}.q"), scale: format!("{name}.scale"), zero_point: format!("{name}.zero_point"), scales: q.scales, axis };
    let gi = &mut m.graph.initializers;
    gi.insert(w.q.clone(), i8_tensor(&dims, &q.values));
    if axis.is_some() {
        let n = w.scales.len();
        gi.insert(w.scale.clone(), Tensor::f32(&[n as i64], &w.scales));
        gi.insert(w.zero_point.clone(), i8_tensor(&[n as i64], &vec![0; n]));
    } else {
        gi.insert(w.scale.clone(), Tensor::scalar_f32(w.scales[0]));
        gi.insert(w.zero_point.clone(), i8_tensor(&[], &[0]));
    }
    Ok(w)
}

/// Where new nodes go relative to the FP32 graph's nodes.
#[derive(Default)]
struct Edits {
    /// Before every FP32 node (weight and bias dequantization).
    prologue: Vec<Node>,
    /// Initializer name → the value that now carries it (for every use not rewired).
    rename: BTreeMap<String, String>,
    /// `(node, input)` → new input.
    rewire: BTreeMap<(usize, usize), String>,
    /// Inserted right after the node producing a value.
    after: BTreeMap<String, Vec<Node>>,
    /// Inserted right before a node.
    before: BTreeMap<usize, Vec<Node>>,
    /// A node replaced by a chain with the same outputs.
    replace: BTreeMap<usize, Vec<Node>>,
}

pub(super) fn rewrite(
    fp32: &Model,
    sel: &Selection,
    ranges: &BTreeMap<String, Range>,
    p: &AonQuantizeParams,
) -> Result<(Model, QuantizeReport), QuantizeError> {
    let mut m = fp32.clone();
    let nodes = &fp32.graph.nodes;
    let mut r = QuantizeReport { mode: p.mode, ..Default::default() };
    let mut e = Edits::default();
    let mut weights: BTreeMap<&str, Int8> = BTreeMap::new();
    for w in &sel.weights {
        weights.insert(w, store_int8(&mut m, w, p.per_channel)?);
        r.int8_weights.push(w.clone());
    }
    let mut biases: BTreeSet<String> = BTreeSet::new();
    match p.mode {
        Mode::Static => static_qdq(fp32, &mut m, sel, ranges, &weights, &mut e, &mut r, &mut biases)?,
        Mode::Dynamic => {
            dynamic(fp32, sel, &weights, &mut e, &mut r);
            // Weights read elsewhere than by a rewritten product are dequantized once.
            let replaced: BTreeSet<usize> = e.replace.keys().copied().collect();
            for (w, q) in &weights {
                if nodes.iter().enumerate().any(|(i, n)| !replaced.contains(&i) && n.inputs.iter().any(|x| x == w)) {
                    let out = format!("{w}.dq");
                    e.prologue.push(q.dequantize(w, out.clone()));
                    e.rename.insert(w.to_string(), out);
                }
            }
        }
    }

    // The embedding: int8 table, Gather, then DequantizeLinear.
    let mut embedding = None;
    if let Some((gi, table)) = &sel.embedding {
        // Per column (hidden channel): the gathered [.., hidden] rows keep the table's last axis.
        let q = store_int8(&mut m, table, true)?;
        let n = &nodes[*gi];
        let ids_rank = fp32.graph.inputs.iter().find(|v| v.name == n.inputs[1]).and_then(|v| v.shape.as_ref()).map(Vec::len).ok_or_else(|| {
            QuantizeError::Graph { node: n.name.clone(), why: format!("embedding indices {} are not a graph input of known rank", n.inputs[1]) }
        })?;
        let raw = format!("{}.int8", n.outputs[0]);
        let mut gather = n.clone();
        gather.inputs[0] = q.q.clone();
        gather.outputs = vec![raw.clone()];
        let mut dq = q.dequantize(table, n.outputs[0].clone());
        dq.inputs[0] = raw;
        dq.attrs.insert("axis".into(), Attr::Int(ids_rank as i64));
        e.replace.insert(*gi, vec![gather, dq]);
        r.int8_weight_only.push(table.clone());
        embedding = Some(table.as_str());
    }
    // Any other float weight (rank ≥ 2) at or above the threshold: weight-only int8.
    let leftovers: Vec<&String> = fp32
        .graph
        .initializers
        .iter()
        .filter(|(k, t)| {
            t.dtype == DType::F32
                && t.dims.len() >= 2
                && t.numel() >= p.min_weight_elements
                && !weights.contains_key(k.as_str())
                && embedding != Some(k.as_str())
                && !biases.contains(k.as_str())
        })
        .map(|(k, _)| k)
        .collect();
    for w in leftovers {
        // Dequantized as a whole: per-column scales cost nothing at run time.
        let q = store_int8(&mut m, w, true)?;
        let out = format!("{w}.dq");
        e.prologue.push(q.dequantize(w, out.clone()));
        e.rename.insert(w.clone(), out);
        r.int8_weight_only.push(w.clone());
    }

    // Assemble in the FP32 order.
    let mut out = std::mem::take(&mut e.prologue);
    let rename = |n: &mut Node| {
        for input in n.inputs.iter_mut() {
            if let Some(to) = e.rename.get(input.as_str()) {
                *input = to.clone();
            }
        }
    };
    for (i, n) in nodes.iter().enumerate() {
        out.extend(e.before.remove(&i).unwrap_or_default());
        match e.replace.remove(&i) {
            Some(chain) => {
                for mut c in chain {
                    rename(&mut c);
                    out.push(c);
                }
            }
            None => {
                let mut n = n.clone();
                for (k, input) in n.inputs.iter_mut().enumerate() {
                    if let Some(to) = e.rewire.get(&(i, k)) {
                        *input = to.clone();
                    }
                }
                rename(&mut n);
                out.push(n);
            }
        }
        for o in &nodes[i].outputs {
            out.extend(e.after.remove(o).unwrap_or_default());
        }
    }
    if let Some((a, _)) = e.after.into_iter().next() {
        return Err(QuantizeError::Graph { node: a, why: "activation is not produced by any node (a graph input cannot get a static QDQ pair)".into() });
    }
    m.graph.nodes = out;
    Ok((m, r))
}

/// Static QDQ: weight DequantizeLinear, activation QuantizeLinear/DequantizeLinear pairs, int32 Gemm biases.
#[allow(clippy::too_many_arguments)]
fn static_qdq(
    fp32: &Model,
    m: &mut Model,
    sel: &Selection,
    ranges: &BTreeMap<String, Range>,
    weights: &BTreeMap<&str, Int8>,
    e: &mut Edits,
    r: &mut QuantizeReport,
    biases: &mut BTreeSet<String>,
) -> Result<(), QuantizeError> {
    let nodes = &fp32.graph.nodes;
    for (w, q) in weights {
        let out = format!("{w}.dq");
        e.prologue.push(q.dequantize(w, out.clone()));
        e.rename.insert(w.to_string(), out);
    }
    let mut params: BTreeMap<&str, QuantParams> = BTreeMap::new();
    for a in sel.activations(fp32) {
        let range = ranges[a];
        let qp = QuantParams::uint8_asymmetric(range);
        let (s, z, q, dq) = (format!("{a}.scale"), format!("{a}.zero_point"), format!("{a}.q"), format!("{a}.dq"));
        m.graph.initializers.insert(s.clone(), Tensor::scalar_f32(qp.scale));
        m.graph.initializers.insert(z.clone(), Tensor { dtype: DType::U8, dims: vec![], data: vec![qp.zero_point as u8] });
        e.after.insert(
            a.to_string(),
            vec![
                node(format!("quant/{a}/QuantizeLinear"), "QuantizeLinear", vec![a.to_string(), s.clone(), z.clone()], vec![q.clone()], vec![]),
                node(format!("quant/{a}/DequantizeLinear"), "DequantizeLinear", vec![q, s, z], vec![dq], vec![]),
            ],
        );
        r.activations.insert(a.to_string(), [range.min, range.max]);
        if range.min == range.max {
            r.constant_activations.push(a.to_string());
        }
        params.insert(a, qp);
    }
    for &(i, k) in &sel.act_uses {
        e.rewire.insert((i, k), format!("{}.dq", nodes[i].inputs[k]));
    }
    // A Gemm's bias as int32 at scale A.scale × W.scale (what integer Gemm kernels add).
    let uses = fp32.graph.uses();
    for (i, n) in nodes.iter().enumerate() {
        let (Some(w), Some(b)) = (n.inputs.get(1), n.inputs.get(2)) else { continue };
        let (Some(wq), Some(bt)) = (weights.get(w.as_str()), fp32.graph.initializers.get(b)) else { continue };
        if n.op != "Gemm" || !sel.act_uses.contains(&(i, 0)) || uses.get(b.as_str()) != Some(&1) || bt.dtype != DType::F32 || bt.dims.len() != 1 {
            continue;
        }
        let bv = bt.to_f32().expect("F32");
        if wq.scales.len() != 1 && wq.scales.len() != bv.len() {
            continue;
        }
        let sa = params[n.inputs[0].as_str()].scale;
        let (q, scales) = int8::quantize_int32_bias(b, &bv, sa, &wq.scales).map_err(|e| QuantizeError::Graph { node: n.name.clone(), why: e.to_string() })?;
        let (bq, bs, bz) = (format!("{b}.q"), format!("{b}.scale"), format!("{b}.zero_point"));
        let gi = &mut m.graph.initializers;
        gi.remove(b);
        gi.insert(bq.clone(), i32_tensor(&bt.dims, &q));
        let attrs = if wq.scales.len() == 1 {
            gi.insert(bs.clone(), Tensor::scalar_f32(scales[0]));
            gi.insert(bz.clone(), i32_tensor(&[], &[0]));
            vec![]
        } else {
            gi.insert(bs.clone(), Tensor::f32(&bt.dims, &scales));
            gi.insert(bz.clone(), i32_tensor(&bt.dims, &vec![0; bv.len()]));
            vec![("axis", Attr::Int(0))]
        };
        let out = format!("{b}.dq");
        e.prologue.push(node(format!("quant/{b}/DequantizeLinear"), "DequantizeLinear", vec![bq, bs, bz], vec![out.clone()], attrs));
        e.rewire.insert((i, 2), out);
        r.int32_biases.push(b.clone());
        biases.insert(b.clone());
    }
    Ok(())
}

/// Dynamic: DynamicQuantizeLinear on each activation (once, before its first
/// quantized reader), each product replaced by MatMulInteger → Cast → Mul [→ Add].
fn dynamic(fp32: &Model, sel: &Selection, weights: &BTreeMap<&str, Int8>, e: &mut Edits, r: &mut QuantizeReport) {
    let nodes = &fp32.graph.nodes;
    // (q, scale, zero point) of each activation.
    let mut dyn_q: BTreeMap<&str, [String; 3]> = BTreeMap::new();
    for &(i, k) in &sel.act_uses {
        let a = nodes[i].inputs[k].as_str();
        if dyn_q.contains_key(a) {
            continue;
        }
        let names = [format!("{a}.dyn.q"), format!("{a}.dyn.scale"), format!("{a}.dyn.zero_point")];
        e.before.entry(i).or_default().push(node(
            format!("quant/{a}/DynamicQuantizeLinear"),
            "DynamicQuantizeLinear",
            vec![a.to_string()],
            names.to_vec(),
            vec![],
        ));
        dyn_q.insert(a, names);
        r.dynamic_activations.push(a.to_string());
    }
    let products: BTreeSet<usize> = sel.act_uses.iter().map(|&(i, _)| i).collect();
    for i in products {
        let n = &nodes[i];
        let out = &n.outputs[0];
        let [aq, as_, az] = dyn_q[n.inputs[0].as_str()].clone();
        let [bq, bs, bz] = match weights.get(n.inputs[1].as_str()) {
            Some(w) => [w.q.clone(), w.scale.clone(), w.zero_point.clone()],
            None => dyn_q[n.inputs[1].as_str()].clone(),
        };
        let name = |op: &str| format!("quant/{out}/{op}");
        let (i32o, f32o, scale) = (format!("{out}.i32"), format!("{out}.f32"), format!("{out}.scale"));
        let bias = n.inputs.get(2).filter(|b| !b.is_empty());
        let product = if bias.is_some() { format!("{out}.mm") } else { out.clone() };
        let mut chain = vec![
            node(name("MatMulInteger"), "MatMulInteger", vec![aq, bq, az, bz], vec![i32o.clone()], vec![]),
            node(name("Cast"), "Cast", vec![i32o], vec![f32o.clone()], vec![("to", Attr::Int(DType::F32.code() as i64))]),
            node(name("Mul_scale"), "Mul", vec![as_, bs], vec![scale.clone()], vec![]),
            node(name("Mul"), "Mul", vec![f32o, scale], vec![product.clone()], vec![]),
        ];
        if let Some(b) = bias {
            chain.push(node(name("Add"), "Add", vec![product, b.clone()], vec![out.clone()], vec![]));
        }
        e.replace.insert(i, chain);
    }
}
