//! Projections split into column chunks, and Gemma's RMSNorm.

use rayon::prelude::*;

use crate::kernels::{linear, PackedLinear};

/// Output features per chunk: a multiple of the packed panel width, small
/// enough that a single-token decode step still spreads over the threads.
const PART: usize = 512;

/// `y = x · Wᵀ` (no bias) with `W` split into row chunks of [`PART`]
/// outputs, computed in parallel. Each output element is still the
/// sequential sum of [`crate::kernels::gemm`], so neither the chunking nor the
/// number of rows changes any bit.
#[derive(Clone, Debug)]
pub(super) struct Linear {
    parts: Vec<PackedLinear>,
    n: usize,
    k: usize,
}

impl Linear {
    /// Packs `w` (`[n, k]`, row-major).
    pub(super) fn new(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "weight length");
        let parts = w.chunks(PART * k).map(|c| PackedLinear::new(c, c.len() / k, k, None)).collect();
        Linear { parts, n, k }
    }

    /// `out[m, n] = x[m, k] · Wᵀ`.
    pub(super) fn apply(&self, x: &[f32], m: usize, out: &mut [f32]) {
        assert_eq!(x.len(), m * self.k, "input length");
        assert_eq!(out.len(), m * self.n, "output length");
        if let [only] = self.parts.as_slice() {
            linear(x, m, only, out);
            return;
        }
        let parts: Vec<Vec<f32>> = self
            .parts
            .par_iter()
            .map(|p| {
                let mut y = vec![0.0f32; m * p.out_features()];
                linear(x, m, p, &mut y);
                y
            })
            .collect();
        let n = self.n;
        out.par_chunks_mut(n).enumerate().for_each(|(r, row)| {
            let mut off = 0;
            for y in &parts {
                let w = y.len() / m;
                row[off..off + w].copy_from_slice(&y[r * w..(r + 1) * w]);
                off += w;
            }
        });
    }
}

/// Gemma's RMSNorm of one row with the effective scale `s = 1 + w`:
/// `ss = Σ x²` left to right, `r = 1 / sqrt(ss / n + eps)`, `y = (x * r) * s`.
pub(super) fn rms_norm(row: &mut [f32], scale: &[f32], eps: f32) {
    let mut ss = 0.0f32;
    for &v in row.iter() {
        ss += v * v;
    }
    let r = 1.0 / (ss / row.len() as f32 + eps).sqrt();
    for (v, &s) in row.iter_mut().zip(scale) {
        *v = *v * r * s;
    }
}

/// [`rms_norm`] over consecutive rows of `scale.len()` values. Rows are
/// independent, so they are normalised in parallel when there are many.
pub(super) fn rms_norm_rows(x: &mut [f32], scale: &[f32], eps: f32) {
    let w = scale.len();
    if x.len() <= 4 * w {
        x.chunks_exact_mut(w).for_each(|row| rms_norm(row, scale, eps));
    } else {
        x.par_chunks_mut(w).for_each(|row| rms_norm(row, scale, eps));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_linear_matches_one_packed_matrix() {
        let (m, n, k) = (3, 1100, 5);
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
        let x: Vec<f32> = (0..m * k).map(|i| (i as f32 - 7.0) / 3.0).collect();
        let mut a = vec![0.0; m * n];
        Linear::new(&w, n, k).apply(&x, m, &mut a);
        let mut b = vec![0.0; m * n];
        linear(&x, m, &PackedLinear::new(&w, n, k, None), &mut b);
        assert_eq!(a, b);
    }
}
