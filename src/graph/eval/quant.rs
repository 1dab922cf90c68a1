//! INT8 ops with opset-13+ semantics: QuantizeLinear, DequantizeLinear,
//! DynamicQuantizeLinear and MatMulInteger.
//!
//! Rounding is to nearest, ties to even, on `x / scale` computed as one f32
//! division (not a multiplication by `1 / scale`), as onnxruntime's MLAS
//! kernels and the ONNX reference do; the zero point is added after
//! rounding and the sum saturates to the 8-bit range. NaN quantizes to the
//! zero point. Dequantization is `(x - zero_point)` in integers, converted
//! to f32, times the scale.

use super::math::MatPlan;
use super::{Args, Array, EvalError, Value};
use crate::graph::DType;

/// Scales and zero points: one of each (per tensor) or one per index of
/// `axis` (per axis), `inner` elements apart.
struct QParams {
    scale: Vec<f32>,
    zero: Vec<i32>,
    inner: usize,
}

impl QParams {
    /// Reads inputs 1 (scale) and 2 (zero point, optional) for an input of
    /// shape `dims`; also returns the zero point's type when given.
    fn read(a: &Args, dims: &[usize]) -> Result<(Self, Option<DType>), EvalError> {
        if a.int_attr("block_size", 0)? != 0 {
            return Err(a.unsupported("blocked quantization (block_size)"));
        }
        let scale = a.f32(1)?;
        let (zero, zt) = match a.opt(2) {
            None => (vec![0; scale.data.len()], None),
            Some(z) => {
                let data: Vec<i32> = match z {
                    Value::U8(v) => v.data.iter().map(|&q| q as i32).collect(),
                    Value::I8(v) => v.data.iter().map(|&q| q as i32).collect(),
                    Value::I32(v) => v.data.clone(),
                    _ => return Err(a.wrong_dtype(2, "U8, I8 or I32")),
                };
                if z.dims() != scale.dims.as_slice() {
                    return Err(a.mismatch(format!("zero point {} and scale {} differ in shape", a.shape_of(2), a.shape_of(1))));
                }
                (data, Some(z.dtype()))
            }
        };
        let inner = match scale.dims[..] {
            _ if scale.data.len() == 1 && scale.dims.len() <= 1 => 1,
            [c] => {
                let axis = a.axis("axis", a.int_attr("axis", 1)?, dims.len())?;
                if dims[axis] != c {
                    return Err(a.mismatch(format!("per-axis scale {} does not match axis {axis} of {}", a.shape_of(1), a.shape_of(0))));
                }
                dims[axis + 1..].iter().product()
            }
            _ => return Err(a.mismatch(format!("scale {} is neither a scalar nor 1-D", a.shape_of(1)))),
        };
        Ok((QParams { scale: scale.data.clone(), zero, inner }, zt))
    }

    /// Scale and zero point of element `e`.
    fn at(&self, e: usize) -> (f32, i32) {
        let c = if self.scale.len() == 1 { 0 } else { (e / self.inner) % self.scale.len() };
        (self.scale[c], self.zero[c])
    }
}

/// `saturate(round_half_even(x / scale) + zero)` in `[lo, hi]`.
pub(super) fn quantize(x: f32, scale: f32, zero: i32, lo: i32, hi: i32) -> i32 {
    let q = (x / scale).round_ties_even() + zero as f32;
    if q.is_nan() {
        lo
    } else {
        // Exact: |q| < 2^24 whenever it lies inside [lo, hi].
        q.clamp(lo as f32, hi as f32) as i32
    }
}

/// `QuantizeLinear`: f32 to uint8 (default) or int8, per tensor or per
/// axis. The output type is the zero point's, else `output_dtype`'s.
pub(super) fn quantize_linear(a: &Args) -> Result<Value, EvalError> {
    let x = a.f32(0)?;
    let (p, zt) = QParams::read(a, &x.dims)?;
    if let Some(s) = p.scale.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(a.bad_value(1, format!("scale {s} is not a positive finite number")));
    }
    let out = match (zt, a.int_attr("output_dtype", 0)?) {
        (Some(t @ (DType::U8 | DType::I8)), 0) => t,
        (Some(t @ (DType::U8 | DType::I8)), c) if c == t.code() as i64 => t,
        (Some(DType::U8 | DType::I8), c) => return Err(a.bad_attr("output_dtype", format!("{c} differs from the zero point's type"))),
        (Some(_), _) => return Err(a.wrong_dtype(2, "U8 or I8")),
        (None, 0 | 2) => DType::U8,
        (None, 3) => DType::I8,
        (None, c) => return Err(a.unsupported(format!("QuantizeLinear to element type {c}"))),
    };
    let q = |lo, hi| -> Vec<i32> {
        x.data
            .iter()
            .enumerate()
            .map(|(e, &v)| {
                let (s, z) = p.at(e);
                quantize(v, s, z, lo, hi)
            })
            .collect()
    };
    Ok(match out {
        DType::I8 => Value::I8(Array::new(x.dims.clone(), q(-128, 127).into_iter().map(|v| v as i8).collect())),
        _ => Value::U8(Array::new(x.dims.clone(), q(0, 255).into_iter().map(|v| v as u8).collect())),
    })
}

