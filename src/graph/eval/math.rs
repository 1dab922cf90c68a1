//! Arithmetic: broadcasting binary ops, element-wise functions, MatMul,
//! Gemm and the reductions.
//!
//! Every output element is computed by one fixed sequence of IEEE
//! operations: products accumulate from `0.0` sequentially over `k`, sums
//! sequentially over the reduced elements in row-major order. Rayon only
//! splits output rows.

use super::array::strides;
use super::{Args, Array, EvalError, Value};
use crate::kernels::linear;
use rayon::prelude::*;
use std::borrow::Cow;

/// Numpy broadcasting of two shapes.
pub(super) fn broadcast_dims(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    let at = |s: &[usize], k: usize| if k + s.len() >= r { s[k + s.len() - r] } else { 1 };
    (0..r)
        .map(|k| match (at(a, k), at(b, k)) {
            (x, y) if x == y || y == 1 => Some(x),
            (1, y) => Some(y),
            _ => None,
        })
        .collect()
}

/// Strides of `dims` read at the (right-aligned) indices of `out`; 0 on
/// broadcast axes.
pub(super) fn bstrides(dims: &[usize], out: &[usize]) -> Vec<usize> {
    let s = strides(dims);
    let skip = out.len() - dims.len();
    (0..out.len()).map(|k| if k < skip || dims[k - skip] == 1 { 0 } else { s[k - skip] }).collect()
}

/// Calls `f(offset_a, offset_b)` for every index of `out` in row-major order.
pub(super) fn walk2(out: &[usize], sa: &[usize], sb: &[usize], mut f: impl FnMut(usize, usize)) {
    if out.contains(&0) {
        return;
    }
    let Some((&last, outer)) = out.split_last() else {
        f(0, 0);
        return;
    };
    let r = outer.len();
    let (ia, ib) = (sa[r], sb[r]);
    let mut idx = vec![0usize; r];
    let (mut oa, mut ob) = (0, 0);
    loop {
        for j in 0..last {
            f(oa + j * ia, ob + j * ib);
        }
        let mut k = r;
        loop {
            if k == 0 {
                return;
            }
            k -= 1;
            idx[k] += 1;
            oa += sa[k];
            ob += sb[k];
            if idx[k] < outer[k] {
                break;
            }
            oa -= sa[k] * outer[k];
            ob -= sb[k] * outer[k];
            idx[k] = 0;
        }
    }
}

/// `f` applied to every broadcast pair of elements.
pub(super) fn zip<T: Copy, U>(a: &Array<T>, b: &Array<T>, f: impl Fn(T, T) -> U) -> Option<Array<U>> {
    let dims = broadcast_dims(&a.dims, &b.dims)?;
    if a.dims == b.dims {
        return Some(Array::new(dims, a.data.iter().zip(&b.data).map(|(&x, &y)| f(x, y)).collect()));
    }
    let mut data = Vec::with_capacity(dims.iter().product());
    walk2(&dims, &bstrides(&a.dims, &dims), &bstrides(&b.dims, &dims), |i, j| data.push(f(a.data[i], b.data[j])));
    Some(Array::new(dims, data))
}

/// NaN if either is NaN, else the larger (the first on a tie).
fn max_f32(x: f32, y: f32) -> f32 {
    if x.is_nan() || y.is_nan() {
        f32::NAN
    } else if x >= y {
        x
    } else {
        y
    }
}

/// Add, Sub, Mul, Div, Max with numpy broadcasting. F32 for all; I64
/// (wrapping) for Add, Sub, Mul and Max. Max takes one or more inputs,
/// combined left to right.
pub(super) fn binary(a: &Args) -> Result<Value, EvalError> {
    let op = a.node.op.as_str();
    let n = a.node.inputs.len();
    if op != "Max" && n > 2 {
        return Err(a.unsupported(format!("{op} with {n} inputs")));
    }
    let mut acc = Cow::Borrowed(a.value(0)?);
    let last = if op == "Max" { n.max(1) } else { 2 };
    for k in 1..last {
        let y = a.value(k)?;
        let out = match (acc.as_ref(), y) {
            (Value::F32(x), Value::F32(y)) => {
                let f: fn(f32, f32) -> f32 = match op {
                    "Add" => |x, y| x + y,
                    "Sub" => |x, y| x - y,
                    "Mul" => |x, y| x * y,
                    "Div" => |x, y| x / y,
                    _ => max_f32,
                };
                zip(x, y, f).map(Value::F32)
            }
            (Value::I64(x), Value::I64(y)) if op != "Div" => {
                let f: fn(i64, i64) -> i64 = match op {
                    "Add" => i64::wrapping_add,
                    "Sub" => i64::wrapping_sub,
                    "Mul" => i64::wrapping_mul,
                    _ => i64::max,
                };
                zip(x, y, f).map(Value::I64)
            }
            (x, _) => {
                let bad = if matches!(x, Value::F32(_)) || (matches!(x, Value::I64(_)) && op != "Div") { k } else { 0 };
                return Err(a.wrong_dtype(bad, if op == "Div" { "F32 (both inputs)" } else { "F32 or I64 (both inputs alike)" }));
            }
        };
        let out = out.ok_or_else(|| a.mismatch(format!("{:?} and {} do not broadcast", acc.dims(), a.shape_of(k))))?;
        acc = Cow::Owned(out);
    }
    Ok(acc.into_owned())
}

