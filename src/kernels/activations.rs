//! Element-wise activations and softmax with fixed operation order.

/// `0.5 * x * (1 + erf(x / sqrt(2)))`: BERT's exact "gelu".
#[inline]
pub fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))`: "gelu_new",
/// ALBERT's activation.
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    const C: f32 = 0.797_884_6; // sqrt(2 / pi)
    let inner = C * (x + 0.044715 * (x * x * x));
    0.5 * x * (1.0 + libm::tanhf(inner))
}

/// Softmax over one row: max-subtracted, exponentials from `libm`, summed
/// left to right, then each element divided by the sum.
pub fn softmax_in_place(row: &mut [f32]) {
    let mut max = f32::NEG_INFINITY;
    for &v in row.iter() {
        if v > max {
            max = v;
        }
    }
    let mut sum = 0.0f32;
    for v in row.iter_mut() {
        *v = libm::expf(*v - max);
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_known_values() {
        assert_eq!(gelu_erf(0.0), 0.0);
        assert!((gelu_erf(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((gelu_tanh(1.0) - 0.841_192).abs() < 1e-5);
        assert!((gelu_erf(-3.0) + 0.004_049_7).abs() < 1e-6);
    }

    #[test]
    fn softmax_sums_to_one() {
        let mut r = vec![1.0, 2.0, 3.0, -1e4];
        softmax_in_place(&mut r);
        assert_eq!(r[3], 0.0);
        assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
}
