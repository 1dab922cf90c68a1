//! Reader for GGUF, llama.cpp's model file format, with dequantization to f32.
//!
//! Inputs are untrusted downloads, so they are parsed the way the safetensors
//! reader is: every count and length is capped and checked against the bytes
//! left before anything is allocated, all offset arithmetic is checked, and any
//! inconsistency is a [`GgufError`] naming the file and the key or tensor.
//!
//! # Grammar (GGUF v3; v2 is identical for little-endian files)
//!
//! ```text
//! file        = header kv{n_kv} tensor_info{n_tensors} padding data
//! header      = "GGUF" version:u32 (2 | 3) n_tensors:u64 n_kv:u64
//! kv          = key:string value_type:u32 value
//! string      = len:u64 utf8-bytes{len}                 (no terminator)
//! value       = u8 | i8 | u16 | i16 | u32 | i32 | f32 | bool | string | array | u64 | i64 | f64
//!               (value_type 0..=12 in that order; bool is one byte, 0 or 1)
//! array       = elem_type:u32 len:u64 value{len}        (arrays may nest)
//! tensor_info = name:string n_dims:u32 ne:u64{n_dims} ggml_type:u32 offset:u64
//! padding     = zero bytes up to the next multiple of ALIGNMENT
//! data        = the tensors' bytes at data_start + offset
//! ALIGNMENT   = metadata `general.alignment` (u32, a power of two), default 32
//! ```
//!
//! All integers are little-endian (a big-endian file is refused by name).
//! `ne[0]` is the fastest-varying dimension: the reverse of PyTorch's shape.
//! Quantized types store each row of `ne[0]` elements as whole blocks.
//!
//! # Invariants enforced on read
//!
//! - at most [`MAX_KEYS`] entries and [`MAX_TENSORS`] tensors, and never more
//!   than the remaining bytes could encode; keys and tensor names at most
//!   64 KiB, string values at most [`MAX_STRING_LEN`], arrays at most
//!   [`MAX_ARRAY_LEN`] elements (and the remaining bytes) nested at most
//!   [`MAX_ARRAY_DEPTH`] deep; strings are UTF-8; keys and names are unique;
//! - at most [`MAX_DIMS`] dimensions; element and byte counts computed with
//!   `checked_mul`; `ne[0]` a multiple of the type's block size; the ggml type
//!   known (dequantizable or not: see [`dequant`]);
//! - every offset a multiple of the alignment; sorted by offset, the tensors
//!   tile the data section: the first starts at 0, each starts at the aligned
//!   end of the previous (no overlaps, no gaps beyond padding, as ggml's own
//!   `gguf_init_from_file` requires), and the file ends within the last
//!   tensor's alignment padding; a tensor past the end of the file is a
//!   [`GgufError::TruncatedData`] naming it and the byte counts.
//!
//! [`GgufFile::read`] keeps only the header in memory: it reads a prefix
//! of the file (16 MiB, growing ×4 while the header does not fit) and
//! later reads each tensor's bytes from disk when asked, so memory does not
//! grow with the model. [`GgufFile::parse`] validates bytes already in
//! memory (tests, small files). [`GgufFile::tensor_data`] returns one
//! tensor's bytes and [`GgufFile::dequantize_rows`] converts any row range,
//! so a caller can convert one tensor, or one slice of a tensor, at a time.

pub mod dequant;
mod error;
pub mod hf_tokenizer;
mod reader;
mod tokenizer;
mod types;
mod value;

#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
pub(crate) mod tests_gemma3;
#[cfg(test)]
mod tests_real;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

pub use error::{GgufError, Result};
pub use tokenizer::GgufTokenizer;
pub use types::GgmlType;
pub use value::{MetadataArray, MetadataValue, ValueType};

