//! The header parser: a bounds-checked cursor over the file's bytes, the
//! metadata key/value section and the raw tensor infos. Layout checks that need
//! every tensor (alignment, overlaps, end of data) live in `mod.rs`.

use std::collections::BTreeMap;

use super::error::{GgufError, Result};
use super::types::GgmlType;
use super::value::{MetadataArray, MetadataValue, ValueType};
use super::{MAX_ARRAY_DEPTH, MAX_ARRAY_LEN, MAX_DIMS, MAX_KEYS, MAX_KEY_LEN, MAX_STRING_LEN, MAX_TENSORS, MAX_TENSOR_NAME_LEN};

/// Fewest bytes a key/value pair takes: key length, value type, a one-byte value.
const MIN_KV_LEN: u64 = 8 + 4 + 1;
/// Fewest bytes a tensor info takes: name length, n_dims, type, offset.
const MIN_TENSOR_INFO_LEN: u64 = 8 + 4 + 4 + 8;

/// A tensor info as stored, before layout validation.
pub(super) struct RawTensorInfo {
    pub name: String,
    /// GGUF order: `dims[0]` is `ne[0]`, the fastest-varying dimension.
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    pub offset: u64,
}

/// What the header holds, and where it ends.
pub(super) struct Header {
    pub version: u32,
    pub metadata: BTreeMap<String, MetadataValue>,
    pub tensors: Vec<RawTensorInfo>,
    /// Offset of the first byte after the last tensor info.
    pub end: usize,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    file: &'a str,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    /// The next `n` bytes; `what` names the field if the file ends first.
    fn take(&mut self, n: u64, what: impl FnOnce() -> String) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(GgufError::TruncatedHeader {
                file: self.file.to_string(),
                what: what(),
                offset: self.pos as u64,
                needed: n,
                file_len: self.bytes.len() as u64,
            });
        }
        let n = n as usize; // n <= remaining, which is a usize
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: impl FnOnce() -> String) -> Result<[u8; N]> {
        let b = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    fn u32(&mut self, what: impl FnOnce() -> String) -> Result<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: impl FnOnce() -> String) -> Result<u64> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A GGUF string: u64 length, then that many UTF-8 bytes (no terminator).
    fn string(&mut self, max: u64, what: &dyn Fn() -> String) -> Result<String> {
        let len = self.u64(|| format!("{}: length", what()))?;
        if len > max {
            return Err(GgufError::StringTooLong { file: self.file.to_string(), what: what(), len, max });
        }
        let bytes = self.take(len, || format!("{}: {len} bytes", what()))?;
        String::from_utf8(bytes.to_vec()).map_err(|_| GgufError::StringNotUtf8 { file: self.file.to_string(), what: what() })
    }

    fn value_type(&mut self, key: &str, what: impl FnOnce() -> String) -> Result<ValueType> {
        let id = self.u32(what)?;
        ValueType::from_id(id).ok_or_else(|| GgufError::UnknownValueType { file: self.file.to_string(), key: key.to_string(), type_id: id })
    }

    fn bool(&mut self, key: &str) -> Result<bool> {
        let [b] = self.array(|| format!("value of key '{key}'"))?;
        match b {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(GgufError::InvalidBool { file: self.file.to_string(), key: key.to_string(), value }),
        }
    }

    fn value(&mut self, key: &str, ty: ValueType, depth: usize) -> Result<MetadataValue> {
        let what = || format!("value of key '{key}'");
        Ok(match ty {
            ValueType::U8 => MetadataValue::U8(u8::from_le_bytes(self.array(what)?)),
            ValueType::I8 => MetadataValue::I8(i8::from_le_bytes(self.array(what)?)),
            ValueType::U16 => MetadataValue::U16(u16::from_le_bytes(self.array(what)?)),
            ValueType::I16 => MetadataValue::I16(i16::from_le_bytes(self.array(what)?)),
            ValueType::U32 => MetadataValue::U32(u32::from_le_bytes(self.array(what)?)),
            ValueType::I32 => MetadataValue::I32(i32::from_le_bytes(self.array(what)?)),
            ValueType::F32 => MetadataValue::F32(f32::from_le_bytes(self.array(what)?)),
            ValueType::U64 => MetadataValue::U64(u64::from_le_bytes(self.array(what)?)),
            ValueType::I64 => MetadataValue::I64(i64::from_le_bytes(self.array(what)?)),
            ValueType::F64 => MetadataValue::F64(f64::from_le_bytes(self.array(what)?)),
            ValueType::Bool => MetadataValue::Bool(self.bool(key)?),
            ValueType::String => MetadataValue::String(self.string(MAX_STRING_LEN, &what)?),
            ValueType::Array => MetadataValue::Array(self.array_value(key, depth + 1)?),
        })
    }

    /// An array: element type, u64 length, elements. `depth` counts this array.
    fn array_value(&mut self, key: &str, depth: usize) -> Result<MetadataArray> {
        if depth > MAX_ARRAY_DEPTH {
            return Err(GgufError::ArrayTooDeep { file: self.file.to_string(), key: key.to_string(), max: MAX_ARRAY_DEPTH });
        }
        let elem = self.value_type(key, || format!("array element type of key '{key}'"))?;
        let len = self.u64(|| format!("array length of key '{key}'"))?;
        // Refuse a length the rest of the file cannot hold before allocating for it.
        let max = MAX_ARRAY_LEN.min(self.remaining() / elem.min_encoded_len());
        if len > max {
            return Err(GgufError::ArrayTooLong { file: self.file.to_string(), key: key.to_string(), len, max });
        }
        let n = len as usize; // len <= remaining bytes
        macro_rules! fixed {
            ($variant:ident, $t:ty) => {{
                const W: usize = std::mem::size_of::<$t>();
                let bytes = self.take((n * W) as u64, || format!("{n} elements of key '{key}'"))?;
                MetadataArray::$variant(bytes.chunks_exact(W).map(|c| <$t>::from_le_bytes(c.try_into().expect("chunks_exact"))).collect())
            }};
        }
        Ok(match elem {
            ValueType::U8 => fixed!(U8, u8),
            ValueType::I8 => fixed!(I8, i8),
            ValueType::U16 => fixed!(U16, u16),
            ValueType::I16 => fixed!(I16, i16),
            ValueType::U32 => fixed!(U32, u32),
            ValueType::I32 => fixed!(I32, i32),
            ValueType::F32 => fixed!(F32, f32),
            ValueType::U64 => fixed!(U64, u64),
            ValueType::I64 => fixed!(I64, i64),
            ValueType::F64 => fixed!(F64, f64),
            ValueType::Bool => MetadataArray::Bool((0..n).map(|_| self.bool(key)).collect::<Result<_>>()?),
            ValueType::String => {
                let mut out = Vec::with_capacity(n);
                for i in 0..n {
                    out.push(self.string(MAX_STRING_LEN, &|| format!("key '{key}' element {i}"))?);
                }
                MetadataArray::String(out)
            }
            ValueType::Array => MetadataArray::Array((0..n).map(|_| self.array_value(key, depth + 1)).collect::<Result<_>>()?),
        })
    }
}

