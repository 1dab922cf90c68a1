//! GPTQ: weight rounding that compensates each rounding error on the
//! columns not yet rounded, weighted by the layer's input statistics.
//!
//! For a linear layer `y = W x` and calibration inputs `X`, GPTQ (Frantar
//! et al., 2022, "Accurate Post-Training Quantization for Generative
//! Pre-trained Transformers") chooses codes that keep `‖(W − Ŵ) X‖²` small
//! rather than `‖W − Ŵ‖²`. With `H = Σ x xᵀ` (the input second moments,
//! [`Hessian`]) and `U` the upper Cholesky factor of `H⁻¹`, each row of `W`
//! is processed column by column:
//!
//! ```text
//! for i in order:                    # 0..k, or by decreasing H[i][i] (act order)
//!     ŵ[i] = dequant(quant(w[i]))    # the format's nearest code for its group scale
//!     e    = (w[i] − ŵ[i]) / U[i][i]
//!     w[j] = w[j] − e · U[i][j]      # every j after i in the order
//! ```
//!
//! Rows are independent given `U`, so they are processed in parallel, each
//! by one task in this fixed order: the bits do not depend on the thread
//! count or the vector width (lanes span the `j` of one update, which are
//! independent; no FMA).
//!
//! The format is a [`GroupQuantizer`]: one scale per group of `group`
//! consecutive input columns, chosen either when the (error-updated) group
//! is reached (natural order, as GPTQ does with groups) or, with act order,
//! once from the original weights before any update ("static groups"),
//! because act order visits a group's columns at scattered times.
//!
//! `H` is damped (`H[i][i] += damp · mean(diag H)`), and a column no input
//! ever reached (`H[i][i] = 0`) is rounded as zero with `H[i][i] = 1`, as the
//! reference implementation does.

use rayon::prelude::*;

use crate::kernels::cholesky::{inverse_upper_factor, NotPositiveDefinite};
use crate::kernels::{linear, PackedLinear};

/// Input rows whose f32 Gram matrix is formed before it is added to the f64
/// sum: bounds the f32 rounding and keeps the sum's order fixed.
pub const HESSIAN_BLOCK: usize = 256;

/// Why GPTQ could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GptqError {
    /// The damped second-moment matrix is not positive definite.
    #[error("the damped input second-moment matrix ({k}×{k}) is singular ({source}); raise the damping")]
    Singular {
        /// Input dimension.
        k: usize,
        /// The failed pivot.
        source: NotPositiveDefinite,
    },
    /// The statistics were gathered for another input dimension.
    #[error("second moments of {found} inputs for a weight with {expected} inputs")]
    Dimension {
        /// The weight's input dimension.
        expected: usize,
        /// The statistics' dimension.
        found: usize,
    },
    /// No calibration row was seen.
    #[error("no calibration input reached this layer")]
    NoData,
    /// The damping is not a finite positive number.
    #[error("damping {0} is not a finite number in (0, 1]")]
    Damping(f64),
}

/// `H = Σ x xᵀ` over the calibration inputs of one linear layer, in f64.
///
/// Each call to [`Hessian::add`] cuts its rows into blocks of
/// [`HESSIAN_BLOCK`]; a block's Gram matrix is summed in f32 over its rows
/// in order (the deterministic GEMM), then added to the f64 total. The sum
/// depends on the sequence of calls, which callers fix (one call per
/// calibration sample, in sample order), never on threads.
#[derive(Clone, Debug)]
pub struct Hessian {
    k: usize,
    h: Vec<f64>,
    rows: u64,
}

impl Hessian {
    /// An empty sum for inputs of dimension `k`.
    pub fn new(k: usize) -> Self {
        Hessian { k, h: vec![0.0; k * k], rows: 0 }
    }

    /// Input dimension.
    pub fn dim(&self) -> usize {
        self.k
    }

    /// Rows added so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The sum, row-major `k × k`.
    pub fn matrix(&self) -> &[f64] {
        &self.h
    }