/// An element-wise f32 function.
pub(super) fn unary(a: &Args, f: fn(f32) -> f32) -> Result<Value, EvalError> {
    let x = a.f32(0)?;
    Ok(Value::F32(Array::new(x.dims.clone(), x.data.iter().map(|&v| f(v)).collect())))
}

/// `w` (`[rows, cols]`) transposed to `[cols, rows]`.
pub(super) fn transpose2<T: Copy + Default>(w: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut t = vec![T::default(); w.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = w[r * cols + c];
        }
    }
    t
}

/// A batched matrix product with numpy's broadcasting and rank-1 promotion.
pub(super) struct MatPlan {
    /// Output shape.
    pub dims: Vec<usize>,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// Per output matrix: offsets of its A and B matrices.
    pub pairs: Vec<(usize, usize)>,
}

impl MatPlan {
    pub fn new(a: &Args, ad: &[usize], bd: &[usize]) -> Result<Self, EvalError> {
        let fail = || a.mismatch(format!("{} and {} do not multiply", a.shape_of(0), a.shape_of(1)));
        if ad.is_empty() || bd.is_empty() {
            return Err(fail());
        }
        let a2 = if ad.len() == 1 { vec![1, ad[0]] } else { ad.to_vec() };
        let b2 = if bd.len() == 1 { vec![bd[0], 1] } else { bd.to_vec() };
        let (ra, rb) = (a2.len(), b2.len());
        let (m, k, k2, n) = (a2[ra - 2], a2[ra - 1], b2[rb - 2], b2[rb - 1]);
        if k != k2 {
            return Err(fail());
        }
        let batch = broadcast_dims(&a2[..ra - 2], &b2[..rb - 2]).ok_or_else(fail)?;
        let sa: Vec<usize> = bstrides(&a2[..ra - 2], &batch).iter().map(|s| s * m * k).collect();
        let sb: Vec<usize> = bstrides(&b2[..rb - 2], &batch).iter().map(|s| s * k * n).collect();
        let mut pairs = Vec::new();
        walk2(&batch, &sa, &sb, |i, j| pairs.push((i, j)));
        let mut dims = batch;
        if ad.len() > 1 {
            dims.push(m);
        }
        if bd.len() > 1 {
            dims.push(n);
        }
        Ok(MatPlan { dims, m, k, n, pairs })
    }

    /// `out[i][j] = mul_add(…mul_add(mul_add(0, a[i][0], b[0][j]), a[i][1], b[1][j])…)`,
    /// sequential over `k`, rows in parallel.
    pub fn run<T: Copy + Default + Send + Sync>(&self, a: &[T], b: &[T], mul_add: impl Fn(T, T, T) -> T + Sync) -> Vec<T> {
        let (m, k, n) = (self.m, self.k, self.n);
        let mut out = vec![T::default(); self.pairs.len() * m * n];
        if out.is_empty() {
            return out;
        }
        out.par_chunks_mut(n).enumerate().for_each(|(r, row)| {
            let (pa, pb) = self.pairs[r / m];
            let arow = &a[pa + (r % m) * k..][..k];
            for (kk, &av) in arow.iter().enumerate() {
                for (o, &bv) in row.iter_mut().zip(&b[pb + kk * n..][..n]) {
                    *o = mul_add(*o, av, bv);
                }
            }
        });
        out
    }
}

fn dot_f32(acc: f32, x: f32, y: f32) -> f32 {
    acc + x * y
}

/// `MatMul` (f32): `kernels::linear` when B is a packed 2-D constant, else
/// the plain batched loop; both give the same bits.
pub(super) fn matmul(a: &Args) -> Result<Value, EvalError> {
    let (x, y) = (a.f32(0)?, a.f32(1)?);
    if let (Some(p), Some((&k, lead))) = (a.packed(1, false), x.dims.split_last()) {
        if p.in_features() != k {
            return Err(a.mismatch(format!("{} and {} do not multiply", a.shape_of(0), a.shape_of(1))));
        }
        let (m, n) = (lead.iter().product::<usize>(), p.out_features());
        let mut out = vec![0.0; m * n];
        linear(&x.data, m, p, &mut out);
        let mut dims = lead.to_vec();
        dims.push(n);
        return Ok(Value::F32(Array::new(dims, out)));
    }
    let plan = MatPlan::new(a, &x.dims, &y.dims)?;
    let out = plan.run(&x.data, &y.data, dot_f32);
    Ok(Value::F32(Array::new(plan.dims, out)))
}

