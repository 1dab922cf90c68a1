//! Layer normalisation with a fixed reduction order.

/// Normalises `row` in place: `(x - mean) / sqrt(var + eps) * gamma + beta`,
/// mean and (biased) variance summed left to right.
pub fn layer_norm_in_place(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = row.len() as f32;
    let mut sum = 0.0f32;
    for &v in row.iter() {
        sum += v;
    }
    let mean = sum / n;
    let mut sq = 0.0f32;
    for &v in row.iter() {
        let d = v - mean;
        sq += d * d;
    }
    let denom = (sq / n + eps).sqrt();
    for ((v, &g), &b) in row.iter_mut().zip(gamma).zip(beta) {
        *v = (*v - mean) / denom * g + b;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn normalises() {
        let mut r = vec![1.0, 2.0, 3.0, 4.0];
        super::layer_norm_in_place(&mut r, &[1.0; 4], &[0.0; 4], 0.0);
        assert!((r.iter().sum::<f32>()).abs() < 1e-6);
        assert!((r[3] - 1.341_640_8).abs() < 1e-6);
    }
}
