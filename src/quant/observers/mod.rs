//! Calibration observers: the activation ranges of static INT8.
//!
//! The reference forward feeds every activation tensor's values, over the
//! calibration texts in a fixed order, to one [`Observer`] per tensor. Each
//! [`Method`] then turns what the observer kept into a clipping [`Range`], and
//! [`QuantParams`](crate::quant::int8::QuantParams) turns a range into a
//! scale and zero point.
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
//!
//! [`Method::Mse`] is avac's own: see [`Method::Mse`]. Each method's
//! search is in its own file (`percentile.rs`, `entropy.rs`, `mse.rs`), over
//! the histogram of `histogram.rs`.

mod entropy;
mod histogram;
mod mse;
mod percentile;
#[cfg(test)]
mod tests;

use crate::quant::int8::Range;
use entropy::{entropy_range, Expansion};
use histogram::Histogram;
use mse::mse_range;
use percentile::percentile_range;
use serde::{Deserialize, Serialize};

/// Histogram bins per tensor, ONNX Runtime's percentile default.
pub const DEFAULT_BINS: usize = 2048;
/// ONNX Runtime's default percentile.
pub const DEFAULT_PERCENTILE: f64 = 99.999;
/// ONNX Runtime's default number of quantized bins for the entropy search.
pub const DEFAULT_QUANTIZED_BINS: usize = 128;

/// Failures of calibration.
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
    /// with the exact [`QuantParams::uint8_asymmetric`](crate::quant::int8::QuantParams::uint8_asymmetric) grid of each
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
