//! Neural-network ops that share a kernel with the reference encoder:
//! Softmax, LayerNormalization, and com.microsoft's Gelu and FastGelu.

use super::math::zip;
use super::{Args, Array, EvalError, Value};
use crate::kernels::{gelu_erf, gelu_tanh, layer_norm_in_place, softmax_in_place};
use rayon::prelude::*;

/// Elements per parallel task of an element-wise map.
const CHUNK: usize = 4096;

fn map_par(x: &Array<f32>, f: fn(f32) -> f32) -> Value {
    let mut out = x.data.clone();
    out.par_chunks_mut(CHUNK).for_each(|c| c.iter_mut().for_each(|v| *v = f(*v)));
    Value::F32(Array::new(x.dims.clone(), out))
}

/// `Softmax` over the last axis ([`softmax_in_place`] per row). Before
/// opset 13 the default axis is 1 and the input is coerced to 2-D; over the
/// last axis both definitions agree, and no other axis is supported.
pub(super) fn softmax(a: &Args) -> Result<Value, EvalError> {
    let x = a.f32(0)?;
    let r = x.dims.len();
    if r == 0 {
        return Err(a.mismatch(format!("Softmax of the scalar {}", a.shape_of(0))));
    }
    let default = if a.opset >= 13 { -1 } else { 1 };
    let axis = a.axis("axis", a.int_attr("axis", default)?, r)?;
    if axis != r - 1 {
        return Err(a.unsupported(format!("Softmax over axis {axis} of a rank-{r} input (only the last axis)")));
    }
    let mut out = x.data.clone();
    if x.dims[r - 1] > 0 {
        out.par_chunks_mut(x.dims[r - 1]).for_each(softmax_in_place);
    }
    Ok(Value::F32(Array::new(x.dims.clone(), out)))
}

/// `LayerNormalization` over the dims from `axis` on, with
/// [`layer_norm_in_place`]; scale and bias must have exactly that many
/// elements. Only output `Y` (not `Mean`/`InvStdDev`), float stash type.
pub(super) fn layer_norm(a: &Args) -> Result<Value, EvalError> {
    let x = a.f32(0)?;
    let r = x.dims.len();
    if r == 0 {
        return Err(a.mismatch(format!("LayerNormalization of the scalar {}", a.shape_of(0))));
    }
    let axis = a.axis("axis", a.int_attr("axis", -1)?, r)?;
    let eps = a.float_attr("epsilon", 1e-5)?;
    if a.int_attr("stash_type", 1)? != 1 {
        return Err(a.unsupported("LayerNormalization with a stash_type other than float"));
    }
    let width: usize = x.dims[axis..].iter().product();
    let gamma = a.f32(1)?;
    let zeros;
    let beta = match a.opt(2) {
        Some(_) => a.f32(2)?,
        None => {
            zeros = Array::new(vec![width], vec![0.0; width]);
            &zeros
        }
    };
    for k in [1, 2] {
        let p = if k == 1 { gamma } else { beta };
        if p.data.len() != width {
            return Err(a.mismatch(format!("{} does not cover the normalized dims {:?} of {}", a.shape_of(k), &x.dims[axis..], a.shape_of(0))));
        }
    }
    let mut out = x.data.clone();
    if width > 0 {
        out.par_chunks_mut(width).for_each(|row| layer_norm_in_place(row, &gamma.data, &beta.data, eps));
    }
    Ok(Value::F32(Array::new(x.dims.clone(), out)))
}

/// com.microsoft `Gelu`: [`gelu_erf`] per element.
pub(super) fn gelu(a: &Args) -> Result<Value, EvalError> {
    Ok(map_par(a.f32(0)?, gelu_erf))
}

/// com.microsoft `FastGelu`: [`gelu_tanh`] of `x`, or of `x + bias` when the
/// optional bias is given.
pub(super) fn fast_gelu(a: &Args) -> Result<Value, EvalError> {
    let x = a.f32(0)?;
    if a.opt(1).is_none() {
        return Ok(map_par(x, gelu_tanh));
    }
    let biased = zip(x, a.f32(1)?, |x, b| x + b).filter(|s| s.dims == x.dims);
    let biased = biased.ok_or_else(|| a.mismatch(format!("bias {} does not broadcast to {}", a.shape_of(1), a.shape_of(0))))?;
    Ok(map_par(&biased, gelu_tanh))
}
