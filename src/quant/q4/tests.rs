use super::*;
use sha2::{Digest, Sha256};

fn codes(t: &Q4Tensor, row: usize) -> Vec<u32> {
    let wpr = t.inp() / ELEMS_PER_WORD;
    t.q_weight()[row * wpr..(row + 1) * wpr].iter().flat_map(|w| (0..8).map(move |r| (w >> (4 * r)) & 0xF)).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Exact powers of two for the oracle input (no `powi`, whose exactness is
/// not promised).
fn pow2(n: i32) -> f32 {
    if n >= -126 {
        f32::from_bits(((n + 127) as u32) << 23)
    } else {
        f32::from_bits(1 << (n + 149))
    }
}

/// The input shared with the TVM oracle (`tests/oracles/q4_digests.py`): a 64-bit
/// LCG, 24-bit signed mantissas, per-row powers of two; row 5 mod 16 is all
/// zero, row 11 mod 16 is subnormal-sized, row 13 mod 16 is ~2^100.
fn oracle_input(out: usize, inp: usize) -> Vec<f32> {
    let mut s: u64 = 0x853C_49E6_748F_EA9B;
    (0..out * inp)
        .map(|k| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let m = (s >> 40) as i64 - (1 << 23);
            let e = match (k / inp) % 16 {
                5 => return 0.0,
                11 => -126,
                13 => 100,
                r => (r % 9) as i32 - 4,
            };
            m as f32 * pow2(e - 23)
        })
        .collect()
}

#[test]
fn hand_computed_group() {
    // max |w| = 3.5, so scale = 3.5 / 7 = 0.5 exactly (bf16 0x3F00).
    // w / 0.5 + 7: 14, 0, 7.5 -> 8 (tie, even), 8.5 -> 8 (tie, even),
    // 6.5 -> 6 (tie, even), 9, bf16(-1.1) = -1.1015625 -> 4.796875 -> 5, 7.
    let mut w = vec![0.0f32; 32];
    w[..8].copy_from_slice(&[3.5, -3.5, 0.25, 0.75, -0.25, 1.0, -1.1, 0.0]);
    let t = quantize_groups(&w, 1, 32, 32).unwrap();
    assert_eq!(t.q_scale(), &[0x3F00]);
    assert_eq!(t.q_weight(), &[0x7596_880E, 0x7777_7777, 0x7777_7777, 0x7777_7777]);
    assert_eq!(t.q_weight_shape(), [1, 4]);
    assert_eq!(t.q_scale_shape(), [1, 1]);
    let d = dequantize(&t);
    assert_eq!(&d[..8], &[3.5, -3.5, 0.5, 0.5, -0.5, 1.0, -1.0, 0.0]);
    assert!(d[8..].iter().all(|&x| x == 0.0));
}

#[test]
fn codes_use_the_rounded_scale() {
    // max |w| = 1: 1/7 = 0.142857.. rounds to bf16 0.142578125 (0x3E12).
    // w = 0.5: with the exact 1/7 the code would be the tie 10.5 -> 10; with
    // the stored scale it is 3.5068.. + 7 -> 11, as MLC/TVM compute it.
    let mut w = vec![0.0f32; 8];
    w[0] = 1.0;
    w[1] = 0.5;
    let t = quantize_groups(&w, 1, 8, 8).unwrap();
    assert_eq!(t.q_scale(), &[0x3E12]);
    assert_eq!(&codes(&t, 0)[..2], &[14, 11]);
}

#[test]
fn ties_round_half_to_even_like_tvm() {
    // scale = 7 / 7 = 1, so w + 7 lands on exact .5 ties. The expected codes
    // are TVM 0.27's output for MLC's `_quantize` on this row.
    let w = [7.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, -3.5, 4.5, -4.5, 5.5, -5.5, 6.5, -6.5, -7.0];
    let t = quantize_groups(&w, 1, 16, 16).unwrap();
    assert_eq!(t.q_scale(), &[0x3F80]);
    assert_eq!(codes(&t, 0), [14, 8, 8, 10, 6, 6, 4, 10, 4, 12, 2, 12, 2, 14, 0, 0]);
}

#[test]
fn all_zero_group_is_code_zero_scale_zero() {
    // 0/0 is NaN; max(NaN, 0) is 0 with TVM's select(a > b, a, b). TVM
    // writes nibble 0 and scale 0 for this row too.
    let mut w = vec![0.0f32; 64];
    w[32] = -3.5;
    let t = quantize_groups(&w, 1, 64, 32).unwrap();
    assert_eq!(t.q_scale()[0], 0);
    assert_eq!(&t.q_weight()[..4], &[0, 0, 0, 0]);
    let d = dequantize(&t);
    assert!(d[..32].iter().all(|&x| x == 0.0));
    assert_eq!(d[32], -3.5);
}

#[test]
fn bf16_conversion_edges() {
    let cases: [(u32, u16); 14] = [
        (0x0000_0000, 0x0000), // +0
        (0x8000_0000, 0x8000), // -0
        (0x3F80_0000, 0x3F80), // 1
        (0x3F80_8000, 0x3F80), // tie, even stays
        (0x3F81_8000, 0x3F82), // tie, odd rounds up
        (0x3F80_8001, 0x3F81), // above tie
        (0x3F80_7FFF, 0x3F80), // below tie
        (0x7F7F_FFFF, 0x7F80), // f32::MAX overflows to +inf
        (0x7F7F_7FFF, 0x7F7F), // largest that stays finite
        (0xFF80_0000, 0xFF80), // -inf
        (0x0000_0001, 0x0000), // smallest subnormal -> 0
        (0x0000_8000, 0x0000), // subnormal tie, even
        (0x0001_8000, 0x0002), // subnormal tie, odd
        (0x007F_FFFF, 0x0080), // largest subnormal -> smallest normal
    ];
    for (f, b) in cases {
        assert_eq!(f32_to_bf16(f32::from_bits(f)), b, "f32 0x{f:08x}");
    }
    // NaNs stay NaN (quiet, sign kept), never infinity.
    assert_eq!(f32_to_bf16(f32::from_bits(0x7F80_0001)), 0x7FC0);
    assert_eq!(f32_to_bf16(f32::from_bits(0xFFC0_0000)), 0xFFC0);
    assert_eq!(f32_to_bf16(f32::from_bits(0x7FFF_FFFF)), 0x7FC0);
    for b in [0u16, 1, 0x3F80, 0x7F7F, 0x8001, 0xFF80] {
        assert_eq!(f32_to_bf16(bf16_to_f32(b)), b);
    }
}

#[test]
fn error_is_at_most_half_a_step() {
    let (out, inp) = (48, 256);
    let w = oracle_input(out, inp);
    for group in [32, 128] {
        let t = quantize_groups(&w, out, inp, group).unwrap();
        let d = dequantize(&t);
        for (k, (&x, &y)) in w.iter().zip(&d).enumerate() {
            let scale = bf16_to_f32(t.q_scale()[(k / inp) * (inp / group) + (k % inp) / group]);
            let xb = round_to_bf16(x);
            if scale == 0.0 {
                // Underflowed scale: everything is ±0 and |x| is tiny.
                assert_eq!(y, 0.0);
                assert!(xb.abs() < 7.0 * pow2(-133), "[{k}] {xb:e}");
                continue;
            }
            let bound = scale * (0.5 + 1.0 / (1 << 20) as f32);
            assert!((y - xb).abs() <= bound, "[{k}] w={x:e} bf16={xb:e} deq={y:e} scale={scale:e}");
            assert!((y - x).abs() <= bound + (x - xb).abs(), "[{k}]");
        }
    }
}

#[test]
fn matches_mlc_tvm_oracle() {
    // Digests printed by tests/oracles/q4_digests.py: MLC's `GroupQuantize._quantize` and
    // `pack_weight` compiled by TVM 0.27.0.post1 for llvm (CPU), on the bf16
    // cast of the same input.
    let (out, inp) = (64, 256);
    let w = oracle_input(out, inp);
    let bytes: Vec<u8> = w.iter().flat_map(|x| x.to_le_bytes()).collect();
    assert_eq!(sha256_hex(&bytes), "cdc7e7bdc852c5be0b005a473819be186cd1ec7f4f382e724636fa83b18fd977", "oracle input drifted");
    let expected = [
        (32, "64cfb211bba8b06f1463a882c27bcb72ae91dcf35bc859ea6f7a137d5eb9ed3e", "1642d14d69d368fe81a2c22cce113749c6f62e4f639037c77ad5e9659adde860"),
        (128, "bcd1cd9ee1b5922261a4f63018cd241c8c32cd7397709c7d9506dc27fd7dccfe", "f166d9fce5207ac9594c366e93472b8424ab798035a53e4d54c52b1404a31576"),
    ];
    for (group, q_weight, q_scale) in expected {
        let t = quantize_groups(&w, out, inp, group).unwrap();
        assert_eq!(sha256_hex(&t.q_weight_le_bytes()), q_weight, "group {group} q_weight");
        assert_eq!(sha256_hex(&t.q_scale_le_bytes()), q_scale, "group {group} q_scale");
    }
}

#[test]
fn same_bits_for_any_thread_count() {
    let (out, inp) = (96, 512);
    let w = oracle_input(out, inp);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let t = quantize_groups(&w, out, inp, 128).unwrap();
            let d = dequantize(&t);
            (t, d.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
        })
    };
    let one = run(1);
    for threads in [2, 3, 8] {
        assert_eq!(run(threads), one, "{threads} threads");
    }
}

