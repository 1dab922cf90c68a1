//! Deterministic intent-head fitting: multinomial logistic regression on
//! frozen pooled features.
//!
//! Features are standardised (per-feature mean and standard deviation, summed
//! in sample order), then weights are fitted by full-batch Adam for a fixed
//! number of iterations from zero, with L2 regularisation. Every sum runs in
//! a fixed order through [`crate::kernels::linear`], so the same features
//! give the same head bits on any machine and thread count. The
//! standardisation is folded back into the returned weights, so the head
//! applies to raw pooled features: `logits = W·x + b`.

use crate::kernels::{linear, softmax_in_place, PackedLinear};

/// Fitting hyper-parameters (all declared, none adaptive).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FitParams {
    /// Adam steps.
    pub iterations: usize,
    /// Adam learning rate.
    pub learning_rate: f32,
    /// L2 penalty on the weights (not the bias).
    pub l2: f32,
}

impl Default for FitParams {
    fn default() -> Self {
        FitParams { iterations: 300, learning_rate: 0.01, l2: 1e-4 }
    }
}

/// A fitted head, `[classes, features]` weights and `[classes]` bias.
#[derive(Clone, Debug)]
pub struct Head {
    /// Weights, row per class.
    pub w: Vec<f32>,
    /// Bias per class.
    pub b: Vec<f32>,
    /// Mean cross-entropy on the training set after fitting.
    pub final_loss: f32,
}

/// Fits a head on `x` (`[n, d]`) with labels `y` in `0..classes`.
///
/// # Panics
/// If `x.len() != y.len() * d` or a label is out of range (callers check).
pub fn fit(x: &[f32], y: &[usize], d: usize, classes: usize, p: &FitParams) -> Head {
    let n = y.len();
    assert_eq!(x.len(), n * d);
    assert!(y.iter().all(|&c| c < classes));
    // Standardise.
    let mut mean = vec![0.0f32; d];
    for row in x.chunks_exact(d) {
        mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
    }
    mean.iter_mut().for_each(|m| *m /= n as f32);
    let mut var = vec![0.0f32; d];
    for row in x.chunks_exact(d) {
        var.iter_mut().zip(row).zip(&mean).for_each(|((s, v), m)| *s += (v - m) * (v - m));
    }
    let std: Vec<f32> = var.iter().map(|s| (s / n as f32).sqrt().max(1e-6)).collect();
    let z: Vec<f32> = x.chunks_exact(d).flat_map(|r| r.iter().zip(&mean).zip(&std).map(|((v, m), s)| (v - m) / s)).collect();
    // zᵀ packed as weights, for the gradient product Dᵀ·z.
    let mut zt = vec![0.0f32; d * n];
    for i in 0..n {
        for j in 0..d {
            zt[j * n + i] = z[i * d + j];
        }
    }
    let zt = PackedLinear::new(&zt, d, n, None);

    let mut w = vec![0.0f32; classes * d];
    let mut b = vec![0.0f32; classes];
    let (mut mw, mut vw) = (vec![0.0f32; w.len()], vec![0.0f32; w.len()]);
    let (mut mb, mut vb) = (vec![0.0f32; classes], vec![0.0f32; classes]);
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let mut probs = vec![0.0f32; n * classes];
    let mut loss = 0.0;
    for t in 1..=p.iterations + 1 {
        let lin = PackedLinear::new(&w, classes, d, Some(&b));
        linear(&z, n, &lin, &mut probs);
        loss = 0.0;
        for (row, &c) in probs.chunks_exact_mut(classes).zip(y) {
            softmax_in_place(row);
            loss -= libm::logf(row[c].max(1e-30));
            row[c] -= 1.0;
        }
        loss /= n as f32;
        if t == p.iterations + 1 {
            break;
        }
        // dᵀ [classes, n], scaled by 1/n.
        let mut dt = vec![0.0f32; classes * n];
        for i in 0..n {
            for c in 0..classes {
                dt[c * n + i] = probs[i * classes + c] / n as f32;
            }
        }
        let mut gw = vec![0.0f32; classes * d];
        linear(&dt, classes, &zt, &mut gw);
        let gb: Vec<f32> = dt.chunks_exact(n).map(|r| r.iter().fold(0.0f32, |a, v| a + v)).collect();
        let (c1, c2) = (1.0 - b1.powi(t as i32), 1.0 - b2.powi(t as i32));
        for i in 0..w.len() {
            let g = gw[i] + p.l2 * w[i];
            mw[i] = b1 * mw[i] + (1.0 - b1) * g;
            vw[i] = b2 * vw[i] + (1.0 - b2) * g * g;
            w[i] -= p.learning_rate * (mw[i] / c1) / ((vw[i] / c2).sqrt() + eps);
        }
        for i in 0..classes {
            let g = gb[i];
            mb[i] = b1 * mb[i] + (1.0 - b1) * g;
            vb[i] = b2 * vb[i] + (1.0 - b2) * g * g;
            b[i] -= p.learning_rate * (mb[i] / c1) / ((vb[i] / c2).sqrt() + eps);
        }
    }
    // Fold the standardisation: W' = W / std, b' = b - W'·mean.
    for c in 0..classes {
        let row = &mut w[c * d..(c + 1) * d];
        row.iter_mut().zip(&std).for_each(|(v, s)| *v /= s);
        let mut shift = 0.0f32;
        for (v, m) in row.iter().zip(&mean) {
            shift += v * m;
        }
        b[c] -= shift;
    }
    Head { w, b, final_loss: loss }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_two_blobs_and_is_repeatable() {
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..40 {
            let c = i % 2;
            let off = if c == 0 { -1.0 } else { 1.0 };
            x.extend([off + (i as f32 * 0.37).sin() * 0.3, (i as f32 * 0.11).cos()]);
            y.push(c);
        }
        let p = FitParams { iterations: 200, ..Default::default() };
        let h = fit(&x, &y, 2, 2, &p);
        let h2 = fit(&x, &y, 2, 2, &p);
        assert_eq!(h.w.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), h2.w.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        for (row, &c) in x.chunks(2).zip(&y) {
            let s0 = h.w[0] * row[0] + h.w[1] * row[1] + h.b[0];
            let s1 = h.w[2] * row[0] + h.w[3] * row[1] + h.b[1];
            assert_eq!((s1 > s0) as usize, c);
        }
        assert!(h.final_loss < 0.2, "{}", h.final_loss);
    }
}
