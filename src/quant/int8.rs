//! INT8 parameters: the scale and zero point of a range, int8 weights (per
//! tensor, per row, per column) and int32 biases. Pure arithmetic on
//! slices; where the values go in an ONNX graph is
//! [`crate::aon::quantize`]'s business.
//!
//! # What follows ONNX Runtime (`onnxruntime/quantization`, 1.31.1)
//!
//! - Scale and zero point: `quant_utils.compute_scale_zp` (range widened to
//!   include 0, scale computed in f64 and rounded to f32, zero point rounded
//!   half to even from the f64 scale, scale 1 / zero point 0 below f32's
//!   smallest normal).
//! - Weights: `quant_utils.quantize_data` + `quantize_nparray` with int8
//!   symmetric range [-127, 127]: `round_half_even(w / scale)` in f32.
//!
//! Biases are avac's rule, in the form onnxruntime fuses into QGemm: int32
//! at the product's scale `A.scale × W.scale` (multiplied in f32), values
//! `round_half_even(b / scale)` with the division in f64; a value beyond
//! int32 is an error, never a wrap.

use serde::{Deserialize, Serialize};

/// Failures computing INT8 weights and int32 biases.
#[derive(Debug, thiserror::Error)]
pub enum Int8Error {
    /// A weight's length is not `rows * cols`.
    #[error("weight `{tensor}`: {len} values do not form a {rows}x{cols} matrix")]
    ShapeMismatch {
        /// The weight.
        tensor: String,
        /// Its number of values.
        len: usize,
        /// Rows asked for.
        rows: usize,
        /// Columns asked for.
        cols: usize,
    },
    /// NaN or infinity in a weight.
    #[error("weight `{tensor}`: value {value} at index {index} is not finite")]
    NonFiniteWeight {
        /// The weight.
        tensor: String,
        /// Flat index of the value.
        index: usize,
        /// The value.
        value: f32,
    },
    /// The weight has neither one scale nor one per bias element.
    #[error("bias `{tensor}`: {len} values, but the weight has {scales} scales (needs 1 or {len})")]
    BiasScales {
        /// The bias.
        tensor: String,
        /// Its number of values.
        len: usize,
        /// The weight's number of scales.
        scales: usize,
    },
    /// A bias value divided by its scale is not a finite int32.
    #[error("bias {tensor}[{index}] = {value} does not fit int32 at scale {scale}")]
    BiasOverflow {
        /// The bias.
        tensor: String,
        /// Index of the value.
        index: usize,
        /// The value.
        value: f32,
        /// Its scale, `A.scale × W.scale`.
        scale: f32,
    },
}

/// Result of this module.
pub type Result<T> = std::result::Result<T, Int8Error>;

/// A clipping range, `min <= max`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Range {
    /// Lower end.
    pub min: f32,
    /// Upper end.
    pub max: f32,
}

/// Scale and zero point of a linear quantization `x ≈ scale * (q - zero_point)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QuantParams {
    /// Positive scale.
    pub scale: f32,
    /// 0..=255 for uint8 asymmetric, 0 for int8 symmetric.
    pub zero_point: i32,
}

impl QuantParams {
    /// uint8 asymmetric parameters for an activation range: the range is
    /// widened to include 0, `scale = (max - min) / 255`,
    /// `zero_point = round_half_even(-min / scale)`.
    pub fn uint8_asymmetric(range: Range) -> Self {
        compute_scale_zp(range, 0, 255, false)
    }

    /// int8 symmetric parameters: `scale = max(|min|, |max|) / 127`, zero point 0.
    pub fn int8_symmetric(range: Range) -> Self {
        compute_scale_zp(range, -127, 127, true)
    }
}

/// ONNX Runtime's `compute_scale_zp` (see the module docs).
fn compute_scale_zp(range: Range, qmin: i32, qmax: i32, symmetric: bool) -> QuantParams {
    let mut rmin = range.min.min(0.0);
    let mut rmax = range.max.max(0.0);
    if symmetric {
        let absmax = rmin.abs().max(rmax.abs());
        rmin = -absmax;
        rmax = absmax;
    }
    let scale = (f64::from(rmax) - f64::from(rmin)) / f64::from(qmax - qmin);
    if scale < f64::from(f32::MIN_POSITIVE) {
        return QuantParams { scale: 1.0, zero_point: 0 };
    }
    let zero_point = if symmetric { (f64::from(qmin + qmax) / 2.0).round_ties_even() } else { (f64::from(qmin) - f64::from(rmin) / scale).round_ties_even() };
    QuantParams {
        scale: scale as f32,
        // In range by construction; the clamp only guards the cast.
        zero_point: (zero_point as i32).clamp(qmin, qmax),
    }
}

