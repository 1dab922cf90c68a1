//! Half-precision conversions shared by every format and quantizer:
//! IEEE binary16 and bfloat16 to and from binary32, with exact widening and
//! round-to-nearest-even narrowing, identical on every CPU.
//!
//! The `half` crate does the arithmetic (binary16 widening with its
//! subnormals, bfloat16 rounding). NaNs are handled here before the crate sees
//! them, because its NaN rules are not the ones avac's outputs are pinned to:
//!
//! - `half::f16::to_f32` sets the quiet bit of a signalling NaN (its software
//!   path, and x86's F16C instruction, to which it dispatches at run time on
//!   CPUs that have it); here a NaN widens with its payload kept bit for bit.
//! - `half::bf16::to_f32` sets the quiet bit too, so bfloat16 widening stays
//!   what it is by definition for every input: the upper half of a binary32.
//! - `half::bf16::from_f32` keeps a NaN's upper payload bits (`0x7FFF_FFFF`
//!   gives `0x7FFF`); here every NaN becomes the quiet `0x7FC0` with the
//!   input's sign, so a quantized scale never depends on a NaN's payload.
//!
//! The tests check every binary16 and bfloat16 value, and the f32 rounding
//! boundaries of every exponent, against the bit-level implementation these
//! functions replaced.

/// Exact IEEE binary16 → binary32 widening; a NaN keeps its payload.
pub fn f16_to_f32(h: u16) -> f32 {
    if h & 0x7c00 == 0x7c00 && h & 0x03ff != 0 {
        return f32::from_bits((u32::from(h & 0x8000) << 16) | 0x7f80_0000 | (u32::from(h & 0x03ff) << 13));
    }
    half::f16::from_bits(h).to_f32()
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
    if x.is_nan() {
        return ((x.to_bits() >> 16) as u16 & 0x8000) | 0x7FC0;
    }
    half::bf16::from_f32(x).to_bits()
}

/// Rounds an f32 to the nearest bfloat16 value, kept as f32.
pub fn round_to_bf16(x: f32) -> f32 {
    bf16_to_f32(f32_to_bf16(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bit-level conversions these functions replaced, kept as the
    /// reference that pins their bits.
    mod before {
        pub fn f16_to_f32(h: u16) -> f32 {
            let sign = u32::from(h & 0x8000) << 16;
            let exp = u32::from((h >> 10) & 0x1f);
            let man = u32::from(h & 0x3ff);
            let bits = match (exp, man) {
                (0, 0) => sign,
                (0, _) => {
                    let p = 31 - man.leading_zeros();
                    sign | ((p + 103) << 23) | ((man << (23 - p)) & 0x7f_ffff)
                }
                (0x1f, _) => sign | 0x7f80_0000 | (man << 13),
                _ => sign | ((exp + 112) << 23) | (man << 13),
            };
            f32::from_bits(bits)
        }

        pub fn f32_to_bf16(x: f32) -> u16 {
            let bits = x.to_bits();
            if x.is_nan() {
                return ((bits >> 16) as u16 & 0x8000) | 0x7FC0;
            }
            let lsb = (bits >> 16) & 1;
            ((bits + 0x7FFF + lsb) >> 16) as u16
        }
    }

    #[test]
    fn widening_is_bit_identical_for_every_half_value() {
        for h in 0..=u16::MAX {
            assert_eq!(f16_to_f32(h).to_bits(), before::f16_to_f32(h).to_bits(), "f16 {h:#06x}");
            assert_eq!(bf16_to_f32(h).to_bits(), u32::from(h) << 16, "bf16 {h:#06x}");
            let is_nan = |exp_mask: u16| h & exp_mask == exp_mask && h & !exp_mask & 0x7fff != 0;
            // Everything but the NaNs is the crate's own result.
            if !is_nan(0x7c00) {
                assert_eq!(f16_to_f32(h).to_bits(), half::f16::from_bits(h).to_f32().to_bits(), "f16 {h:#06x}");
            }
            if !is_nan(0x7f80) {
                assert_eq!(bf16_to_f32(h).to_bits(), half::bf16::from_bits(h).to_f32().to_bits(), "bf16 {h:#06x}");
            }
        }
    }

    #[test]
    fn narrowing_is_bit_identical_on_every_rounding_boundary() {
        // Every sign, exponent and upper 7 mantissa bits, with the 16 bits that
        // are rounded away at and around the tie, and at both ends.
        let low = [0x0000u32, 0x0001, 0x3FFF, 0x7FFE, 0x7FFF, 0x8000, 0x8001, 0x8002, 0xBFFF, 0xC000, 0xFFFE, 0xFFFF];
        let mut checked = 0u64;
        for upper in 0..=u16::MAX {
            for &l in &low {
                let x = f32::from_bits((u32::from(upper) << 16) | l);
                assert_eq!(f32_to_bf16(x), before::f32_to_bf16(x), "f32 {:#010x}", x.to_bits());
                checked += 1;
            }
        }
        let mut rng = crate::rng::Rng::new(16);
        for _ in 0..2_000_000 {
            let x = f32::from_bits(rng.next_u64() as u32);
            assert_eq!(f32_to_bf16(x), before::f32_to_bf16(x), "f32 {:#010x}", x.to_bits());
            checked += 1;
        }
        assert_eq!(checked, 65_536 * 12 + 2_000_000);
        // Only the NaNs differ from the crate's own rounding.
        assert_eq!(half::bf16::from_f32(f32::from_bits(0x7FFF_FFFF)).to_bits(), 0x7FFF);
        assert_eq!(f32_to_bf16(f32::from_bits(0x7FFF_FFFF)), 0x7FC0);
        assert_eq!(f32_to_bf16(f32::from_bits(0xFF80_0001)), 0xFFC0);
    }
}
