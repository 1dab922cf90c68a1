//! Dequantization of ggml blocks to f32, bit-identical to gguf-py.
//!
//! Block layouts are ggml's (`ggml-common.h`), little-endian, `d`-scales as
//! IEEE binary16:
//!
//! ```text
//! Q4_0  32 elements, 18 bytes:  d: f16 | qs: u8[16]
//!       y[j] = ((qs[j] & 0xF) - 8) * d,  y[j+16] = ((qs[j] >> 4) - 8) * d     j in 0..16
//! Q8_0  32 elements, 34 bytes:  d: f16 | qs: i8[32]
//!       y[j] = qs[j] * d
//! Q5_0  32 elements, 22 bytes:  d: f16 | qh: u32 (bit j = 5th bit of element j) | qs: u8[16]
//!       y[j]    = (((qs[j] & 0xF) | (bit j    of qh) << 4) - 16) * d     j in 0..16
//!       y[j+16] = (((qs[j] >> 4)  | (bit j+16 of qh) << 4) - 16) * d
//! Q4_K 256 elements, 144 bytes: d: f16 | dmin: f16 | scales: u8[12] (8 six-bit scale/min pairs) | qs: u8[128]
//!       for sub-block pair p in 0..4, with (sc, m) = get_scale_min_k4(2p) and (2p+1):
//!       y[64p + l]      = (d*sc0) * (qs[32p+l] & 0xF) - (dmin*m0)      l in 0..32
//!       y[64p + 32 + l] = (d*sc1) * (qs[32p+l] >> 4)  - (dmin*m1)
//! Q6_K 256 elements, 210 bytes: ql: u8[128] | qh: u8[64] | scales: i8[16] | d: f16
//!       for half h in 0..2 (ql += 64h, qh += 32h, sc += 8h, y += 128h), l in 0..32, is = l/16:
//!       y[l + 32k] = (d * sc[is + 2k]) * (q_k - 32)                     k in 0..4
//!       q_0 = ql[l] & 0xF | (qh[l] & 3) << 4       q_1 = ql[l+32] & 0xF | (qh[l] >> 2 & 3) << 4
//!       q_2 = ql[l] >> 4  | (qh[l] >> 4 & 3) << 4  q_3 = ql[l+32] >> 4  | (qh[l] >> 6 & 3) << 4
//! ```
//!
//! # Bit-exactness
//!
//! Each element is computed by the same IEEE single-precision operations, in
//! the same order, as ggml's reference `dequantize_row_*` in `ggml-quants.c`
//! and gguf-py's numpy `gguf/quants.py` (which agree): `(d * sc) * q - (dmin * m)`
//! for Q4_K, `(d * sc) * q` for Q6_K, `q * d` for Q4_0/Q8_0/Q5_0. Rust never
//! contracts `a * b - c` into a fused multiply-add (no fast-math), so the result
//! does not depend on the CPU. (ggml's C may be compiled with FP contraction on
//! FMA targets, where Q4_K's `d1 * q - m1` can differ from gguf-py in the last
//! bit; gguf-py/numpy is the oracle here.) f16 and bf16 widen exactly by bit
//! manipulation; a NaN keeps its payload (signalling NaNs are not quieted).

use super::types::GgmlType;

/// Types [`GgufFile::dequantize`](super::GgufFile::dequantize) supports; any
/// other is a [`GgufError::UnsupportedType`](super::GgufError::UnsupportedType).
pub const SUPPORTED: [GgmlType; 8] =
    [GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q5_0, GgmlType::Q4_K, GgmlType::Q6_K];

pub use crate::kernels::half::{bf16_to_f32, f16_to_f32};

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[i], b[i + 1]]))
}

