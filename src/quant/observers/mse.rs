//! [`Method::Mse`](super::Method::Mse): avac's own range, minimising the
//! expected squared error of uint8 quantize-dequantize over the histogram.

use super::clamp_to;
use super::histogram::Histogram;
use crate::quant::int8::{QuantParams, Range};

pub(super) fn mse_range(h: &Histogram, mm: Range) -> Range {
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
