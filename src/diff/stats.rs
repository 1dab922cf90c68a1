//! Element-wise comparison of little-endian tensor bytes, shared by every
//! format: the element types, and the accumulator behind [`Values`].

use super::{Dequantized, Values};
use crate::kernels::half::{bf16_to_f32, f16_to_f32};

/// A numeric element type stored little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Num {
    F64,
    F32,
    F16,
    BF16,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    /// One byte, 0 or 1 (other values are compared as the byte).
    Bool,
}

impl Num {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Num::F64 | Num::I64 | Num::U64 => 8,
            Num::F32 | Num::I32 | Num::U32 => 4,
            Num::F16 | Num::BF16 | Num::I16 | Num::U16 => 2,
            Num::I8 | Num::U8 | Num::Bool => 1,
        }
    }

    /// Whether the type holds floating-point values.
    pub fn is_float(self) -> bool {
        matches!(self, Num::F64 | Num::F32 | Num::F16 | Num::BF16)
    }

    /// Element `i` of `bytes` as an integer; `None` for float types.
    /// `bytes` holds at least `(i + 1) * size` bytes (callers check lengths).
    pub fn int_at(self, bytes: &[u8], i: usize) -> Option<i128> {
        let s = self.size();
        let b = &bytes[i * s..(i + 1) * s];
        Some(match self {
            Num::I8 => i128::from(b[0] as i8),
            Num::U8 | Num::Bool => i128::from(b[0]),
            Num::I16 => i128::from(i16::from_le_bytes([b[0], b[1]])),
            Num::U16 => i128::from(u16::from_le_bytes([b[0], b[1]])),
            Num::I32 => i128::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            Num::U32 => i128::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            Num::I64 => i128::from(i64::from_le_bytes(le8(b))),
            Num::U64 => i128::from(u64::from_le_bytes(le8(b))),
            Num::F64 | Num::F32 | Num::F16 | Num::BF16 => return None,
        })
    }

    /// Element `i` of `bytes` as f64 (exact for every type but 64-bit
    /// integers beyond 2^53).
    pub fn f64_at(self, bytes: &[u8], i: usize) -> f64 {
        let s = self.size();
        let b = &bytes[i * s..(i + 1) * s];
        match self {
            Num::F64 => f64::from_le_bytes(le8(b)),
            Num::F32 => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            Num::F16 => f64::from(f16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
            Num::BF16 => f64::from(bf16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
            _ => self.int_at(bytes, i).map_or(0.0, |v| v as f64),
        }
    }
}

fn le8(b: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    a
}

/// Counts and measures the differences of a sequence of pairs.
#[derive(Debug, Default)]
pub(super) struct Acc {
    count: u64,
    differing: u64,
    first: Option<u64>,
    max_abs: Option<f64>,
    nonfinite: u64,
}

impl Acc {
    /// A float pair; `same` tells whether their stored bits are equal.
    pub fn float(&mut self, a: f64, b: f64, same: bool) {
        if !same {
            self.differ();
            if a.is_finite() && b.is_finite() {
                self.max((a - b).abs());
            } else {
                self.nonfinite += 1;
            }
        }
        self.count += 1;
    }

    /// An integer pair.
    pub fn int(&mut self, a: i128, b: i128) {
        if a != b {
            self.differ();
            self.max(a.abs_diff(b) as f64);
        }
        self.count += 1;
    }

    /// A pair of f32 values (dequantized), compared bitwise.
    pub fn f32(&mut self, a: f32, b: f32) {
        self.float(f64::from(a), f64::from(b), a.to_bits() == b.to_bits());
    }

    /// An opaque pair (a byte of a type that is not interpreted).
    pub fn opaque(&mut self, same: bool) {
        if !same {
            self.differ();
        }
        self.count += 1;
    }

    /// `n` pairs known to be equal.
    pub fn equal(&mut self, n: u64) {
        self.count += n;
    }

    fn differ(&mut self) {
        self.differing += 1;
        self.first.get_or_insert(self.count);
    }

    fn max(&mut self, d: f64) {
        self.max_abs = Some(self.max_abs.map_or(d, |m| m.max(d)));
    }

    /// The comparison as [`Values`].
    pub fn values(self, unit: &'static str, basis: Option<String>) -> Values {
        Values {
            unit,
            basis,
            count: self.count,
            differing: self.differing,
            first_differing: self.first,
            max_abs_diff: self.max_abs,
            nonfinite_differing: self.nonfinite,
            dequantized: None,
        }
    }

    /// The comparison as [`Dequantized`] values.
    pub fn dequantized(self, via: &str) -> Dequantized {
        Dequantized { via: via.to_string(), count: self.count, differing: self.differing, max_abs_diff: self.max_abs, nonfinite_differing: self.nonfinite }
    }
}

/// Adds every element of `a` and `b` (the same length, a multiple of the
/// element size) to `acc`.
pub(super) fn compare_raw(num: Num, a: &[u8], b: &[u8], acc: &mut Acc) {
    let s = num.size();
    let n = a.len().min(b.len()) / s;
    if a == b {
        acc.equal(n as u64);
        return;
    }
    for i in 0..n {
        let same = a[i * s..(i + 1) * s] == b[i * s..(i + 1) * s];
        match (num.int_at(a, i), num.int_at(b, i)) {
            (Some(x), Some(y)) => acc.int(x, y),
            _ => acc.float(num.f64_at(a, i), num.f64_at(b, i), same),
        }
    }
}

/// Adds every byte of `a` and `b` to `acc` as opaque units.
pub(super) fn compare_bytes(a: &[u8], b: &[u8], acc: &mut Acc) {
    if a == b {
        acc.equal(a.len() as u64);
        return;
    }
    for (x, y) in a.iter().zip(b) {
        acc.opaque(x == y);
    }
}