/// A weight stored as int8 symmetric: zero point 0 and one scale per
/// tensor or per column.
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Weight {
    /// The values, in the weight's own (row-major) order.
    pub values: Vec<i8>,
    /// One scale (per tensor) or one per column of a rank-2 weight.
    pub scales: Vec<f32>,
    /// The axis the scales run along (1: the columns), `None` per tensor.
    pub axis: Option<usize>,
}

impl Int8Weight {
    /// The weight as its int8 values represent it, `value × scale`.
    pub fn dequantize(&self) -> Vec<f32> {
        let per_column = self.scales.len() != 1;
        self.values.iter().enumerate().map(|(e, &x)| f32::from(x) * self.scales[if per_column { e % self.scales.len() } else { 0 }]).collect()
    }
}

/// Quantizes a row-major weight of shape `dims` to int8 symmetric: one
/// scale per column (axis 1, the output channel of a `[K, N]` MatMul
/// weight) when `per_column` is set and the weight has rank 2, else one
/// scale for the whole tensor.
pub fn quantize_int8_weight(tensor: &str, w: &[f32], dims: &[usize], per_column: bool) -> Result<Int8Weight> {
    if let (true, &[k, n]) = (per_column, dims) {
        let (values, scales) = quantize_int8_per_column(tensor, w, k, n)?;
        return Ok(Int8Weight { values, scales, axis: Some(1) });
    }
    let (values, s) = quantize_int8_per_tensor(tensor, w)?;
    Ok(Int8Weight { values, scales: vec![s], axis: None })
}

/// Quantizes a weight to int8 with one symmetric scale for the whole tensor.
pub fn quantize_int8_per_tensor(tensor: &str, w: &[f32]) -> Result<(Vec<i8>, f32)> {
    check_finite(tensor, w, 0)?;
    Ok(quantize_symmetric(w))
}

/// Quantizes a `rows x cols` row-major weight to int8 with one symmetric scale
/// per row (axis 0: the output channel of an `[out, in]` weight).
pub fn quantize_int8_per_row(tensor: &str, w: &[f32], rows: usize, cols: usize) -> Result<(Vec<i8>, Vec<f32>)> {
    if rows.checked_mul(cols) != Some(w.len()) {
        return Err(Int8Error::ShapeMismatch { tensor: tensor.to_owned(), len: w.len(), rows, cols });
    }
    check_finite(tensor, w, 0)?;
    let mut q = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(rows);
    for r in 0..rows {
        let (qr, s) = quantize_symmetric(&w[r * cols..(r + 1) * cols]);
        q.extend_from_slice(&qr);
        scales.push(s);
    }
    Ok((q, scales))
}

/// Quantizes a `k x n` row-major weight to int8 with one symmetric scale
/// per column (axis 1: the output channel of a `[K, N]` weight): the rows
/// of its transpose, quantized by [`quantize_int8_per_row`].
pub fn quantize_int8_per_column(tensor: &str, w: &[f32], k: usize, n: usize) -> Result<(Vec<i8>, Vec<f32>)> {
    if k.checked_mul(n) != Some(w.len()) {
        return Err(Int8Error::ShapeMismatch { tensor: tensor.to_owned(), len: w.len(), rows: k, cols: n });
    }
    let mut tr = vec![0.0f32; w.len()];
    for r in 0..k {
        for c in 0..n {
            tr[c * k + r] = w[r * n + c];
        }
    }
    let (qt, scales) = quantize_int8_per_row(tensor, &tr, n, k)?;
    let mut q = vec![0i8; qt.len()];
    for r in 0..k {
        for c in 0..n {
            q[r * n + c] = qt[c * k + r];
        }
    }
    Ok((q, scales))
}

fn check_finite(tensor: &str, w: &[f32], offset: usize) -> Result<()> {
    match w.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(Int8Error::NonFiniteWeight { tensor: tensor.to_owned(), index: offset + i, value: w[i] }),
        None => Ok(()),
    }
}

