//! Unit tests on handcrafted files and blocks; they always run. Gemma 3's
//! tokenizer tests are in `tests_gemma3.rs` (its names and keys in
//! `model::gemma3::gguf`), the real-file oracle test in `tests_real.rs`.

use super::dequant::{bf16_to_f32, f16_to_f32};
use super::*;

// ---------------------------------------------------------------- a tiny writer

/// Builds GGUF files byte by byte, including invalid ones.
pub(crate) struct Builder {
    pub(crate) version: u32,
    kvs: Vec<u8>,
    n_kv: u64,
    infos: Vec<u8>,
    n_tensors: u64,
    data: Vec<u8>,
    alignment: usize,
}

fn gstr(out: &mut Vec<u8>, s: &[u8]) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s);
}

impl Builder {
    pub(crate) fn new() -> Builder {
        Builder { version: 3, kvs: vec![], n_kv: 0, infos: vec![], n_tensors: 0, data: vec![], alignment: 32 }
    }

    /// A key with a raw value type id and raw value bytes.
    pub(crate) fn kv_raw(mut self, key: &str, type_id: u32, value: &[u8]) -> Builder {
        gstr(&mut self.kvs, key.as_bytes());
        self.kvs.extend(type_id.to_le_bytes());
        self.kvs.extend(value);
        self.n_kv += 1;
        self
    }

    pub(crate) fn kv_u32(self, key: &str, v: u32) -> Builder {
        self.kv_raw(key, 4, &v.to_le_bytes())
    }

    pub(crate) fn kv_f32(self, key: &str, v: f32) -> Builder {
        self.kv_raw(key, 6, &v.to_le_bytes())
    }

    pub(crate) fn kv_str(self, key: &str, v: &str) -> Builder {
        let mut b = vec![];
        gstr(&mut b, v.as_bytes());
        self.kv_raw(key, 8, &b)
    }

    pub(crate) fn kv_bool(self, key: &str, v: bool) -> Builder {
        self.kv_raw(key, 7, &[v as u8])
    }

    pub(crate) fn kv_str_array(self, key: &str, items: &[&str]) -> Builder {
        let mut b = vec![];
        b.extend(8u32.to_le_bytes());
        b.extend((items.len() as u64).to_le_bytes());
        for s in items {
            gstr(&mut b, s.as_bytes());
        }
        self.kv_raw(key, 9, &b)
    }

    pub(crate) fn kv_array<T: Copy>(self, key: &str, elem_type: u32, items: &[T], le: fn(T) -> Vec<u8>) -> Builder {
        let mut b = vec![];
        b.extend(elem_type.to_le_bytes());
        b.extend((items.len() as u64).to_le_bytes());
        for &x in items {
            b.extend(le(x));
        }
        self.kv_raw(key, 9, &b)
    }

    /// A tensor info with an explicit offset; `data` is not touched.
    pub(crate) fn info(mut self, name: &str, ne: &[u64], type_id: u32, offset: u64) -> Builder {
        gstr(&mut self.infos, name.as_bytes());
        self.infos.extend((ne.len() as u32).to_le_bytes());
        for d in ne {
            self.infos.extend(d.to_le_bytes());
        }
        self.infos.extend(type_id.to_le_bytes());
        self.infos.extend(offset.to_le_bytes());
        self.n_tensors += 1;
        self
    }

    /// A tensor placed after the previous one, padded like gguf-py does.
    pub(crate) fn tensor(mut self, name: &str, ne: &[u64], ty: GgmlType, bytes: &[u8]) -> Builder {
        while !self.data.len().is_multiple_of(self.alignment) {
            self.data.push(0);
        }
        let offset = self.data.len() as u64;
        self.data.extend(bytes);
        self.info(name, ne, ty.id(), offset)
    }