/// Most metadata entries accepted (real files have tens).
pub const MAX_KEYS: u64 = 1 << 20;
/// Most tensors accepted (real files have hundreds to a few thousand).
pub const MAX_TENSORS: u64 = 1 << 20;
/// Longest metadata key, in bytes.
pub const MAX_KEY_LEN: u64 = 64 * 1024;
/// Longest tensor name, in bytes (ggml itself stops at 63).
pub const MAX_TENSOR_NAME_LEN: u64 = 64 * 1024;
/// Longest string value, in bytes (chat templates are the long ones).
pub const MAX_STRING_LEN: u64 = 64 * 1024 * 1024;
/// Most elements in one array (vocabularies are ~10^5–10^6).
pub const MAX_ARRAY_LEN: u64 = 1 << 28;
/// Deepest array nesting: an array of arrays has depth 2.
pub const MAX_ARRAY_DEPTH: usize = 4;
/// Most tensor dimensions (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: u32 = 4;
/// Alignment of tensor data when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: usize = 32;

/// One tensor's description, validated against the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    name: String,
    dims: Vec<usize>,
    ggml_type: GgmlType,
    offset: usize,
    n_elements: usize,
    n_bytes: usize,
}

impl TensorInfo {
    /// The GGUF name (`blk.0.attn_q.weight`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Dimensions in GGUF order: `dims()[0]` is `ne[0]`, the contiguous one.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// Dimensions in Hugging Face/PyTorch order (the reverse of [`Self::dims`]):
    /// an `[out, in]` linear weight, whose `ne` is `[in, out]`.
    pub fn hf_shape(&self) -> Vec<usize> {
        self.dims.iter().rev().copied().collect()
    }

    /// The storage type.
    pub fn ggml_type(&self) -> GgmlType {
        self.ggml_type
    }

    /// Offset of the tensor's bytes from the start of the data section.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Number of elements (1 for a tensor with no dimensions).
    pub fn n_elements(&self) -> usize {
        self.n_elements
    }

    /// Number of bytes of data.
    pub fn n_bytes(&self) -> usize {
        self.n_bytes
    }

    /// Elements per row: `ne[0]`, or 1 for a tensor with no dimensions.
    pub fn row_len(&self) -> usize {
        self.dims.first().copied().unwrap_or(1)
    }

    /// Number of rows of [`Self::row_len`] elements.
    pub fn n_rows(&self) -> usize {
        self.dims.iter().skip(1).product()
    }
}

/// Where the tensor data lives.
#[derive(Debug)]
enum Storage {
    /// The whole file, in memory.
    Memory(Vec<u8>),
    /// The open file; byte ranges are read with positioned reads.
    Disk(std::fs::File),
}

/// First header prefix read by [`GgufFile::read`].
const HEADER_PREFIX: u64 = 16 << 20;

/// A parsed and validated GGUF file.
#[derive(Debug)]
pub struct GgufFile {
    file: String,
    storage: Storage,
    version: u32,
    alignment: usize,
    metadata: BTreeMap<String, MetadataValue>,
    tensors: Vec<TensorInfo>,
    by_name: BTreeMap<String, usize>,
    data_start: usize,
}

impl GgufFile {
    /// Reads and validates the file at `path`, keeping the tensor data on disk.
    pub fn read(path: &Path) -> Result<GgufFile> {
        GgufFile::read_prefixed(path, HEADER_PREFIX)
    }

    /// [`GgufFile::read`] with the first prefix length given (tests use a tiny one).
    pub(super) fn read_prefixed(path: &Path, first: u64) -> Result<GgufFile> {
        use std::os::unix::fs::FileExt;
        let file = path.display().to_string();
        let io = |source| GgufError::Io { file: file.clone(), source };
        let f = std::fs::File::open(path).map_err(io)?;
        let len = f.metadata().map_err(io)?.len();
        let mut n = len.min(first.max(1));
        loop {
            let mut prefix = vec![0u8; n as usize];
            f.read_exact_at(&mut prefix, 0).map_err(io)?;
            match GgufFile::parse_prefix(&prefix, len, file.clone()) {
                // A header that does not fit the prefix (or whose counts
                // only the whole file could hold) is read again, longer;
                // with the whole file the error is the real one.
                Err(_) if n < len => n = len.min(n.saturating_mul(4)),
                Err(e) => return Err(e),
                Ok(mut g) => {
                    g.storage = Storage::Disk(f);
                    return Ok(g);
                }
            }
        }
    }

