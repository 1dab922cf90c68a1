//! A deterministic reference interpreter of avac's ONNX IR.
//!
//! Calibration records activations through it, validation runs the INT8
//! simulation with it, and its results are the same bits on every machine
//! and for every thread count, because it only ever uses the project's
//! fixed-order math:
//!
//! - every reduction (MatMul's inner product, ReduceSum/ReduceMean, softmax,
//!   layer norm) runs sequentially over the reduced axis, from `0.0`;
//! - a `MatMul` or `Gemm` whose right operand is a 2-D constant goes
//!   through [`kernels::linear`](crate::kernels::linear), packed once per
//!   [`Evaluator`]; any other product is a plain loop with sequential `k`,
//!   which gives the same bits as `linear` would;
//! - `erf`, `tanh` and `exp` come from `libm`; `Gelu`, `FastGelu`, `Softmax`
//!   and `LayerNormalization` call the very kernels the reference encoder
//!   uses, so a graph and the encoder agree bit for bit where the math is the
//!   same;
//! - no fused multiply-add; rayon splits only independent output rows.
//!
//! # Evaluation
//!
//! [`Evaluator::new`] decodes the initializers, evaluates once every node
//! whose inputs are all constant (the exporter's `Transpose(W)`, a QDQ
//! graph's `DequantizeLinear(W_q)`) — merging constant nodes that apply the
//! same op to the same inputs, so a shared ALBERT weight is dequantized and
//! packed once — and packs the constant right operands of `MatMul`/`Gemm`.
//! [`Evaluator::run`] then evaluates the remaining nodes in graph order,
//! calls `observe` with every node output (constant ones included, in node
//! order), and drops each value after its last reader.
//!
//! # Operators
//!
//! ai.onnx: Identity, Constant (`value`), Cast, Shape, Gather, Slice,
//! Transpose, Reshape, Unsqueeze, Squeeze, Add, Sub, Mul, Div, Max, Erf,
//! Sqrt, Tanh, Exp, MatMul, Gemm, ReduceMean, ReduceSum, Softmax (last
//! axis), LayerNormalization (output `Y` only), QuantizeLinear,
//! DequantizeLinear, DynamicQuantizeLinear, MatMulInteger. com.microsoft:
//! Gelu, FastGelu. Anything else is [`EvalError::UnknownOp`]. Axes come
//! from the input where the op has one, else from the attribute (both
//! opset spellings).

mod args;
mod array;
mod math;
mod nn;
mod quant;
mod value;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_graph;

use args::Args;
pub use value::{Array, Value};

use crate::graph::passes::gelu::MS_DOMAIN;
use crate::graph::{Attr, DType, Dim, Model, ValueInfo};
use crate::kernels::PackedLinear;
use std::collections::{BTreeMap, BTreeSet};

/// ai.onnx opset assumed when a model declares none (what avac writes).
const DEFAULT_OPSET: i64 = 17;

