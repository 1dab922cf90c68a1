//! Activation range calibration for static INT8, and the INT8 parameter rules.
//!
//! The reference forward feeds every activation tensor's values, over the
//! calibration texts in a fixed order, to one [`Observer`] per tensor. Each
//! [`Method`] then turns what the observer kept into a clipping [`Range`], and
//! [`QuantParams`] turns a range into a scale and zero point.
//!
//! # Two passes, so the histogram never depends on chunking
//!
//! A histogram needs its range before the first value arrives. Growing it
//! while streaming (ONNX Runtime's `merge_histogram`) makes the bins depend on
//! how the data was split into batches. Instead the data is fed twice:
//!
//! 1. `observe` keeps the count, the minimum and the maximum (`total_cmp`, so
//!    `-0.0` and `0.0` order the same way whatever comes first).
//! 2. [`Observer::start_histogram_pass`] fixes `T = max(|min|, |max|)` and
//!    `bins` (2048 by default) uniform bins over `[-T, T]`; `observe` then
//!    counts every value into one bin. Pass 2 must see exactly the values of
//!    pass 1 (checked: same count, nothing outside pass 1's range).
//!
//! Counts are integers and each bin is a pure function of the value, so the
//! result is the same for any chunking and any order; an observer holds no
//! threads, and observers of different tensors may run in parallel. Only
//! [`Method::MinMax`] can skip pass 2 ([`Method::needs_histogram`]).
//!
//! The bins are exactly those of `numpy.histogram(values, bins, range=(-T, T))`
//! in float32 (NumPy 2's `linspace` edges and its edge-corrected bin index),
//! which is the histogram ONNX Runtime 1.31.1's `HistogramCollector.collect_value`
//! builds when all calibration outputs are collected in one call (its default).
//!
//! # What follows ONNX Runtime (`onnxruntime/quantization`, 1.31.1)
//!
//! - Percentile: `HistogramCollector.compute_percentile` with
//!   `symmetric=False`: cut `(100 - p) / 200` on each side of the signed
//!   histogram (`cdf = cumsum(hist / total)`, `searchsorted` left), take the
//!   bin edges, clamp to the observed min/max.
//! - Entropy: the candidate thresholds, slicing, outlier folding, smoothing
//!   (`eps = 1e-4`) and min/max clamping of `get_entropy_threshold`; the
//!   expansion of the quantized bins back to the sliced length follows the
//!   MXNet/TensorRT reference that ONNX Runtime cites (float division, zero
//!   where `p` is zero, the remainder bins belong to the last level) instead
//!   of ONNX Runtime's, which truncates to integers in an `int64` array and
//!   leaves the remainder bins empty. KL divergence is computed in f64 with
//!   `libm::log` in bin order.
//! - Scale and zero point: `quant_utils.compute_scale_zp` (range widened to
//!   include 0, scale computed in f64 and rounded to f32, zero point rounded
//!   half to even from the f64 scale, scale 1 / zero point 0 below f32's
//!   smallest normal).
//! - Weights: `quant_utils.quantize_data` + `quantize_nparray` with int8
//!   symmetric range [-127, 127]: `round_half_even(w / scale)` in f32.
//!
//! [`Method::Mse`] is avac's own: see [`Method::Mse`].

use serde::{Deserialize, Serialize};

/// Histogram bins per tensor, ONNX Runtime's percentile default.
pub const DEFAULT_BINS: usize = 2048;
/// ONNX Runtime's default percentile.
pub const DEFAULT_PERCENTILE: f64 = 99.999;
/// ONNX Runtime's default number of quantized bins for the entropy search.
pub const DEFAULT_QUANTIZED_BINS: usize = 128;
/// Smoothing mass given to empty bins before a KL divergence (ONNX Runtime, MXNet).
const SMOOTHING_EPS: f64 = 1e-4;

