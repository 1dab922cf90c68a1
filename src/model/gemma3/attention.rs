//! RoPE, the key/value cache and causal (optionally sliding-window)
//! grouped-query attention, each output element computed by a fixed sequence
//! of f32 operations that depends only on its position.
//!
//! Keys are cached in panels of [`LANES`] positions, `[block][c][lane]`, so
//! that the scores of 16 neighbouring keys are computed side by side (vector
//! lanes span *keys*, each lane summing its own dot product over `c` left to
//! right), exactly like [`crate::kernels::gemm`] spans outputs. Values are
//! cached row-major, `[position][c]`.

use std::ops::RangeInclusive;

use super::config::Gemma3Config;
use crate::kernels::softmax_in_place;

/// Key positions per cache panel.
pub(super) const LANES: usize = 16;

/// Rotary embedding of one layer kind: `inv_freq[i] = 1 / base^(2i / d)`,
/// divided by the linear scaling factor when there is one.
///
/// HF (`_compute_default_rope_parameters`) computes in float32:
/// `1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))`.
/// Here the exponent `2i / d` is the same f32 division; `base ** e` is
/// evaluated in f64 by `libm::pow` and rounded once to f32 (torch's float32
/// `pow` is within an ulp of that correctly rounded value); the reciprocal and
/// the scaling division (`inv_freq /= factor`, HF's
/// `_compute_linear_scaling_rope_parameters`) are f32 operations. The angle of
/// position `p` is the f32 product `p * inv_freq[i]` (HF's outer product in
/// float32), and `cos`/`sin` are `libm`'s f32 functions.
#[derive(Clone, Debug)]
pub(super) struct Rope {
    inv_freq: Vec<f32>,
}

impl Rope {
    pub(super) fn new(head_dim: usize, base: f64, linear_factor: Option<f64>) -> Self {
        let d = head_dim as f32;
        let inv_freq = (0..head_dim)
            .step_by(2)
            .map(|i| {
                let e = i as f32 / d;
                let inv = 1.0f32 / libm::pow(base, f64::from(e)) as f32;
                match linear_factor {
                    Some(f) => inv / f as f32,
                    None => inv,
                }
            })
            .collect();
        Rope { inv_freq }
    }

    /// `(cos, sin)` of the `d/2` angles of position `pos`.
    pub(super) fn cos_sin(&self, pos: usize) -> (Vec<f32>, Vec<f32>) {
        let p = pos as f32;
        self.inv_freq
            .iter()
            .map(|&f| {
                let a = p * f;
                (libm::cosf(a), libm::sinf(a))
            })
            .unzip()
    }

    /// HF's `apply_rotary_pos_emb`: `x * cos + rotate_half(x) * sin`, with
    /// `rotate_half(x) = cat(-x[d/2..], x[..d/2])` and `cos`/`sin` repeated
    /// over both halves.
    pub(super) fn apply(x: &mut [f32], cos: &[f32], sin: &[f32]) {
        let half = x.len() / 2;
        let (a, b) = x.split_at_mut(half);
        for i in 0..half {
            let (x1, x2) = (a[i], b[i]);
            a[i] = x1 * cos[i] + -x2 * sin[i];
            b[i] = x2 * cos[i] + x1 * sin[i];
        }
    }
}

/// Cached keys and values of one layer.
#[derive(Clone, Debug, Default)]
pub(super) struct LayerCache {
    /// Per KV head: `[block][c][lane]` panels of [`LANES`] positions.
    pub(super) k: Vec<Vec<f32>>,
    /// Per KV head: `[position][c]`.
    pub(super) v: Vec<Vec<f32>>,
}

/// The key/value cache of a sequence: what [`super::Gemma3::forward`] has seen.
///
/// Every layer keeps every position (sliding layers too), so the cache can be
/// truncated to any length, e.g. to re-score a different continuation.
#[derive(Clone, Debug)]
pub struct Cache {
    pub(super) len: usize,
    pub(super) layers: Vec<LayerCache>,
    head_dim: usize,
}

impl Cache {
    pub(super) fn new(cfg: &Gemma3Config) -> Self {
        let layer = LayerCache { k: vec![Vec::new(); cfg.num_key_value_heads], v: vec![Vec::new(); cfg.num_key_value_heads] };
        Cache { len: 0, layers: vec![layer; cfg.num_hidden_layers], head_dim: cfg.head_dim }
    }

    /// Positions processed so far (the next token's position).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position has been processed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets every position from `len` on (no-op when already shorter).
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        let d = self.head_dim;
        for l in &mut self.layers {
            for k in &mut l.k {
                k.truncate(len.div_ceil(LANES) * LANES * d);
            }
            for v in &mut l.v {
                v.truncate(len * d);
            }
        }
        self.len = len;
    }
}