/// Why evaluation failed; every variant names the node or value at fault.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// A graph input without a value and without a default initializer.
    #[error("graph input `{input}` was not given")]
    InputMissing {
        /// Input name.
        input: String,
    },
    /// A value given for a name that is not a graph input.
    #[error("`{input}` is not an input of the graph")]
    UnexpectedInput {
        /// The name given.
        input: String,
    },
    /// A graph input whose value does not fit its declaration.
    #[error("graph input `{input}`: {reason}")]
    BadInput {
        /// Input name.
        input: String,
        /// What does not fit.
        reason: String,
    },
    /// An initializer whose bytes do not match its type and shape.
    #[error("initializer `{name}`: {reason}")]
    BadInitializer {
        /// Initializer name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// An operator (or domain) the evaluator has no rule for.
    #[error("node `{node}`: operator {op} is not supported by the evaluator")]
    UnknownOp {
        /// Node name.
        node: String,
        /// `op`, or `domain.op` outside ai.onnx.
        op: String,
    },
    /// A node reads a value no input, initializer or earlier node defines.
    #[error("node `{node}`: input {index} `{value}` is not defined by an input, an initializer or an earlier node")]
    MissingValue {
        /// Node name.
        node: String,
        /// Input position.
        index: usize,
        /// The undefined value.
        value: String,
    },
    /// A required input is absent (`""` or past the end).
    #[error("node `{node}`: required input {index} is absent")]
    MissingInput {
        /// Node name.
        node: String,
        /// Input position.
        index: usize,
    },
    /// A value is defined twice.
    #[error("node `{node}`: output `{value}` is already defined")]
    DuplicateValue {
        /// Node name.
        node: String,
        /// The value name.
        value: String,
    },
    /// An input of an element type the op does not take.
    #[error("node `{node}`: input {index} `{value}` is {got:?}, expected {expected}")]
    WrongDType {
        /// Node name.
        node: String,
        /// Input position.
        index: usize,
        /// Input value name.
        value: String,
        /// What the op takes.
        expected: String,
        /// What it got.
        got: DType,
    },
    /// Input shapes that do not fit the op.
    #[error("node `{node}`: {detail}")]
    ShapeMismatch {
        /// Node name.
        node: String,
        /// The inputs and shapes involved.
        detail: String,
    },
    /// A missing, mistyped or out-of-range attribute.
    #[error("node `{node}`: attribute `{attr}`: {reason}")]
    BadAttr {
        /// Node name.
        node: String,
        /// Attribute name.
        attr: String,
        /// What is wrong.
        reason: String,
    },
    /// Input contents the op cannot use (an index out of range, a zero scale).
    #[error("node `{node}`: input {index} `{value}`: {reason}")]
    BadValue {
        /// Node name.
        node: String,
        /// Input position.
        index: usize,
        /// Input value name.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A valid use of an op that the evaluator deliberately leaves out.
    #[error("node `{node}`: {what} is not supported by the evaluator")]
    Unsupported {
        /// Node name.
        node: String,
        /// The unsupported feature.
        what: String,
    },
    /// A graph output nothing defines.
    #[error("graph output `{output}` is not defined by an input, an initializer or a node")]
    OutputMissing {
        /// Output name.
        output: String,
    },
}

/// Evaluates `model` once: [`Evaluator::new`] then [`Evaluator::run`].
/// Build an [`Evaluator`] instead to run many inputs through one model.
pub fn run(model: &Model, inputs: &[(&str, Value)], observe: &mut dyn FnMut(&str, &Value)) -> Result<BTreeMap<String, Value>, EvalError> {
    Evaluator::new(model)?.run(inputs, observe)
}

/// Constant values: initializers and the outputs of constant nodes, with
/// merged constant nodes aliased to the first, and packed weights.
#[derive(Default)]
struct Consts {
    values: BTreeMap<String, Value>,
    alias: BTreeMap<String, String>,
    /// Keyed by (canonical value name, the value is already `[N, K]`).
    packed: BTreeMap<(String, bool), PackedLinear>,
}

impl Consts {
    fn canonical<'a>(&'a self, name: &'a str) -> &'a str {
        self.alias.get(name).map_or(name, String::as_str)
    }
    fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(self.canonical(name))
    }
}

/// A model prepared for repeated evaluation.
pub struct Evaluator<'m> {
    model: &'m Model,
    opset: i64,
    consts: Consts,
    /// Initializers that are also graph inputs: used when the input is not given.
    defaults: BTreeMap<String, Value>,
    /// Per node: its outputs are constants, computed in `new`.
    folded: Vec<bool>,
    /// Per node: runtime values whose last reader it is.
    frees: Vec<Vec<&'m str>>,
}

