//! Shape inference: the element type and shape of every value, with the
//! symbolic dims of the graph inputs (`batch`, `seq`) carried through.
//!
//! Besides shapes, the values of small integer tensors are tracked (as dims,
//! so they may be symbolic): initializers of at most [`MAX_TRACKED`]
//! elements and the results of `Shape`, and of `Slice`, `Gather`, `Cast`,
//! `Identity` and `Unsqueeze` applied to tracked values. That is what turns
//! the exporter's `Slice(pos_table, [0], Slice(Shape(input_ids), [1], [2],
//! [0]), [0])` into a `[seq, E]` value instead of an unknown one.
//!
//! Rules exist for every op the exporter and the passes emit (see
//! [`infer`]); any other op is [`PassError::UnknownOp`]. Symbolic dims are
//! equal when their names are. Two assumptions are made where a symbolic
//! bound meets a fixed one: `Slice(d, 0, seq)` has `seq` elements (the
//! exporter caps `seq` at the position table), and broadcasting a symbolic
//! dim against a fixed `n > 1` yields `n` (the only valid outcome).

use super::{is_onnx_domain, PassError};
use crate::graph::ir::slice_range;
use crate::graph::{DType, Dim, Graph, Model, Node, ValueInfo};
use std::collections::BTreeMap;

/// Largest integer initializer whose values are tracked.
pub const MAX_TRACKED: usize = 64;

/// Fills `value_info` with the inferred type and shape of every node output
/// that is not a graph output, after checking the declared graph outputs.
/// Returns how many entries were added or changed.
pub fn run(model: &mut Model) -> Result<usize, PassError> {
    let g = &mut model.graph;
    let mut types = infer(g)?;
    let mut info = BTreeMap::new();
    for n in &g.nodes {
        for o in n.outputs.iter().filter(|o| !o.is_empty() && !g.outputs.iter().any(|v| &v.name == *o)) {
            if let Some(v) = types.remove(o) {
                info.insert(o.clone(), v);
            }
        }
    }
    let changed = info.iter().filter(|(k, v)| g.value_info.get(*k) != Some(v)).count() + g.value_info.keys().filter(|k| !info.contains_key(*k)).count();
    g.value_info = info;
    Ok(changed)
}

/// Type and shape of every graph input, initializer and node output.
///
/// Rules: Gather, Shape, Slice, Add/Sub/Mul/Div/Max (broadcasting), MatMul
/// (batched), Gemm, Transpose, Reshape, ReduceMean/ReduceSum (axes as
/// attribute or input), Softmax, Erf, Sqrt, Tanh, Cast, Unsqueeze, Identity,
/// LayerNormalization; com.microsoft Gelu and FastGelu.
pub fn infer(g: &Graph) -> Result<BTreeMap<String, ValueInfo>, PassError> {
    let mut s = State { types: BTreeMap::new(), values: BTreeMap::new() };
    for v in &g.inputs {
        let shape = v.shape.clone().ok_or_else(|| PassError::InputShapeUnknown { input: v.name.clone() })?;
        s.types.insert(v.name.clone(), (v.dtype, shape));
    }
    for (name, t) in &g.initializers {
        s.types.insert(name.clone(), (t.dtype, t.dims.iter().map(|&d| Dim::Fixed(d)).collect()));
        let ints = match t.dtype {
            DType::I64 => t.to_i64(),
            DType::I32 => Some(t.data.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64).collect()),
            _ => None,
        };
        if let Some(v) = ints.filter(|v| v.len() <= MAX_TRACKED) {
            s.values.insert(name.clone(), v.into_iter().map(Dim::Fixed).collect());
        }
    }
    for n in &g.nodes {
        let outs = s.node(n)?;
        let written: Vec<&String> = n.outputs.iter().filter(|o| !o.is_empty()).collect();
        for (k, o) in n.outputs.iter().enumerate().filter(|(_, o)| !o.is_empty()) {
            let Some(out) = outs.get(k) else {
                return Err(PassError::Unresolvable {
                    node: n.name.clone(),
                    reason: format!("{} outputs requested, rule gives {}", written.len(), outs.len()),
                });
            };
            if s.types.contains_key(o) {
                return Err(PassError::DuplicateName { node: n.name.clone(), name: o.clone() });
            }
            s.types.insert(o.clone(), (out.0, out.1.clone()));
            if let Some(v) = &out.2 {
                s.values.insert(o.clone(), v.clone());
            }
        }
    }
    for o in &g.outputs {
        let (dtype, shape) = s.types.get(&o.name).ok_or_else(|| PassError::OutputMissing { output: o.name.clone() })?;
        let fits = *dtype == o.dtype && o.shape.as_ref().is_none_or(|d| d == shape);
        if !fits {
            let show = |t: DType, s: Option<&Vec<Dim>>| format!("{t:?} {}", s.map_or("[?]".into(), |s| fmt(s)));
            return Err(PassError::OutputMismatch { output: o.name.clone(), declared: show(o.dtype, o.shape.as_ref()), inferred: show(*dtype, Some(shape)) });
        }
    }
    Ok(s.types.into_iter().map(|(name, (dtype, shape))| (name.clone(), ValueInfo { name, dtype, shape: Some(shape) })).collect())
}

