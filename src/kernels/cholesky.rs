//! Cholesky factorisation and the factor GPTQ needs, in f64 with a fixed
//! order of operations.
//!
//! GPTQ propagates each column's rounding error with the rows of `U`, the
//! upper Cholesky factor of `H⁻¹` (`H⁻¹ = Uᵀ U`). It is computed without
//! forming `H⁻¹`, by reversing the index order (`P` the reversal
//! permutation):
//!
//! ```text
//! P H P = L Lᵀ                (one Cholesky factorisation)
//! H⁻¹   = P L⁻ᵀ L⁻¹ P = Uᵀ U   with U = P L⁻¹ P, upper triangular
//! ```
//!
//! so one factorisation and one triangular inverse, each `n³/3`
//! multiply-adds.
//!
//! # Determinism
//!
//! Both loops are right-looking: step `j` finishes column `j` and subtracts
//! its outer product from what remains (the factorisation in panels of
//! columns, with the same per-element order). Every element therefore sees
//! its updates in increasing `j`, one IEEE multiply and one subtract each
//! (no FMA), whatever the thread count or vector width: threads split the
//! trailing rows, vector lanes span columns of one row. `sqrt` is IEEE's
//! correctly rounded square root. The same bits on every CPU.

use rayon::prelude::*;

/// A matrix that is not (numerically) positive definite.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("matrix is not positive definite: pivot {pivot} is {value:e}")]
pub struct NotPositiveDefinite {
    /// The column whose pivot was not positive.
    pub pivot: usize,
    /// The pivot's value.
    pub value: f64,
}

/// Columns factored per panel: the trailing matrix is updated once per
/// panel instead of once per column (same operations, same order).
const PANEL: usize = 48;

/// Lower Cholesky factor of the symmetric `n × n` row-major `a`, in place:
/// on return the lower triangle holds `L` (`a = L Lᵀ`) and the strict upper
/// triangle is zero. Only the lower triangle of the input is read.
///
/// Blocked right-looking: columns are factored [`PANEL`] at a time, then
/// the trailing matrix receives the panel's outer products, one column
/// after the other. Every element `a[i][c]` is thus updated by
/// `a[i][c] -= l[i][j] * l[c][j]` for `j = 0, 1, …` in increasing order,
/// one rounding each, exactly as the unblocked algorithm does.
pub fn cholesky_lower(a: &mut [f64], n: usize) -> Result<(), NotPositiveDefinite> {
    assert_eq!(a.len(), n * n, "matrix length");
    let mut j0 = 0;
    while j0 < n {
        let j1 = (j0 + PANEL).min(n);
        // Factor the panel: columns j0..j1 of rows j0..n.
        for j in j0..j1 {
            let d = a[j * n + j];
            if !(d > 0.0) || !d.is_finite() {
                return Err(NotPositiveDefinite { pivot: j, value: d });
            }
            let s = d.sqrt();
            a[j * n + j] = s;
            for i in j + 1..n {
                a[i * n + j] /= s;
            }
            let col: Vec<f64> = (j + 1..j1).map(|c| a[c * n + j]).collect();
            a[(j + 1) * n..].par_chunks_mut(n).enumerate().for_each(|(r, row)| {
                let i = j + 1 + r;
                let lij = row[j];
                let end = (i + 1).min(j1);
                for (x, &lc) in row[j + 1..end].iter_mut().zip(&col) {
                    *x -= lij * lc;
                }
            });
        }
        // Trailing update with the panel: a[i][c] -= l[i][j] * l[c][j] for
        // j in j0..j1 in order, c in j1..=i. `lt[j - j0][c]` = l[c][j].
        if j1 < n {
            let w = j1 - j0;
            let mut lt = vec![0.0f64; w * n];
            for c in j1..n {
                for j in j0..j1 {
                    lt[(j - j0) * n + c] = a[c * n + j];
                }
            }
            a[j1 * n..].par_chunks_mut(n).enumerate().for_each(|(r, row)| {
                let i = j1 + r;
                let (panel, rest) = row.split_at_mut(j1);
                let rest = &mut rest[..=i - j1];
                for j in j0..j1 {
                    let lij = panel[j];
                    let lrow = &lt[(j - j0) * n + j1..(j - j0) * n + i + 1];
                    axpy_neg(rest, lij, lrow);
                }
            });
        }
        j0 = j1;
    }
    for i in 0..n {
        for c in i + 1..n {
            a[i * n + c] = 0.0;
        }
    }
    Ok(())
}

/// `x[c] -= a * y[c]`: independent elements, one multiply and one subtract
/// each (vector lanes span `c`).
fn axpy_neg(x: &mut [f64], a: f64, y: &[f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { axpy_neg_avx2(x, a, y) };
            return;
        }
    }
    axpy_neg_body(x, a, y);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn axpy_neg_avx2(x: &mut [f64], a: f64, y: &[f64]) {
    axpy_neg_body(x, a, y);
}

#[inline(always)]
fn axpy_neg_body(x: &mut [f64], a: f64, y: &[f64]) {
    for (x, &y) in x.iter_mut().zip(y) {
        *x -= a * y;
    }
}