    /// Adds the rows of `x` (`[m, k]`, row-major).
    pub fn add(&mut self, x: &[f32], m: usize) {
        let k = self.k;
        assert_eq!(x.len(), m * k, "input length");
        for block in x.chunks(HESSIAN_BLOCK * k) {
            let t = block.len() / k;
            // xt = blockᵀ ([k, t]); G = xt · xtᵀ, each element a sequential
            // f32 sum over the block's rows.
            let mut xt = vec![0.0f32; k * t];
            for (r, row) in block.chunks_exact(k).enumerate() {
                for (c, &v) in row.iter().enumerate() {
                    xt[c * t + r] = v;
                }
            }
            let packed = PackedLinear::new(&xt, k, t, None);
            let mut g = vec![0.0f32; k * k];
            linear(&xt, k, &packed, &mut g);
            self.h.par_chunks_mut(k).zip(g.par_chunks(k)).for_each(|(h, g)| h.iter_mut().zip(g).for_each(|(h, &g)| *h += f64::from(g)));
        }
        self.rows += m as u64;
    }
}

/// How GPTQ runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GptqParams {
    /// Damping relative to the mean diagonal of `H` (GPTQ's default 0.01).
    pub damp: f64,
    /// Visit columns by decreasing `H[i][i]` (GPTQ's `desc_act`), with
    /// group scales fixed from the original weights.
    pub act_order: bool,
}

/// A group-wise quantization format GPTQ chooses codes in.
pub trait GroupQuantizer: Sync {
    /// One group's scale as stored.
    type Scale: Copy + Send + Sync + Default;
    /// Consecutive input columns sharing a scale (divides `k`).
    fn group(&self) -> usize;
    /// The scale for a group's current values.
    fn scale(&self, values: &[f32]) -> Self::Scale;
    /// The code of `w` under scale `s`, and the value it dequantizes to.
    fn code(&self, w: f32, s: Self::Scale) -> (u8, f32);
}

/// Codes (`[n, k]`, one per weight) and scales (`[n, k / group]`) chosen
/// by GPTQ.
#[derive(Clone, Debug, PartialEq)]
pub struct GptqCodes<S> {
    /// One code per weight, row-major.
    pub codes: Vec<u8>,
    /// One scale per group, row-major.
    pub scales: Vec<S>,
}

/// Rows processed together, so that each row of `U` is read once for all.
const TILE: usize = 4;

/// What GPTQ derives from one projection's second moments, shared by every
/// weight that reads the same inputs (`q`, `k` and `v`).
#[derive(Clone, Debug)]
pub struct Factor {
    k: usize,
    perm: Vec<usize>,
    dead: Vec<bool>,
    /// `U` of the damped, permuted `H`, row-major `k × k`, in f32.
    u: Vec<f32>,
    act_order: bool,
}

impl Factor {
    /// Damps `h`, orders its columns and factors it (see the module docs).
    pub fn new(h: &Hessian, p: GptqParams) -> Result<Factor, GptqError> {
        let k = h.dim();
        if h.rows() == 0 {
            return Err(GptqError::NoData);
        }
        if !(p.damp > 0.0 && p.damp <= 1.0) {
            return Err(GptqError::Damping(p.damp));
        }
        let mut hm = h.matrix().to_vec();
        let dead: Vec<bool> = (0..k).map(|i| !(hm[i * k + i] > 0.0)).collect();
        for i in (0..k).filter(|&i| dead[i]) {
            hm[i * k + i] = 1.0;
        }
        let mut mean = 0.0f64;
        for i in 0..k {
            mean += hm[i * k + i];
        }
        let damp = p.damp * mean / k as f64;
        for i in 0..k {
            hm[i * k + i] += damp;
        }
        // The visiting order: stable sort by decreasing diagonal.
        let mut perm: Vec<usize> = (0..k).collect();
        if p.act_order {
            perm.sort_by(|&a, &b| hm[b * k + b].total_cmp(&hm[a * k + a]));
        }
        let mut hp = vec![0.0f64; k * k];
        for (i, &pi) in perm.iter().enumerate() {
            for (j, &pj) in perm.iter().enumerate() {
                hp[i * k + j] = hm[pi * k + pj];
            }
        }
        drop(hm);
        let u64 = inverse_upper_factor(&hp, k).map_err(|source| GptqError::Singular { k, source })?;
        drop(hp);
        let u: Vec<f32> = u64.iter().map(|&v| v as f32).collect();
        Ok(Factor { k, perm, dead, u, act_order: p.act_order })
    }

