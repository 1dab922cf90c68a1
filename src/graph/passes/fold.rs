//! Constant folding: a node whose inputs are all initializers and whose
//! operator has an evaluator below becomes an initializer named after its
//! first input and the operator (`W.Transpose`), or after the node's output
//! when that name is taken.
//!
//! Evaluators: `Transpose` (any perm), `Add`/`Sub`/`Mul`/`Div` on f32 with
//! numpy broadcasting, `Sqrt` on f32, `Identity`, `Cast` f32→f32,
//! `Unsqueeze` and `Reshape`. Arithmetic is one IEEE operation per element
//! (plain Rust operators, never a fused multiply-add), so folded bytes are the
//! same on every CPU. Anything else — another operator, dtype or a malformed
//! node — is left for the runtime: folding is an optimisation, never a
//! requirement.
//!
//! Deliberately not folded: nodes producing a graph output (the interface
//! keeps its nodes), nodes with several outputs, and results with more
//! elements than their inputs together (broadcasting must not grow the
//! model). Identical folds (same op, inputs and attributes — ALBERT's shared
//! weights transposed once per layer application) are computed once and the
//! later copies rewired to the first.

use super::{is_onnx_domain, PassError};
use crate::graph::{DType, Model, Node, Tensor};
use std::collections::{BTreeMap, BTreeSet};

/// Folds constant nodes; returns how many were folded.
pub fn run(model: &mut Model) -> Result<usize, PassError> {
    let g = &mut model.graph;
    let outputs: BTreeSet<String> = g.outputs.iter().map(|o| o.name.clone()).collect();
    // (op, domain, inputs, attrs) of folded nodes → the initializer holding the result.
    let mut memo: BTreeMap<String, String> = BTreeMap::new();
    let mut renames: BTreeMap<String, String> = BTreeMap::new();
    let mut kept = Vec::with_capacity(g.nodes.len());
    let mut folded = 0;
    for mut n in std::mem::take(&mut g.nodes) {
        for i in n.inputs.iter_mut() {
            if let Some(to) = renames.get(i.as_str()) {
                *i = to.clone();
            }
        }
        let foldable =
            n.outputs.len() == 1 && !outputs.contains(&n.outputs[0]) && !n.inputs.is_empty() && n.inputs.iter().all(|i| g.initializers.contains_key(i));
        if !foldable {
            kept.push(n);
            continue;
        }
        let key = format!("{}\u{0}{}\u{0}{:?}\u{0}{:?}", n.domain, n.op, n.inputs, n.attrs);
        if let Some(first) = memo.get(&key) {
            renames.insert(n.outputs[0].clone(), first.clone());
            folded += 1;
            continue;
        }
        let ins: Vec<&Tensor> = n.inputs.iter().map(|i| &g.initializers[i]).collect();
        let Some(t) = eval(&n, &ins) else {
            kept.push(n);
            continue;
        };
        if t.numel() > ins.iter().map(|t| t.numel()).sum::<usize>() {
            kept.push(n);
            continue;
        }
        // Name the result after what it is (`W.Transpose`), so weights keep
        // their identity through folding; fall back to the node's output name.
        let out = n.outputs.swap_remove(0);
        let derived = format!("{}.{}", n.inputs[0], n.op);
        let taken = |name: &str| g.initializers.contains_key(name) || g.inputs.iter().any(|v| v.name == name);
        let name = if !taken(&derived) && !outputs.contains(&derived) { derived } else { out.clone() };
        if taken(&name) {
            return Err(PassError::DuplicateName { node: n.name, name });
        }
        if name != out {
            renames.insert(out, name.clone());
        }
        g.initializers.insert(name.clone(), t);
        memo.insert(key, name);
        folded += 1;
    }
    g.nodes = kept;
    Ok(folded)
}

/// Evaluates `n` on constant inputs, or `None` when it has no evaluator.
fn eval(n: &Node, ins: &[&Tensor]) -> Option<Tensor> {
    if !is_onnx_domain(&n.domain) {
        return None;
    }
    match (n.op.as_str(), ins) {
        ("Identity", [x]) => Some((*x).clone()),
        ("Cast", [x]) => (x.dtype == DType::F32 && n.int("to") == Some(DType::F32.code() as i64)).then(|| (*x).clone()),
        ("Sqrt", [x]) => {
            let v = x.to_f32()?;
            Some(Tensor::f32(&x.dims, &v.iter().map(|v| v.sqrt()).collect::<Vec<_>>()))
        }
        ("Transpose", [x]) => transpose(x, n.ints("perm")),
        ("Add" | "Sub" | "Mul" | "Div", [a, b]) => binary(&n.op, a, b),
        ("Reshape", [x, shape]) => {
            let dims = reshape_dims(&x.dims, &shape.to_i64()?, n.int("allowzero") == Some(1))?;
            Some(Tensor { dtype: x.dtype, dims, data: x.data.clone() })
        }
        ("Unsqueeze", [x, axes]) => unsqueeze(x, &axes.to_i64()?),
        ("Unsqueeze", [x]) => unsqueeze(x, n.ints("axes")?),
        _ => None,
    }
}