/// `DequantizeLinear`: `(x - zero) as f32 * scale` for uint8, int8 or int32
/// `x`, per tensor or per axis.
pub(super) fn dequantize_linear(a: &Args) -> Result<Value, EvalError> {
    let x = a.value(0)?;
    let (xs, dims): (Vec<i64>, &[usize]) = match x {
        Value::U8(v) => (v.data.iter().map(|&q| q as i64).collect(), &v.dims),
        Value::I8(v) => (v.data.iter().map(|&q| q as i64).collect(), &v.dims),
        Value::I32(v) => (v.data.iter().map(|&q| q as i64).collect(), &v.dims),
        _ => return Err(a.wrong_dtype(0, "U8, I8 or I32")),
    };
    let (p, zt) = QParams::read(a, dims)?;
    if zt.is_some_and(|t| t != x.dtype()) {
        return Err(a.wrong_dtype(2, &format!("{:?}, the type of input 0", x.dtype())));
    }
    let data = xs
        .iter()
        .enumerate()
        .map(|(e, &q)| {
            let (s, z) = p.at(e);
            (q - z as i64) as f32 * s
        })
        .collect();
    Ok(Value::F32(Array::new(dims.to_vec(), data)))
}

/// `DynamicQuantizeLinear` (uint8): range widened to include 0,
/// `scale = (max - min) / 255`, `zero = round_half_even(clamp(0 - min / scale,
/// 0, 255))`, then [`quantize`]. An all-zero input gets scale 1 and zero
/// point 0, as in onnxruntime (ONNX's formula would divide by zero). NaNs
/// are ignored for the range.
pub(super) fn dynamic_quantize_linear(a: &Args) -> Result<Vec<Value>, EvalError> {
    let x = a.f32(0)?;
    let (mut lo, mut hi) = (0.0f32, 0.0f32);
    for &v in &x.data {
        if v < lo {
            lo = v;
        }
        if v > hi {
            hi = v;
        }
    }
    let scale = if hi == lo { 1.0 } else { (hi - lo) / 255.0 };
    let zero = (0.0 - lo / scale).clamp(0.0, 255.0).round_ties_even() as i32;
    let y = x.data.iter().map(|&v| quantize(v, scale, zero, 0, 255) as u8).collect();
    Ok(vec![Value::U8(Array::new(x.dims.clone(), y)), Value::f32(&[], vec![scale]), Value::u8(&[], vec![zero as u8])])
}

/// An 8-bit operand of MatMulInteger widened to i32, with its type.
fn widen<'a>(a: &Args<'a>, k: usize) -> Result<(Vec<i32>, &'a [usize], DType), EvalError> {
    let v = a.value(k)?;
    Ok(match v {
        Value::U8(x) => (x.data.iter().map(|&q| q as i32).collect(), &x.dims, DType::U8),
        Value::I8(x) => (x.data.iter().map(|&q| q as i32).collect(), &x.dims, DType::I8),
        _ => return Err(a.wrong_dtype(k, "U8 or I8")),
    })
}

/// A zero point of MatMulInteger: scalar, or 1-D with `len` entries
/// (A's rows, B's columns).
fn zero_points(a: &Args, k: usize, dtype: DType, len: usize) -> Result<Vec<i32>, EvalError> {
    let Some(_) = a.opt(k) else { return Ok(vec![0]) };
    let (z, dims, t) = widen(a, k)?;
    if t != dtype {
        return Err(a.wrong_dtype(k, &format!("{dtype:?}, the type of input {}", k - 2)));
    }
    if z.len() == 1 || (dims.len() == 1 && z.len() == len) {
        Ok(z)
    } else {
        Err(a.unsupported(format!("zero point {} (scalar or 1-D of {len} only)", a.shape_of(k))))
    }
}

/// `MatMulInteger`: `Σ_k (a - a_zero)(b - b_zero)` in i32 (wrapping), with
/// MatMul's batching; A's zero point per tensor or per row, B's per tensor
/// or per column.
pub(super) fn matmul_integer(a: &Args) -> Result<Value, EvalError> {
    let ((mut xa, ad, ta), (mut xb, bd, tb)) = (widen(a, 0)?, widen(a, 1)?);
    let plan = MatPlan::new(a, ad, bd)?;
    let (m, k, n) = (plan.m, plan.k, plan.n);
    let za = zero_points(a, 2, ta, m)?;
    let zb = zero_points(a, 3, tb, n)?;
    // (An empty k or n leaves nothing to subtract from.)
    for (e, v) in xa.iter_mut().enumerate() {
        *v -= za[if za.len() == 1 { 0 } else { (e / k) % m }];
    }
    for (e, v) in xb.iter_mut().enumerate() {
        *v -= zb[if zb.len() == 1 { 0 } else { e % n }];
    }
    let out = plan.run(&xa, &xb, |acc: i32, x, y| acc.wrapping_add(x * y));
    Ok(Value::I32(Array::new(plan.dims, out)))
}