/// Failures of calibration and of INT8 parameter computation.
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    /// No value was observed for a tensor.
    #[error("tensor `{tensor}`: no values were observed; the calibration data produced no activations for it")]
    Empty {
        /// The tensor.
        tensor: String,
    },
    /// NaN or infinity among the activations.
    #[error("tensor `{tensor}`: value {value} at position {position} of this pass is not finite; calibration needs finite activations")]
    NonFinite {
        /// The tensor.
        tensor: String,
        /// Index of the value in the pass's stream.
        position: u64,
        /// The value.
        value: f32,
    },
    /// A histogram method was asked for before the histogram pass.
    #[error("tensor `{tensor}`: method `{method}` needs the histogram pass; call `start_histogram_pass` and feed the calibration data again")]
    HistogramMissing {
        /// The tensor.
        tensor: String,
        /// The method asked for.
        method: &'static str,
    },
    /// `start_histogram_pass` was called twice.
    #[error("tensor `{tensor}`: the histogram pass was already started")]
    HistogramAlreadyStarted {
        /// The tensor.
        tensor: String,
    },
    /// The two passes saw a different number of values.
    #[error("tensor `{tensor}`: the histogram pass saw {second} values but the min/max pass saw {first}; feed both passes the same data")]
    PassMismatch {
        /// The tensor.
        tensor: String,
        /// Values seen by the min/max pass.
        first: u64,
        /// Values seen by the histogram pass.
        second: u64,
    },
    /// The histogram pass saw a value the min/max pass did not.
    #[error("tensor `{tensor}`: value {value} of the histogram pass lies outside [{min}, {max}] seen by the min/max pass; feed both passes the same data")]
    OutsideFirstPass {
        /// The tensor.
        tensor: String,
        /// The value.
        value: f32,
        /// Minimum of the min/max pass.
        min: f32,
        /// Maximum of the min/max pass.
        max: f32,
    },
    /// `2 * max|x|` overflows f32, so the histogram cannot be laid out.
    #[error("tensor `{tensor}`: activations reach {absmax}, too large for a histogram over [-{absmax}, {absmax}] in f32")]
    RangeOverflow {
        /// The tensor.
        tensor: String,
        /// The largest magnitude seen.
        absmax: f32,
    },
    /// A histogram needs an even number of bins (a zero bin edge in the middle).
    #[error("histogram bin count {bins} must be even and at least 2")]
    InvalidBins {
        /// The bin count asked for.
        bins: usize,
    },
    /// Percentile outside [0, 100].
    #[error("percentile {percentile} must be within [0, 100]")]
    InvalidPercentile {
        /// The percentile asked for.
        percentile: f64,
    },
    /// Entropy levels outside [2, bins].
    #[error("entropy quantized bins {quantized_bins} must be within [2, {bins}] (the histogram's bin count)")]
    InvalidQuantizedBins {
        /// The level count asked for.
        quantized_bins: usize,
        /// The histogram's bin count.
        bins: usize,
    },
    /// A weight's length is not `rows * cols`.
    #[error("weight `{tensor}`: {len} values do not form a {rows}x{cols} matrix")]
    ShapeMismatch {
        /// The weight.
        tensor: String,
        /// Its number of values.
        len: usize,
        /// Rows asked for.
        rows: usize,
        /// Columns asked for.
        cols: usize,
    },
    /// NaN or infinity in a weight.
    #[error("weight `{tensor}`: value {value} at index {index} is not finite")]
    NonFiniteWeight {
        /// The weight.
        tensor: String,
        /// Flat index of the value.
        index: usize,
        /// The value.
        value: f32,
    },
}

/// Result of this module.
pub type Result<T> = std::result::Result<T, CalibrateError>;

/// How an activation's clipping range is chosen.
///
/// Serialized internally tagged, e.g. `{"method": "percentile", "percentile": 99.99}`
/// or `method = "mse"` in a TOML table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case", rename_all_fields = "kebab-case", deny_unknown_fields)]
pub enum Method {
    /// The observed minimum and maximum (ONNX Runtime's default).
    #[default]
    MinMax,
    /// Clip `(100 - percentile) / 2` percent of the values on each side.
    Percentile {
        /// Percentage of values kept, in [0, 100].
        #[serde(default = "default_percentile")]
        percentile: f64,
    },
    /// The threshold minimising KL(P‖Q) between the clipped histogram and
    /// its quantization to `quantized_bins` levels (TensorRT's calibration).
    Entropy {
        /// Levels the candidate range is quantized to: 128 like ONNX Runtime
        /// and TensorRT; 255 models uint8 more closely.
        #[serde(default = "default_quantized_bins")]
        quantized_bins: usize,
    },
    /// The range minimising the expected squared error of uint8 asymmetric
    /// quantize-dequantize (rounding inside the range, clipping outside),
    /// with the exact [`QuantParams::uint8_asymmetric`] grid of each
    /// candidate and values spread uniformly inside their bin. Candidates are
    /// the symmetric bin edges `[-e, e]`, then the upper edge alone, then the
    /// lower edge alone, each clamped to the observed min/max; ties keep the
    /// first candidate.
    Mse,
}

fn default_percentile() -> f64 {
    DEFAULT_PERCENTILE
}

fn default_quantized_bins() -> usize {
    DEFAULT_QUANTIZED_BINS
}

impl Method {
    /// The name used in configuration and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Method::MinMax => "min-max",
            Method::Percentile { .. } => "percentile",
            Method::Entropy { .. } => "entropy",
            Method::Mse => "mse",
        }
    }

    /// Whether the method needs the histogram pass.
    pub fn needs_histogram(&self) -> bool {
        !matches!(self, Method::MinMax)
    }

    fn validate(&self, bins: usize) -> Result<()> {
        match *self {
            Method::Percentile { percentile } if !(0.0..=100.0).contains(&percentile) => Err(CalibrateError::InvalidPercentile { percentile }),
            Method::Entropy { quantized_bins } if quantized_bins < 2 || quantized_bins > bins => {
                Err(CalibrateError::InvalidQuantizedBins { quantized_bins, bins })
            }
            _ => Ok(()),
        }
    }
}

/// A clipping range, `min <= max`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Range {
    /// Lower end.
    pub min: f32,
    /// Upper end.
    pub max: f32,
}

/// Scale and zero point of a linear quantization `x ≈ scale * (q - zero_point)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QuantParams {
    /// Positive scale.
    pub scale: f32,
    /// 0..=255 for uint8 asymmetric, 0 for int8 symmetric.
    pub zero_point: i32,
}

impl QuantParams {
    /// uint8 asymmetric parameters for an activation range: the range is
    /// widened to include 0, `scale = (max - min) / 255`,
    /// `zero_point = round_half_even(-min / scale)`.
    pub fn uint8_asymmetric(range: Range) -> Self {
        compute_scale_zp(range, 0, 255, false)
    }