impl<'m> Evaluator<'m> {
    /// Checks that every value is defined once before it is read, decodes
    /// the initializers, evaluates the constant nodes and packs constant
    /// weights.
    pub fn new(model: &'m Model) -> Result<Self, EvalError> {
        let g = &model.graph;
        let opset = model.opsets.get("").or_else(|| model.opsets.get("ai.onnx")).copied().unwrap_or(DEFAULT_OPSET);
        let input_names: BTreeSet<&str> = g.inputs.iter().map(|v| v.name.as_str()).collect();
        let mut consts = Consts::default();
        let mut defaults = BTreeMap::new();
        for (name, t) in &g.initializers {
            let v = Value::from_tensor(t).map_err(|reason| EvalError::BadInitializer { name: name.clone(), reason })?;
            if input_names.contains(name.as_str()) {
                defaults.insert(name.clone(), v);
            } else {
                consts.values.insert(name.clone(), v);
            }
        }
        let mut defined: BTreeSet<&str> = input_names.iter().copied().chain(g.initializers.keys().map(String::as_str)).collect();
        let mut folded = vec![false; g.nodes.len()];
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (i, n) in g.nodes.iter().enumerate() {
            for (index, v) in n.inputs.iter().enumerate().filter(|(_, v)| !v.is_empty()) {
                if !defined.contains(v.as_str()) {
                    return Err(EvalError::MissingValue { node: n.name.clone(), index, value: v.clone() });
                }
            }
            for o in n.outputs.iter().filter(|o| !o.is_empty()) {
                if !defined.insert(o) {
                    return Err(EvalError::DuplicateValue { node: n.name.clone(), value: o.clone() });
                }
            }
            if !n.inputs.iter().all(|v| v.is_empty() || consts.get(v).is_some()) {
                continue;
            }
            folded[i] = true;
            let canon: Vec<&str> = n.inputs.iter().map(|v| consts.canonical(v)).collect();
            let key = format!("{}\u{0}{}\u{0}{canon:?}\u{0}{:?}", n.domain, n.op, n.attrs);
            if let Some(&first) = seen.get(&key) {
                // The same op on the same constants: alias, unless this copy writes an output the first dropped.
                let prev = &g.nodes[first].outputs;
                if n.outputs.iter().enumerate().all(|(k, o)| o.is_empty() || prev.get(k).is_some_and(|p| !p.is_empty())) {
                    for (o, p) in n.outputs.iter().zip(prev).filter(|(o, _)| !o.is_empty()) {
                        consts.alias.insert(o.clone(), p.clone());
                    }
                    continue;
                }
            }
            seen.insert(key, i);
            let outs = {
                let vals = n.inputs.iter().map(|v| (!v.is_empty()).then(|| consts.get(v)).flatten()).collect();
                eval_node(&Args { node: n, vals, opset, consts: &consts })?
            };
            for (o, v) in n.outputs.iter().zip(outs) {
                if !o.is_empty() {
                    consts.values.insert(o.clone(), v);
                }
            }
        }
        pack_weights(model, &folded, &mut consts);
        // Last reader of every runtime value; graph outputs are kept.
        let mut last: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, n) in g.nodes.iter().enumerate().filter(|(i, _)| !folded[*i]) {
            for v in n.inputs.iter().chain(&n.outputs).filter(|v| !v.is_empty()) {
                last.insert(v, i);
            }
        }
        let mut frees = vec![Vec::new(); g.nodes.len()];
        for (v, i) in last {
            if !g.outputs.iter().any(|o| o.name == v) {
                frees[i].push(v);
            }
        }
        Ok(Evaluator { model, opset, consts, defaults, folded, frees })
    }

    /// Evaluates the graph on `inputs` (every graph input without a default
    /// initializer, by name), calling `observe` with each node output as it
    /// is computed. Returns the graph outputs by name.
    pub fn run(&self, inputs: &[(&str, Value)], observe: &mut dyn FnMut(&str, &Value)) -> Result<BTreeMap<String, Value>, EvalError> {
        let g = &self.model.graph;
        let given = check_inputs(&g.inputs, inputs)?;
        for v in &g.inputs {
            if !given.contains_key(v.name.as_str()) && !self.defaults.contains_key(&v.name) {
                return Err(EvalError::InputMissing { input: v.name.clone() });
            }
        }
        let mut env: BTreeMap<&str, Value> = BTreeMap::new();
        for (i, n) in g.nodes.iter().enumerate() {
            let written = n.outputs.iter().filter(|o| !o.is_empty());
            if self.folded[i] {
                for o in written {
                    observe(o, self.consts.get(o).expect("constant nodes are evaluated in new"));
                }
                continue;
            }
            let outs = {
                let lookup = |v: &str| env.get(v).or_else(|| given.get(v).copied()).or_else(|| self.consts.get(v)).or_else(|| self.defaults.get(v));
                let vals = n
                    .inputs
                    .iter()
                    .enumerate()
                    .map(|(index, v)| match v.as_str() {
                        "" => Ok(None),
                        v => lookup(v).map(Some).ok_or_else(|| EvalError::MissingValue { node: n.name.clone(), index, value: v.into() }),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                eval_node(&Args { node: n, vals, opset: self.opset, consts: &self.consts })?
            };
            for (o, v) in n.outputs.iter().zip(outs).filter(|(o, _)| !o.is_empty()) {
                observe(o, &v);
                env.insert(o, v);
            }
            for v in &self.frees[i] {
                env.remove(v);
            }
        }
        let mut out = BTreeMap::new();
        for o in &g.outputs {
            if out.contains_key(&o.name) {
                continue; // listed twice
            }
            let v = match env.remove(o.name.as_str()) {
                Some(v) => v,
                None => given
                    .get(o.name.as_str())
                    .copied()
                    .or_else(|| self.consts.get(&o.name))
                    .or_else(|| self.defaults.get(&o.name))
                    .cloned()
                    .ok_or_else(|| EvalError::OutputMissing { output: o.name.clone() })?,
            };
            out.insert(o.name.clone(), v);
        }
        Ok(out)
    }
}

/// Checks given inputs against the declarations: known name, given once,
/// element type, data length, rank, fixed dims, and one size per symbol.
fn check_inputs<'a>(decl: &[ValueInfo], inputs: &'a [(&'a str, Value)]) -> Result<BTreeMap<&'a str, &'a Value>, EvalError> {
    let mut given = BTreeMap::new();
    let mut syms: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
    for (name, v) in inputs {
        let bad = |reason: String| EvalError::BadInput { input: name.to_string(), reason };
        let info = decl.iter().find(|d| d.name == *name).ok_or_else(|| EvalError::UnexpectedInput { input: name.to_string() })?;
        if given.insert(*name, v).is_some() {
            return Err(bad("given twice".into()));
        }
        if v.dtype() != info.dtype {
            return Err(bad(format!("{:?} given, {:?} declared", v.dtype(), info.dtype)));
        }
        let numel = v.dims().iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if numel != Some(v.len()) {
            return Err(bad(format!("{} elements for shape {:?}", v.len(), v.dims())));
        }
        let Some(shape) = &info.shape else { continue };
        if shape.len() != v.dims().len() {
            return Err(bad(format!("rank {} given, {} declared", v.dims().len(), shape.len())));
        }
        for (d, &size) in shape.iter().zip(v.dims()) {
            match d {
                Dim::Fixed(f) if *f >= 0 && *f as usize != size => return Err(bad(format!("shape {:?} does not fit the declared {shape:?}", v.dims()))),
                Dim::Sym(s) => match syms.get(s.as_str()) {
                    Some(&(was, other)) if was != size => return Err(bad(format!("dim `{s}` is {size} here but {was} in `{other}`"))),
                    _ => {
                        syms.insert(s, (size, name));
                    }
                },
                _ => {}
            }
        }
    }
    Ok(given)
}

/// Packs the constant 2-D f32 right operands of the runtime `MatMul` and
/// `Gemm` nodes for [`kernels::linear`](crate::kernels::linear).
fn pack_weights(model: &Model, folded: &[bool], consts: &mut Consts) {
    for (n, _) in model.graph.nodes.iter().zip(folded).filter(|(n, f)| !**f && is_onnx(&n.domain)) {
        let nk = match n.op.as_str() {
            "MatMul" => false,
            "Gemm" => match n.attrs.get("transB") {
                None => false,
                Some(Attr::Int(t)) => *t != 0,
                Some(_) => continue, // reported when the node runs
            },
            _ => continue,
        };
        let Some(b) = n.inputs.get(1).filter(|b| !b.is_empty()) else { continue };
        let key = (consts.canonical(b).to_string(), nk);
        if consts.packed.contains_key(&key) {
            continue;
        }
        let Some(Value::F32(w)) = consts.get(b) else { continue };
        let [r, c] = w.dims[..] else { continue };
        if r == 0 || c == 0 {
            continue;
        }
        let packed = if nk { PackedLinear::new(&w.data, r, c, None) } else { PackedLinear::new(&math::transpose2(&w.data, r, c), c, r, None) };
        consts.packed.insert(key, packed);
    }
}

fn is_onnx(domain: &str) -> bool {
    domain.is_empty() || domain == "ai.onnx"
}

/// The op table: one rule per supported operator.
fn eval_node(a: &Args) -> Result<Vec<Value>, EvalError> {
    let n = a.node;
    let op = n.op.as_str();
    let outs = if n.domain == MS_DOMAIN {
        match op {
            "Gelu" => vec![nn::gelu(a)?],
            "FastGelu" => vec![nn::fast_gelu(a)?],
            _ => return Err(EvalError::UnknownOp { node: n.name.clone(), op: format!("{}.{op}", n.domain) }),
        }
    } else if !is_onnx(&n.domain) {
        return Err(EvalError::UnknownOp { node: n.name.clone(), op: format!("{}.{op}", n.domain) });
    } else {
        match op {
            "Identity" => vec![a.value(0)?.clone()],
            "Constant" => vec![array::constant(a)?],
            "Cast" => vec![array::cast(a)?],
            "Shape" => vec![array::shape(a)?],
            "Gather" => vec![array::gather(a)?],
            "Slice" => vec![array::slice(a)?],
            "Transpose" => vec![array::transpose(a)?],
            "Reshape" => vec![array::reshape(a)?],
            "Unsqueeze" => vec![array::unsqueeze(a)?],
            "Squeeze" => vec![array::squeeze(a)?],
            "Add" | "Sub" | "Mul" | "Div" | "Max" => vec![math::binary(a)?],
            "Erf" => vec![math::unary(a, libm::erff)?],
            "Sqrt" => vec![math::unary(a, f32::sqrt)?],
            "Tanh" => vec![math::unary(a, libm::tanhf)?],
            "Exp" => vec![math::unary(a, libm::expf)?],
            "MatMul" => vec![math::matmul(a)?],
            "Gemm" => vec![math::gemm(a)?],
            "ReduceMean" => vec![math::reduce(a, true)?],
            "ReduceSum" => vec![math::reduce(a, false)?],
            "Softmax" => vec![nn::softmax(a)?],
            "LayerNormalization" => vec![nn::layer_norm(a)?],
            "QuantizeLinear" => vec![quant::quantize_linear(a)?],
            "DequantizeLinear" => vec![quant::dequantize_linear(a)?],
            "DynamicQuantizeLinear" => quant::dynamic_quantize_linear(a)?,
            "MatMulInteger" => vec![quant::matmul_integer(a)?],
            _ => return Err(EvalError::UnknownOp { node: n.name.clone(), op: op.into() }),
        }
    };
    if let Some((k, _)) = n.outputs.iter().enumerate().skip(outs.len()).find(|(_, o)| !o.is_empty()) {
        return Err(a.unsupported(format!("output {k} of {op}")));
    }
    Ok(outs)
}
