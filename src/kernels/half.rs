//! Half-precision conversions shared by every format and quantizer:
//! IEEE binary16 and bfloat16 to and from binary32, with exact widening and
//! round-to-nearest-even narrowing (pure bit manipulation, identical on
//! every CPU).

/// Exact IEEE binary16 → binary32 widening.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: man * 2^-24. Normalise so the leading 1 becomes implicit.
            let p = 31 - man.leading_zeros(); // index of the leading 1, 0..=9
            sign | ((p + 103) << 23) | ((man << (23 - p)) & 0x7f_ffff)
        }
        (0x1f, _) => sign | 0x7f80_0000 | (man << 13),
        _ => sign | ((exp + 112) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

/// Exact bfloat16 → binary32 widening (bf16 is the upper half of a binary32).
pub fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

/// Converts f32 to bfloat16 bits, rounding to nearest, ties to even.
/// Overflow gives ±infinity and subnormals round like normals. A NaN
/// becomes the quiet NaN `0x7FC0` with the input's sign: its payload is
/// dropped so that it cannot turn into an infinity, as plain truncation of
/// e.g. `0x7F800001` would.
pub fn f32_to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) as u16 & 0x8000) | 0x7FC0;
    }
    let lsb = (bits >> 16) & 1;
    // Cannot overflow: the largest non-NaN pattern is 0xFF800000.
    ((bits + 0x7FFF + lsb) >> 16) as u16
}

/// Rounds an f32 to the nearest bfloat16 value, kept as f32.
pub fn round_to_bf16(x: f32) -> f32 {
    bf16_to_f32(f32_to_bf16(x))
}