/// `[batch, seq, 384]`.
fn fmt(s: &[Dim]) -> String {
    let d: Vec<String> = s
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => n.to_string(),
            Dim::Sym(s) => s.clone(),
        })
        .collect();
    format!("[{}]", d.join(", "))
}

type Shape = Vec<Dim>;
/// An output: type, shape, and values when tracked.
type Out = (DType, Shape, Option<Vec<Dim>>);

struct State {
    types: BTreeMap<String, (DType, Shape)>,
    values: BTreeMap<String, Vec<Dim>>,
}

impl State {
    fn input<'a>(&'a self, n: &Node, k: usize) -> Result<&'a (DType, Shape), PassError> {
        let name = self.opt_input(n, k).ok_or_else(|| PassError::MissingInput { node: n.name.clone(), index: k })?;
        self.types.get(name).ok_or_else(|| PassError::UndefinedValue { node: n.name.clone(), value: name.to_string() })
    }

    fn opt_input<'n>(&self, n: &'n Node, k: usize) -> Option<&'n str> {
        n.inputs.get(k).map(String::as_str).filter(|s| !s.is_empty())
    }

    /// Tracked values of input `k`.
    fn value(&self, n: &Node, k: usize) -> Result<&[Dim], PassError> {
        self.input(n, k)?;
        let name = &n.inputs[k];
        self.values.get(name).map(Vec::as_slice).ok_or_else(|| PassError::NotConstant { node: n.name.clone(), input: name.clone() })
    }

    /// Tracked values of input `k`, all fixed.
    fn ints(&self, n: &Node, k: usize) -> Result<Vec<i64>, PassError> {
        self.value(n, k)?
            .iter()
            .map(|d| match d {
                Dim::Fixed(v) => Ok(*v),
                Dim::Sym(_) => Err(PassError::NotConstant { node: n.name.clone(), input: n.inputs[k].clone() }),
            })
            .collect()
    }

    /// Axes from input `k` if given, else from attribute `axes`.
    fn axes(&self, n: &Node, k: usize) -> Result<Option<Vec<i64>>, PassError> {
        match self.opt_input(n, k) {
            Some(_) => self.ints(n, k).map(Some),
            None => Ok(n.ints("axes").map(<[i64]>::to_vec)),
        }
    }

    fn node(&self, n: &Node) -> Result<Vec<Out>, PassError> {
        let err = |reason: String| PassError::Unresolvable { node: n.name.clone(), reason };
        let same = |k: usize| -> Result<Vec<Out>, PassError> {
            let (t, s) = self.input(n, k)?;
            Ok(vec![(*t, s.clone(), None)])
        };
        let op = n.op.as_str();
        if n.domain == super::gelu::MS_DOMAIN {
            return match op {
                "Gelu" | "FastGelu" => same(0),
                _ => Err(PassError::UnknownOp { node: n.name.clone(), op: format!("{}.{op}", n.domain) }),
            };
        }
        if !is_onnx_domain(&n.domain) {
            return Err(PassError::UnknownOp { node: n.name.clone(), op: format!("{}.{op}", n.domain) });
        }
        Ok(match op {
            "Erf" | "Sqrt" | "Tanh" => same(0)?,
            // QDQ: the shape is kept; QuantizeLinear takes its zero point's type, DequantizeLinear gives float.
            "QuantizeLinear" => {
                let (_, s) = self.input(n, 0)?;
                let t = match self.opt_input(n, 2) {
                    Some(_) => self.input(n, 2)?.0,
                    None => DType::U8,
                };
                vec![(t, s.clone(), None)]
            }
            "DequantizeLinear" => {
                let (_, s) = self.input(n, 0)?;
                vec![(DType::F32, s.clone(), None)]
            }
            // Dynamic quantization: uint8 values of the input's shape, scalar scale and zero point.
            "DynamicQuantizeLinear" => {
                let (_, s) = self.input(n, 0)?;
                vec![(DType::U8, s.clone(), None), (DType::F32, vec![], None), (DType::U8, vec![], None)]
            }
            "MatMulInteger" => {
                let ((_, a), (_, b)) = (self.input(n, 0)?, self.input(n, 1)?);
                vec![(DType::I32, matmul(n, a, b)?, None)]
            }
            "Identity" => {
                let (t, s) = self.input(n, 0)?;
                vec![(*t, s.clone(), self.values.get(&n.inputs[0]).cloned())]
            }
            "Softmax" => {
                let (t, s) = self.input(n, 0)?;
                axis(n, n.int("axis").unwrap_or(-1), s.len())?;
                vec![(*t, s.clone(), None)]
            }
            "Cast" => {
                let (_, s) = self.input(n, 0)?;
                let code = n.int("to").ok_or_else(|| bad_attr(n, "to", "missing"))?;
                let to = i32::try_from(code).ok().and_then(DType::from_code).ok_or_else(|| PassError::UnsupportedDType { node: n.name.clone(), code })?;
                let v = matches!(to, DType::I64 | DType::I32).then(|| self.values.get(&n.inputs[0]).cloned()).flatten();
                vec![(to, s.clone(), v)]
            }
            "Add" | "Sub" | "Mul" | "Div" | "Max" => {
                if op != "Max" && n.inputs.len() != 2 {
                    return Err(err(format!("{op} takes 2 inputs, got {}", n.inputs.len())));
                }
                let (t, mut s) = self.input(n, 0)?.clone();
                for k in 1..n.inputs.len().max(1) {
                    let (t2, s2) = self.input(n, k)?;
                    if *t2 != t {
                        return Err(PassError::DTypeMismatch { node: n.name.clone(), a: t, b: *t2 });
                    }
                    s = broadcast(n, &s, s2)?;
                }
                vec![(t, s, None)]
            }
            "MatMul" => {
                let ((t, a), (t2, b)) = (self.input(n, 0)?, self.input(n, 1)?);
                if t != t2 {
                    return Err(PassError::DTypeMismatch { node: n.name.clone(), a: *t, b: *t2 });
                }
                vec![(*t, matmul(n, a, b)?, None)]
            }
            "Gemm" => {
                let ((t, a), (_, b)) = (self.input(n, 0)?, self.input(n, 1)?);
                if a.len() != 2 || b.len() != 2 {
                    return Err(mismatch(n, a, b));
                }
                let (ta, tb) = (n.int("transA").unwrap_or(0) != 0, n.int("transB").unwrap_or(0) != 0);
                let (m, ka) = if ta { (&a[1], &a[0]) } else { (&a[0], &a[1]) };
                let (kb, nn) = if tb { (&b[1], &b[0]) } else { (&b[0], &b[1]) };
                if !may_equal(ka, kb) {
                    return Err(mismatch(n, a, b));
                }
                let out = vec![m.clone(), nn.clone()];
                if self.opt_input(n, 2).is_some() {
                    let (_, c) = self.input(n, 2)?;
                    if broadcast(n, &out, c)? != out {
                        return Err(mismatch(n, &out, c));
                    }
                }
                vec![(*t, out, None)]
            }
            "Transpose" => {
                let (t, s) = self.input(n, 0)?;
                let perm: Vec<i64> = n.ints("perm").map_or_else(|| (0..s.len() as i64).rev().collect(), <[i64]>::to_vec);
                let mut seen = vec![false; s.len()];
                let mut out = Vec::with_capacity(s.len());
                for &p in &perm {
                    let a = usize::try_from(p).ok().filter(|&a| a < s.len() && !std::mem::replace(&mut seen[a], true));
                    out.push(s[a.ok_or_else(|| bad_attr(n, "perm", &format!("{perm:?} is not a permutation of rank {}", s.len())))?].clone());
                }
                if perm.len() != s.len() {
                    return Err(bad_attr(n, "perm", &format!("{perm:?} is not a permutation of rank {}", s.len())));
                }
                vec![(*t, out, None)]
            }
            "Reshape" => {
                let (t, s) = self.input(n, 0)?;
                let target = self.value(n, 1)?;
                vec![(*t, reshape(n, s, target, n.int("allowzero") == Some(1))?, None)]
            }
            "Unsqueeze" => {
                let (t, s) = self.input(n, 0)?;
                let axes = self.axes(n, 1)?.ok_or_else(|| bad_attr(n, "axes", "missing"))?;
                let r = s.len() + axes.len();
                let mut ax = axes.iter().map(|&a| axis(n, a, r)).collect::<Result<Vec<_>, _>>()?;
                ax.sort_unstable();
                if ax.windows(2).any(|w| w[0] == w[1]) {
                    return Err(bad_attr(n, "axes", &format!("{axes:?} repeats an axis")));
                }
                let mut rest = s.iter();
                let out = (0..r).map(|a| if ax.binary_search(&a).is_ok() { Dim::Fixed(1) } else { rest.next().expect("rank adds up").clone() }).collect();
                vec![(*t, out, self.values.get(&n.inputs[0]).cloned())]
            }
            "ReduceMean" | "ReduceSum" => {
                let (t, s) = self.input(n, 0)?;
                let axes = self.axes(n, 1)?.unwrap_or_default();
                let keep = n.int("keepdims").unwrap_or(1) != 0;
                if axes.is_empty() && n.int("noop_with_empty_axes") == Some(1) {
                    vec![(*t, s.clone(), None)]
                } else {
                    let ax = axes.iter().map(|&a| axis(n, a, s.len())).collect::<Result<Vec<_>, _>>()?;
                    let reduced = |k: usize| ax.is_empty() || ax.contains(&k);
                    let out = s.iter().enumerate().filter_map(|(k, d)| match (reduced(k), keep) {
                        (false, _) => Some(d.clone()),
                        (true, true) => Some(Dim::Fixed(1)),
                        (true, false) => None,
                    });
                    vec![(*t, out.collect(), None)]
                }
            }
            "LayerNormalization" => {
                let (t, s) = self.input(n, 0)?;
                let a = axis(n, n.int("axis").unwrap_or(-1), s.len())?;
                let stats: Shape = s.iter().enumerate().map(|(k, d)| if k < a { d.clone() } else { Dim::Fixed(1) }).collect();
                vec![(*t, s.clone(), None), (DType::F32, stats.clone(), None), (DType::F32, stats, None)]
            }
            "Shape" => {
                let (_, s) = self.input(n, 0)?;
                let r = s.len() as i64;
                let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
                let (a, b) = (clamp(n.int("start").unwrap_or(0)), clamp(n.int("end").unwrap_or(r)));
                let v: Vec<Dim> = s[a..b.max(a)].to_vec();
                vec![(DType::I64, vec![Dim::Fixed(v.len() as i64)], Some(v))]
            }
            "Gather" => {
                let ((t, data), (ti, idx)) = (self.input(n, 0)?, self.input(n, 1)?);
                if !matches!(ti, DType::I64 | DType::I32) {
                    return Err(PassError::DTypeMismatch { node: n.name.clone(), a: DType::I64, b: *ti });
                }
                let a = axis(n, n.int("axis").unwrap_or(0), data.len())?;
                let out: Shape = data[..a].iter().chain(idx).chain(&data[a + 1..]).cloned().collect();
                // Values: gathering from a tracked 1-D tensor with tracked indices.
                let v = (|| -> Option<Vec<Dim>> {
                    let (dv, iv) = (self.values.get(&n.inputs[0])?, self.ints(n, 1).ok()?);
                    iv.iter().map(|&i| dv.get(usize::try_from(if i < 0 { i + dv.len() as i64 } else { i }).ok()?).cloned()).collect()
                })();
                vec![(*t, out, v.filter(|_| data.len() == 1))]
            }
            "Slice" => vec![self.slice(n)?],
            _ => return Err(PassError::UnknownOp { node: n.name.clone(), op: op.into() }),
        })
    }

    fn slice(&self, n: &Node) -> Result<Out, PassError> {
        let (t, s) = self.input(n, 0)?;
        let starts = self.ints(n, 1)?;
        let ends = self.value(n, 2)?;
        let r = s.len();
        let axes = match self.opt_input(n, 3) {
            Some(_) => self.ints(n, 3)?,
            None => (0..starts.len() as i64).collect(),
        };
        let steps = match self.opt_input(n, 4) {
            Some(_) => self.ints(n, 4)?,
            None => vec![1; starts.len()],
        };
        if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            return Err(PassError::Unresolvable { node: n.name.clone(), reason: "starts, ends, axes and steps differ in length".into() });
        }
        let mut out = s.clone();
        let mut values = self.values.get(&n.inputs[0]).cloned().filter(|_| r == 1);
        for k in 0..starts.len() {
            let a = axis(n, axes[k], r)?;
            let (start, end, step) = (starts[k], &ends[k], steps[k]);
            if step == 0 {
                return Err(PassError::Unresolvable { node: n.name.clone(), reason: "slice step 0".into() });
            }
            const TO_END: i64 = i32::MAX as i64;
            out[a] = match (&s[a], end) {
                (Dim::Fixed(d), Dim::Fixed(e)) => {
                    let (b, len) = slice_range(*d, start, *e, step);
                    if let Some(v) = values.as_mut() {
                        *v = (0..len).map(|i| v[(b + i * step) as usize].clone()).collect();
                    }
                    Dim::Fixed(len)
                }
                // `[0, seq)`: seq elements, seq ≤ the dim being the exporter's cap.
                (_, Dim::Sym(e)) if start == 0 && step == 1 => Dim::Sym(e.clone()),
                (d @ Dim::Sym(_), Dim::Fixed(e)) if start == 0 && step == 1 && *e >= TO_END => d.clone(),
                (d, e) => {
                    return Err(PassError::Unresolvable {
                        node: n.name.clone(),
                        reason: format!("slice of dim {} from {start} to {} step {step}", fmt(std::slice::from_ref(d)), fmt(std::slice::from_ref(e))),
                    });
                }
            };
            if !matches!(out[a], Dim::Fixed(_)) {
                values = None;
            }
        }
        Ok((*t, out, values))
    }
}