#[test]
fn bad_shapes_and_values_are_refused() {
    let w = vec![1.0f32; 64];
    assert_eq!(quantize_groups(&w, 1, 64, 12), Err(Q4Error::BadGroup { group: 12 }));
    assert_eq!(quantize_groups(&w, 1, 64, 0), Err(Q4Error::BadGroup { group: 0 }));
    assert_eq!(quantize_groups(&w[..48], 1, 48, 32), Err(Q4Error::RaggedGroup { inp: 48, group: 32 }));
    assert_eq!(quantize_groups(&w[..60], 2, 30, 8), Err(Q4Error::RaggedGroup { inp: 30, group: 8 }));
    assert_eq!(quantize_groups(&[], 0, 64, 32), Err(Q4Error::Empty { out: 0, inp: 64 }));
    assert!(matches!(quantize_groups(&w, 1, 128, 32), Err(Q4Error::LenMismatch { what: "weight", got: 64, expected: 128, .. })));
    assert!(matches!(quantize_groups(&w, usize::MAX, 64, 32), Err(Q4Error::ShapeOverflow { .. })));
    let mut bad = w.clone();
    bad[40] = f32::NAN;
    bad[50] = f32::INFINITY;
    assert!(matches!(quantize_groups(&bad, 2, 32, 32), Err(Q4Error::NonFinite { row: 1, col: 8, .. })));
    bad[40] = f32::MAX;
    assert!(matches!(quantize_groups(&bad, 2, 32, 32), Err(Q4Error::Bf16Overflow { row: 1, col: 8, .. })));
    let msg = quantize_groups(&w[..48], 1, 48, 32).unwrap_err().to_string();
    assert!(msg.contains("48") && msg.contains("32"), "{msg}");
}