/// Parses everything before the alignment padding and the tensor data.
pub(super) fn parse_header(bytes: &[u8], file: &str) -> Result<Header> {
    if bytes.len() < 4 || &bytes[..4] != b"GGUF" {
        return Err(GgufError::BadMagic { file: file.to_string(), found: bytes[..bytes.len().min(4)].to_vec() });
    }
    let mut c = Cursor { bytes, pos: 4, file };
    let version = c.u32(|| "version".to_string())?;
    if version != 2 && version != 3 {
        let swapped = version.swap_bytes();
        if swapped == 2 || swapped == 3 {
            return Err(GgufError::BigEndian { file: file.to_string(), version: swapped });
        }
        return Err(GgufError::UnsupportedVersion { file: file.to_string(), version });
    }
    let n_tensors = c.u64(|| "tensor count".to_string())?;
    let n_kv = c.u64(|| "metadata entry count".to_string())?;
    // Both counts are bounded by a cap and by what the remaining bytes could
    // describe at the minimum encoding, so no allocation follows a lying count.
    let max_kv = MAX_KEYS.min(c.remaining() / MIN_KV_LEN);
    if n_kv > max_kv {
        return Err(GgufError::TooManyKeys { file: file.to_string(), count: n_kv, max: max_kv });
    }
    let max_tensors = MAX_TENSORS.min((c.remaining() - n_kv * MIN_KV_LEN) / MIN_TENSOR_INFO_LEN);
    if n_tensors > max_tensors {
        return Err(GgufError::TooManyTensors { file: file.to_string(), count: n_tensors, max: max_tensors });
    }

    let mut metadata = BTreeMap::new();
    for i in 0..n_kv {
        let key = c.string(MAX_KEY_LEN, &|| format!("key of metadata entry {i}"))?;
        let ty = c.value_type(&key, || format!("value type of key '{key}'"))?;
        let value = c.value(&key, ty, 0)?;
        if metadata.contains_key(&key) {
            return Err(GgufError::DuplicateKey { file: file.to_string(), key });
        }
        metadata.insert(key, value);
    }

    let mut tensors = Vec::with_capacity(n_tensors as usize);
    for i in 0..n_tensors {
        let name = c.string(MAX_TENSOR_NAME_LEN, &|| format!("name of tensor {i}"))?;
        let n_dims = c.u32(|| format!("n_dims of tensor '{name}'"))?;
        if n_dims > MAX_DIMS {
            return Err(GgufError::TooManyDims { file: file.to_string(), tensor: name, n_dims, max: MAX_DIMS });
        }
        let dims = (0..n_dims).map(|d| c.u64(|| format!("ne[{d}] of tensor '{name}'"))).collect::<Result<Vec<u64>>>()?;
        let type_id = c.u32(|| format!("type of tensor '{name}'"))?;
        let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| GgufError::UnknownType { file: file.to_string(), tensor: name.clone(), type_id })?;
        let offset = c.u64(|| format!("data offset of tensor '{name}'"))?;
        tensors.push(RawTensorInfo { name, dims, ggml_type, offset });
    }
    Ok(Header { version, metadata, tensors, end: c.pos })
}