fn bad_attr(n: &Node, attr: &str, reason: &str) -> PassError {
    PassError::BadAttr { node: n.name.clone(), attr: attr.into(), reason: reason.into() }
}

fn mismatch(n: &Node, a: &[Dim], b: &[Dim]) -> PassError {
    PassError::ShapeMismatch { node: n.name.clone(), a: fmt(a), b: fmt(b) }
}

fn axis(n: &Node, a: i64, rank: usize) -> Result<usize, PassError> {
    let r = rank as i64;
    let k = if a < 0 { a + r } else { a };
    if (0..r).contains(&k) {
        Ok(k as usize)
    } else {
        Err(PassError::AxisOutOfRange { node: n.name.clone(), axis: a, rank })
    }
}

/// Could the two dims be equal at run time? Only two fixed sizes or two
/// symbols can be told apart.
fn may_equal(a: &Dim, b: &Dim) -> bool {
    match (a, b) {
        (Dim::Fixed(x), Dim::Fixed(y)) => x == y,
        (Dim::Sym(x), Dim::Sym(y)) => x == y,
        _ => true,
    }
}

/// Numpy broadcasting of two shapes.
fn broadcast(n: &Node, a: &[Dim], b: &[Dim]) -> Result<Shape, PassError> {
    let r = a.len().max(b.len());
    let one = Dim::Fixed(1);
    let at = |s: &[Dim], k: usize| if k + s.len() >= r { s[k + s.len() - r].clone() } else { one.clone() };
    (0..r)
        .map(|k| match (at(a, k), at(b, k)) {
            (x, y) if x == y => Ok(x),
            (x, y) if x == one => Ok(y),
            (x, y) if y == one => Ok(x),
            // A symbol against n > 1: the symbol is 1 or n; either way n.
            (Dim::Sym(_), f @ Dim::Fixed(_)) | (f @ Dim::Fixed(_), Dim::Sym(_)) => Ok(f),
            _ => Err(mismatch(n, a, b)),
        })
        .collect()
}