impl LayerCache {
    /// Stores the key and value of position `pos` for KV head `g`;
    /// positions must arrive in order.
    pub(super) fn push(&mut self, g: usize, pos: usize, k: &[f32], v: &[f32]) {
        let d = k.len();
        let (block, lane) = (pos / LANES, pos % LANES);
        let panels = &mut self.k[g];
        if panels.len() < (block + 1) * LANES * d {
            panels.resize((block + 1) * LANES * d, 0.0);
        }
        let panel = &mut panels[block * LANES * d..(block + 1) * LANES * d];
        for (c, &x) in k.iter().enumerate() {
            panel[c * LANES + lane] = x;
        }
        debug_assert_eq!(self.v[g].len(), pos * d);
        self.v[g].extend_from_slice(v);
    }
}

/// How raw dot products become attention logits.
#[derive(Clone, Copy, Debug)]
pub(super) struct Scoring {
    /// `query_pre_attn_scalar^-0.5`, multiplied after the dot product.
    pub(super) scaling: f32,
    /// HF's `attn_logit_softcapping`.
    pub(super) softcap: Option<f32>,
}

/// Attention of one query head at position `pos` over the cached keys
/// `keys = lo..=pos` of KV head `g`, written to `out` (`head_dim` values).
///
/// Per key `j`: `s_j = (Σ_c q[c]·k_j[c]) * scaling` summed over `c` in order,
/// then HF's optional softcapping `tanh(s / cap) * cap`, then
/// [`softmax_in_place`] over `j = lo..=pos` ascending, then
/// `out[c] = Σ_j p_j·v_j[c]` summed over `j` ascending. Nothing depends on
/// how many queries are processed together.
pub(super) fn attend(cache: &LayerCache, g: usize, q: &[f32], keys: RangeInclusive<usize>, scoring: Scoring, out: &mut [f32]) {
    let (lo, pos) = keys.into_inner();
    let d = q.len();
    let panels = &cache.k[g];
    let n = pos + 1 - lo;
    let mut scores = vec![0.0f32; n];
    let (b0, b1) = (lo / LANES, pos / LANES);
    for b in b0..=b1 {
        let panel = &panels[b * LANES * d..(b + 1) * LANES * d];
        let acc = dot_panel(q, panel);
        for (lane, &a) in acc.iter().enumerate() {
            let j = b * LANES + lane;
            if j >= lo && j <= pos {
                scores[j - lo] = a * scoring.scaling;
            }
        }
    }
    if let Some(cap) = scoring.softcap {
        scores.iter_mut().for_each(|s| *s = libm::tanhf(*s / cap) * cap);
    }
    softmax_in_place(&mut scores);
    out.iter_mut().for_each(|o| *o = 0.0);
    let vs = &cache.v[g];
    for (i, &p) in scores.iter().enumerate() {
        let v = &vs[(lo + i) * d..(lo + i + 1) * d];
        for (o, &x) in out.iter_mut().zip(v) {
            *o += p * x;
        }
    }
}

/// 16 dot products of `q` with the keys of one panel, each summed over `c` in order.
#[inline(always)]
fn dot_panel(q: &[f32], panel: &[f32]) -> [f32; LANES] {
    let mut acc = [0.0f32; LANES];
    for (&a, k) in q.iter().zip(panel.chunks_exact(LANES)) {
        for j in 0..LANES {
            acc[j] += a * k[j];
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_rotates_pairs_half_apart() {
        let rope = Rope::new(4, 10_000.0, None);
        assert_eq!(rope.inv_freq, vec![1.0, 0.01]);
        let (c, s) = rope.cos_sin(1);
        let mut x = vec![1.0, 0.0, 0.0, 0.0];
        Rope::apply(&mut x, &c, &s);
        assert_eq!(x, vec![libm::cosf(1.0), 0.0, libm::sinf(1.0), 0.0]);
        let scaled = Rope::new(4, 10_000.0, Some(8.0));
        assert_eq!(scaled.inv_freq, vec![0.125, 0.01 / 8.0]);
    }

    #[test]
    fn truncated_cache_refills_identically() {
        let mut l = LayerCache { k: vec![Vec::new()], v: vec![Vec::new()] };
        for p in 0..20 {
            l.push(0, p, &[p as f32, 1.0], &[1.0, p as f32]);
        }
        let full = l.k[0].clone();
        l.k[0].truncate(17usize.div_ceil(LANES) * LANES * 2);
        l.v[0].truncate(17 * 2);
        for p in 17..20 {
            l.push(0, p, &[p as f32, 1.0], &[1.0, p as f32]);
        }
        assert_eq!(l.k[0], full);
    }
}
