//! Deterministic dense layer: `y = x · Wᵀ + b` with `W` in torch's
//! `[out, in]` layout.
//!
//! Order of operations, for every output element `y[i][j]`:
//! `acc = 0; for k in 0..K { acc = acc + x[i][k] * w[j][k] }; y = acc + b[j]`.
//! Vector lanes span 16 neighbouring *outputs* (a packed panel of `W`), never
//! the reduction axis, so SSE2, AVX2 and NEON builds, and any thread count,
//! give the same bits. Threads split the rows of `x` into blocks; each output
//! element is computed by exactly one thread.

use rayon::prelude::*;

/// Output columns per packed panel (two AVX2 registers).
const NR: usize = 16;
/// Rows per micro-kernel call (12 accumulator registers on AVX2).
const MR: usize = 6;
/// Rows per parallel block.
const MB: usize = 48;

/// A weight matrix repacked into column panels for [`linear`].
#[derive(Clone, Debug)]
pub struct PackedLinear {
    n: usize,
    k: usize,
    /// `ceil(n / NR)` panels of `k * NR` floats: `panel[kk * NR + j] = w[p*NR + j][kk]`.
    panels: Vec<f32>,
    bias: Vec<f32>,
}

impl PackedLinear {
    /// Packs `w` (`[n, k]`, row-major) and an optional bias of length `n`.
    ///
    /// # Panics
    /// When the slice lengths do not match `n` and `k`: callers validate
    /// checkpoint shapes before building kernels.
    pub fn new(w: &[f32], n: usize, k: usize, bias: Option<&[f32]>) -> Self {
        assert_eq!(w.len(), n * k, "weight length");
        let np = n.div_ceil(NR);
        let mut panels = vec![0.0f32; np * k * NR];
        for p in 0..np {
            let panel = &mut panels[p * k * NR..(p + 1) * k * NR];
            for j in 0..NR.min(n - p * NR) {
                let row = &w[(p * NR + j) * k..(p * NR + j + 1) * k];
                for (kk, &v) in row.iter().enumerate() {
                    panel[kk * NR + j] = v;
                }
            }
        }
        let bias = match bias {
            Some(b) => {
                assert_eq!(b.len(), n, "bias length");
                b.to_vec()
            }
            None => vec![0.0; n],
        };
        PackedLinear { n, k, panels, bias }
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.n
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.k
    }
}

/// `out[m, n] = x[m, k] · Wᵀ + b`, parallel over row blocks.
pub fn linear(x: &[f32], m: usize, lin: &PackedLinear, out: &mut [f32]) {
    let (n, k) = (lin.n, lin.k);
    assert_eq!(x.len(), m * k, "input length");
    assert_eq!(out.len(), m * n, "output length");
    if m == 0 || n == 0 {
        return;
    }
    out.par_chunks_mut(MB * n).zip(x.par_chunks(MB * k)).for_each(|(o, xb)| block(xb, xb.len() / k, lin, o));
}

fn block(x: &[f32], rows: usize, lin: &PackedLinear, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { block_avx2(x, rows, lin, out) };
            return;
        }
    }
    block_body(x, rows, lin, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn block_avx2(x: &[f32], rows: usize, lin: &PackedLinear, out: &mut [f32]) {
    block_body(x, rows, lin, out);
}

#[inline(always)]
fn block_body(x: &[f32], rows: usize, lin: &PackedLinear, out: &mut [f32]) {
    let (n, k) = (lin.n, lin.k);
    for (p, panel) in lin.panels.chunks_exact(k * NR).enumerate() {
        let cols = NR.min(n - p * NR);
        let mut r0 = 0;
        while r0 < rows {
            let r = MR.min(rows - r0);
            let xs = &x[r0 * k..(r0 + r) * k];
            let acc = match r {
                6 => micro::<6>(xs, k, panel),
                5 => pad(micro::<5>(xs, k, panel)),
                4 => pad(micro::<4>(xs, k, panel)),
                3 => pad(micro::<3>(xs, k, panel)),
                2 => pad(micro::<2>(xs, k, panel)),
                _ => pad(micro::<1>(xs, k, panel)),
            };
            for (i, a) in acc.iter().take(r).enumerate() {
                let o = &mut out[(r0 + i) * n + p * NR..(r0 + i) * n + p * NR + cols];
                let b = &lin.bias[p * NR..p * NR + cols];
                for j in 0..cols {
                    o[j] = a[j] + b[j];
                }
            }
            r0 += r;
        }
    }
}

#[inline(always)]
fn pad<const R: usize>(a: [[f32; NR]; R]) -> [[f32; NR]; MR] {
    let mut out = [[0.0; NR]; MR];
    out[..R].copy_from_slice(&a);
    out
}

#[inline(always)]
fn micro<const R: usize>(x: &[f32], k: usize, panel: &[f32]) -> [[f32; NR]; R] {
    assert!(x.len() >= R * k && panel.len() >= k * NR);
    let mut acc = [[0.0f32; NR]; R];
    let xp = x.as_ptr();
    let bp = panel.as_ptr();
    for kk in 0..k {
        // SAFETY: kk < k, so kk*NR + NR <= panel.len() and i*k + kk < R*k <= x.len(),
        // both asserted above.
        let b: [f32; NR] = unsafe { *(bp.add(kk * NR) as *const [f32; NR]) };
        for (i, acc_i) in acc.iter_mut().enumerate() {
            let a = unsafe { *xp.add(i * k + kk) };
            for j in 0..NR {
                acc_i[j] += a * b[j];
            }
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], m: usize, w: &[f32], n: usize, k: usize, b: &[f32]) -> Vec<f32> {
        let mut y = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0f32;
                for kk in 0..k {
                    acc += x[i * k + kk] * w[j * k + kk];
                }
                y[i * n + j] = acc + b[j];
            }
        }
        y
    }

    fn data(len: usize, seed: u64) -> Vec<f32> {
        let mut rng = crate::rng::Rng::new(seed);
        (0..len).map(|_| (rng.next_u64() % 2001) as f32 / 1000.0 - 1.0).collect()
    }

    #[test]
    fn bit_identical_to_naive_sequential_sum() {
        for &(m, n, k) in &[(1, 1, 1), (7, 17, 33), (50, 40, 3), (97, 130, 64)] {
            let x = data(m * k, 1);
            let w = data(n * k, 2);
            let b = data(n, 3);
            let lin = PackedLinear::new(&w, n, k, Some(&b));
            let mut y = vec![0.0; m * n];
            linear(&x, m, &lin, &mut y);
            let want = naive(&x, m, &w, n, k, &b);
            assert!(y.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{m}x{n}x{k}");
        }
    }

    #[test]
    fn same_bits_for_any_thread_count() {
        let (m, n, k) = (200, 70, 45);
        let x = data(m * k, 4);
        let w = data(n * k, 5);
        let lin = PackedLinear::new(&w, n, k, None);
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut y = vec![0.0; m * n];
            pool.install(|| linear(&x, m, &lin, &mut y));
            y
        };
        let one = run(1);
        assert!(one.iter().zip(&run(3)).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}