    /// Validates `bytes`; `file` names them in errors.
    pub fn parse(bytes: Vec<u8>, file: impl Into<String>) -> Result<GgufFile> {
        let len = bytes.len() as u64;
        let mut g = GgufFile::parse_prefix(&bytes, len, file.into())?;
        g.storage = Storage::Memory(bytes);
        Ok(g)
    }

    /// Parses the header in `prefix` of a file of `file_len` bytes and checks
    /// the tensor layout against that length.
    fn parse_prefix(prefix: &[u8], file_len: u64, file: String) -> Result<GgufFile> {
        let header = reader::parse_header(prefix, &file)?;
        let alignment = alignment(&header.metadata, &file)?;
        let mut tensors = Vec::with_capacity(header.tensors.len());
        let mut by_name = BTreeMap::new();
        for raw in header.tensors {
            let info = tensor_info(raw, alignment, &file)?;
            if by_name.insert(info.name.clone(), tensors.len()).is_some() {
                return Err(GgufError::DuplicateTensor { file, tensor: info.name });
            }
            tensors.push(info);
        }
        let data_start = align_up(header.end as u64, alignment as u64).ok_or_else(|| GgufError::TruncatedHeader {
            file: file.clone(),
            what: "alignment padding".to_string(),
            offset: header.end as u64,
            needed: alignment as u64,
            file_len,
        })?;
        check_layout(&tensors, data_start, file_len, alignment as u64, &file)?;
        Ok(GgufFile {
            file,
            storage: Storage::Memory(Vec::new()),
            version: header.version,
            alignment,
            metadata: header.metadata,
            tensors,
            by_name,
            data_start: data_start as usize,
        })
    }

    /// The file name used in errors.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The data alignment in force.
    pub fn alignment(&self) -> usize {
        self.alignment
    }

    /// Offset of the data section in the file.
    pub fn data_start(&self) -> usize {
        self.data_start
    }

    /// All metadata, sorted by key.
    pub fn metadata(&self) -> &BTreeMap<String, MetadataValue> {
        &self.metadata
    }

