//! Observer tests. The data comes from the project's RNG; the expected
//! ranges marked as ONNX Runtime's are printed by
//! `tests/oracles/ort_calibration.py`, which draws the same numbers.

use super::entropy::{entropy_range, Expansion};
use super::*;
use crate::quant::int8::QuantParams;
use crate::quant::testdata::{gauss, uniform};
use crate::rng::Rng;

fn uniform_data() -> Vec<f32> {
    let mut r = Rng::new(1);
    (0..100_000).map(|_| (-1.0 + 4.0 * uniform(&mut r)) as f32).collect()
}

fn gauss_outliers() -> Vec<f32> {
    let mut r = Rng::new(2);
    let mut v: Vec<f32> = (0..1_000_000).map(|_| gauss(&mut r) as f32).collect();
    v.extend([30.0, 25.0, -28.0, -22.0]);
    v
}

fn squared() -> Vec<f32> {
    let mut r = Rng::new(3);
    (0..200_000)
        .map(|_| {
            let g = gauss(&mut r);
            (g * g * 0.5) as f32
        })
        .collect()
}

fn skewed() -> Vec<f32> {
    let mut r = Rng::new(4);
    (0..300_000)
        .map(|_| {
            let g = gauss(&mut r);
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
    assert_eq!(bits(mm), (0xbf7ff950, 0x403ffe8e));
    // ONNX Runtime 1.31.1 `HistogramCollector` (2048 bins, symmetric=False) on the same data.
    assert_eq!(bits(o.range(&PERCENTILE).unwrap()), (0xbf7ff950, 0x403fce8e));
    assert_eq!(bits(ort_entropy(&o, 128)), (0xbf7ff950, 0x403ffe8e));
    assert_eq!(bits(ort_entropy(&o, 255)), (0xbf7ff950, 0x403f6e90));
    for m in [ENTROPY, Method::Mse] {
        let r = o.range(&m).unwrap();
        assert!(r.min < 0.99 * mm.min && r.max > 0.99 * mm.max, "{m:?}: {r:?}");
    }
}

#[test]
fn outliers_are_clipped_except_by_min_max() {
    let o = observed(&gauss_outliers(), 65_536);
    assert_eq!(o.range(&Method::MinMax).unwrap(), Range { min: -28.0, max: 30.0 });
    assert_eq!(bits(o.range(&PERCENTILE).unwrap()), (0xc087f000, 0x40852000));
    let p9999 = o.range(&Method::Percentile { percentile: 99.99 }).unwrap();
    assert_eq!(bits(p9999), (0xc06c4000, 0x406e2000));
    // ONNX Runtime gives (-5.712890625, 5.7421875). Its KL is flat to 1e-6
    // (relative) from there to ±6.7, with a dip every third bin (its integer
    // `q` makes it periodic); its own KL at this pick is 2.2e-7 above its
    // minimum, the third lowest (`tests/oracles/ort_calibration.py` prints
    // them): the last bits of the two sums (NumPy's pairwise, ours in bin
    // order) decide among those near-ties.
    let compat = ort_entropy(&o, 128);
    assert_eq!(bits(compat), (0xc0d5c000, 0x40d6b000));
    assert!((compat.min + 5.712890625).abs() < 1.0 && (compat.max - 5.7421875).abs() < 1.0);
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
        (squared(), (0x2c720000, 0x41070cb6), (0x2c720000, 0x40ae2dc2), (0x2c720000, 0x40ae2dc2)),
        (skewed(), (0xbf82b9b8, 0x40c5aeb4), (0xbf90217e, 0x40b2c04c), (0xbf90217e, 0x40cc0f2e)),
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