    pub(crate) fn build(self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(self.version.to_le_bytes());
        out.extend(self.n_tensors.to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend(self.kvs);
        out.extend(self.infos);
        while !out.len().is_multiple_of(self.alignment) {
            out.push(0);
        }
        out.extend(self.data);
        while !out.len().is_multiple_of(self.alignment) {
            out.push(0);
        }
        out
    }
}

pub(crate) fn parse(bytes: Vec<u8>) -> Result<GgufFile> {
    GgufFile::parse(bytes, "t.gguf")
}

fn err(bytes: Vec<u8>) -> GgufError {
    parse(bytes).expect_err("the file should be refused")
}

fn f16_bits(v: f32) -> [u8; 2] {
    // Only used for values exactly representable in f16 (checked).
    let bits = match v {
        0.25 => 0x3400u16,
        0.5 => 0x3800,
        1.0 => 0x3c00,
        2.0 => 0x4000,
        _ => panic!("no f16 constant for {v}"),
    };
    assert_eq!(f16_to_f32(bits), v);
    bits.to_le_bytes()
}

fn one_tensor(ty: GgmlType, ne: &[u64], bytes: &[u8]) -> GgufFile {
    parse(Builder::new().tensor("t", ne, ty, bytes).build()).unwrap()
}

// ---------------------------------------------------------------- f16 / bf16

#[test]
fn f16_widening_is_exact_for_all_65536_values() {
    for h in 0..=u16::MAX {
        let got = f16_to_f32(h);
        let (sign, exp, man) = (h >> 15, (h >> 10) & 0x1f, h & 0x3ff);
        let magnitude = match exp {
            0 => f64::from(man) * 2f64.powi(-24),
            0x1f if man == 0 => f64::INFINITY,
            0x1f => {
                assert!(got.is_nan(), "{h:#06x}");
                assert_eq!(got.to_bits() & 0x7fffff, u32::from(man) << 13, "{h:#06x}: payload kept");
                continue;
            }
            _ => (1.0 + f64::from(man) / 1024.0) * 2f64.powi(i32::from(exp) - 15),
        };
        let want = if sign == 1 { -magnitude } else { magnitude } as f32;
        assert_eq!(got.to_bits(), want.to_bits(), "{h:#06x}");
    }
}

#[test]
fn bf16_widening_is_the_upper_half() {
    assert_eq!(bf16_to_f32(0x3f80), 1.0);
    assert_eq!(bf16_to_f32(0xc040), -3.0);
    assert_eq!(bf16_to_f32(0x0001).to_bits(), 0x0001_0000);
}

// ---------------------------------------------------------------- one block per type

#[test]
fn dequantizes_f32_f16_bf16() {
    let f32s = [1.5f32, -2.0, 0.0, 3.25];
    let g = one_tensor(GgmlType::F32, &[4], &f32s.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>());
    assert_eq!(g.dequantize("t").unwrap(), f32s);

    // 1.0, -2.0, 65504 (max), smallest subnormal 2^-24
    let g = one_tensor(GgmlType::F16, &[4], &[0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x01, 0x00]);
    assert_eq!(g.dequantize("t").unwrap(), [1.0, -2.0, 65504.0, 2f32.powi(-24)]);

    // 1.0, -3.0, 0.5, 1.5
    let g = one_tensor(GgmlType::BF16, &[4], &[0x80, 0x3f, 0x40, 0xc0, 0x00, 0x3f, 0xc0, 0x3f]);
    assert_eq!(g.dequantize("t").unwrap(), [1.0, -3.0, 0.5, 1.5]);
}

#[test]
fn dequantizes_q8_0() {
    let mut block = f16_bits(0.5).to_vec();
    let qs: Vec<i8> = [0i8, 1, -1, 127, -128].into_iter().chain((5..32).map(|j| j - 16)).collect();
    block.extend(qs.iter().map(|&q| q as u8));
    let y = one_tensor(GgmlType::Q8_0, &[32], &block).dequantize("t").unwrap();
    assert_eq!(&y[..5], &[0.0, 0.5, -0.5, 63.5, -64.0]);
    for (j, &v) in y.iter().enumerate().skip(5) {
        assert_eq!(v, (j as f32 - 16.0) * 0.5);
    }
}

#[test]
fn reading_from_disk_equals_parsing_in_memory_and_header_prefixes_grow() {
    // A header bigger than a tiny first prefix would be; the file on disk
    // must give the same metadata, tensors and bytes as the parsed copy.
    let tokens: Vec<String> = (0..5000).map(|i| format!("token-{i}")).collect();
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let bytes = Builder::new()
        .kv_str_array("tokenizer.ggml.tokens", &refs)
        .tensor("t", &[4], GgmlType::F32, &[0u8, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64])
        .build();
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("x.gguf");
    std::fs::write(&p, &bytes).unwrap();
    let mem = parse(bytes.clone()).unwrap();
    for first in [7, 1000, 1 << 24] {
        let disk = GgufFile::read_prefixed(&p, first).unwrap();
        assert_eq!(disk.metadata(), mem.metadata());
        assert_eq!(disk.tensor_data("t").unwrap(), mem.tensor_data("t").unwrap());
        assert_eq!(disk.dequantize("t").unwrap(), [1.0, 2.0, 3.0, 4.0]);
    }
    // Truncated on disk: the same error as in memory.
    let cut = bytes.len() - 30; // inside the tensor's 16 bytes
    std::fs::write(&p, &bytes[..cut]).unwrap();
    let b = parse(bytes[..cut].to_vec()).err().expect("truncated in memory").to_string();
    assert!(b.contains("'t'"), "{b}");
    for first in [7, 1 << 24] {
        let a = GgufFile::read_prefixed(&p, first).err().expect("truncated on disk").to_string();
        assert_eq!(a.replace(&p.display().to_string(), "t.gguf"), b);
    }
}

#[test]
fn dequantizes_q4_0() {
    // d = 0.25; byte j holds element j (low nibble) and element j + 16 (high).
    let mut block = f16_bits(0.25).to_vec();
    block.extend((0..16u8).map(|j| j | (15 - j) << 4));
    let y = one_tensor(GgmlType::Q4_0, &[32], &block).dequantize("t").unwrap();
    for j in 0..16 {
        assert_eq!(y[j], (j as f32 - 8.0) * 0.25, "element {j}");
        assert_eq!(y[j + 16], ((15 - j) as f32 - 8.0) * 0.25, "element {}", j + 16);
    }
}

#[test]
fn dequantizes_q5_0() {
    // d = 2; qh sets the 5th bit of elements 1, 2 and 16.
    let mut block = f16_bits(2.0).to_vec();
    block.extend(0x0001_0006u32.to_le_bytes());
    let mut qs = [0x88u8; 16];
    qs[0] = 0x10; // element 0: low nibble 0; element 16: high nibble 1
    qs[1] = 0x0f; // element 1: 15; element 17: 0
    qs[2] = 0x00; // element 2: 0; element 18: 0
    block.extend(qs);
    let y = one_tensor(GgmlType::Q5_0, &[32], &block).dequantize("t").unwrap();
    let mut want = [-16.0f32; 32]; // nibble 8, no 5th bit: (8 - 16) * 2
    want[0] = -32.0; // (0 - 16) * 2
    want[1] = 30.0; // (15 + 16 - 16) * 2
    want[2] = 0.0; // (0 + 16 - 16) * 2
    want[16] = 2.0; // (1 + 16 - 16) * 2
    want[17] = -32.0;
    want[18] = -32.0;
    assert_eq!(y, want);
}

#[test]
fn dequantizes_q4_k() {
    // Scales and mins of the 8 sub-blocks, packed as ggml's 12-byte K-scale table.
    let sc = [1u8, 2, 3, 4, 5, 17, 33, 63];
    let m = [0u8, 1, 2, 3, 4, 20, 40, 63];
    let scales = [0x01u8, 0x42, 0x83, 0xc4, 0x00, 0x41, 0x82, 0xc3, 0x45, 0x41, 0x81, 0xff];
    for j in 0..8 {
        assert_eq!(dequant_scale_min(j, &scales), (sc[j], m[j]), "sub-block {j}");
    }
    let mut block = f16_bits(1.0).to_vec(); // d
    block.extend(f16_bits(0.5)); // dmin
    block.extend(scales);
    block.extend((0..128u8).map(|i| (i % 16) | ((15 - i % 16) << 4)));
    let y = one_tensor(GgmlType::Q4_K, &[256], &block).dequantize("t").unwrap();
    // y[64p + l] = sc[2p] * low - 0.5 * m[2p]; y[64p + 32 + l] = sc[2p+1] * high - 0.5 * m[2p+1]
    for p in 0..4 {
        for l in 0..32 {
            let (lo, hi) = ((l % 16) as f32, (15 - l % 16) as f32);
            assert_eq!(y[64 * p + l], f32::from(sc[2 * p]) * lo - 0.5 * f32::from(m[2 * p]), "{p} {l}");
            assert_eq!(y[64 * p + 32 + l], f32::from(sc[2 * p + 1]) * hi - 0.5 * f32::from(m[2 * p + 1]), "{p} {l}");
        }
    }
    // By hand: sub-block 0 is 1*q - 0, sub-block 1 is 2*(15 - q) - 0.5, ...
    assert_eq!([y[0], y[1], y[32], y[69], y[224], y[255]], [0.0, 1.0, 29.5, 14.0, 913.5, -31.5]);
}

fn dequant_scale_min(j: usize, scales: &[u8]) -> (u8, u8) {
    // Decode via a Q4_K block with d = dmin = 1 and all quants 0/1 to observe sc and m.
    let mut block = f16_bits(1.0).to_vec();
    block.extend(f16_bits(1.0));
    block.extend(scales);
    block.extend([0x11u8; 128]); // every quant is 1: y = sc - m
    let mut zero = block.clone();
    zero[16..].fill(0); // every quant is 0: y = -m
    let y1 = one_tensor(GgmlType::Q4_K, &[256], &block).dequantize("t").unwrap();
    let y0 = one_tensor(GgmlType::Q4_K, &[256], &zero).dequantize("t").unwrap();
    let m = -y0[32 * j];
    ((y1[32 * j] + m) as u8, m as u8)
}

/// Packs 256 six-bit quants as ggml's `block_q6_K` `ql`/`qh` (inverse of the reader).
fn pack_q6_k(q: &[u8; 256]) -> ([u8; 128], [u8; 64]) {
    let (mut ql, mut qh) = ([0u8; 128], [0u8; 64]);
    for h in 0..2 {
        for l in 0..32 {
            let e = |k: usize| q[128 * h + l + 32 * k];
            ql[64 * h + l] = (e(0) & 0xf) | ((e(2) & 0xf) << 4);
            ql[64 * h + l + 32] = (e(1) & 0xf) | ((e(3) & 0xf) << 4);
            qh[32 * h + l] = (e(0) >> 4) | ((e(1) >> 4) << 2) | ((e(2) >> 4) << 4) | ((e(3) >> 4) << 6);
        }
    }
    (ql, qh)
}

#[test]
fn dequantizes_q6_k() {
    let q: [u8; 256] = std::array::from_fn(|e| (e * 7 % 64) as u8);
    let sc: [i8; 16] = [1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6, 7, -7, 8, -8];
    let (ql, qh) = pack_q6_k(&q);
    let mut block = ql.to_vec();
    block.extend(qh);
    block.extend(sc.map(|s| s as u8));
    block.extend(f16_bits(0.25));
    let y = one_tensor(GgmlType::Q6_K, &[256], &block).dequantize("t").unwrap();
    for (e, &v) in y.iter().enumerate() {
        // Each run of 16 elements shares one scale: element e uses scale e / 16.
        assert_eq!(v, 0.25 * f32::from(sc[e / 16]) * (f32::from(q[e]) - 32.0), "element {e}");
    }
    // By hand: e=0: q 0, sc 1 -> 0.25*1*-32; e=16: q 48, sc -1 -> -4; e=32: q 32 -> 0; e=200: q 56, sc 7 -> 42
    assert_eq!([y[0], y[16], y[32], y[200]], [-8.0, -4.0, 0.0, 42.0]);
}

#[test]
fn row_ranges_give_the_same_bits_as_the_whole_tensor() {
    let mut bytes = vec![];
    for r in 0..3u8 {
        bytes.extend(f16_bits(0.5));
        bytes.extend((0..32u8).map(|j| j.wrapping_mul(r + 3)));
    }
    let g = one_tensor(GgmlType::Q8_0, &[32, 3], &bytes);
    let whole = g.dequantize("t").unwrap();
    let mut mid = vec![0f32; 32];
    g.dequantize_rows("t", 1..2, &mut mid).unwrap();
    assert_eq!(mid, whole[32..64]);
    let e = g.dequantize_rows("t", 2..4, &mut [0f32; 64]).unwrap_err();
    assert!(matches!(e, GgufError::RowRange { n_rows: 3, .. }), "{e}");
    let e = g.dequantize_rows("t", 0..1, &mut [0f32; 31]).unwrap_err();
    assert!(matches!(e, GgufError::OutputLength { expected: 32, actual: 31, .. }), "{e}");
}

#[test]
fn unsupported_types_are_named() {
    let g = one_tensor(GgmlType::Q4_1, &[32], &[0u8; 20]);
    assert_eq!(g.tensor_data("t").unwrap().len(), 20, "raw bytes stay readable");
    let e = g.dequantize("t").unwrap_err();
    assert!(matches!(&e, GgufError::UnsupportedType { type_name: "Q4_1", tensor, .. } if tensor == "t"), "{e}");
    assert_eq!(e.to_string(), "t.gguf: tensor 't': dequantizing Q4_1 is not supported (supported: F32 F16 BF16 Q4_0 Q8_0 Q5_0 Q4_K Q6_K)");
}

// ---------------------------------------------------------------- metadata

#[test]
fn reads_every_value_type_and_nested_arrays() {
    let nested = {
        let mut b = 9u32.to_le_bytes().to_vec(); // array of arrays
        b.extend(2u64.to_le_bytes());
        for inner in [[1u16, 2].as_slice(), &[3]] {
            b.extend(2u32.to_le_bytes());
            b.extend((inner.len() as u64).to_le_bytes());
            inner.iter().for_each(|v| b.extend(v.to_le_bytes()));
        }
        b
    };
    let g = parse(
        Builder::new()
            .kv_raw("u8", 0, &[7])
            .kv_raw("i8", 1, &[0xff])
            .kv_raw("u16", 2, &9u16.to_le_bytes())
            .kv_raw("i16", 3, &(-9i16).to_le_bytes())
            .kv_u32("u32", 10)
            .kv_raw("i32", 5, &(-10i32).to_le_bytes())
            .kv_f32("f32", 0.5)
            .kv_bool("bool", true)
            .kv_str("str", "héllo")
            .kv_raw("u64", 10, &u64::MAX.to_le_bytes())
            .kv_raw("i64", 11, &(-1i64).to_le_bytes())
            .kv_raw("f64", 12, &0.25f64.to_le_bytes())
            .kv_array("f32s", 6, &[1.0f32, 2.0], |v| v.to_le_bytes().to_vec())
            .kv_raw("nested", 9, &nested)
            .build(),
    )
    .unwrap();
    assert_eq!(g.version(), 3);
    assert_eq!(g.alignment(), 32);
    assert_eq!(g.get_u64("u8").unwrap(), 7);
    assert_eq!(g.get("i8"), Some(&MetadataValue::I8(-1)));
    assert_eq!(g.get_u64("u16").unwrap(), 9);
    assert_eq!(g.get("i16"), Some(&MetadataValue::I16(-9)));
    assert_eq!(g.get_u64("u32").unwrap(), 10);
    assert_eq!(g.get_f32("f32").unwrap(), 0.5);
    assert!(g.get_bool("bool").unwrap());
    assert_eq!(g.get_str("str").unwrap(), "héllo");
    assert_eq!(g.get_u64("u64").unwrap(), u64::MAX);
    assert_eq!(g.get("f64"), Some(&MetadataValue::F64(0.25)));
    assert_eq!(g.get_array("f32s").unwrap(), &MetadataArray::F32(vec![1.0, 2.0]));
    assert_eq!(g.get_array("nested").unwrap(), &MetadataArray::Array(vec![MetadataArray::U16(vec![1, 2]), MetadataArray::U16(vec![3])]));
    assert_eq!(g.metadata().keys().next().map(String::as_str), Some("bool"), "sorted by key");

    let e = g.get_u64("i32").unwrap_err();
    assert_eq!(e.to_string(), "t.gguf: metadata key 'i32' is INT32, expected a non-negative integer");
    let e = g.get_f32("f64").unwrap_err();
    assert!(matches!(e, GgufError::WrongKeyType { expected: "FLOAT32", .. }), "{e}");
    assert_eq!(g.get_array("f32s").unwrap().describe(), "ARRAY[FLOAT32; 2]");
    let e = g.get_str("absent").unwrap_err();
    assert_eq!(e.to_string(), "t.gguf: missing metadata key 'absent'");
    assert_eq!(g.opt_str("absent").unwrap(), None);
}

#[test]
fn alignment_comes_from_general_alignment() {
    let mut b = Builder::new().kv_u32("general.alignment", 64);
    b.alignment = 64;
    let g = parse(b.tensor("a", &[3], GgmlType::F32, &[0; 12]).tensor("b", &[1], GgmlType::F32, &[0; 4]).build()).unwrap();
    assert_eq!(g.alignment(), 64);
    assert_eq!(g.tensor("b").unwrap().offset(), 64);
    assert_eq!(g.data_start() % 64, 0);

    for (value, found) in [(3u32.to_le_bytes().to_vec(), "3"), (0u32.to_le_bytes().to_vec(), "0")] {
        let e = err(Builder::new().kv_raw("general.alignment", 4, &value).build());
        assert!(matches!(&e, GgufError::BadAlignment { found: f, .. } if f == found), "{e}");
    }
    let e = err(Builder::new().kv_raw("general.alignment", 10, &32u64.to_le_bytes()).build());
    assert!(matches!(&e, GgufError::BadAlignment { found, .. } if found == "UINT64"), "{e}");
}

#[test]
fn version_2_reads_like_3() {
    let mut b = Builder::new().kv_u32("x", 1).tensor("t", &[1], GgmlType::F32, &1f32.to_le_bytes());
    b.version = 2;
    let g = parse(b.build()).unwrap();
    assert_eq!((g.version(), g.dequantize("t").unwrap()), (2, vec![1.0]));
}

// ---------------------------------------------------------------- refused files

#[test]
fn refuses_bad_magic_versions_and_endianness() {
    let e = err(b"GGUX\x03\0\0\0".to_vec());
    assert!(matches!(&e, GgufError::BadMagic { found, .. } if found == b"GGUX"), "{e}");
    assert!(matches!(err(b"GG".to_vec()), GgufError::BadMagic { .. }));
    for v in [1u32, 4, 0] {
        let mut b = Builder::new();
        b.version = v;
        let e = err(b.build());
        assert!(matches!(e, GgufError::UnsupportedVersion { version, .. } if version == v), "{e}");
    }
    let mut b = Builder::new();
    b.version = 3u32.swap_bytes();
    assert!(matches!(err(b.build()), GgufError::BigEndian { version: 3, .. }));
}

#[test]
fn refuses_truncated_headers_naming_the_field() {
    // Cut in the middle of the value string.
    let bytes = Builder::new().kv_str("general.name", "gemma").build();
    let e = err(bytes[..24 + 8 + 12 + 4 + 8 + 2].to_vec());
    assert!(matches!(&e, GgufError::TruncatedHeader { what, .. } if what == "value of key 'general.name': 5 bytes"), "{e}");
    assert!(e.to_string().starts_with("t.gguf: truncated header: value of key 'general.name'"), "{e}");
    // Every prefix is refused, never a panic.
    let bytes = Builder::new().kv_str("general.name", "gemma").tensor("t", &[8], GgmlType::F32, &[0; 32]).build();
    for n in 0..bytes.len() {
        assert!(parse(bytes[..n].to_vec()).is_err(), "prefix of {n} bytes");
    }
}

#[test]
fn refuses_counts_the_file_cannot_hold() {
    let mut bytes = Builder::new().build();
    bytes[8..16].copy_from_slice(&u64::MAX.to_le_bytes()); // tensors
    assert!(matches!(err(bytes.clone()), GgufError::TooManyTensors { count: u64::MAX, .. }));
    bytes[8..16].copy_from_slice(&0u64.to_le_bytes());
    bytes[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes()); // keys
    assert!(matches!(err(bytes), GgufError::TooManyKeys { .. }));

    let mut b = vec![];
    b.extend(6u32.to_le_bytes());
    b.extend((1u64 << 40).to_le_bytes());
    let e = err(Builder::new().kv_raw("arr", 9, &b).build());
    assert!(matches!(&e, GgufError::ArrayTooLong { key, len, .. } if key == "arr" && *len == 1 << 40), "{e}");
}

#[test]
fn refuses_bad_strings_and_keys() {
    let long = "k".repeat(64 * 1024 + 1);
    let e = err(Builder::new().kv_u32(&long, 1).build());
    assert!(matches!(e, GgufError::StringTooLong { len: 65537, max: 65536, .. }), "{e}");

    let mut bad = vec![];
    gstr(&mut bad, &[0xff, 0xfe]);
    let e = err(Builder::new().kv_raw("s", 8, &bad).build());
    assert!(matches!(&e, GgufError::StringNotUtf8 { what, .. } if what == "value of key 's'"), "{e}");

    let e = err(Builder::new().kv_u32("a", 1).kv_u32("a", 2).build());
    assert!(matches!(&e, GgufError::DuplicateKey { key, .. } if key == "a"), "{e}");

    let e = err(Builder::new().kv_raw("x", 13, &[0; 8]).build());
    assert!(matches!(&e, GgufError::UnknownValueType { key, type_id: 13, .. } if key == "x"), "{e}");

    let e = err(Builder::new().kv_raw("b", 7, &[2]).build());
    assert!(matches!(&e, GgufError::InvalidBool { key, value: 2, .. } if key == "b"), "{e}");
}

#[test]
fn refuses_arrays_nested_too_deep() {
    // depth 4 is accepted, depth 5 refused
    let nest = |depth: usize| {
        let mut inner = 0u32.to_le_bytes().to_vec(); // innermost: empty array of u8
        inner.extend(0u64.to_le_bytes());
        for _ in 1..depth {
            let mut outer = 9u32.to_le_bytes().to_vec();
            outer.extend(1u64.to_le_bytes());
            outer.extend(inner);
            inner = outer;
        }
        Builder::new().kv_raw("deep", 9, &inner).build()
    };
    assert!(parse(nest(MAX_ARRAY_DEPTH)).is_ok());
    let e = err(nest(MAX_ARRAY_DEPTH + 1));
    assert!(matches!(&e, GgufError::ArrayTooDeep { key, .. } if key == "deep"), "{e}");
}

#[test]
fn refuses_bad_tensor_infos() {
    let f32x8 = [0u8; 32];
    let e = err(Builder::new().tensor("t", &[8], GgmlType::F32, &f32x8).tensor("t", &[8], GgmlType::F32, &f32x8).build());
    assert!(matches!(&e, GgufError::DuplicateTensor { tensor, .. } if tensor == "t"), "{e}");

    let e = err(Builder::new().info("t", &[1, 1, 1, 1, 1], 0, 0).build());
    assert!(matches!(e, GgufError::TooManyDims { n_dims: 5, max: 4, .. }), "{e}");

    let e = err(Builder::new().info("t", &[1], 4, 0).build());
    assert!(matches!(&e, GgufError::UnknownType { tensor, type_id: 4, .. } if tensor == "t"), "{e}");

    let e = err(Builder::new().info("t", &[u64::MAX / 2, 4], 0, 0).build());
    assert!(matches!(e, GgufError::ShapeOverflow { .. }), "{e}");

    let e = err(Builder::new().info("t", &[48, 2], GgmlType::Q8_0.id(), 0).build());
    assert_eq!(e.to_string(), "t.gguf: tensor 't': ne[0] = 48 is not a multiple of the Q8_0 block size 32");

    let e = err(Builder::new().info("t", &[1], 0, 16).build());
    assert!(matches!(e, GgufError::MisalignedOffset { offset: 16, alignment: 32, .. }), "{e}");
}

#[test]
fn refuses_truncated_data_naming_tensor_and_byte_counts() {
    let bytes = Builder::new().tensor("a", &[8], GgmlType::F32, &[0; 32]).tensor("b.weight", &[16], GgmlType::F32, &[0; 64]).build();
    let data_start = bytes.len() - 96;
    let e = err(bytes[..bytes.len() - 10].to_vec());
    match &e {
        GgufError::TruncatedData { tensor, offset, size, begin, end, file_len, missing, .. } => {
            assert_eq!((tensor.as_str(), *offset, *size, *missing), ("b.weight", 32, 64, 10));
            assert_eq!((*begin, *end, *file_len), (data_start as u64 + 32, data_start as u64 + 96, bytes.len() as u64 - 10));
        }
        other => panic!("{other}"),
    }
    let msg = e.to_string();
    assert!(msg.starts_with("t.gguf: truncated: tensor 'b.weight' needs file bytes") && msg.ends_with("(10 missing)"), "{msg}");
}

#[test]
fn refuses_overlaps_gaps_and_trailing_bytes() {
    let base = || Builder::new().tensor("a", &[16], GgmlType::F32, &[0; 64]);
    let e = err(base().info("b", &[8], 0, 32).build());
    assert!(matches!(&e, GgufError::Overlap { tensor, previous, begin: 32, previous_end: 64, .. } if tensor == "b" && previous == "a"), "{e}");

    let mut b = base().info("b", &[8], 0, 128);
    b.data.extend([0u8; 96]);
    let e = err(b.build());
    assert!(matches!(e, GgufError::Gap { begin: 128, previous_end: 64, expected: 64, .. }), "{e}");

    let e = err(Builder::new().info("a", &[8], 0, 32).build());
    assert!(matches!(e, GgufError::Gap { begin: 32, expected: 0, .. }), "{e}");

    let mut bytes = base().build();
    bytes.extend([0u8; 32]);
    assert!(matches!(err(bytes), GgufError::TrailingBytes { trailing: 32, max: 0, .. }));

    // Tensors may be listed in any order as long as their bytes tile the data.
    let mut b = Builder::new().info("second", &[8], 0, 32).info("first", &[8], 0, 0);
    b.data = vec![0; 64];
    let g = parse(b.build()).unwrap();
    assert_eq!(g.tensors().iter().map(TensorInfo::name).collect::<Vec<_>>(), ["second", "first"]);
}

#[test]
fn tensor_lookup_and_shapes() {
    let g = parse(Builder::new().tensor("w", &[64, 3], GgmlType::Q8_0, &[0; 6 * 34]).tensor("s", &[], GgmlType::F32, &[0; 4]).build()).unwrap();
    let w = g.tensor("w").unwrap();
    assert_eq!((w.dims(), w.hf_shape(), w.n_elements(), w.n_bytes()), (&[64, 3][..], vec![3, 64], 192, 204));
    assert_eq!((w.row_len(), w.n_rows(), w.ggml_type()), (64, 3, GgmlType::Q8_0));
    let s = g.tensor("s").unwrap();
    assert_eq!((s.n_elements(), s.hf_shape(), s.n_rows()), (1, vec![], 1));
    let e = g.tensor_data("nope").unwrap_err();
    assert_eq!(e.to_string(), "t.gguf: no tensor named 'nope'");
}

#[test]
fn read_names_the_path() {
    let e = GgufFile::read(Path::new("/nonexistent/model.gguf")).unwrap_err();
    assert!(matches!(&e, GgufError::Io { file, .. } if file == "/nonexistent/model.gguf"), "{e}");
}

#[test]
fn mutated_files_are_refused_or_read_never_panic() {
    // A poor man's fuzzer: every byte of a small file of every kind of field,
    // set to a few interesting values; whatever parses must also dequantize.
    let mut q8 = f16_bits(0.5).to_vec();
    q8.extend([3u8; 32]);
    let bytes = Builder::new()
        .kv_str("general.architecture", "gemma3")
        .kv_str_array("tokenizer.ggml.tokens", &["a", "b"])
        .kv_array("f32s", 6, &[1.0f32], |v| v.to_le_bytes().to_vec())
        .kv_bool("b", true)
        .tensor("w", &[32, 1], GgmlType::Q8_0, &q8)
        .tensor("n", &[2], GgmlType::F32, &[0; 8])
        .build();
    let mut parsed = 0;
    for i in 0..bytes.len() {
        for v in [0x00, 0x01, 0x7f, 0x80, 0xff, bytes[i].wrapping_add(1)] {
            let mut m = bytes.clone();
            m[i] = v;
            if let Ok(g) = parse(m) {
                parsed += 1;
                for t in g.tensors() {
                    let _ = g.dequantize(t.name());
                }
                let _ = GgufTokenizer::from_gguf(&g);
            }
        }
    }
    assert!(parsed > 0);
}