/// Batched matrix product with numpy's rank-1 promotion.
fn matmul(n: &Node, a: &[Dim], b: &[Dim]) -> Result<Shape, PassError> {
    if a.is_empty() || b.is_empty() {
        return Err(mismatch(n, a, b));
    }
    let one = Dim::Fixed(1);
    let a2: Shape = if a.len() == 1 { vec![one.clone(), a[0].clone()] } else { a.to_vec() };
    let b2: Shape = if b.len() == 1 { vec![b[0].clone(), one] } else { b.to_vec() };
    let (ra, rb) = (a2.len(), b2.len());
    if !may_equal(&a2[ra - 1], &b2[rb - 2]) {
        return Err(mismatch(n, a, b));
    }
    let mut out = broadcast(n, &a2[..ra - 2], &b2[..rb - 2])?;
    if a.len() > 1 {
        out.push(a2[ra - 2].clone());
    }
    if b.len() > 1 {
        out.push(b2[rb - 1].clone());
    }
    Ok(out)
}

/// A product of dims: a fixed factor and a multiset of symbols.
#[derive(PartialEq)]
struct Product {
    fixed: i64,
    syms: BTreeMap<String, u32>,
}

impl Product {
    fn of<'a>(dims: impl IntoIterator<Item = &'a Dim>) -> Option<Self> {
        let mut p = Product { fixed: 1, syms: BTreeMap::new() };
        for d in dims {
            match d {
                Dim::Fixed(v) => p.fixed = p.fixed.checked_mul(*v)?,
                Dim::Sym(s) => *p.syms.entry(s.clone()).or_insert(0) += 1,
            }
        }
        Some(p)
    }
}