/// `Gemm`: `alpha · A'B' + beta · C`, 2-D, C broadcast to `[M, N]`.
/// With alpha = beta = 1 this is bit for bit the encoder's dense layer.
pub(super) fn gemm(a: &Args) -> Result<Value, EvalError> {
    let (x, y) = (a.f32(0)?, a.f32(1)?);
    let (&[x0, x1], &[y0, y1]) = (&x.dims[..], &y.dims[..]) else {
        return Err(a.mismatch(format!("Gemm takes 2-D A and B, got {} and {}", a.shape_of(0), a.shape_of(1))));
    };
    let (ta, tb) = (a.int_attr("transA", 0)? != 0, a.int_attr("transB", 0)? != 0);
    let (alpha, beta) = (a.float_attr("alpha", 1.0)?, a.float_attr("beta", 1.0)?);
    let (m, k) = if ta { (x1, x0) } else { (x0, x1) };
    let (k2, n) = if tb { (y1, y0) } else { (y0, y1) };
    if k != k2 {
        return Err(a.mismatch(format!("{} and {} do not multiply (transA {ta}, transB {tb})", a.shape_of(0), a.shape_of(1))));
    }
    let xa: Cow<[f32]> = if ta { Cow::Owned(transpose2(&x.data, x0, x1)) } else { Cow::Borrowed(&x.data) };
    let acc = match a.packed(1, tb) {
        Some(p) => {
            let mut out = vec![0.0; m * n];
            linear(&xa, m, p, &mut out);
            out
        }
        None => {
            let yb: Cow<[f32]> = if tb { Cow::Owned(transpose2(&y.data, y0, y1)) } else { Cow::Borrowed(&y.data) };
            MatPlan { dims: vec![m, n], m, k, n, pairs: vec![(0, 0)] }.run(&xa, &yb, dot_f32)
        }
    };
    let dims = vec![m, n];
    let out = match a.opt(2) {
        None => acc.iter().map(|&v| alpha * v).collect(),
        Some(_) => {
            let c = a.f32(2)?;
            if broadcast_dims(&dims, &c.dims).as_deref() != Some(&dims[..]) {
                return Err(a.mismatch(format!("{} does not broadcast to [{m}, {n}]", a.shape_of(2))));
            }
            let mut out = Vec::with_capacity(m * n);
            walk2(&dims, &[n, 1], &bstrides(&c.dims, &dims), |i, j| out.push(alpha * acc[i] + beta * c.data[j]));
            out
        }
    };
    Ok(Value::F32(Array::new(dims, out)))
}

/// `ReduceMean` / `ReduceSum` (axes from the input, or the attribute):
/// each output sums its elements from `0.0` in row-major order; the mean
/// divides that sum by the count.
pub(super) fn reduce(a: &Args, mean: bool) -> Result<Value, EvalError> {
    let x = a.f32(0)?;
    let r = x.dims.len();
    let axes = a.axes(1)?.unwrap_or_default();
    let keep = a.int_attr("keepdims", 1)? != 0;
    if axes.is_empty() && a.int_attr("noop_with_empty_axes", 0)? != 0 {
        return Ok(Value::F32(x.clone()));
    }
    let ax = if axes.is_empty() { (0..r).collect() } else { a.axes_set("axes", &axes, r)? };
    let s = strides(&x.dims);
    let (kept, red): (Vec<usize>, Vec<usize>) = (0..r).partition(|k| !ax.contains(k));
    let pick = |axes: &[usize], v: &[usize]| axes.iter().map(|&k| v[k]).collect::<Vec<_>>();
    let zeros = vec![0; r];
    let mut offsets = Vec::new();
    walk2(&pick(&red, &x.dims), &pick(&red, &s), &zeros, |o, _| offsets.push(o));
    let count = offsets.len() as f32;
    let mut out = Vec::new();
    walk2(&pick(&kept, &x.dims), &pick(&kept, &s), &zeros, |base, _| {
        let mut acc = 0.0f32;
        for &o in &offsets {
            acc += x.data[base + o];
        }
        out.push(if mean { acc / count } else { acc });
    });
    let dims = if keep { (0..r).map(|k| if ax.contains(&k) { 1 } else { x.dims[k] }).collect() } else { pick(&kept, &x.dims) };
    Ok(Value::F32(Array::new(dims, out)))
}