#[test]
fn from_parts_checks_invariants() {
    let w = oracle_input(4, 64);
    let t = quantize_groups(&w, 4, 64, 32).unwrap();
    let (qw, qs) = t.clone().into_parts();
    assert_eq!(Q4Tensor::from_parts(qw.clone(), qs.clone(), 4, 64, 32).unwrap(), t);
    assert!(matches!(Q4Tensor::from_parts(qw[1..].to_vec(), qs.clone(), 4, 64, 32), Err(Q4Error::LenMismatch { what: "q_weight", .. })));
    assert!(matches!(Q4Tensor::from_parts(qw.clone(), qs[1..].to_vec(), 4, 64, 32), Err(Q4Error::LenMismatch { what: "q_scale", .. })));
    let mut bad = qw.clone();
    bad[9] |= 0xF << 12;
    assert_eq!(Q4Tensor::from_parts(bad, qs.clone(), 4, 64, 32), Err(Q4Error::BadCode { row: 1, col: 11 }));
    let mut bad = qs.clone();
    bad[3] = 0xBF80;
    assert_eq!(Q4Tensor::from_parts(qw.clone(), bad, 4, 64, 32), Err(Q4Error::BadScale { row: 1, group_index: 1, bits: 0xBF80 }));
    let mut bad = qs;
    bad[0] = 0x7FC0;
    assert!(matches!(Q4Tensor::from_parts(qw, bad, 4, 64, 32), Err(Q4Error::BadScale { row: 0, group_index: 0, .. })));
}

#[test]
fn dequantize_row_matches_whole_tensor() {
    let (out, inp) = (8, 256);
    let t = quantize_groups(&oracle_input(out, inp), out, inp, 32).unwrap();
    let all = dequantize(&t);
    let mut row = vec![0f32; inp];
    for i in 0..out {
        dequantize_row(&t.q_weight()[i * 32..(i + 1) * 32], &t.q_scale()[i * 8..(i + 1) * 8], 32, &mut row);
        assert_eq!(row, all[i * inp..(i + 1) * inp]);
    }
}

#[test]
fn scale_rule_serializes_by_name() {
    let spec = Q4Spec::mlc(MLC_GROUP_SIZE);
    assert_eq!(serde_json::to_string(&spec).unwrap(), r#"{"group":32,"scale_rule":"max_abs"}"#);
}