fn reshape(n: &Node, input: &[Dim], target: &[Dim], allowzero: bool) -> Result<Shape, PassError> {
    let fail = || PassError::ShapeMismatch { node: n.name.clone(), a: fmt(input), b: fmt(target) };
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (k, d) in target.iter().enumerate() {
        out.push(match d {
            Dim::Fixed(0) if !allowzero => input.get(k).cloned().ok_or_else(fail)?,
            Dim::Fixed(-1) if infer.is_none() => {
                infer = Some(k);
                Dim::Fixed(1)
            }
            Dim::Fixed(v) if *v < 0 => return Err(fail()),
            d => d.clone(),
        });
    }
    let total = Product::of(input).ok_or_else(fail)?;
    let known = Product::of(&out).ok_or_else(fail)?;
    match infer {
        None if total == known => Ok(out),
        None => Err(fail()),
        Some(k) => {
            let mut rest = total.syms.clone();
            for (s, c) in &known.syms {
                let have = rest.get_mut(s).filter(|h| **h >= *c).ok_or_else(fail)?;
                *have -= c;
            }
            rest.retain(|_, c| *c > 0);
            if known.fixed == 0 || total.fixed % known.fixed != 0 {
                return Err(fail());
            }
            let q = total.fixed / known.fixed;
            out[k] = match (rest.len(), q) {
                (0, q) => Dim::Fixed(q),
                (1, 1) if rest.values().all(|&c| c == 1) => Dim::Sym(rest.into_keys().next().expect("one symbol")),
                _ => return Err(PassError::Unresolvable { node: n.name.clone(), reason: format!("-1 in reshape of {} to {}", fmt(input), fmt(target)) }),
            };
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Attr, Builder, Tensor};

    fn sym(s: &str) -> Dim {
        Dim::Sym(s.into())
    }
    fn fixed(n: i64) -> Dim {
        Dim::Fixed(n)
    }
    fn input(g: &mut Graph, name: &str, dtype: DType, dims: Vec<Dim>) {
        g.inputs.push(ValueInfo { name: name.into(), dtype, shape: Some(dims) });
    }
    fn shape_of(m: &Model, v: &str) -> Vec<Dim> {
        m.graph.value_info[v].shape.clone().unwrap()
    }

    #[test]
    fn slices_the_position_table_to_seq() {
        let mut g = Graph::default();
        input(&mut g, "input_ids", DType::I64, vec![sym("batch"), sym("seq")]);
        let mut b = Builder::new(&mut g);
        let pos = b.init("pos", Tensor::f32(&[10, 4], &[0.; 40]));
        let (c0, c1, c2) = (b.init("c0", Tensor::i64(&[1], &[0])), b.init("c1", Tensor::i64(&[1], &[1])), b.init("c2", Tensor::i64(&[1], &[2])));
        let shape = b.op("e", "Shape", &["input_ids"], &[]);
        let seq_len = b.op("e", "Slice", &[&shape, &c1, &c2, &c0], &[]);
        let pos_s = b.op("e", "Slice", &[&pos, &c0, &seq_len, &c0], &[]);
        let out = b.op("e", "Identity", &[&pos_s], &[]);
        g.outputs.push(ValueInfo { name: out, dtype: DType::F32, shape: Some(vec![sym("seq"), fixed(4)]) });
        let mut m = Model { graph: g, ..Default::default() };
        assert_eq!(run(&mut m).unwrap(), 3);
        assert_eq!(shape_of(&m, &shape), [fixed(2)]);
        assert_eq!(shape_of(&m, &seq_len), [fixed(1)]);
        assert_eq!(shape_of(&m, &pos_s), [sym("seq"), fixed(4)]);
        assert_eq!(run(&mut m).unwrap(), 0);
    }

    #[test]
    fn follows_an_attention_block() {
        // x [batch, seq, 8] → q, k [batch, 2, seq, 4] → scores [batch, 2, seq, seq] → ctx [batch, seq, 8]
        let mut g = Graph::default();
        input(&mut g, "x", DType::F32, vec![sym("batch"), sym("seq"), fixed(8)]);
        input(&mut g, "mask", DType::I64, vec![sym("batch"), sym("seq")]);
        let mut b = Builder::new(&mut g);
        let w = b.init("w", Tensor::f32(&[8, 8], &[0.; 64]));
        let bias = b.init("b", Tensor::f32(&[8], &[0.; 8]));
        let split = b.init("split", Tensor::i64(&[4], &[0, 0, 2, 4]));
        let merge = b.init("merge", Tensor::i64(&[3], &[0, 0, -1]));
        let ax12 = b.init("ax12", Tensor::i64(&[2], &[1, 2]));
        let perm = |p: &[i64]| [("perm", Attr::Ints(p.to_vec()))];
        let y = b.op("a", "MatMul", &["x", &w], &[]);
        let y = b.op("a", "Add", &[&y, &bias], &[]);
        let q = b.op("a", "Reshape", &[&y, &split], &[]);
        let q = b.op("a", "Transpose", &[&q], &perm(&[0, 2, 1, 3]));
        let k = b.op("a", "Reshape", &[&y, &split], &[]);
        let k = b.op("a", "Transpose", &[&k], &perm(&[0, 2, 3, 1]));
        let mf = b.op("a", "Cast", &["mask"], &[("to", Attr::Int(1))]);
        let m4 = b.op("a", "Unsqueeze", &[&mf, &ax12], &[]);
        let sc = b.op("a", "MatMul", &[&q, &k], &[]);
        let sc = b.op("a", "Add", &[&sc, &m4], &[]);
        let p = b.op("a", "Softmax", &[&sc], &[("axis", Attr::Int(-1))]);
        let ctx = b.op("a", "MatMul", &[&p, &q], &[]);
        let ctx = b.op("a", "Transpose", &[&ctx], &perm(&[0, 2, 1, 3]));
        let ctx = b.op("a", "Reshape", &[&ctx, &merge], &[]);
        let ln = b.op("a", "LayerNormalization", &[&ctx, &bias, &bias], &[("axis", Attr::Int(-1))]);
        let out = b.op_in("com.microsoft", "a", "Gelu", &[&ln], &[]);
        let red = b.op("a", "ReduceMean", &[&out], &[("axes", Attr::Ints(vec![1])), ("keepdims", Attr::Int(0))]);
        let pooled = b.op("a", "Gemm", &[&red, &w, &bias], &[]);
        g.outputs.push(ValueInfo { name: pooled, dtype: DType::F32, shape: Some(vec![sym("batch"), fixed(8)]) });
        let mut m = Model { graph: g, ..Default::default() };
        run(&mut m).unwrap();
        let (batch, seq) = (sym("batch"), sym("seq"));
        assert_eq!(shape_of(&m, &q), [batch.clone(), fixed(2), seq.clone(), fixed(4)]);
        assert_eq!(shape_of(&m, &k), [batch.clone(), fixed(2), fixed(4), seq.clone()]);
        assert_eq!(shape_of(&m, &m4), [batch.clone(), fixed(1), fixed(1), seq.clone()]);
        assert_eq!(shape_of(&m, &sc), [batch.clone(), fixed(2), seq.clone(), seq.clone()]);
        assert_eq!(shape_of(&m, &ctx), [batch.clone(), seq.clone(), fixed(8)]);
        assert_eq!(shape_of(&m, &red), [batch, fixed(8)]);
        assert_eq!(m.graph.value_info[&mf].dtype, DType::F32);
    }

    #[test]
    fn unknown_op_and_wrong_declared_output_are_errors() {
        let mut g = Graph::default();
        input(&mut g, "x", DType::F32, vec![sym("batch"), fixed(3)]);
        let mut b = Builder::new(&mut g);
        let y = b.op("s", "Relu", &["x"], &[]);
        g.outputs.push(ValueInfo { name: y, dtype: DType::F32, shape: None });
        let mut m = Model { graph: g, ..Default::default() };
        assert_eq!(run(&mut m), Err(PassError::UnknownOp { node: "s/Relu_1".into(), op: "Relu".into() }));

        m.graph.nodes[0].op = "Sqrt".into();
        m.graph.outputs[0].shape = Some(vec![sym("batch"), fixed(4)]);
        let e = run(&mut m).unwrap_err();
        assert!(matches!(&e, PassError::OutputMismatch { inferred, .. } if inferred == "F32 [batch, 3]"), "{e}");
    }

    #[test]
    fn reshape_resolves_symbols_through_minus_one() {
        let n = Node { name: "r".into(), op: "Reshape".into(), domain: String::new(), inputs: vec![], outputs: vec![], attrs: Default::default() };
        let from = [sym("batch"), sym("seq"), fixed(2), fixed(4)];
        assert_eq!(reshape(&n, &from, &[fixed(0), fixed(-1), fixed(8)], false).unwrap(), [sym("batch"), sym("seq"), fixed(8)]);
        assert!(reshape(&n, &from, &[fixed(-1), fixed(8)], false).is_err(), "-1 would be batch·seq");
        assert!(reshape(&n, &from, &[fixed(0), fixed(0), fixed(9)], false).is_err());
    }
}