/// Inverse of the lower-triangular `l` (`n × n`, row-major), returned as a
/// new lower-triangular matrix. Column `j` of `L⁻¹` solves `L x = e_j` by
/// forward substitution, right-looking: once `x[i]` is known its multiples
/// are subtracted from the rows below, in increasing `i`.
pub fn invert_lower(l: &[f64], n: usize) -> Vec<f64> {
    assert_eq!(l.len(), n * n, "matrix length");
    // lt[i][r] = l[r][i]: column i of L, contiguous.
    let mut lt = vec![0.0f64; n * n];
    for r in 0..n {
        for i in 0..=r {
            lt[i * n + r] = l[r * n + i];
        }
    }
    // Columns of the inverse are independent: each is computed by one task
    // (into a column-major buffer), then transposed.
    let cols: Vec<Vec<f64>> = (0..n)
        .into_par_iter()
        .map(|j| {
            let mut x = vec![0.0f64; n - j];
            x[0] = 1.0;
            for i in j..n {
                let xi = x[i - j] / lt[i * n + i];
                x[i - j] = xi;
                axpy_neg(&mut x[i + 1 - j..], xi, &lt[i * n + i + 1..(i + 1) * n]);
            }
            x
        })
        .collect();
    let mut inv = vec![0.0f64; n * n];
    for (j, c) in cols.iter().enumerate() {
        for (r, &v) in c.iter().enumerate() {
            inv[(j + r) * n + j] = v;
        }
    }
    inv
}

/// `U`, the upper Cholesky factor of `h⁻¹` (`h⁻¹ = Uᵀ U`), for the symmetric
/// positive definite `n × n` row-major `h` (see the module docs).
pub fn inverse_upper_factor(h: &[f64], n: usize) -> Result<Vec<f64>, NotPositiveDefinite> {
    assert_eq!(h.len(), n * n, "matrix length");
    let mut p = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            p[i * n + j] = h[(n - 1 - i) * n + (n - 1 - j)];
        }
    }
    cholesky_lower(&mut p, n).map_err(|e| NotPositiveDefinite { pivot: n - 1 - e.pivot, value: e.value })?;
    let li = invert_lower(&p, n);
    let mut u = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            u[i * n + j] = li[(n - 1 - i) * n + (n - 1 - j)];
        }
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spd(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = crate::rng::Rng::new(seed);
        let m = 2 * n;
        let x: Vec<f64> = (0..m * n).map(|_| (rng.next_u64() % 2001) as f64 / 1000.0 - 1.0).collect();
        let mut h = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                h[i * n + j] = (0..m).map(|t| x[t * n + i] * x[t * n + j]).sum::<f64>();
            }
            h[i * n + i] += 0.1;
        }
        h
    }

    fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
        let mut c = vec![0.0; n * n];
        for i in 0..n {
            for k in 0..n {
                for j in 0..n {
                    c[i * n + j] += a[i * n + k] * b[k * n + j];
                }
            }
        }
        c
    }

    fn transpose(a: &[f64], n: usize) -> Vec<f64> {
        (0..n * n).map(|i| a[(i % n) * n + i / n]).collect()
    }

    #[test]
    fn factor_reconstructs_the_matrix() {
        for n in [1, 2, 7, 70, 130] {
            let h = spd(n, n as u64);
            let mut l = h.clone();
            cholesky_lower(&mut l, n).unwrap();
            let back = matmul(&l, &transpose(&l, n), n);
            let scale = h.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(h.iter().zip(&back).all(|(a, b)| (a - b).abs() <= 1e-12 * scale), "n={n}");
        }
    }

    #[test]
    fn upper_factor_of_the_inverse() {
        let n = 90;
        let h = spd(n, 3);
        let u = inverse_upper_factor(&h, n).unwrap();
        for i in 0..n {
            for j in 0..i {
                assert_eq!(u[i * n + j], 0.0, "U is upper triangular");
            }
        }
        // h · (Uᵀ U) = I
        let prod = matmul(&h, &matmul(&transpose(&u, n), &u, n), n);
        for i in 0..n {
            for j in 0..n {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((prod[i * n + j] - want).abs() < 1e-9, "[{i},{j}] = {}", prod[i * n + j]);
            }
        }
    }

    #[test]
    fn same_bits_for_any_thread_count() {
        let n = 150;
        let h = spd(n, 9);
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| inverse_upper_factor(&h, n).unwrap())
        };
        let one = run(1);
        assert!(one.iter().zip(&run(3)).all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    /// The unblocked right-looking factorisation, element by element.
    fn unblocked(a: &mut [f64], n: usize) {
        for j in 0..n {
            let s = a[j * n + j].sqrt();
            a[j * n + j] = s;
            for i in j + 1..n {
                a[i * n + j] /= s;
            }
            for i in j + 1..n {
                for c in j + 1..=i {
                    a[i * n + c] -= a[i * n + j] * a[c * n + j];
                }
            }
        }
        for i in 0..n {
            for c in i + 1..n {
                a[i * n + c] = 0.0;
            }
        }
    }

    #[test]
    fn panels_give_the_unblocked_bits() {
        for n in [5, 48, 49, 130] {
            let h = spd(n, 11 + n as u64);
            let (mut a, mut b) = (h.clone(), h);
            cholesky_lower(&mut a, n).unwrap();
            unblocked(&mut b, n);
            assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "n={n}");
        }
    }

    #[test]
    fn refuses_an_indefinite_matrix() {
        let mut a = vec![1.0, 2.0, 2.0, 1.0];
        assert_eq!(cholesky_lower(&mut a, 2).unwrap_err().pivot, 1);
        let mut z = vec![0.0; 4];
        assert_eq!(cholesky_lower(&mut z, 2).unwrap_err().pivot, 0);
    }
}
