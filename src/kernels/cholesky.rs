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
//! its outer product from the trailing matrix. Every element therefore sees
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

/// Rows of the trailing matrix below which updates run on one thread.
const PAR_ROWS: usize = 64;

/// Lower Cholesky factor of the symmetric `n × n` row-major `a`, in place:
/// on return the lower triangle holds `L` (`a = L Lᵀ`) and the strict upper
/// triangle is zero. Only the lower triangle of the input is read.
pub fn cholesky_lower(a: &mut [f64], n: usize) -> Result<(), NotPositiveDefinite> {
    assert_eq!(a.len(), n * n, "matrix length");
    for j in 0..n {
        let d = a[j * n + j];
        if !(d > 0.0) || !d.is_finite() {
            return Err(NotPositiveDefinite { pivot: j, value: d });
        }
        let s = d.sqrt();
        a[j * n + j] = s;
        for i in j + 1..n {
            a[i * n + j] /= s;
        }
        // Trailing update: a[i][c] -= l[i][j] * l[c][j] for j < c <= i.
        let tail = &mut a[(j + 1) * n..];
        let col: Vec<f64> = (j + 1..n).map(|i| tail[(i - j - 1) * n + j]).collect();
        let update = |(r, row): (usize, &mut [f64])| {
            let i = j + 1 + r;
            let lij = row[j];
            let row = &mut row[j + 1..=i];
            for (x, &lc) in row.iter_mut().zip(&col) {
                *x -= lij * lc;
            }
        };
        if n - j - 1 >= PAR_ROWS {
            tail.par_chunks_mut(n).enumerate().for_each(update);
        } else {
            tail.chunks_mut(n).enumerate().for_each(update);
        }
    }
    for i in 0..n {
        for c in i + 1..n {
            a[i * n + c] = 0.0;
        }
    }
    Ok(())
}

/// Inverse of the lower-triangular `l` (`n × n`, row-major), returned as a
/// new lower-triangular matrix. Column `j` of `L⁻¹` solves `L x = e_j` by
/// forward substitution, right-looking: once `x[i]` is known its multiples
/// are subtracted from the rows below, in increasing `i`.
pub fn invert_lower(l: &[f64], n: usize) -> Vec<f64> {
    assert_eq!(l.len(), n * n, "matrix length");
    // Columns of the inverse are independent: each is computed by one task
    // (into a column-major buffer), then transposed.
    let cols: Vec<Vec<f64>> = (0..n)
        .into_par_iter()
        .map(|j| {
            let mut x = vec![0.0f64; n - j];
            x[0] = 1.0;
            for i in j..n {
                let xi = x[i - j] / l[i * n + i];
                x[i - j] = xi;
                for r in i + 1..n {
                    x[r - j] -= l[r * n + i] * xi;
                }
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

    #[test]
    fn refuses_an_indefinite_matrix() {
        let mut a = vec![1.0, 2.0, 2.0, 1.0];
        assert_eq!(cholesky_lower(&mut a, 2).unwrap_err().pivot, 1);
        let mut z = vec![0.0; 4];
        assert_eq!(cholesky_lower(&mut z, 2).unwrap_err().pivot, 0);
    }
}
