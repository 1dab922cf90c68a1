//! Data movement: Cast, Shape, Gather, Slice, Transpose, Reshape,
//! Unsqueeze, Squeeze. Generic over the element type; no arithmetic
//! except Cast's conversions.

use super::value::map_array;
use super::{Args, Array, EvalError, Value};
use crate::graph::ir::slice_range;
use crate::graph::{Attr, DType};

/// Row-major strides of `dims`.
pub(super) fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for k in (0..dims.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1] * dims[k + 1];
    }
    s
}

/// `out[i] = data[base + Σ_k i_k · steps[k]]` for every row-major index `i`
/// of `dims`.
fn strided<T: Copy>(data: &[T], dims: &[usize], base: isize, steps: &[isize]) -> Vec<T> {
    let numel: usize = dims.iter().product();
    let mut out = Vec::with_capacity(numel);
    if numel == 0 {
        return out;
    }
    let Some((&last, outer)) = dims.split_last() else {
        out.push(data[base as usize]);
        return out;
    };
    let step = steps[outer.len()];
    let mut idx = vec![0usize; outer.len()];
    let mut off = base;
    loop {
        out.extend((0..last as isize).map(|j| data[(off + j * step) as usize]));
        let mut k = outer.len();
        loop {
            if k == 0 {
                return out;
            }
            k -= 1;
            idx[k] += 1;
            off += steps[k];
            if idx[k] < outer[k] {
                break;
            }
            off -= steps[k] * outer[k] as isize;
            idx[k] = 0;
        }
    }
}

/// `Constant` holding a tensor `value` (the `value_float`… forms are left out).
pub(super) fn constant(a: &Args) -> Result<Value, EvalError> {
    match a.node.attrs.get("value") {
        Some(Attr::Tensor(t)) => Value::from_tensor(t).map_err(|reason| a.bad_attr("value", reason)),
        Some(_) => Err(a.bad_attr("value", "not a tensor")),
        None => Err(a.unsupported("Constant without a tensor `value`")),
    }
}

fn convert<S: Copy, D>(a: &Array<S>, f: impl Fn(S) -> D) -> Array<D> {
    Array::new(a.dims.clone(), a.data.iter().map(|&v| f(v)).collect())
}

/// `Cast`: anything to F32 (integers round to nearest, ties to even), and
/// integer to integer (two's-complement wrap, like C). Float to integer is
/// left out: ONNX leaves out-of-range results undefined.
pub(super) fn cast(a: &Args) -> Result<Value, EvalError> {
    let code = a.node.attrs.get("to").map(|_| a.int_attr("to", 0)).transpose()?.ok_or_else(|| a.bad_attr("to", "missing"))?;
    let to = i32::try_from(code).ok().and_then(DType::from_code).ok_or_else(|| a.bad_attr("to", format!("element type {code} is not supported")))?;
    let x = a.value(0)?;
    macro_rules! ints_to {
        ($t:ty, $variant:ident) => {
            match x {
                Value::I64(v) => Value::$variant(convert(v, |e| e as $t)),
                Value::I32(v) => Value::$variant(convert(v, |e| e as $t)),
                Value::I8(v) => Value::$variant(convert(v, |e| e as $t)),
                Value::U8(v) => Value::$variant(convert(v, |e| e as $t)),
                Value::F32(_) => return Err(a.unsupported(format!("Cast from F32 to {to:?}"))),
            }
        };
    }
    Ok(match to {
        DType::F32 => match x {
            Value::F32(v) => Value::F32(v.clone()),
            Value::I64(v) => Value::F32(convert(v, |e| e as f32)),
            Value::I32(v) => Value::F32(convert(v, |e| e as f32)),
            Value::I8(v) => Value::F32(convert(v, f32::from)),
            Value::U8(v) => Value::F32(convert(v, f32::from)),
        },
        DType::I64 => ints_to!(i64, I64),
        DType::I32 => ints_to!(i32, I32),
        DType::I8 => ints_to!(i8, I8),
        DType::U8 => ints_to!(u8, U8),
    })
}