    /// Input dimension.
    pub fn dim(&self) -> usize {
        self.k
    }
}

/// Runs GPTQ on the row-major `[n, k]` weight `w` (values already in the
/// model's precision) with the factor of its inputs' second moments.
pub fn gptq<Q: GroupQuantizer>(w: &[f32], n: usize, k: usize, f: &Factor, q: &Q) -> Result<GptqCodes<Q::Scale>, GptqError> {
    assert_eq!(w.len(), n * k, "weight length");
    let group = q.group();
    assert!(group > 0 && k.is_multiple_of(group), "group {group} does not divide {k}");
    if f.k != k {
        return Err(GptqError::Dimension { expected: k, found: f.k });
    }
    let groups = k / group;
    let mut codes = vec![0u8; n * k];
    let mut scales = vec![Q::Scale::default(); n * groups];
    let ctx = Ctx { k, group, perm: &f.perm, dead: &f.dead, u: &f.u, act_order: f.act_order };
    codes.par_chunks_mut(TILE * k).zip(scales.par_chunks_mut(TILE * groups)).zip(w.par_chunks(TILE * k)).for_each(|((c, s), w)| ctx.tile(w, c, s, q));
    Ok(GptqCodes { codes, scales })
}

struct Ctx<'a> {
    k: usize,
    group: usize,
    perm: &'a [usize],
    dead: &'a [bool],
    u: &'a [f32],
    act_order: bool,
}

impl Ctx<'_> {
    /// Up to [`TILE`] rows: `w` their weights, `codes`/`scales` their outputs.
    fn tile<Q: GroupQuantizer>(&self, w: &[f32], codes: &mut [u8], scales: &mut [Q::Scale], q: &Q) {
        let (k, group) = (self.k, self.group);
        let rows = w.len() / k;
        let groups = k / group;
        // Rows in visiting order, dead columns zeroed.
        let mut rp = vec![0.0f32; rows * k];
        for r in 0..rows {
            for (i, &c) in self.perm.iter().enumerate() {
                rp[r * k + i] = if self.dead[c] { 0.0 } else { w[r * k + c] };
            }
        }
        if self.act_order {
            let mut buf = vec![0.0f32; group];
            for r in 0..rows {
                for g in 0..groups {
                    for (b, c) in buf.iter_mut().zip(g * group..(g + 1) * group) {
                        *b = if self.dead[c] { 0.0 } else { w[r * k + c] };
                    }
                    scales[r * groups + g] = q.scale(&buf);
                }
            }
        }
        for i in 0..k {
            let c = self.perm[i];
            let g = c / group;
            let d = self.u[i * k + i];
            let urow = &self.u[i * k + i + 1..(i + 1) * k];
            let mut err = [0.0f32; TILE];
            for r in 0..rows {
                if !self.act_order && c % group == 0 {
                    scales[r * groups + g] = q.scale(&rp[r * k + i..r * k + i + group]);
                }
                let x = rp[r * k + i];
                let (code, v) = q.code(x, scales[r * groups + g]);
                codes[r * k + c] = code;
                err[r] = (x - v) / d;
            }
            propagate(&mut rp, k, i, rows, &err, urow);
        }
    }
}

/// `row[j] -= err[r] · urow[j - i - 1]` for `j > i` in each of `rows` rows.
fn propagate(rp: &mut [f32], k: usize, i: usize, rows: usize, err: &[f32; TILE], urow: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { propagate_avx2(rp, k, i, rows, err, urow) };
            return;
        }
    }
    propagate_body(rp, k, i, rows, err, urow);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn propagate_avx2(rp: &mut [f32], k: usize, i: usize, rows: usize, err: &[f32; TILE], urow: &[f32]) {
    propagate_body(rp, k, i, rows, err, urow);
}

#[inline(always)]
fn propagate_body(rp: &mut [f32], k: usize, i: usize, rows: usize, err: &[f32; TILE], urow: &[f32]) {
    for r in 0..rows {
        let e = err[r];
        let row = &mut rp[r * k + i + 1..(r + 1) * k];
        for (x, &u) in row.iter_mut().zip(urow) {
            *x -= e * u;
        }
    }
}

#[cfg(test)]
mod tests;