    /// Tensors in the order of the file's tensor infos.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Result<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i]).ok_or_else(|| GgufError::MissingTensor { file: self.file.clone(), tensor: name.to_string() })
    }

    /// The raw bytes of the tensor called `name`, as stored.
    pub fn tensor_data(&self, name: &str) -> Result<std::borrow::Cow<'_, [u8]>> {
        let t = self.tensor(name)?;
        self.bytes_at(self.data_start + t.offset, t.n_bytes)
    }

    /// `len` bytes at file offset `begin` (in bounds: checked by
    /// `check_layout` when the file was parsed).
    fn bytes_at(&self, begin: usize, len: usize) -> Result<std::borrow::Cow<'_, [u8]>> {
        use std::os::unix::fs::FileExt;
        match &self.storage {
            Storage::Memory(b) => Ok(std::borrow::Cow::Borrowed(&b[begin..begin + len])),
            Storage::Disk(f) => {
                let mut v = vec![0u8; len];
                f.read_exact_at(&mut v, begin as u64).map_err(|source| GgufError::Io { file: self.file.clone(), source })?;
                Ok(std::borrow::Cow::Owned(v))
            }
        }
    }

    /// The tensor called `name` as f32, in GGUF element order (which is HF
    /// row-major order for [`TensorInfo::hf_shape`]).
    pub fn dequantize(&self, name: &str) -> Result<Vec<f32>> {
        let t = self.tensor(name)?;
        let mut out = vec![0f32; t.n_elements];
        self.dequantize_rows(name, 0..t.n_rows(), &mut out)?;
        Ok(out)
    }

    /// Rows `rows` (each [`TensorInfo::row_len`] elements) of the tensor called
    /// `name`, as f32, into `out`, which must hold exactly those rows. Every row
    /// is whole blocks, so any range gives the same bits as the whole tensor.
    pub fn dequantize_rows(&self, name: &str, rows: Range<usize>, out: &mut [f32]) -> Result<()> {
        let t = self.tensor(name)?;
        let tensor = || t.name.clone();
        if !dequant::SUPPORTED.contains(&t.ggml_type) {
            return Err(GgufError::UnsupportedType { file: self.file.clone(), tensor: tensor(), type_name: t.ggml_type.name() });
        }
        if rows.start > rows.end || rows.end > t.n_rows() {
            return Err(GgufError::RowRange { file: self.file.clone(), tensor: tensor(), start: rows.start, end: rows.end, n_rows: t.n_rows() });
        }
        let expected = rows.len() * t.row_len();
        if out.len() != expected {
            return Err(GgufError::OutputLength { file: self.file.clone(), tensor: tensor(), expected, actual: out.len() });
        }
        let row_bytes = t.row_len() / t.ggml_type.block_size() * t.ggml_type.type_size();
        let src = self.bytes_at(self.data_start + t.offset + rows.start * row_bytes, rows.len() * row_bytes)?;
        if !dequant::dequantize(t.ggml_type, &src, out) {
            // Unreachable after the checks above; kept as an error, not a panic.
            return Err(GgufError::OutputLength { file: self.file.clone(), tensor: tensor(), expected, actual: out.len() });
        }
        Ok(())
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.metadata.get(key)
    }

    fn typed<'s, T>(&'s self, key: &str, expected: &'static str, f: impl FnOnce(&'s MetadataValue) -> Option<T>) -> Result<Option<T>> {
        match self.metadata.get(key) {
            None => Ok(None),
            Some(v) => f(v).map(Some).ok_or_else(|| GgufError::WrongKeyType { file: self.file.clone(), key: key.to_string(), expected, found: v.describe() }),
        }
    }

    fn required<T>(&self, key: &str, v: Result<Option<T>>) -> Result<T> {
        v?.ok_or_else(|| GgufError::MissingKey { file: self.file.clone(), key: key.to_string() })
    }

    /// An optional non-negative integer of any width.
    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>> {
        self.typed(key, "a non-negative integer", MetadataValue::as_u64)
    }

    /// An optional `FLOAT32`.
    pub fn opt_f32(&self, key: &str) -> Result<Option<f32>> {
        self.typed(key, "FLOAT32", MetadataValue::as_f32)
    }

    /// An optional `BOOL`.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        self.typed(key, "BOOL", MetadataValue::as_bool)
    }

    /// An optional `STRING`.
    pub fn opt_str(&self, key: &str) -> Result<Option<&str>> {
        self.typed(key, "STRING", MetadataValue::as_str)
    }

    /// An optional `ARRAY`.
    pub fn opt_array(&self, key: &str) -> Result<Option<&MetadataArray>> {
        self.typed(key, "ARRAY", MetadataValue::as_array)
    }

    /// A required non-negative integer of any width.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.required(key, self.opt_u64(key))
    }

    /// A required `FLOAT32`.
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        self.required(key, self.opt_f32(key))
    }

    /// A required `BOOL`.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        self.required(key, self.opt_bool(key))
    }

    /// A required `STRING`.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        self.required(key, self.opt_str(key))
    }

    /// A required `ARRAY`.
    pub fn get_array(&self, key: &str) -> Result<&MetadataArray> {
        self.required(key, self.opt_array(key))
    }
}

fn align_up(x: u64, alignment: u64) -> Option<u64> {
    x.checked_add(alignment - 1).map(|v| v / alignment * alignment)
}

/// `general.alignment`: a `UINT32` power of two, as ggml requires; 32 if absent.
fn alignment(metadata: &BTreeMap<String, MetadataValue>, file: &str) -> Result<usize> {
    match metadata.get("general.alignment") {
        None => Ok(DEFAULT_ALIGNMENT),
        Some(&MetadataValue::U32(a)) if a.is_power_of_two() => Ok(a as usize),
        Some(MetadataValue::U32(a)) => Err(GgufError::BadAlignment { file: file.to_string(), found: a.to_string() }),
        Some(other) => Err(GgufError::BadAlignment { file: file.to_string(), found: other.describe() }),
    }
}