/// `quantize_data(symmetric=True, INT8)`: range from min/max, then
/// `clamp(round_half_even(w / scale), -127, 127)` with the division in f32.
fn quantize_symmetric(w: &[f32]) -> (Vec<i8>, f32) {
    let (lo, hi) = w.iter().fold((0.0f32, 0.0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let params = QuantParams::int8_symmetric(Range { min: lo, max: hi });
    let q = w.iter().map(|&v| (v / params.scale).round_ties_even().clamp(-127.0, 127.0) as i8).collect();
    (q, params.scale)
}

/// A product's bias as int32 at the product's scale `A.scale × W.scale`
/// (one weight scale, or one per bias element); returns the values and
/// their scales.
pub fn quantize_int32_bias(tensor: &str, bias: &[f32], act_scale: f32, weight_scales: &[f32]) -> Result<(Vec<i32>, Vec<f32>)> {
    if weight_scales.len() != 1 && weight_scales.len() != bias.len() {
        return Err(Int8Error::BiasScales { tensor: tensor.to_owned(), len: bias.len(), scales: weight_scales.len() });
    }
    let scales: Vec<f32> = (0..bias.len()).map(|j| act_scale * weight_scales[if weight_scales.len() == 1 { 0 } else { j }]).collect();
    let mut q = Vec::with_capacity(bias.len());
    for (j, &x) in bias.iter().enumerate() {
        let v = f64::from(x) / f64::from(scales[j]);
        if !v.is_finite() || v.abs() > f64::from(i32::MAX) {
            return Err(Int8Error::BiasOverflow { tensor: tensor.to_owned(), index: j, value: x, scale: scales[j] });
        }
        q.push(v.round_ties_even() as i32);
    }
    Ok((q, scales))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::testdata::gauss;
    use crate::rng::Rng;

    #[test]
    fn params_match_ort_compute_scale_zp() {
        // (range, uint8 (scale bits, zp), int8 symmetric scale bits) from quant_utils.compute_scale_zp.
        type Case = ((f32, f32), (u32, i32), u32);
        let cases: [Case; 8] = [
            ((-1.0, 3.0), (0x3c808081, 64), 0x3cc18306),
            ((0.1, 6.3), (0x3cca63fe, 0), 0x3d4b2ffa),
            ((-4.7, -0.2), (0x3c96fd63, 255), 0x3d179591),
            ((-0.17, 10.5), (0x3d2b63b6, 4), 0x3da952a5),
            ((0.0, 0.0), (0x3f800000, 0), 0x3f800000),
            ((-3.3, 3.3), (0x3cd4073a, 128), 0x3cd4dced),
            ((-1e-3, 2.5e-1), (0x3a810417, 1), 0x3b010204),
            ((-2.0, 253.0), (0x3f800000, 2), 0x3ffefdfc),
        ];
        for ((min, max), (scale, zero_point), sym) in cases {
            let r = Range { min, max };
            assert_eq!(QuantParams::uint8_asymmetric(r), QuantParams { scale: f32::from_bits(scale), zero_point });
            assert_eq!(QuantParams::int8_symmetric(r), QuantParams { scale: f32::from_bits(sym), zero_point: 0 });
        }
    }

    fn fnv(bytes: impl IntoIterator<Item = u8>) -> u64 {
        bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
    }

    #[test]
    fn weights_match_ort_quantize_data() {
        // tests/oracles/ort_calibration.py: quantize_data(INT8, symmetric) on the whole tensor, then on each row.
        let mut r = Rng::new(5);
        let w: Vec<f32> = (0..64 * 48).map(|_| (gauss(&mut r) * 0.05) as f32).collect();
        let (q, scale) = quantize_int8_per_tensor("w", &w).unwrap();
        assert_eq!(scale.to_bits(), 0x3ab2a9e2);
        assert_eq!(fnv(q.iter().map(|&v| v as u8)), 0x5c5d2c3e492bf6b7);
        assert_eq!((q.iter().min(), q.iter().max()), (Some(&-127), Some(&125)));
        let (q, scales) = quantize_int8_per_row("w", &w, 64, 48).unwrap();
        assert_eq!(fnv(q.iter().map(|&v| v as u8)), 0xbdfea1c20c4a7fd8);
        assert_eq!(fnv(scales.iter().flat_map(|s| s.to_le_bytes())), 0x6066a43e76e18939);
    }

    #[test]
    fn weights_round_half_to_even_and_stay_symmetric() {
        let (q, scale) = quantize_int8_per_tensor("w", &[127.0, 0.5, 1.5, 2.5, -0.5, -2.5, -127.0]).unwrap();
        assert_eq!((q, scale), (vec![127, 0, 2, 2, 0, -2, -127], 1.0));
        let (q, scales) = quantize_int8_per_row("w", &[0.0, 0.0, 1.0, -2.0, 0.5, 254.0], 3, 2).unwrap();
        assert_eq!(q, vec![0, 0, 64, -127, 0, 127]);
        assert_eq!(scales, vec![1.0, (2.0f64 / 127.0) as f32, 2.0]);
        assert_eq!(quantize_int8_per_tensor("w", &[]).unwrap(), (vec![], 1.0));
    }

    #[test]
    fn degenerate_ranges() {
        let zero = QuantParams::uint8_asymmetric(Range { min: 0.0, max: 0.0 });
        assert_eq!(zero, QuantParams { scale: 1.0, zero_point: 0 });
        let single = QuantParams::uint8_asymmetric(Range { min: 2.5, max: 2.5 });
        assert_eq!(single, QuantParams { scale: (2.5f64 / 255.0) as f32, zero_point: 0 });
        let negative = QuantParams::uint8_asymmetric(Range { min: -0.75, max: -0.75 });
        assert_eq!(negative.zero_point, 255);
    }

    #[test]
    fn per_column_is_per_row_of_the_transpose() {
        // [K = 2, N = 3]: column c is (w[c], w[3 + c]).
        let w = [1.0, -4.0, 0.0, 0.5, 2.0, 0.0];
        let (q, scales) = quantize_int8_per_column("w", &w, 2, 3).unwrap();
        let (qt, st) = quantize_int8_per_row("w", &[1.0, 0.5, -4.0, 2.0, 0.0, 0.0], 3, 2).unwrap();
        assert_eq!(scales, st);
        assert_eq!(q, vec![qt[0], qt[2], qt[4], qt[1], qt[3], qt[5]]);
        let iw = quantize_int8_weight("w", &w, &[2, 3], true).unwrap();
        assert_eq!((iw.values.clone(), iw.scales.clone(), iw.axis), (q, scales, Some(1)));
        // Dequantized per column: each element times its column's scale.
        let d = iw.dequantize();
        assert_eq!(d, (0..6).map(|e| f32::from(iw.values[e]) * iw.scales[e % 3]).collect::<Vec<_>>());
        // Per tensor when not asked, or when the weight is not rank 2.
        for (dims, per_column) in [(&[2usize, 3][..], false), (&[6][..], true), (&[1, 2, 3][..], true)] {
            let iw = quantize_int8_weight("w", &w, dims, per_column).unwrap();
            assert_eq!((iw.scales, iw.axis), (vec![(4.0f64 / 127.0) as f32], None));
        }
    }

    #[test]
    fn int32_bias_is_at_the_product_scale() {
        let (q, s) = quantize_int32_bias("b", &[1.0, -0.5, 0.25], 0.5, &[0.25]).unwrap();
        assert_eq!((q, s), (vec![8, -4, 2], vec![0.125; 3]));
        let (q, s) = quantize_int32_bias("b", &[1.0, 0.375], 1.0, &[0.25, 0.5]).unwrap();
        // 0.375 / 0.5 = 0.75 rounds to 1; a tie rounds to even.
        assert_eq!((q, s), (vec![4, 1], vec![0.25, 0.5]));
        assert_eq!(quantize_int32_bias("b", &[0.5, 1.5], 1.0, &[1.0]).unwrap().0, vec![0, 2]);
        let e = quantize_int32_bias("encoder.bias", &[1.0, 3e9], 1.0, &[1.0]).unwrap_err();
        assert!(matches!(e, Int8Error::BiasOverflow { index: 1, .. }) && e.to_string().contains("encoder.bias[1]"), "{e}");
        assert!(matches!(quantize_int32_bias("b", &[1.0; 3], 1.0, &[1.0; 2]), Err(Int8Error::BiasScales { len: 3, scales: 2, .. })));
    }

    #[test]
    fn weight_errors_name_the_tensor() {
        assert!(matches!(quantize_int8_per_row("w", &[1.0; 5], 2, 3), Err(Int8Error::ShapeMismatch { len: 5, .. })));
        assert!(matches!(quantize_int8_per_column("w", &[1.0; 5], 2, 3), Err(Int8Error::ShapeMismatch { len: 5, .. })));
        let e = quantize_int8_per_tensor("pooler.weight", &[1.0, f32::NEG_INFINITY]).unwrap_err();
        assert!(matches!(e, Int8Error::NonFiniteWeight { index: 1, .. }) && e.to_string().contains("`pooler.weight`"), "{e}");
    }
}