fn transpose(x: &Tensor, perm: Option<&[i64]>) -> Option<Tensor> {
    let r = x.dims.len();
    let perm: Vec<usize> = match perm {
        Some(p) => p.iter().map(|&a| usize::try_from(a).ok()).collect::<Option<_>>()?,
        None => (0..r).rev().collect(),
    };
    let mut seen = vec![false; r];
    if perm.len() != r || perm.iter().any(|&a| a >= r || std::mem::replace(&mut seen[a], true)) {
        return None;
    }
    let es = x.dtype.size();
    let dims: Vec<usize> = x.dims.iter().map(|&d| usize::try_from(d).ok()).collect::<Option<_>>()?;
    let mut strides = vec![1usize; r];
    for a in (0..r.saturating_sub(1)).rev() {
        strides[a] = strides[a + 1] * dims[a + 1];
    }
    let out_dims: Vec<usize> = perm.iter().map(|&a| dims[a]).collect();
    let out_strides: Vec<usize> = perm.iter().map(|&a| strides[a]).collect();
    let mut data = Vec::with_capacity(x.data.len());
    for_each_index(&out_dims, |idx| {
        let off = idx.iter().zip(&out_strides).map(|(i, s)| i * s).sum::<usize>() * es;
        data.extend_from_slice(&x.data[off..off + es]);
    });
    Some(Tensor { dtype: x.dtype, dims: out_dims.iter().map(|&d| d as i64).collect(), data })
}

fn binary(op: &str, a: &Tensor, b: &Tensor) -> Option<Tensor> {
    let (av, bv) = (a.to_f32()?, b.to_f32()?);
    let r = a.dims.len().max(b.dims.len());
    let pad = |d: &[i64]| -> Vec<i64> { std::iter::repeat_n(1, r - d.len()).chain(d.iter().copied()).collect() };
    let (ad, bd) = (pad(&a.dims), pad(&b.dims));
    let mut out = Vec::with_capacity(r);
    for (&x, &y) in ad.iter().zip(&bd) {
        out.push(match (x, y) {
            _ if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        });
    }
    let strides = |d: &[i64]| -> Vec<usize> {
        let mut s = vec![0usize; r];
        let mut acc = 1usize;
        for k in (0..r).rev() {
            s[k] = if d[k] == 1 { 0 } else { acc };
            acc *= d[k] as usize;
        }
        s
    };
    let (sa, sb) = (strides(&ad), strides(&bd));
    let f: fn(f32, f32) -> f32 = match op {
        "Add" => |x, y| x + y,
        "Sub" => |x, y| x - y,
        "Mul" => |x, y| x * y,
        _ => |x, y| x / y,
    };
    let dims: Vec<usize> = out.iter().map(|&d| usize::try_from(d).ok()).collect::<Option<_>>()?;
    let mut vals = Vec::with_capacity(dims.iter().product());
    for_each_index(&dims, |idx| {
        let ia: usize = idx.iter().zip(&sa).map(|(i, s)| i * s).sum();
        let ib: usize = idx.iter().zip(&sb).map(|(i, s)| i * s).sum();
        vals.push(f(av[ia], bv[ib]));
    });
    Some(Tensor::f32(&out, &vals))
}

/// ONNX `Reshape` target dims: `0` copies the input dim (unless
/// `allowzero`), one `-1` takes the remaining elements.
pub(crate) fn reshape_dims(input: &[i64], shape: &[i64], allowzero: bool) -> Option<Vec<i64>> {
    let total: i64 = input.iter().product();
    let mut dims = Vec::with_capacity(shape.len());
    let mut infer = None;
    for (k, &s) in shape.iter().enumerate() {
        dims.push(match s {
            0 if !allowzero => *input.get(k)?,
            -1 if infer.is_none() => {
                infer = Some(k);
                1
            }
            s if s >= 0 => s,
            _ => return None,
        });
    }
    let known: i64 = dims.iter().product();
    if let Some(k) = infer {
        if known == 0 || total % known != 0 {
            return None;
        }
        dims[k] = total / known;
    }
    (dims.iter().product::<i64>() == total).then_some(dims)
}

fn unsqueeze(x: &Tensor, axes: &[i64]) -> Option<Tensor> {
    let r = (x.dims.len() + axes.len()) as i64;
    let mut norm: Vec<i64> = axes.iter().map(|&a| if a < 0 { a + r } else { a }).collect();
    norm.sort_unstable();
    if norm.windows(2).any(|w| w[0] == w[1]) || norm.iter().any(|&a| a < 0 || a >= r) {
        return None;
    }
    let mut rest = x.dims.iter();
    let dims = (0..r).map(|a| if norm.binary_search(&a).is_ok() { Some(1) } else { rest.next().copied() }).collect::<Option<Vec<i64>>>()?;
    Some(Tensor { dtype: x.dtype, dims, data: x.data.clone() })
}