/// `Shape` with the opset-15 `start`/`end` attributes.
pub(super) fn shape(a: &Args) -> Result<Value, EvalError> {
    let dims = a.value(0)?.dims();
    let r = dims.len() as i64;
    let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let (s, e) = (clamp(a.int_attr("start", 0)?), clamp(a.int_attr("end", r)?));
    let v: Vec<i64> = dims[s..e.max(s)].iter().map(|&d| d as i64).collect();
    Ok(Value::i64(&[v.len()], v))
}

/// `Gather` on any axis with i64 or i32 indices of any rank; negative
/// indices count from the end.
pub(super) fn gather(a: &Args) -> Result<Value, EvalError> {
    let data = a.value(0)?;
    let idx = a.ints(1)?;
    let dims = data.dims();
    if dims.is_empty() {
        return Err(a.mismatch(format!("Gather from the scalar {}", a.shape_of(0))));
    }
    let axis = a.axis("axis", a.int_attr("axis", 0)?, dims.len())?;
    let d = dims[axis];
    let idx = idx
        .iter()
        .map(|&i| {
            usize::try_from(if i < 0 { i + d as i64 } else { i })
                .ok()
                .filter(|&j| j < d)
                .ok_or_else(|| a.bad_value(1, format!("index {i} is out of range for axis {axis} of size {d}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (outer, inner): (usize, usize) = (dims[..axis].iter().product(), dims[axis + 1..].iter().product());
    let out_dims: Vec<usize> = dims[..axis].iter().chain(a.value(1)?.dims()).chain(&dims[axis + 1..]).copied().collect();
    fn rows<T: Copy>(x: &Array<T>, outer: usize, d: usize, inner: usize, idx: &[usize], dims: &[usize]) -> Array<T> {
        let mut out = Vec::with_capacity(outer * idx.len() * inner);
        for o in 0..outer {
            for &i in idx {
                out.extend_from_slice(&x.data[(o * d + i) * inner..][..inner]);
            }
        }
        Array::new(dims.to_vec(), out)
    }
    Ok(map_array!(data, x => rows(x, outer, d, inner, &idx, &out_dims)))
}

/// `Slice` (opset 10+: starts, ends, optional axes and steps as inputs).
pub(super) fn slice(a: &Args) -> Result<Value, EvalError> {
    let data = a.value(0)?;
    let dims = data.dims();
    let r = dims.len();
    let (starts, ends) = (a.ints(1)?, a.ints(2)?);
    let axes = if a.opt(3).is_some() { a.ints(3)? } else { (0..starts.len() as i64).collect() };
    let steps = if a.opt(4).is_some() { a.ints(4)? } else { vec![1; starts.len()] };
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(a.mismatch(format!("starts, ends, axes and steps have {}, {}, {} and {} elements", starts.len(), ends.len(), axes.len(), steps.len())));
    }
    let stride = strides(dims);
    let mut len = dims.to_vec();
    let mut step = vec![1isize; r];
    let mut base = 0isize;
    let mut seen = vec![false; r];
    for k in 0..starts.len() {
        let ax = a.axis("axes", axes[k], r)?;
        if std::mem::replace(&mut seen[ax], true) {
            return Err(a.bad_value(3, format!("axis {ax} is sliced twice")));
        }
        if steps[k] == 0 {
            return Err(a.bad_value(4, "a step is 0"));
        }
        let (b, l) = slice_range(dims[ax] as i64, starts[k], ends[k], steps[k]);
        len[ax] = l as usize;
        step[ax] = steps[k] as isize;
        base += b as isize * stride[ax] as isize;
    }
    let steps: Vec<isize> = (0..r).map(|k| step[k] * stride[k] as isize).collect();
    Ok(map_array!(data, x => Array::new(len.clone(), strided(&x.data, &len, base, &steps))))
}

/// `Transpose`; no `perm` reverses the axes.
pub(super) fn transpose(a: &Args) -> Result<Value, EvalError> {
    let x = a.value(0)?;
    let dims = x.dims();
    let r = dims.len();
    let perm: Vec<i64> = a.ints_attr("perm")?.map_or_else(|| (0..r as i64).rev().collect(), <[i64]>::to_vec);
    let mut seen = vec![false; r];
    let valid = perm.len() == r && perm.iter().all(|&p| usize::try_from(p).ok().filter(|&p| p < r).is_some_and(|p| !std::mem::replace(&mut seen[p], true)));
    if !valid {
        return Err(a.bad_attr("perm", format!("{perm:?} is not a permutation of the axes of {}", a.shape_of(0))));
    }
    let stride = strides(dims);
    let out: Vec<usize> = perm.iter().map(|&p| dims[p as usize]).collect();
    let steps: Vec<isize> = perm.iter().map(|&p| stride[p as usize] as isize).collect();
    Ok(map_array!(x, v => Array::new(out.clone(), strided(&v.data, &out, 0, &steps))))
}

fn with_dims(x: &Value, dims: Vec<usize>) -> Value {
    map_array!(x, v => Array::new(dims.clone(), v.data.clone()))
}

/// `Reshape`: `0` copies the input dim (unless `allowzero`), one `-1` is
/// inferred.
pub(super) fn reshape(a: &Args) -> Result<Value, EvalError> {
    let x = a.value(0)?;
    let target = a.ints(1)?;
    let allowzero = a.int_attr("allowzero", 0)? != 0;
    let fail = || a.mismatch(format!("{} cannot be reshaped to {target:?}", a.shape_of(0)));
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (k, &t) in target.iter().enumerate() {
        out.push(match t {
            0 if !allowzero => *x.dims().get(k).ok_or_else(fail)?,
            -1 if infer.is_none() => {
                infer = Some(k);
                1
            }
            t => usize::try_from(t).map_err(|_| fail())?,
        });
    }
    let known = out.iter().try_fold(1usize, |p, &d| p.checked_mul(d)).ok_or_else(fail)?;
    if let Some(k) = infer {
        if known == 0 || x.len() % known != 0 {
            return Err(fail());
        }
        out[k] = x.len() / known;
    } else if known != x.len() {
        return Err(fail());
    }
    Ok(with_dims(x, out))
}

/// `Unsqueeze` (axes from the input, or the attribute before opset 13).
pub(super) fn unsqueeze(a: &Args) -> Result<Value, EvalError> {
    let x = a.value(0)?;
    let axes = a.axes(1)?.ok_or_else(|| a.bad_attr("axes", "missing"))?;
    let r = x.dims().len() + axes.len();
    let ax = a.axes_set("axes", &axes, r)?;
    let mut rest = x.dims().iter();
    let dims = (0..r).map(|k| if ax.binary_search(&k).is_ok() { 1 } else { *rest.next().expect("ranks add up") }).collect();
    Ok(with_dims(x, dims))
}

/// `Squeeze` (axes from the input, or the attribute before opset 13; none:
/// every dim of size 1).
pub(super) fn squeeze(a: &Args) -> Result<Value, EvalError> {
    let x = a.value(0)?;
    let dims = x.dims();
    let ax = match a.axes(1)? {
        Some(axes) => a.axes_set("axes", &axes, dims.len())?,
        None => (0..dims.len()).filter(|&k| dims[k] == 1).collect(),
    };
    if let Some(&k) = ax.iter().find(|&&k| dims[k] != 1) {
        return Err(a.mismatch(format!("axis {k} of {} is not 1", a.shape_of(0))));
    }
    let out = (0..dims.len()).filter(|k| !ax.contains(k)).map(|k| dims[k]).collect();
    Ok(with_dims(x, out))
}