/// Checks one tensor's shape and offset on its own.
fn tensor_info(raw: reader::RawTensorInfo, alignment: usize, file: &str) -> Result<TensorInfo> {
    let ty = raw.ggml_type;
    let overflow = || GgufError::ShapeOverflow { file: file.to_string(), tensor: raw.name.clone(), dims: raw.dims.clone(), type_name: ty.name() };
    let dims = raw.dims.iter().map(|&d| usize::try_from(d).map_err(|_| overflow())).collect::<Result<Vec<usize>>>()?;
    let n_elements = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).filter(|&n| n <= i64::MAX as usize).ok_or_else(overflow)?;
    let ne0 = dims.first().copied().unwrap_or(1);
    if !ne0.is_multiple_of(ty.block_size()) {
        return Err(GgufError::RowNotBlockAligned {
            file: file.to_string(),
            tensor: raw.name,
            ne0: ne0 as u64,
            type_name: ty.name(),
            block_size: ty.block_size(),
        });
    }
    let n_bytes = ty.byte_size(n_elements).ok_or_else(overflow)?;
    if !raw.offset.is_multiple_of(alignment as u64) {
        return Err(GgufError::MisalignedOffset { file: file.to_string(), tensor: raw.name, offset: raw.offset, alignment: alignment as u64 });
    }
    // An offset that does not fit usize cannot be inside the file either.
    let offset = usize::try_from(raw.offset).unwrap_or(usize::MAX);
    Ok(TensorInfo { name: raw.name, dims, ggml_type: ty, offset, n_elements, n_bytes })
}

/// Checks that the tensors tile the data section and that it lies within the file.
fn check_layout(tensors: &[TensorInfo], data_start: u64, file_len: u64, alignment: u64, file: &str) -> Result<()> {
    let mut order: Vec<&TensorInfo> = tensors.iter().collect();
    order.sort_by_key(|t| t.offset);
    let mut previous: Option<(&str, u64)> = None; // (name, end offset)
    for t in order {
        let (begin, size) = (t.offset as u64, t.n_bytes as u64);
        match previous {
            Some((prev, prev_end)) if begin < prev_end => {
                return Err(GgufError::Overlap { file: file.to_string(), tensor: t.name.clone(), begin, previous: prev.to_string(), previous_end: prev_end });
            }
            _ => {}
        }
        let prev_end = previous.map_or(0, |(_, end)| end);
        let expected = align_up(prev_end, alignment).unwrap_or(u64::MAX);
        if begin != expected {
            return Err(GgufError::Gap { file: file.to_string(), tensor: t.name.clone(), begin, previous_end: prev_end, expected });
        }
        let truncated = |file_begin: u64, file_end: u64| GgufError::TruncatedData {
            file: file.to_string(),
            tensor: t.name.clone(),
            offset: begin,
            size,
            begin: file_begin,
            end: file_end,
            file_len,
            missing: file_end.saturating_sub(file_len),
        };
        let file_begin = data_start.checked_add(begin).ok_or_else(|| truncated(u64::MAX, u64::MAX))?;
        let file_end = file_begin.checked_add(size).ok_or_else(|| truncated(file_begin, u64::MAX))?;
        if file_end > file_len {
            return Err(truncated(file_begin, file_end));
        }
        previous = Some((&t.name, begin + size));
    }
    let data_end = data_start.saturating_add(previous.map_or(0, |(_, end)| end));
    let max = align_up(data_end, alignment).unwrap_or(u64::MAX) - data_end;
    let trailing = file_len.saturating_sub(data_end);
    if trailing > max {
        return Err(GgufError::TrailingBytes { file: file.to_string(), trailing, max });
    }
    Ok(())
}
