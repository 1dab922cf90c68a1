//! [`Method::Percentile`](super::Method::Percentile): ONNX Runtime's
//! `HistogramCollector.compute_percentile` (see the parent module's docs).

use super::clamp_to;
use super::histogram::Histogram;
use crate::quant::int8::Range;

pub(super) fn percentile_range(h: &Histogram, mm: Range, percentile: f64) -> Range {
    let total = h.seen as f64;
    let mut acc = 0.0f64;
    let cdf: Vec<f64> = h
        .counts
        .iter()
        .map(|&c| {
            acc += c as f64 / total;
            acc
        })
        .collect();
    // numpy.searchsorted(cdf, v, side="left"): the first index with cdf >= v.
    let search = |v: f64| cdf.partition_point(|&c| c < v);
    let cut = (100.0 - percentile) / 200.0;
    clamp_to(mm, h.edges[search(cut)], h.edges[search(1.0 - cut)])
}