/// Dequantizes `src`, a whole number of `ty` blocks, into `out` (one f32 per
/// element). Returns `false`, writing nothing, when the type is not supported
/// or the lengths disagree; callers turn that into a typed error.
pub(super) fn dequantize(ty: GgmlType, src: &[u8], out: &mut [f32]) -> bool {
    let (bs, ts) = (ty.block_size(), ty.type_size());
    if !SUPPORTED.contains(&ty) || !src.len().is_multiple_of(ts) || src.len() / ts * bs != out.len() {
        return false;
    }
    let blocks = src.chunks_exact(ts).zip(out.chunks_exact_mut(bs));
    match ty {
        GgmlType::F32 => blocks.for_each(|(b, y)| y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        GgmlType::F16 => blocks.for_each(|(b, y)| y[0] = f16_at(b, 0)),
        GgmlType::BF16 => blocks.for_each(|(b, y)| y[0] = bf16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
        GgmlType::Q4_0 => blocks.for_each(|(b, y)| q4_0(b, y)),
        GgmlType::Q8_0 => blocks.for_each(|(b, y)| q8_0(b, y)),
        GgmlType::Q5_0 => blocks.for_each(|(b, y)| q5_0(b, y)),
        GgmlType::Q4_K => blocks.for_each(|(b, y)| q4_k(b, y)),
        GgmlType::Q6_K => blocks.for_each(|(b, y)| q6_k(b, y)),
        _ => unreachable!("checked against SUPPORTED above"),
    }
    true
}

/// ggml `dequantize_row_q4_0`: low nibbles are elements 0..16, high nibbles 16..32.
fn q4_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let (lo, hi) = y.split_at_mut(16);
    for ((l, h), &q) in lo.iter_mut().zip(hi).zip(&b[2..18]) {
        *l = ((q & 0xF) as i32 - 8) as f32 * d;
        *h = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

/// ggml `dequantize_row_q8_0`: `y[j] = x.qs[j] * d`.
fn q8_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (y, &q) in y.iter_mut().zip(&b[2..34]) {
        *y = f32::from(q as i8) * d;
    }
}

/// ggml `dequantize_row_q5_0`.
fn q5_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    let qs = &b[6..22];
    for j in 0..16 {
        let xh_0 = ((qh >> j) << 4) & 0x10;
        let xh_1 = (qh >> (j + 12)) & 0x10;
        let x0 = ((u32::from(qs[j]) & 0x0f) | xh_0) as i32 - 16;
        let x1 = ((u32::from(qs[j]) >> 4) | xh_1) as i32 - 16;
        y[j] = x0 as f32 * d;
        y[j + 16] = x1 as f32 * d;
    }
}

/// ggml `get_scale_min_k4`: the `j`-th 6-bit (scale, min) pair of a K-quant block.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// ggml `dequantize_row_q4_K`.
fn q4_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let min = f16_at(b, 2);
    let scales = &b[4..16];
    let qs = &b[16..144];
    for p in 0..4 {
        let (sc, m) = scale_min_k4(2 * p, scales);
        let (d1, m1) = (d * f32::from(sc), min * f32::from(m));
        let (sc, m) = scale_min_k4(2 * p + 1, scales);
        let (d2, m2) = (d * f32::from(sc), min * f32::from(m));
        let q = &qs[32 * p..32 * p + 32];
        let y = &mut y[64 * p..64 * p + 64];
        for l in 0..32 {
            y[l] = d1 * f32::from(q[l] & 0x0f) - m1;
            y[l + 32] = d2 * f32::from(q[l] >> 4) - m2;
        }
    }
}

/// ggml `dequantize_row_q6_K`.
fn q6_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 208);
    for h in 0..2 {
        let ql = &b[64 * h..64 * h + 64];
        let qh = &b[128 + 32 * h..128 + 32 * h + 32];
        let sc = &b[192 + 8 * h..192 + 8 * h + 8];
        let y = &mut y[128 * h..128 * h + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = i32::from((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) - 32;
            let q2 = i32::from((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
            let q3 = i32::from((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            let q4 = i32::from((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            let s = |k: usize| f32::from(sc[is + 2 * k] as i8);
            y[l] = d * s(0) * q1 as f32;
            y[l + 32] = d * s(1) * q2 as f32;
            y[l + 64] = d * s(2) * q3 as f32;
            y[l + 96] = d * s(3) * q4 as f32;
        }
    }
}