/// Calls `f` with every index of a row-major tensor of shape `dims`, in order.
fn for_each_index(dims: &[usize], mut f: impl FnMut(&[usize])) {
    if dims.contains(&0) {
        return;
    }
    let mut idx = vec![0usize; dims.len()];
    loop {
        f(&idx);
        let mut k = dims.len();
        loop {
            if k == 0 {
                return;
            }
            k -= 1;
            idx[k] += 1;
            if idx[k] < dims[k] {
                break;
            }
            idx[k] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Attr, Builder, Dim, Graph, ValueInfo};

    fn model(g: Graph) -> Model {
        Model { graph: g, ..Default::default() }
    }

    #[test]
    fn folds_transpose_then_add_with_broadcast() {
        let mut g = Graph::default();
        g.inputs.push(ValueInfo { name: "x".into(), dtype: DType::F32, shape: Some(vec![Dim::Fixed(2), Dim::Fixed(3)]) });
        let mut b = Builder::new(&mut g);
        let w = b.init("w", Tensor::f32(&[3, 2], &[1., 2., 3., 4., 5., 6.]));
        let bias = b.init("bias", Tensor::f32(&[3], &[0.5, -1., 0.25]));
        let wt = b.op("s", "Transpose", &[&w], &[("perm", Attr::Ints(vec![1, 0]))]);
        let sum = b.op("s", "Add", &[&wt, &bias], &[]);
        let y = b.op("s", "Mul", &["x", &sum], &[]);
        g.outputs.push(ValueInfo { name: y.clone(), dtype: DType::F32, shape: None });
        let mut m = model(g);
        assert_eq!(run(&mut m).unwrap(), 2);
        let g = &m.graph;
        assert_eq!(g.nodes.len(), 1);
        // Folded values are named after their first input and the op.
        let (wt_name, sum_name) = ("w.Transpose", "w.Transpose.Add");
        assert_eq!(g.nodes[0].inputs, ["x".to_string(), sum_name.to_string()]);
        // W^T = [[1,3,5],[2,4,6]], plus the bias row.
        let folded = &g.initializers[sum_name];
        assert_eq!(folded.dims, [2, 3]);
        assert_eq!(folded.to_f32().unwrap(), [1.5, 2., 5.25, 2.5, 3., 6.25]);
        assert!(g.initializers.contains_key(wt_name), "intermediate stays until dce");
        assert!(!g.initializers.contains_key(&wt) && !g.initializers.contains_key(&sum));
    }

    #[test]
    fn transposes_rank_3_with_any_perm() {
        let vals: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let x = Tensor::f32(&[2, 3, 4], &vals);
        let t = transpose(&x, Some(&[2, 0, 1])).unwrap();
        assert_eq!(t.dims, [4, 2, 3]);
        let out = t.to_f32().unwrap();
        // out[k][i][j] = x[i][j][k]
        assert_eq!(out[6 + 3 + 2], vals[12 + 2 * 4 + 1]);
        assert_eq!(transpose(&t, Some(&[1, 2, 0])).unwrap(), x);
    }

    #[test]
    fn repeated_folds_share_one_initializer_and_unknown_ops_stay() {
        let mut g = Graph::default();
        let mut b = Builder::new(&mut g);
        let w = b.init("w", Tensor::f32(&[2, 2], &[1., 2., 3., 4.]));
        let t1 = b.op("a", "Transpose", &[&w], &[("perm", Attr::Ints(vec![1, 0]))]);
        let t2 = b.op("b", "Transpose", &[&w], &[("perm", Attr::Ints(vec![1, 0]))]);
        let e = b.op("c", "Erf", &[&t2], &[]);
        let y = b.op("c", "Add", &[&t1, &e], &[]);
        g.outputs.push(ValueInfo { name: y, dtype: DType::F32, shape: None });
        let mut m = model(g);
        assert_eq!(run(&mut m).unwrap(), 2);
        let ops: Vec<_> = m.graph.nodes.iter().map(|n| (n.op.as_str(), n.inputs.clone())).collect();
        let folded = "w.Transpose".to_string();
        assert_eq!(ops, [("Erf", vec![folded.clone()]), ("Add", vec![folded, e])]);
        assert!(!m.graph.initializers.contains_key(&t1) && !m.graph.initializers.contains_key(&t2));
    }

    #[test]
    fn reshape_and_unsqueeze_only_change_dims() {
        let x = Tensor::f32(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        assert_eq!(reshape_dims(&x.dims, &[0, -1, 1], false), Some(vec![2, 3, 1]));
        assert_eq!(reshape_dims(&x.dims, &[4, -1], false), None);
        assert_eq!(unsqueeze(&x, &[0, -1]).unwrap().dims, [1, 2, 3, 1]);
    }
}