    /// int8 symmetric parameters: `scale = max(|min|, |max|) / 127`, zero point 0.
    pub fn int8_symmetric(range: Range) -> Self {
        compute_scale_zp(range, -127, 127, true)
    }
}

/// ONNX Runtime's `compute_scale_zp` (see the module docs).
fn compute_scale_zp(range: Range, qmin: i32, qmax: i32, symmetric: bool) -> QuantParams {
    let mut rmin = range.min.min(0.0);
    let mut rmax = range.max.max(0.0);
    if symmetric {
        let absmax = rmin.abs().max(rmax.abs());
        rmin = -absmax;
        rmax = absmax;
    }
    let scale = (f64::from(rmax) - f64::from(rmin)) / f64::from(qmax - qmin);
    if scale < f64::from(f32::MIN_POSITIVE) {
        return QuantParams { scale: 1.0, zero_point: 0 };
    }
    let zero_point = if symmetric { (f64::from(qmin + qmax) / 2.0).round_ties_even() } else { (f64::from(qmin) - f64::from(rmin) / scale).round_ties_even() };
    QuantParams {
        scale: scale as f32,
        // In range by construction; the clamp only guards the cast.
        zero_point: (zero_point as i32).clamp(qmin, qmax),
    }
}

/// Quantizes a weight to int8 with one symmetric scale for the whole tensor.
pub fn quantize_weights_per_tensor(tensor: &str, w: &[f32]) -> Result<(Vec<i8>, f32)> {
    check_finite(tensor, w, 0)?;
    Ok(quantize_symmetric(w))
}

/// Quantizes a `rows x cols` row-major weight to int8 with one symmetric scale
/// per row (axis 0: the output channel of an `[out, in]` weight).
pub fn quantize_weights_per_channel(tensor: &str, w: &[f32], rows: usize, cols: usize) -> Result<(Vec<i8>, Vec<f32>)> {
    if rows.checked_mul(cols) != Some(w.len()) {
        return Err(CalibrateError::ShapeMismatch { tensor: tensor.to_owned(), len: w.len(), rows, cols });
    }
    check_finite(tensor, w, 0)?;
    let mut q = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(rows);
    for r in 0..rows {
        let (qr, s) = quantize_symmetric(&w[r * cols..(r + 1) * cols]);
        q.extend_from_slice(&qr);
        scales.push(s);
    }
    Ok((q, scales))
}

fn check_finite(tensor: &str, w: &[f32], offset: usize) -> Result<()> {
    match w.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(CalibrateError::NonFiniteWeight { tensor: tensor.to_owned(), index: offset + i, value: w[i] }),
        None => Ok(()),
    }
}

