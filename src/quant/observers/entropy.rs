//! [`Method::Entropy`](super::Method::Entropy): the threshold minimising
//! KL(P‖Q), ONNX Runtime's `get_entropy_threshold` with the MXNet/TensorRT
//! expansion (see the parent module's docs).

use super::clamp_to;
use super::histogram::Histogram;
use crate::quant::int8::Range;

/// Smoothing mass given to empty bins before a KL divergence (ONNX Runtime, MXNet).
const SMOOTHING_EPS: f64 = 1e-4;

/// How the quantized levels are spread back over the sliced bins.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Expansion {
    /// MXNet/TensorRT: float division, zero where `p` is zero, remainder bins
    /// belong to the last level.
    Reference,
    /// ONNX Runtime 1.31.1, kept to check the shared machinery against it.
    #[cfg_attr(not(test), allow(dead_code))]
    OrtCompat,
}

pub(super) fn entropy_range(h: &Histogram, mm: Range, quantized_bins: usize, expansion: Expansion) -> Range {
    let n = h.counts.len();
    let zero = n / 2;
    let mut prefix = Vec::with_capacity(n + 1);
    prefix.push(0u64);
    for &c in &h.counts {
        prefix.push(prefix[prefix.len() - 1] + c);
    }
    let mut best: Option<(f64, usize, usize)> = None;
    for i in quantized_bins / 2..=zero {
        let start = zero - i;
        let end = (zero + i + 1).min(n);
        let outliers = (prefix[start], prefix[n] - prefix[end]);
        let kl = kl_divergence(&h.counts[start..end], outliers, quantized_bins, expansion);
        if best.is_none_or(|(b, _, _)| kl < b) {
            best = Some((kl, start, end));
        }
    }
    let (_, start, end) = best.expect("quantized_bins <= bins leaves at least one candidate");
    clamp_to(mm, h.edges[start], h.edges[end])
}

/// KL(P‖Q) of one candidate, `f64::INFINITY` when smoothing fails.
fn kl_divergence(sliced: &[u64], (left, right): (u64, u64), levels: usize, expansion: Expansion) -> f64 {
    let len = sliced.len();
    let mut p: Vec<f64> = sliced.iter().map(|&c| c as f64).collect();
    p[0] += left as f64;
    p[len - 1] += right as f64;
    let merged = len / levels;
    let mut level = vec![0u64; levels];
    for (j, l) in level.iter_mut().enumerate() {
        *l = sliced[j * merged..(j + 1) * merged].iter().sum();
    }
    level[levels - 1] += sliced[levels * merged..].iter().sum::<u64>();
    let mut q = vec![0.0f64; len];
    for (j, &l) in level.iter().enumerate() {
        let start = j * merged;
        let end = if expansion == Expansion::Reference && j == levels - 1 { len } else { start + merged };
        let norm = p[start..end].iter().filter(|&&v| v != 0.0).count();
        if norm == 0 {
            continue;
        }
        let value = l as f64 / norm as f64;
        for k in start..end {
            match expansion {
                Expansion::Reference if p[k] != 0.0 => q[k] = value,
                Expansion::Reference => {}
                Expansion::OrtCompat => q[k] = value.trunc(),
            }
        }
    }
    if !smooth(&mut p) || !smooth(&mut q) {
        return f64::INFINITY;
    }
    let (sp, sq) = (p.iter().sum::<f64>(), q.iter().sum::<f64>());
    p.iter().zip(&q).map(|(&pk, &qk)| (pk / sp) * libm::log((pk / sp) / (qk / sq))).sum()
}

/// ONNX Runtime's `smooth_distribution`: empty bins get `eps`, the others
/// give it back evenly; false when there is nothing to smooth or a bin
/// would not stay positive (ONNX Runtime asserts there).
fn smooth(p: &mut [f64]) -> bool {
    let zeros = p.iter().filter(|&&v| v == 0.0).count();
    let nonzeros = p.len() - zeros;
    if nonzeros == 0 {
        return false;
    }
    let eps1 = SMOOTHING_EPS * zeros as f64 / nonzeros as f64;
    for v in p.iter_mut() {
        *v = if *v == 0.0 { SMOOTHING_EPS } else { *v - eps1 };
    }
    p.iter().all(|&v| v > 0.0)
}
