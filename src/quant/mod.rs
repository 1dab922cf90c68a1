//! Quantizers: pure arithmetic on slices, no graphs and no files. Each
//! concept lives in one place, with its layout, its arithmetic and the
//! reference it was checked against:
//!
//! - [`int8`]: INT8 parameters — the scale and zero point of a range
//!   ([`int8::QuantParams`]), int8 symmetric weights per tensor, per row or
//!   per column, int32 biases at a product's scale (AON).
//! - [`observers`]: calibration observers, which turn an activation's
//!   values into a clipping range: min-max, percentile, entropy, mse (AON).
//! - [`gptq`]: error-compensating rounding from calibration inputs' second
//!   moments (GPTQ), over any group-wise format ([`gptq::GroupQuantizer`]);
//!   the ALC quantizer uses it for `q4bf16_1`.
//! - [`q4`]: MLC-LLM's `q4bf16_1` 4-bit groups — codes, bfloat16 scales,
//!   packing into `uint32` words (ALC).
//!
//! The pipeline steps that apply them live above: [`crate::aon::quantize`]
//! rewrites the ONNX graph (smoothing, bias correction, QDQ), and
//! [`crate::alc::quantize`] quantizes a checkpoint's tensors in MLC's order.

pub mod gptq;
pub mod int8;
pub mod observers;
pub mod q4;

/// Test data drawn from the project's RNG, shared by the quantizers' tests
/// and mirrored by `tests/oracles/ort_calibration.py`.
#[cfg(test)]
pub(crate) mod testdata {
    use crate::rng::Rng;

    /// `k / 2^24` from the top 24 bits: exact, so Python and Rust agree bit for bit.
    pub fn uniform(r: &mut Rng) -> f64 {
        (r.next_u64() >> 40) as f64 / 16_777_216.0
    }

    /// Irwin-Hall(12) - 6: a Gaussian within ±6 σ, in exact arithmetic.
    pub fn gauss(r: &mut Rng) -> f64 {
        (0..12).map(|_| uniform(r)).sum::<f64>() - 6.0
    }
}