/// `quantize_data(symmetric=True, INT8)`: range from min/max, then
/// `clamp(round_half_even(w / scale), -127, 127)` with the division in f32.
fn quantize_symmetric(w: &[f32]) -> (Vec<i8>, f32) {
    let (lo, hi) = w.iter().fold((0.0f32, 0.0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let params = QuantParams::int8_symmetric(Range { min: lo, max: hi });
    let q = w.iter().map(|&v| (v / params.scale).round_ties_even().clamp(-127.0, 127.0) as i8).collect();
    (q, params.scale)
}

/// Uniform bins over `[first, last]`, laid out exactly like float32 `numpy.histogram`.
#[derive(Debug, Clone)]
struct Histogram {
    first: f32,
    last: f32,
    /// `bins + 1` edges; bin `i` is `[edges[i], edges[i + 1])`, the last one closed.
    edges: Vec<f32>,
    counts: Vec<u64>,
    seen: u64,
}

impl Histogram {
    /// `numpy.histogram(a, bins, range=(-t, t))` with float32 `a` and `t`.
    fn symmetric(t: f32, bins: usize) -> Self {
        let (mut first, mut last) = (-t, t);
        if first == last {
            first -= 0.5;
            last += 0.5;
        }
        // NumPy 2 `linspace(first, last, bins + 1)`, all in f32.
        let delta = last - first;
        let div = bins as f32;
        let step = delta / div;
        let mut edges: Vec<f32> = (0..=bins)
            .map(|k| {
                let k = k as f32;
                let y = if step == 0.0 { k / div * delta } else { k * step };
                y + first
            })
            .collect();
        edges[bins] = last;
        Histogram { first, last, edges, counts: vec![0; bins], seen: 0 }
    }

    /// NumPy's bin index: scaled estimate, then one correction step either way.
    fn index(&self, x: f32) -> usize {
        let n = self.counts.len();
        let f = (x - self.first) / (self.last - self.first) * n as f32;
        let mut i = (f as usize).min(n - 1);
        if i > 0 && x < self.edges[i] {
            i -= 1;
        }
        if i != n - 1 && x >= self.edges[i + 1] {
            i += 1;
        }
        i
    }
}

/// Streaming statistics of one activation tensor (see the module docs).
#[derive(Debug, Clone)]
pub struct Observer {
    tensor: String,
    bins: usize,
    count: u64,
    min: f32,
    max: f32,
    histogram: Option<Histogram>,
}

impl Observer {
    /// An observer with [`DEFAULT_BINS`] histogram bins.
    pub fn new(tensor: impl Into<String>) -> Self {
        Observer { tensor: tensor.into(), bins: DEFAULT_BINS, count: 0, min: f32::INFINITY, max: f32::NEG_INFINITY, histogram: None }
    }

    /// An observer with `bins` histogram bins (even, at least 2).
    pub fn with_bins(tensor: impl Into<String>, bins: usize) -> Result<Self> {
        if bins < 2 || !bins.is_multiple_of(2) {
            return Err(CalibrateError::InvalidBins { bins });
        }
        Ok(Observer { bins, ..Observer::new(tensor) })
    }

    /// The tensor's name.
    pub fn tensor(&self) -> &str {
        &self.tensor
    }

    /// Values seen by the min/max pass.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Feeds the next values of the current pass; on error nothing is recorded.
    pub fn observe(&mut self, values: &[f32]) -> Result<()> {
        let seen = self.histogram.as_ref().map_or(self.count, |h| h.seen);
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(CalibrateError::NonFinite { tensor: self.tensor.clone(), position: seen + i as u64, value: values[i] });
        }
        let Some(h) = &mut self.histogram else {
            for &v in values {
                if v.total_cmp(&self.min).is_lt() {
                    self.min = v;
                }
                if v.total_cmp(&self.max).is_gt() {
                    self.max = v;
                }
            }
            self.count += values.len() as u64;
            return Ok(());
        };
        if let Some(&value) = values.iter().find(|&&v| v < self.min || v > self.max) {
            return Err(CalibrateError::OutsideFirstPass { tensor: self.tensor.clone(), value, min: self.min, max: self.max });
        }
        for &v in values {
            let i = h.index(v);
            h.counts[i] += 1;
        }
        h.seen += values.len() as u64;
        Ok(())
    }

    /// Ends the min/max pass and lays the histogram over `[-T, T]`,
    /// `T = max(|min|, |max|)`; the next `observe` calls fill it.
    pub fn start_histogram_pass(&mut self) -> Result<()> {
        if self.histogram.is_some() {
            return Err(CalibrateError::HistogramAlreadyStarted { tensor: self.tensor.clone() });
        }
        let mm = self.min_max()?;
        let t = mm.min.abs().max(mm.max.abs());
        if !(t + t).is_finite() {
            return Err(CalibrateError::RangeOverflow { tensor: self.tensor.clone(), absmax: t });
        }
        self.histogram = Some(Histogram::symmetric(t, self.bins));
        Ok(())
    }

    /// The observed minimum and maximum.
    pub fn min_max(&self) -> Result<Range> {
        if self.count == 0 {
            return Err(CalibrateError::Empty { tensor: self.tensor.clone() });
        }
        Ok(Range { min: self.min, max: self.max })
    }

    /// The clipping range chosen by `method`.
    pub fn range(&self, method: &Method) -> Result<Range> {
        method.validate(self.bins)?;
        let mm = self.min_max()?;
        let h = match (method, &self.histogram) {
            (Method::MinMax, _) => return Ok(mm),
            (_, None) => return Err(CalibrateError::HistogramMissing { tensor: self.tensor.clone(), method: method.name() }),
            (_, Some(h)) if h.seen != self.count => {
                return Err(CalibrateError::PassMismatch { tensor: self.tensor.clone(), first: self.count, second: h.seen })
            }
            (_, Some(h)) => h,
        };
        Ok(match *method {
            Method::MinMax => mm,
            Method::Percentile { percentile } => percentile_range(h, mm, percentile),
            Method::Entropy { quantized_bins } => entropy_range(h, mm, quantized_bins, Expansion::Reference),
            Method::Mse => mse_range(h, mm),
        })
    }
}

/// `(lo, hi)` clamped to the observed range, as ONNX Runtime does; an empty
/// result (possible only when every candidate failed) falls back to min-max.
fn clamp_to(mm: Range, lo: f32, hi: f32) -> Range {
    let r = Range { min: if lo < mm.min { mm.min } else { lo }, max: if hi > mm.max { mm.max } else { hi } };
    if r.min <= r.max {
        r
    } else {
        mm
    }
}

fn percentile_range(h: &Histogram, mm: Range, percentile: f64) -> Range {
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

/// How the quantized levels are spread back over the sliced bins.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expansion {
    /// MXNet/TensorRT: float division, zero where `p` is zero, remainder bins
    /// belong to the last level.
    Reference,
    /// ONNX Runtime 1.31.1, kept to check the shared machinery against it.
    #[cfg_attr(not(test), allow(dead_code))]
    OrtCompat,
}

fn entropy_range(h: &Histogram, mm: Range, quantized_bins: usize, expansion: Expansion) -> Range {
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

fn mse_range(h: &Histogram, mm: Range) -> Range {
    let n = h.counts.len();
    let zero = n / 2;
    let mut best = (f64::INFINITY, mm);
    let mut consider = |lo: f32, hi: f32| {
        let r = clamp_to(mm, lo, hi);
        let err = expected_sq_error(h, mm, r);
        if err < best.0 {
            best = (err, r);
        }
        best.1
    };
    let mut chosen = mm;
    for i in 1..=zero {
        chosen = consider(h.edges[zero - i], h.edges[zero + i]);
    }
    let lo = chosen.min;
    for k in zero + 1..=n {
        chosen = consider(lo, h.edges[k]);
    }
    let hi = chosen.max;
    for k in 0..zero {
        chosen = consider(h.edges[k], hi);
    }
    chosen
}

/// Sum over the histogram of the expected squared error of uint8
/// quantize-dequantize with `clip`, each bin's values spread uniformly over
/// the part of the bin inside the observed range.
fn expected_sq_error(h: &Histogram, mm: Range, clip: Range) -> f64 {
    let qp = QuantParams::uint8_asymmetric(clip);
    let grid = Grid { s: f64::from(qp.scale), lo: -f64::from(qp.zero_point) * f64::from(qp.scale), hi: f64::from(255 - qp.zero_point) * f64::from(qp.scale) };
    let mut total = 0.0;
    for (b, &c) in h.counts.iter().enumerate() {
        if c == 0 {
            continue;
        }
        let u = f64::from(h.edges[b]).max(f64::from(mm.min));
        let v = f64::from(h.edges[b + 1]).min(f64::from(mm.max));
        let mean = if v > u { grid.integral(u, v) / (v - u) } else { grid.point(u) };
        total += c as f64 * mean;
    }
    total
}

/// The dequantized values `lo, lo + s, ..., hi` of a uint8 quantizer.
struct Grid {
    s: f64,
    lo: f64,
    hi: f64,
}

impl Grid {
    fn point(&self, x: f64) -> f64 {
        let d = if x < self.lo {
            self.lo - x
        } else if x > self.hi {
            x - self.hi
        } else {
            let t = (x - self.lo) / self.s;
            (t - t.round_ties_even()).abs() * self.s
        };
        d * d
    }

    /// `∫_u^v (x - dequant(quant(x)))² dx`.
    fn integral(&self, u: f64, v: f64) -> f64 {
        let cube = |x: f64| x * x * x;
        let mut acc = 0.0;
        if u < self.lo {
            acc += (cube(self.lo - u) - cube(self.lo - v.min(self.lo))) / 3.0;
        }
        if v > self.hi {
            acc += (cube(v - self.hi) - cube(u.max(self.hi) - self.hi)) / 3.0;
        }
        let (a, b) = (u.max(self.lo), v.min(self.hi));
        if b > a {
            acc += self.sawtooth(b) - self.sawtooth(a);
        }
        acc
    }

    /// Antiderivative of the squared distance to the nearest grid point,
    /// from `lo`: `s³ (k / 12 + G(f))` for `x = lo + s (k + f)`.
    fn sawtooth(&self, x: f64) -> f64 {
        let t = (x - self.lo) / self.s;
        let k = t.floor();
        let f = t - k;
        let g = if f <= 0.5 { f * f * f / 3.0 } else { 1.0 / 12.0 - (1.0 - f) * (1.0 - f) * (1.0 - f) / 3.0 };
        self.s * self.s * self.s * (k / 12.0 + g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// splitmix64; the ONNX Runtime oracle script draws the same numbers with NumPy.
    struct SplitMix(u64);

    impl SplitMix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        /// k / 2^24: exact, so Python and Rust agree bit for bit.
        fn uniform(&mut self) -> f64 {
            (self.next() >> 40) as f64 / 16_777_216.0
        }
        /// Irwin-Hall(12) - 6: a Gaussian within ±6 σ, in exact arithmetic.
        fn gauss(&mut self) -> f64 {
            (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0
        }
    }

    fn uniform_data() -> Vec<f32> {
        let mut r = SplitMix(1);
        (0..100_000).map(|_| (-1.0 + 4.0 * r.uniform()) as f32).collect()
    }

    fn gauss_outliers() -> Vec<f32> {
        let mut r = SplitMix(2);
        let mut v: Vec<f32> = (0..1_000_000).map(|_| r.gauss() as f32).collect();
        v.extend([30.0, 25.0, -28.0, -22.0]);
        v
    }

    fn squared() -> Vec<f32> {
        let mut r = SplitMix(3);
        (0..200_000)
            .map(|_| {
                let g = r.gauss();
                (g * g * 0.5) as f32
            })
            .collect()
    }

    fn skewed() -> Vec<f32> {
        let mut r = SplitMix(4);
        (0..300_000)
            .map(|_| {
                let g = r.gauss();
                (if g > 0.0 { 1.5 * g } else { 0.25 * g }) as f32
            })
            .collect()
    }

    /// Both passes over `data` in chunks of `chunk`.
    fn observed(data: &[f32], chunk: usize) -> Observer {
        let mut o = Observer::new("t");
        for c in data.chunks(chunk) {
            o.observe(c).unwrap();
        }
        o.start_histogram_pass().unwrap();
        for c in data.chunks(chunk) {
            o.observe(c).unwrap();
        }
        o
    }

    const PERCENTILE: Method = Method::Percentile { percentile: DEFAULT_PERCENTILE };
    const ENTROPY: Method = Method::Entropy { quantized_bins: DEFAULT_QUANTIZED_BINS };
    const ALL: [Method; 4] = [Method::MinMax, PERCENTILE, ENTROPY, Method::Mse];

    fn bits(r: Range) -> (u32, u32) {
        (r.min.to_bits(), r.max.to_bits())
    }

    fn ort_entropy(o: &Observer, quantized_bins: usize) -> Range {
        let h = o.histogram.as_ref().unwrap();
        entropy_range(h, o.min_max().unwrap(), quantized_bins, Expansion::OrtCompat)
    }

    #[test]
    fn edges_match_numpy() {
        // numpy 2.4 `np.histogram(.., 2048, range=(-t, t))[1]` at these indices.
        let idx = [0, 1, 3, 1000, 1023, 1024, 1025, 1537, 2047, 2048];
        let cases: [(u32, [u32; 10]); 5] = [
            (0x3f800000, [0xbf800000, 0xbf7fc000, 0xbf7f4000, 0xbcc00000, 0xba800000, 0, 0x3a800000, 0x3f004000, 0x3f7fc000, 0x3f800000]),
            (0x40400001, [0xc0400001, 0xc03fd001, 0xc03f7001, 0xbd900000, 0xbb400000, 0, 0x3b400000, 0x3fc06002, 0x403fd001, 0x40400001]),
            (0x3dcccccd, [0xbdcccccd, 0xbdcc999a, 0xbdcc3333, 0xbb1999a0, 0xb8cccc00, 0, 0x38cccc00, 0x3d4d3332, 0x3dcc9999, 0x3dcccccd]),
            (0x41f00000, [0xc1f00000, 0xc1efc400, 0xc1ef4c00, 0xbf340000, 0xbcf00000, 0, 0x3cf00000, 0x41707800, 0x41efc400, 0x41f00000]),
            (0x00000000, [0xbf000000, 0xbeffc000, 0xbeff4000, 0xbc400000, 0xba000000, 0, 0x3a000000, 0x3e804000, 0x3effc000, 0x3f000000]),
        ];
        for (t, want) in cases {
            let h = Histogram::symmetric(f32::from_bits(t), 2048);
            let got: Vec<u32> = idx.iter().map(|&i| h.edges[i].to_bits()).collect();
            assert_eq!(got, want, "t = {}", f32::from_bits(t));
        }
    }

    #[test]
    fn chunking_does_not_change_any_bit() {
        let mut data = skewed();
        data.truncate(20_000);
        data.extend([0.0, -0.0, 0.0, 6.5, -2.0, 6.5, -2.0]);
        let reversed: Vec<f32> = data.iter().rev().copied().collect();
        let whole = observed(&data, data.len());
        for o in [observed(&data, 1), observed(&data, 7), observed(&reversed, 4096)] {
            assert_eq!(o.histogram.as_ref().unwrap().counts, whole.histogram.as_ref().unwrap().counts);
            for m in ALL {
                assert_eq!(bits(o.range(&m).unwrap()), bits(whole.range(&m).unwrap()), "{m:?}");
            }
        }
        // -0.0 is the minimum whichever zero comes first.
        for zeros in [[0.0f32, -0.0], [-0.0, 0.0]] {
            let o = observed(&zeros, 1);
            assert_eq!(bits(o.range(&Method::MinMax).unwrap()), ((-0.0f32).to_bits(), 0));
        }
    }

    #[test]
    fn uniform_keeps_nearly_the_whole_range() {
        let o = observed(&uniform_data(), 10_000);
        let mm = o.range(&Method::MinMax).unwrap();
        assert_eq!(bits(mm), (0xbf7fff5c, 0x403fffc9));
        // ONNX Runtime 1.31.1 `HistogramCollector` (2048 bins, symmetric=False) on the same data.
        assert_eq!(bits(o.range(&PERCENTILE).unwrap()), (0xbf7fff5c, 0x403fcfc9));
        assert_eq!(bits(ort_entropy(&o, 128)), (0xbf7fff5c, 0x403fffc9));
        assert_eq!(bits(ort_entropy(&o, 255)), (0xbf7fff5c, 0x403f6fc9));
        for m in [ENTROPY, Method::Mse] {
            let r = o.range(&m).unwrap();
            assert!(r.min < 0.99 * mm.min && r.max > 0.99 * mm.max, "{m:?}: {r:?}");
        }
    }

    #[test]
    fn outliers_are_clipped_except_by_min_max() {
        let o = observed(&gauss_outliers(), 65_536);
        assert_eq!(o.range(&Method::MinMax).unwrap(), Range { min: -28.0, max: 30.0 });
        assert_eq!(bits(o.range(&PERCENTILE).unwrap()), (0xc0861000, 0x40843000));
        let p9999 = o.range(&Method::Percentile { percentile: 99.99 }).unwrap();
        assert_eq!(bits(p9999), (0xc06e2000, 0x406a6000));
        // ONNX Runtime gives (-6.796875, 6.826171875): its KL values, in f32, tie
        // to 7 digits every 3 bins there (its integer `q` makes them periodic);
        // in f64 the tie breaks 6 bins further out.
        let compat = ort_entropy(&o, 128);
        assert_eq!(bits(compat), (0xc0df2000, 0x40e01000));
        assert!((compat.min + 6.796875).abs() < 0.2 && (compat.max - 6.826172).abs() < 0.2);
        assert_eq!(bits(ort_entropy(&o, 255)), (0xc06e2000, 0x40700000));
        for m in [PERCENTILE, ENTROPY, Method::Entropy { quantized_bins: 255 }] {
            let r = o.range(&m).unwrap();
            // σ = 1: these clip the outliers but not the bulk.
            assert!((-4.5..-3.5).contains(&r.min) && (3.5..4.5).contains(&r.max), "{m:?}: {r:?}");
        }
        // Four outliers at 22-30 σ in 10^6 values are not rare enough for the
        // squared error to clip them near 4 σ, but it still halves the range.
        let mse = o.range(&Method::Mse).unwrap();
        assert!((-14.0..-6.0).contains(&mse.min) && (6.0..14.0).contains(&mse.max), "{mse:?}");
    }

    /// Squared error of real uint8 quantize-dequantize over the raw values.
    fn actual_sse(data: &[f32], r: Range) -> f64 {
        let p = QuantParams::uint8_asymmetric(r);
        data.iter()
            .map(|&x| {
                let q = ((x / p.scale).round_ties_even() + p.zero_point as f32).clamp(0.0, 255.0);
                let d = f64::from(x) - f64::from((q - p.zero_point as f32) * p.scale);
                d * d
            })
            .sum()
    }

    #[test]
    fn mse_range_beats_the_others_on_the_raw_values() {
        for data in [gauss_outliers(), squared(), skewed(), uniform_data()] {
            let o = observed(&data, data.len());
            let best = o.range(&Method::Mse).unwrap();
            let sse = actual_sse(&data, best);
            let mut rivals: Vec<Range> = [Method::MinMax, PERCENTILE, ENTROPY].iter().map(|m| o.range(m).unwrap()).collect();
            for f in [0.9f32, 0.95, 1.05, 1.1] {
                rivals.push(Range { min: best.min * f, max: best.max * f });
            }
            for r in rivals {
                // The histogram estimate is not the raw error: allow 1%.
                assert!(sse <= 1.01 * actual_sse(&data, r), "{best:?}: {sse} vs {r:?}: {}", actual_sse(&data, r));
            }
        }
    }

    #[test]
    fn all_positive_data_matches_ort_and_includes_zero_in_params() {
        for (data, percentile, ort128, ort255) in [
            (squared(), (0x2de89000, 0x4114ca7e), (0x2de89000, 0x40aad9bc), (0x2de89000, 0x40bdcd10)),
            (skewed(), (0xbf83795c, 0x40c1ec9c), (0xbf8ad756, 0x40b9cdc6), (0xbf8ad756, 0x40c5fc08)),
        ] {
            let o = observed(&data, 50_000);
            assert_eq!(bits(o.range(&PERCENTILE).unwrap()), percentile);
            assert_eq!(bits(ort_entropy(&o, 128)), ort128);
            assert_eq!(bits(ort_entropy(&o, 255)), ort255);
            for m in ALL {
                let r = o.range(&m).unwrap();
                let p = QuantParams::uint8_asymmetric(r);
                assert!(r.min <= r.max && (0..=255).contains(&p.zero_point), "{m:?}");
                // 0 is exactly representable: q = zero_point dequantizes to 0.
                assert!(p.scale > 0.0 && (r.min >= 0.0) == (p.zero_point == 0), "{m:?}: {r:?} {p:?}");
            }
        }
    }

    #[test]
    fn degenerate_tensors() {
        for value in [0.0f32, 2.5, -0.75] {
            let o = observed(&vec![value; 1000], 3);
            for m in ALL {
                assert_eq!(o.range(&m).unwrap(), Range { min: value, max: value }, "{m:?}");
            }
        }
        let zero = QuantParams::uint8_asymmetric(Range { min: 0.0, max: 0.0 });
        assert_eq!(zero, QuantParams { scale: 1.0, zero_point: 0 });
        let single = QuantParams::uint8_asymmetric(Range { min: 2.5, max: 2.5 });
        assert_eq!(single, QuantParams { scale: (2.5f64 / 255.0) as f32, zero_point: 0 });
        let negative = QuantParams::uint8_asymmetric(Range { min: -0.75, max: -0.75 });
        assert_eq!(negative.zero_point, 255);
    }

    #[test]
    fn params_match_ort_compute_scale_zp() {
        // (range, uint8 (scale bits, zp), int8 symmetric scale bits) from quant_utils.compute_scale_zp.
        type Case = ((f32, f32), (u32, i32), u32);
        let cases: [Case; 8] = [
            ((-1.0, 3.0), (0x3c808081, 64), 0x3cc18306),
            ((0.1, 6.3), (0x3cca63fe, 0), 0x3d4b2ffa),
            ((-4.7, -0.2), (0x3c96fd63, 255), 0x3d179591),
            ((-0.17, 10.5), (0x3d2b63b6, 4), 0x3da952a5),
            ((0.0, 0.0), (0x3f800000, 0), 0x3f800000),
            ((-3.3, 3.3), (0x3cd4073a, 128), 0x3cd4dced),
            ((-1e-3, 2.5e-1), (0x3a810417, 1), 0x3b010204),
            ((-2.0, 253.0), (0x3f800000, 2), 0x3ffefdfc),
        ];
        for ((min, max), (scale, zero_point), sym) in cases {
            let r = Range { min, max };
            assert_eq!(QuantParams::uint8_asymmetric(r), QuantParams { scale: f32::from_bits(scale), zero_point });
            assert_eq!(QuantParams::int8_symmetric(r), QuantParams { scale: f32::from_bits(sym), zero_point: 0 });
        }
    }

    fn fnv(bytes: impl IntoIterator<Item = u8>) -> u64 {
        bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
    }

    #[test]
    fn weights_match_ort_quantize_data() {
        let mut r = SplitMix(5);
        let w: Vec<f32> = (0..64 * 48).map(|_| (r.gauss() * 0.05) as f32).collect();
        let (q, scale) = quantize_weights_per_tensor("w", &w).unwrap();
        assert_eq!(scale.to_bits(), 0x3ad21306);
        assert_eq!(fnv(q.iter().map(|&v| v as u8)), 0x032d4173e592a5b1);
        assert_eq!((q.iter().min(), q.iter().max()), (Some(&-127), Some(&89)));
        let (q, scales) = quantize_weights_per_channel("w", &w, 64, 48).unwrap();
        assert_eq!(fnv(q.iter().map(|&v| v as u8)), 0xa987fa352f84ced6);
        assert_eq!(fnv(scales.iter().flat_map(|s| s.to_le_bytes())), 0xb9de7c763b66c8a8);
    }

    #[test]
    fn weights_round_half_to_even_and_stay_symmetric() {
        let (q, scale) = quantize_weights_per_tensor("w", &[127.0, 0.5, 1.5, 2.5, -0.5, -2.5, -127.0]).unwrap();
        assert_eq!((q, scale), (vec![127, 0, 2, 2, 0, -2, -127], 1.0));
        let (q, scales) = quantize_weights_per_channel("w", &[0.0, 0.0, 1.0, -2.0, 0.5, 254.0], 3, 2).unwrap();
        assert_eq!(q, vec![0, 0, 64, -127, 0, 127]);
        assert_eq!(scales, vec![1.0, (2.0f64 / 127.0) as f32, 2.0]);
        assert_eq!(quantize_weights_per_tensor("w", &[]).unwrap(), (vec![], 1.0));
    }

    #[test]
    fn errors_name_the_tensor() {
        let mut o = Observer::new("encoder.layer.3.output");
        o.observe(&[1.0, 2.0]).unwrap();
        let e = o.observe(&[0.5, f32::NAN]).unwrap_err();
        assert!(matches!(e, CalibrateError::NonFinite { position: 3, .. }), "{e:?}");
        assert!(e.to_string().contains("`encoder.layer.3.output`") && e.to_string().contains("NaN"), "{e}");
        assert_eq!(o.count(), 2, "a rejected chunk records nothing");
        assert!(matches!(o.range(&PERCENTILE), Err(CalibrateError::HistogramMissing { method: "percentile", .. })));
        o.start_histogram_pass().unwrap();
        assert!(matches!(o.start_histogram_pass(), Err(CalibrateError::HistogramAlreadyStarted { .. })));
        assert!(matches!(o.observe(&[f32::INFINITY]), Err(CalibrateError::NonFinite { position: 0, .. })));
        assert!(matches!(o.observe(&[3.0]), Err(CalibrateError::OutsideFirstPass { .. })));
        o.observe(&[1.0]).unwrap();
        assert!(matches!(o.range(&Method::Mse), Err(CalibrateError::PassMismatch { first: 2, second: 1, .. })));
        o.observe(&[2.0]).unwrap();
        assert_eq!(o.range(&Method::MinMax).unwrap(), Range { min: 1.0, max: 2.0 });
        assert!(matches!(o.range(&Method::Percentile { percentile: 100.5 }), Err(CalibrateError::InvalidPercentile { .. })));
        assert!(matches!(o.range(&Method::Entropy { quantized_bins: 4096 }), Err(CalibrateError::InvalidQuantizedBins { .. })));

        let empty = Observer::new("pooler");
        assert!(matches!(empty.range(&Method::MinMax), Err(CalibrateError::Empty { .. })));
        assert!(matches!(Observer::with_bins("x", 7), Err(CalibrateError::InvalidBins { bins: 7 })));
        let mut huge = Observer::new("x");
        huge.observe(&[f32::MAX]).unwrap();
        assert!(matches!(huge.start_histogram_pass(), Err(CalibrateError::RangeOverflow { .. })));
        assert!(matches!(quantize_weights_per_channel("w", &[1.0; 5], 2, 3), Err(CalibrateError::ShapeMismatch { len: 5, .. })));
        assert!(matches!(quantize_weights_per_tensor("w", &[1.0, f32::NEG_INFINITY]), Err(CalibrateError::NonFiniteWeight { index: 1, .. })));
    }

    #[test]
    fn method_serde() {
        let parse = |s: &str| serde_json::from_str::<Method>(s);
        assert_eq!(parse(r#"{"method":"min-max"}"#).unwrap(), Method::MinMax);
        assert_eq!(parse(r#"{"method":"percentile"}"#).unwrap(), PERCENTILE);
        assert_eq!(parse(r#"{"method":"entropy","quantized-bins":255}"#).unwrap(), Method::Entropy { quantized_bins: 255 });
        assert_eq!(parse(r#"{"method":"mse"}"#).unwrap(), Method::Mse);
        // serde ignores extra fields next to a unit variant's tag; struct variants reject them.
        assert!(parse(r#"{"method":"percentile","percent":99.9}"#).is_err());
        assert!(parse(r#"{"method":"kl"}"#).is_err());
        let json = serde_json::to_string(&Method::Percentile { percentile: 99.9 }).unwrap();
        assert_eq!(json, r#"{"method":"percentile","percentile":99.9}"#);
    }

    /// Prints every method's range next to ONNX Runtime's, for the report.
    #[test]
    #[ignore]
    fn print_ranges() {
        for (name, data) in [("uniform", uniform_data()), ("gauss_outliers", gauss_outliers()), ("squared", squared()), ("skewed", skewed())] {
            let o = observed(&data, data.len());
            println!("== {name}");
            for m in ALL.into_iter().chain([Method::Entropy { quantized_bins: 255 }, Method::Percentile { percentile: 99.99 }]) {
                println!("  {:<48} {:?}", format!("{m:?}"), o.range(&m).unwrap());
            }
            println!("  {:<48} {:?}", "ort-compat entropy 128", ort_entropy(&o, 128));
            println!("  {:<48} {:?}", "ort-compat entropy 255", ort_entropy(&o, 255));
        }
    }
}
