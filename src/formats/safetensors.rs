//! Reader and writer for the safetensors format.
//!
//! Inputs are untrusted (downloaded checkpoints), so they are parsed the way the
//! reference `safetensors` crate does: every header field is bounds-checked with
//! checked arithmetic and any inconsistency is a typed error naming the file and
//! tensor, never a panic or a silent truncation.
//!
//! # Grammar
//!
//! ```text
//! file        = header_len header data
//! header_len  = u64, little endian; at most MAX_HEADER_LEN (100 MB); 8 + header_len <= file length
//! header      = UTF-8 JSON object starting with '{', optionally padded with trailing spaces:
//!               { "__metadata__"?: { string: string, ... },
//!                 <tensor name>: { "dtype": DTYPE, "shape": [usize, ...], "data_offsets": [begin, end] }, ... }
//! DTYPE       = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL"
//! data        = the tensors' little-endian, row-major bytes; offsets are relative to the
//!               start of data
//! ```
//!
//! Invariants enforced on read: names are unique; `begin <= end <= data length`;
//! `end - begin == product(shape) * size(dtype)` (computed with `checked_mul`);
//! sorted by `begin`, the tensors tile `data` exactly: the first starts at 0,
//! each starts where the previous ended, and the last ends at the data length
//! (no gaps, overlaps or trailing bytes).
//!
//! Two readers share one header validation: [`SafeTensors`] holds the whole
//! file in memory; [`SafeTensorsFile`] reads only the header and then one
//! tensor at a time from disk, so a multi-gigabyte shard costs no more memory
//! than its largest tensor.
//!
//! The writer is deterministic: tensors are laid out in name order, header keys
//! are sorted (`__metadata__` takes its place in byte order like any other key),
//! and the header is padded with spaces to a multiple of 8 bytes as the
//! reference writer does. The output goes through [`crate::atomic::write`].
//!
//! # The reference `safetensors` crate
//!
//! It is the oracle of the tests (every file written here loads there with
//! the same tensors, and the property tests check that both readers refuse
//! the same corruptions) but not the implementation, because (as of 0.8):
//!
//! - `serialize` is not deterministic: its `__metadata__` is a `HashMap`
//!   whose order changes from run to run, and it lays tensors out by dtype
//!   alignment before name, which would change every byte pinned here.
//! - `SafeTensors::read_metadata` needs the whole file in memory (it checks
//!   that the tensors end exactly at the end of the buffer), so it cannot
//!   validate [`SafeTensorsFile`]'s header alone.
//! - Its validation is looser and coarser than this one: duplicate keys are
//!   silently overwritten (a `HashMap`), unknown entry fields are accepted,
//!   overlaps, gaps and reversed offsets are one `InvalidOffset`, a size
//!   mismatch names no tensor, trailing bytes are `MetadataIncompleteBuffer`,
//!   and its dtypes include FP8/FP4 kinds nothing here can convert.

use crate::kernels::half::{bf16_to_f32, f16_to_f32};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;

mod on_disk;

pub use on_disk::{SafeTensorsFile, READ_CHUNK};

/// The largest header accepted, as in the reference implementation; a larger
/// length prefix is almost certainly not a safetensors file.
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// The header key that holds free-form string metadata rather than a tensor.
pub const METADATA_KEY: &str = "__metadata__";

/// Element types accepted by this reader; any other dtype string is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dtype {
    /// IEEE binary64.
    F64,
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16: the upper half of a binary32.
    BF16,
    /// Signed 64-bit integer.
    I64,
    /// Signed 32-bit integer.
    I32,
    /// Signed 16-bit integer.
    I16,
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 8-bit integer.
    U8,
    /// One byte per element, 0 or 1.
    BOOL,
}

impl Dtype {
    const ALL: [Dtype; 10] = [Dtype::F64, Dtype::F32, Dtype::F16, Dtype::BF16, Dtype::I64, Dtype::I32, Dtype::I16, Dtype::I8, Dtype::U8, Dtype::BOOL];

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F64 | Dtype::I64 => 8,
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::F16 | Dtype::BF16 | Dtype::I16 => 2,
            Dtype::I8 | Dtype::U8 | Dtype::BOOL => 1,
        }
    }

    /// The spelling used in safetensors headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Dtype::F64 => "F64",
            Dtype::F32 => "F32",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::I64 => "I64",
            Dtype::I32 => "I32",
            Dtype::I16 => "I16",
            Dtype::I8 => "I8",
            Dtype::U8 => "U8",
            Dtype::BOOL => "BOOL",
        }
    }

    /// Parses a header dtype string; `None` for dtypes this crate does not support.
    pub fn parse(s: &str) -> Option<Dtype> {
        Dtype::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every way reading or writing a safetensors file can fail. `file` is the path
/// or display name given by the caller; `tensor` names the offending entry.
#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    /// The file could not be read or written.
    #[error("{file}: {source}")]
    Io {
        /// File path.
        file: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Fewer than the 8 bytes of the header-length prefix.
    #[error("{file}: {len} bytes is too short for a safetensors file (needs an 8-byte header length)")]
    TooShort {
        /// File name.
        file: String,
        /// File length in bytes.
        len: usize,
    },
    /// The header-length prefix exceeds [`MAX_HEADER_LEN`].
    #[error("{file}: header length {header_len} exceeds the {max} byte cap; not a safetensors file?")]
    HeaderTooLarge {
        /// File name.
        file: String,
        /// Declared header length.
        header_len: u64,
        /// The cap.
        max: u64,
    },
    /// The header-length prefix points past the end of the file.
    #[error("{file}: header length {header_len} runs past the end of the {file_len}-byte file (truncated?)")]
    HeaderBeyondFile {
        /// File name.
        file: String,
        /// Declared header length.
        header_len: u64,
        /// File length in bytes.
        file_len: usize,
    },
    /// The header bytes are not UTF-8.
    #[error("{file}: header is not valid UTF-8")]
    HeaderNotUtf8 {
        /// File name.
        file: String,
    },
    /// The header does not start with `{`.
    #[error("{file}: header does not start with '{{'")]
    HeaderStart {
        /// File name.
        file: String,
    },
    /// The header is not a JSON object of the expected shape.
    #[error("{file}: header is not valid JSON: {source}")]
    HeaderNotJson {
        /// File name.
        file: String,
        /// Parser error (with line and column).
        source: serde_json::Error,
    },
    /// A key appears twice in the header.
    #[error("{file}: tensor '{tensor}' appears more than once in the header")]
    DuplicateTensor {
        /// File name.
        file: String,
        /// Repeated key.
        tensor: String,
    },
    /// `__metadata__` is not an object of strings.
    #[error("{file}: __metadata__ must map strings to strings: {source}")]
    BadMetadata {
        /// File name.
        file: String,
        /// Parser error.
        source: serde_json::Error,
    },
    /// A tensor entry lacks a field or has one of the wrong type.
    #[error("{file}: tensor '{tensor}': invalid header entry: {source}")]
    BadTensorEntry {
        /// File name.
        file: String,
        /// Tensor name.
        tensor: String,
        /// Parser error.
        source: serde_json::Error,
    },
    /// A dtype outside [`Dtype`].
    #[error("{file}: tensor '{tensor}': unsupported dtype '{dtype}' (supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)")]
    UnknownDtype {
        /// File name.
        file: String,
        /// Tensor name.
        tensor: String,
        /// The dtype string as written.
        dtype: String,
    },
    /// The byte size of the shape does not fit in `usize`.
    #[error("{file}: tensor '{tensor}': shape {shape:?} of {dtype} overflows the addressable size")]
    ShapeOverflow {
        /// File name.
        file: String,
        /// Tensor name.
        tensor: String,
        /// Declared shape.
        shape: Vec<usize>,
        /// Declared dtype.
        dtype: Dtype,
    },
    /// `data_offsets` has `begin > end`.
    #[error("{file}: tensor '{tensor}': data_offsets [{begin}, {end}] are reversed")]
    OffsetsReversed {
        /// File name.
        file: String,
        /// Tensor name.
        tensor: String,
        /// First offset.
        begin: usize,
        /// Second offset.
        end: usize,
    },
    /// `data_offsets` ends past the data section.
    #[error("{file}: tensor '{tensor}': data_offsets end {end} is past the {data_len}-byte data section")]
    OffsetsOutOfBounds {
        /// File name.
        file: String,
        /// Tensor name.
        tensor: String,
        /// End offset.
        end: usize,
        /// Length of the data section.
        data_len: usize,
    },
    /// The byte span does not match shape × dtype size.
    #[error("{file}: tensor '{tensor}': shape {shape:?} of {dtype} needs {expected} bytes but data_offsets span {actual}")]
    SizeMismatch {
        /// File name.
        file: String,
        /// Tensor name.
        tensor: String,
        /// Declared shape.
        shape: Vec<usize>,
        /// Declared dtype.
        dtype: Dtype,
        /// Bytes implied by shape and dtype.
        expected: usize,
        /// Bytes spanned by the offsets.
        actual: usize,
    },
    /// A tensor starts before the previous one (in offset order) ended.
    #[error("{file}: tensor '{tensor}' (starting at {begin}) overlaps '{previous}' (ending at {previous_end})")]
    Overlap {
        /// File name.
        file: String,
        /// Tensor name.
        tensor: String,
        /// Its begin offset.
        begin: usize,
        /// The tensor it overlaps.
        previous: String,
        /// That tensor's end offset.
        previous_end: usize,
    },
    /// Unused bytes before a tensor.
    #[error("{file}: tensor '{tensor}' starts at {begin} but the previous tensor ends at {expected}: {gap} unused bytes")]
    Gap {
        /// File name.
        file: String,
        /// Tensor name.
        tensor: String,
        /// Its begin offset.
        begin: usize,
        /// Where it should start.
        expected: usize,
        /// Size of the hole.
        gap: usize,
    },
    /// Bytes after the last tensor.
    #[error("{file}: {trailing} trailing bytes after the last tensor (data section is {data_len} bytes, tensors end at {end})")]
    TrailingBytes {
        /// File name.
        file: String,
        /// Where the tensors end.
        end: usize,
        /// Length of the data section.
        data_len: usize,
        /// Unclaimed bytes.
        trailing: usize,
    },
    /// [`SafeTensors::get`] for a name the file does not have.
    #[error("{file}: no tensor named '{tensor}'")]
    MissingTensor {
        /// File name.
        file: String,
        /// Requested name.
        tensor: String,
    },
    /// A float conversion was asked of a tensor of another dtype.
    #[error("{file}: tensor '{tensor}' is {dtype}, not a float type convertible to f32 (F32, F16, BF16)")]
    NotFloat {
        /// File name.
        file: String,
        /// Tensor name.
        tensor: String,
        /// Its dtype.
        dtype: Dtype,
    },
    /// A tensor handed to the writer has the wrong number of bytes.
    #[error("{file}: tensor '{tensor}': shape {shape:?} of {dtype} needs {expected} bytes but {actual} were given")]
    WriteSizeMismatch {
        /// File name.
        file: String,
        /// Tensor name.
        tensor: String,
        /// Declared shape.
        shape: Vec<usize>,
        /// Declared dtype.
        dtype: Dtype,
        /// Bytes implied by shape and dtype.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// A tensor named `__metadata__` cannot be written.
    #[error("{file}: '{METADATA_KEY}' is reserved and cannot name a tensor")]
    ReservedName {
        /// File name.
        file: String,
    },
}

/// Shorthand for results of this module.
pub type Result<T, E = SafetensorsError> = std::result::Result<T, E>;

/// Where one tensor lives in the data section.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TensorInfo {
    dtype: Dtype,
    shape: Vec<usize>,
    begin: usize,
    end: usize,
}

/// A parsed, fully validated safetensors file held in memory.
#[derive(Debug, Clone)]
pub struct SafeTensors {
    display: String,
    bytes: Vec<u8>,
    data_start: usize,
    tensors: BTreeMap<String, TensorInfo>,
    metadata: BTreeMap<String, String>,
}

/// A borrowed view of one tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TensorView<'a> {
    /// Tensor name.
    pub name: &'a str,
    /// Element type.
    pub dtype: Dtype,
    /// Dimensions, outermost first.
    pub shape: &'a [usize],
    /// Little-endian row-major bytes; length is product(shape) × dtype size.
    pub data: &'a [u8],
    file: &'a str,
}

/// A tensor to be written: owned bytes plus their description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedTensor {
    /// Element type.
    pub dtype: Dtype,
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Little-endian row-major bytes.
    pub data: Vec<u8>,
}

impl OwnedTensor {
    /// An F32 tensor from values in row-major order.
    pub fn from_f32(shape: Vec<usize>, values: &[f32]) -> OwnedTensor {
        let mut data = Vec::with_capacity(values.len() * 4);
        for v in values {
            data.extend_from_slice(&v.to_le_bytes());
        }
        OwnedTensor { dtype: Dtype::F32, shape, data }
    }
}

/// Raw form of one header entry before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInfo {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: (usize, usize),
}

/// The header as an ordered list of (key, value), so duplicate keys are seen
/// instead of silently overwritten as a map would.
struct RawHeader(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for RawHeader {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawHeader;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<RawHeader, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
                    entries.push((k, v));
                }
                Ok(RawHeader(entries))
            }
        }
        d.deserialize_map(V)
    }
}

/// Product of `shape` times the element size, or `None` on overflow. The
/// element count is computed first, as the reference crate does, so the same
/// shapes are accepted (e.g. `[usize::MAX, 0]`).
fn byte_size(shape: &[usize], dtype: Dtype) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))?.checked_mul(dtype.size())
}

impl SafeTensors {
    /// Reads and validates a file; the whole file is held in memory.
    pub fn read(path: &Path) -> Result<SafeTensors> {
        let display = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| SafetensorsError::Io { file: display.clone(), source })?;
        SafeTensors::parse(bytes, &display)
    }

    /// Validates `bytes` as a safetensors file; `display` names it in errors.
    pub fn parse(bytes: Vec<u8>, display: &str) -> Result<SafeTensors> {
        let file = || display.to_string();
        if bytes.len() < 8 {
            return Err(SafetensorsError::TooShort { file: file(), len: bytes.len() });
        }
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(&bytes[..8]);
        let data_start = header_end(u64::from_le_bytes(len_bytes), bytes.len(), display)?;
        let (tensors, metadata) = parse_header(&bytes[8..data_start], bytes.len() - data_start, display)?;
        Ok(SafeTensors { display: display.to_string(), bytes, data_start, tensors, metadata })
    }

    /// The name used in errors (the path for [`SafeTensors::read`]).
    pub fn display_name(&self) -> &str {
        &self.display
    }

    /// Tensor names in sorted order.
    pub fn names(&self) -> Vec<&str> {
        self.tensors.keys().map(String::as_str).collect()
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether the file holds no tensors.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// The `__metadata__` map (empty when absent).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// One tensor by name.
    pub fn get(&self, name: &str) -> Result<TensorView<'_>> {
        let (key, info) =
            self.tensors.get_key_value(name).ok_or_else(|| SafetensorsError::MissingTensor { file: self.display.clone(), tensor: name.to_string() })?;
        Ok(self.view(key, info))
    }

    /// All tensors in name order.
    pub fn tensors(&self) -> impl Iterator<Item = TensorView<'_>> + '_ {
        self.tensors.iter().map(|(k, info)| self.view(k, info))
    }

    fn view<'a>(&'a self, name: &'a str, info: &'a TensorInfo) -> TensorView<'a> {
        let data = &self.bytes[self.data_start + info.begin..self.data_start + info.end];
        TensorView { name, dtype: info.dtype, shape: &info.shape, data, file: &self.display }
    }
}

/// The tensors of a header, and its `__metadata__`.
type ParsedHeader = (BTreeMap<String, TensorInfo>, BTreeMap<String, String>);

/// Checks a header length prefix against [`MAX_HEADER_LEN`] and the file
/// length; returns where the data section starts (`8 + header_len`).
fn header_end(header_len: u64, file_len: usize, display: &str) -> Result<usize> {
    if header_len > MAX_HEADER_LEN {
        return Err(SafetensorsError::HeaderTooLarge { file: display.to_string(), header_len, max: MAX_HEADER_LEN });
    }
    // header_len <= 100 MB, so the conversion and the addition cannot overflow
    // on any 32- or 64-bit target; checked anyway to keep the invariant local.
    let end = usize::try_from(header_len).ok().and_then(|n| n.checked_add(8));
    end.filter(|&end| end <= file_len).ok_or(SafetensorsError::HeaderBeyondFile { file: display.to_string(), header_len, file_len })
}

/// Validates the header bytes (between the length prefix and the data) of a
/// file whose data section is `data_len` bytes: every entry, and the exact
/// tiling of the data section. Returns the tensors and the `__metadata__` map
/// (empty when absent).
fn parse_header(header: &[u8], data_len: usize, display: &str) -> Result<ParsedHeader> {
    let file = || display.to_string();
    let header = std::str::from_utf8(header).map_err(|_| SafetensorsError::HeaderNotUtf8 { file: file() })?;
    if !header.starts_with('{') {
        return Err(SafetensorsError::HeaderStart { file: file() });
    }
    let raw: RawHeader = serde_json::from_str(header).map_err(|source| SafetensorsError::HeaderNotJson { file: file(), source })?;
    let mut tensors = BTreeMap::new();
    let mut metadata = None;
    for (name, value) in raw.0 {
        if name == METADATA_KEY {
            if metadata.is_some() {
                return Err(SafetensorsError::DuplicateTensor { file: file(), tensor: name });
            }
            let m: BTreeMap<String, String> = serde_json::from_value(value).map_err(|source| SafetensorsError::BadMetadata { file: file(), source })?;
            metadata = Some(m);
            continue;
        }
        if tensors.contains_key(&name) {
            return Err(SafetensorsError::DuplicateTensor { file: file(), tensor: name });
        }
        let info = validate_entry(value, &name, data_len, display)?;
        tensors.insert(name, info);
    }
    check_tiling(&tensors, data_len, display)?;
    Ok((tensors, metadata.unwrap_or_default()))
}

/// Checks one header entry against its own fields and the data length.
fn validate_entry(value: serde_json::Value, name: &str, data_len: usize, display: &str) -> Result<TensorInfo> {
    let file = || display.to_string();
    let tensor = || name.to_string();
    let raw: RawInfo = serde_json::from_value(value).map_err(|source| SafetensorsError::BadTensorEntry { file: file(), tensor: tensor(), source })?;
    let dtype = Dtype::parse(&raw.dtype).ok_or_else(|| SafetensorsError::UnknownDtype { file: file(), tensor: tensor(), dtype: raw.dtype.clone() })?;
    let expected =
        byte_size(&raw.shape, dtype).ok_or_else(|| SafetensorsError::ShapeOverflow { file: file(), tensor: tensor(), shape: raw.shape.clone(), dtype })?;
    let (begin, end) = raw.data_offsets;
    if begin > end {
        return Err(SafetensorsError::OffsetsReversed { file: file(), tensor: tensor(), begin, end });
    }
    if end > data_len {
        return Err(SafetensorsError::OffsetsOutOfBounds { file: file(), tensor: tensor(), end, data_len });
    }
    if end - begin != expected {
        return Err(SafetensorsError::SizeMismatch { file: file(), tensor: tensor(), shape: raw.shape, dtype, expected, actual: end - begin });
    }
    Ok(TensorInfo { dtype, shape: raw.shape, begin, end })
}

/// Sorted by begin offset, the tensors must cover `0..data_len` exactly once.
fn check_tiling(tensors: &BTreeMap<String, TensorInfo>, data_len: usize, display: &str) -> Result<()> {
    let mut order: Vec<(&String, &TensorInfo)> = tensors.iter().collect();
    order.sort_by(|a, b| (a.1.begin, a.1.end, a.0).cmp(&(b.1.begin, b.1.end, b.0)));
    let mut expected = 0usize;
    let mut previous: Option<&str> = None;
    for (name, info) in order {
        if info.begin < expected {
            return Err(SafetensorsError::Overlap {
                file: display.to_string(),
                tensor: name.clone(),
                begin: info.begin,
                previous: previous.unwrap_or_default().to_string(),
                previous_end: expected,
            });
        }
        if info.begin > expected {
            return Err(SafetensorsError::Gap { file: display.to_string(), tensor: name.clone(), begin: info.begin, expected, gap: info.begin - expected });
        }
        expected = info.end;
        previous = Some(name);
    }
    if expected != data_len {
        return Err(SafetensorsError::TrailingBytes { file: display.to_string(), end: expected, data_len, trailing: data_len - expected });
    }
    Ok(())
}

impl TensorView<'_> {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.len() / self.dtype.size()
    }

    /// Values as f32 for F32, F16 and BF16 tensors; the half-precision
    /// conversions are exact.
    pub fn to_f32_vec(&self) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(self.numel());
        if !extend_f32(self.dtype, self.data, &mut out) {
            return Err(SafetensorsError::NotFloat { file: self.file.to_string(), tensor: self.name.to_string(), dtype: self.dtype });
        }
        Ok(out)
    }
}

/// Whether [`extend_f32`] converts `dtype`: F32, F16 and BF16 (F64 would round).
fn f32_convertible(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16)
}

/// Appends the values of little-endian `data` of a float `dtype` (F32, F16,
/// BF16; the half-precision widenings are exact) to `out`; `false`, with `out`
/// untouched, for any other dtype.
fn extend_f32(dtype: Dtype, data: &[u8], out: &mut Vec<f32>) -> bool {
    match dtype {
        Dtype::F32 => out.extend(data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
        Dtype::F16 => out.extend(data.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))),
        Dtype::BF16 => out.extend(data.chunks_exact(2).map(|c| bf16_to_f32(u16::from_le_bytes([c[0], c[1]])))),
        _ => return false,
    }
    true
}

/// The deterministic bytes of a safetensors file holding `tensors` and
/// `metadata` (omitted from the header when empty). `display` names the
/// destination in errors.
pub fn serialize(tensors: &BTreeMap<String, OwnedTensor>, metadata: &BTreeMap<String, String>, display: &str) -> Result<Vec<u8>> {
    let mut header: BTreeMap<&str, serde_json::Value> = BTreeMap::new();
    if !metadata.is_empty() {
        let m: serde_json::Map<String, serde_json::Value> = metadata.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
        header.insert(METADATA_KEY, serde_json::Value::Object(m));
    }
    let mut offset = 0usize;
    for (name, t) in tensors {
        if name == METADATA_KEY {
            return Err(SafetensorsError::ReservedName { file: display.to_string() });
        }
        let expected = byte_size(&t.shape, t.dtype).ok_or_else(|| SafetensorsError::ShapeOverflow {
            file: display.to_string(),
            tensor: name.clone(),
            shape: t.shape.clone(),
            dtype: t.dtype,
        })?;
        if expected != t.data.len() {
            return Err(SafetensorsError::WriteSizeMismatch {
                file: display.to_string(),
                tensor: name.clone(),
                shape: t.shape.clone(),
                dtype: t.dtype,
                expected,
                actual: t.data.len(),
            });
        }
        let end = offset + t.data.len();
        // Keys in sorted order, spelled out so the header bytes do not depend on
        // serde_json's map implementation.
        let mut entry = serde_json::Map::new();
        entry.insert("data_offsets".into(), serde_json::json!([offset, end]));
        entry.insert("dtype".into(), serde_json::Value::String(t.dtype.as_str().into()));
        entry.insert("shape".into(), serde_json::json!(t.shape));
        header.insert(name, serde_json::Value::Object(entry));
        offset = end;
    }
    let mut head = serde_json::to_vec(&header).expect("a map of JSON values always serializes");
    head.resize(head.len().div_ceil(8) * 8, b' ');
    let mut out = Vec::with_capacity(8 + head.len() + offset);
    out.extend_from_slice(&(head.len() as u64).to_le_bytes());
    out.extend_from_slice(&head);
    for t in tensors.values() {
        out.extend_from_slice(&t.data);
    }
    Ok(out)
}

/// Writes [`serialize`]'s bytes to `path` atomically ([`crate::atomic::write`]),
/// so a failure never leaves a partial file at `path`.
pub fn write(path: &Path, tensors: &BTreeMap<String, OwnedTensor>, metadata: &BTreeMap<String, String>) -> Result<()> {
    let display = path.display().to_string();
    let bytes = serialize(tensors, metadata, &display)?;
    crate::atomic::write(path, &bytes).map_err(|source| SafetensorsError::Io { file: display, source })
}

/// Whether `bytes` look like a PyTorch checkpoint (a zip archive or a raw
/// pickle) rather than safetensors. Only meaningful after [`SafeTensors::parse`]
/// failed: a valid safetensors header length can also begin with 0x80.
pub fn sniff_pickle(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.first() == Some(&0x80)
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: &str = "test.safetensors";

    /// Builds a file from a raw header string and data, bypassing the writer.
    fn raw_file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    fn sample() -> BTreeMap<String, OwnedTensor> {
        let mut t = BTreeMap::new();
        t.insert("b.weight".to_string(), OwnedTensor::from_f32(vec![2, 3], &[1.0, -2.0, 3.5, 0.0, -0.0, 1e-30]));
        t.insert("a.bias".to_string(), OwnedTensor { dtype: Dtype::I64, shape: vec![2], data: vec![7; 16] });
        t.insert("c.empty".to_string(), OwnedTensor { dtype: Dtype::F16, shape: vec![0, 4], data: vec![] });
        t.insert("d.scalar".to_string(), OwnedTensor { dtype: Dtype::BOOL, shape: vec![], data: vec![1] });
        t
    }

    fn parse_err(bytes: Vec<u8>) -> SafetensorsError {
        SafeTensors::parse(bytes, F).expect_err("must be rejected")
    }

    #[test]
    fn round_trip_and_layout() {
        let tensors = sample();
        let meta: BTreeMap<String, String> = [("format".to_string(), "pt".to_string()), ("a".to_string(), "b".to_string())].into();
        let bytes = serialize(&tensors, &meta, F).unwrap();
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(header_len % 8, 0, "header padded to 8");
        let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
        assert!(
            header.starts_with(r#"{"__metadata__":{"a":"b","format":"pt"},"a.bias":{"data_offsets":[0,16],"dtype":"I64","shape":[2]},"b.weight""#),
            "{header}"
        );
        let st = SafeTensors::parse(bytes.clone(), F).unwrap();
        assert_eq!(st.names(), vec!["a.bias", "b.weight", "c.empty", "d.scalar"]);
        assert_eq!(st.metadata(), &meta);
        for (name, t) in &tensors {
            let v = st.get(name).unwrap();
            assert_eq!((v.dtype, v.shape, v.data), (t.dtype, &t.shape[..], &t.data[..]));
        }
        let w = st.get("b.weight").unwrap().to_f32_vec().unwrap();
        assert_eq!(w.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), [1.0f32, -2.0, 3.5, 0.0, -0.0, 1e-30].iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        assert!(matches!(st.get("a.bias").unwrap().to_f32_vec(), Err(SafetensorsError::NotFloat { .. })));
        // Deterministic: same input, same bytes.
        assert_eq!(serialize(&tensors, &meta, F).unwrap(), bytes);
    }

    #[test]
    fn write_and_read_file() {
        let dir = std::env::temp_dir().join(format!("avac-st-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("model.safetensors");
        write(&path, &sample(), &BTreeMap::new()).unwrap();
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["model.safetensors"], "nothing but the output is left");
        let st = SafeTensors::read(&path).unwrap();
        assert_eq!(st.len(), 4);
        assert!(st.metadata().is_empty());
        let e = st.get("nope").unwrap_err().to_string();
        assert!(e.contains("model.safetensors") && e.contains("'nope'"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn truncated_file() {
        assert!(matches!(parse_err(vec![1, 2, 3]), SafetensorsError::TooShort { len: 3, .. }));
        let bytes = serialize(&sample(), &BTreeMap::new(), F).unwrap();
        let e = parse_err(bytes[..bytes.len() - 1].to_vec());
        assert!(matches!(e, SafetensorsError::TrailingBytes { .. } | SafetensorsError::OffsetsOutOfBounds { .. }), "{e}");
    }

    #[test]
    fn header_length_beyond_file_or_cap() {
        let mut bytes = 1000u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        assert!(matches!(parse_err(bytes), SafetensorsError::HeaderBeyondFile { header_len: 1000, .. }));
        let bytes = u64::MAX.to_le_bytes().to_vec();
        assert!(matches!(parse_err(bytes), SafetensorsError::HeaderTooLarge { .. }));
    }

    #[test]
    fn header_not_json() {
        assert!(matches!(parse_err(raw_file("{not json", &[])), SafetensorsError::HeaderNotJson { .. }));
        assert!(matches!(parse_err(raw_file("[1,2]   ", &[])), SafetensorsError::HeaderStart { .. }));
        assert!(matches!(parse_err(raw_file("{\"a\":}", &[])), SafetensorsError::HeaderNotJson { .. }));
        let mut bad = raw_file("{}      ", &[]);
        bad[9] = 0xff;
        assert!(matches!(parse_err(bad), SafetensorsError::HeaderNotUtf8 { .. }));
        let e = parse_err(raw_file(r#"{"__metadata__":{"a":1}}"#, &[]));
        assert!(matches!(e, SafetensorsError::BadMetadata { .. }), "{e}");
        let e = parse_err(raw_file(r#"{"t":{"dtype":"F32","shape":[1]}}"#, &[0; 4]));
        assert!(matches!(&e, SafetensorsError::BadTensorEntry { tensor, .. } if tensor == "t"), "{e}");
        let e = parse_err(raw_file(r#"{"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, &[0; 4]));
        assert!(matches!(e, SafetensorsError::BadTensorEntry { .. }), "{e}");
    }

    #[test]
    fn empty_file_is_valid() {
        let st = SafeTensors::parse(raw_file("{}", &[]), F).unwrap();
        assert!(st.is_empty());
        let bytes = serialize(&BTreeMap::new(), &BTreeMap::new(), F).unwrap();
        assert_eq!(bytes, raw_file("{}      ", &[]));
    }

    #[test]
    fn overlapping_offsets() {
        let h = r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#;
        let e = parse_err(raw_file(h, &[0; 6]));
        assert!(matches!(&e, SafetensorsError::Overlap { tensor, previous, .. } if tensor == "b" && previous == "a"), "{e}");
        assert!(e.to_string().contains(F));
    }

    #[test]
    fn gap_between_tensors() {
        let h = r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[3,5]}}"#;
        let e = parse_err(raw_file(h, &[0; 5]));
        assert!(matches!(&e, SafetensorsError::Gap { tensor, gap: 1, .. } if tensor == "b"), "{e}");
        let h = r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}"#;
        assert!(matches!(parse_err(raw_file(h, &[0; 3])), SafetensorsError::Gap { expected: 0, .. }));
    }

    #[test]
    fn trailing_bytes() {
        let h = r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#;
        let e = parse_err(raw_file(h, &[0; 3]));
        assert!(matches!(e, SafetensorsError::TrailingBytes { trailing: 1, .. }), "{e}");
    }

    #[test]
    fn offsets_out_of_bounds_or_reversed() {
        let h = r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#;
        let e = parse_err(raw_file(h, &[0; 3]));
        assert!(matches!(&e, SafetensorsError::OffsetsOutOfBounds { tensor, end: 4, data_len: 3, .. } if tensor == "a"), "{e}");
        let h = r#"{"a":{"dtype":"U8","shape":[0],"data_offsets":[2,0]}}"#;
        assert!(matches!(parse_err(raw_file(h, &[0; 3])), SafetensorsError::OffsetsReversed { .. }));
    }

    #[test]
    fn shape_size_mismatch() {
        let h = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#;
        let e = parse_err(raw_file(h, &[0; 4]));
        assert!(matches!(e, SafetensorsError::SizeMismatch { expected: 8, actual: 4, .. }), "{e}");
        let mut t = BTreeMap::new();
        t.insert("x".to_string(), OwnedTensor { dtype: Dtype::F32, shape: vec![3], data: vec![0; 4] });
        let e = serialize(&t, &BTreeMap::new(), F).unwrap_err();
        assert!(matches!(e, SafetensorsError::WriteSizeMismatch { expected: 12, actual: 4, .. }), "{e}");
    }

    #[test]
    fn overflowing_shape() {
        let h = format!(r#"{{"a":{{"dtype":"F64","shape":[{},{}],"data_offsets":[0,0]}}}}"#, u64::MAX / 2, 3);
        let e = parse_err(raw_file(&h, &[]));
        assert!(matches!(&e, SafetensorsError::ShapeOverflow { tensor, .. } if tensor == "a"), "{e}");
        // A zero dimension makes the product 0 even with huge other dimensions.
        let h = format!(r#"{{"a":{{"dtype":"F64","shape":[{},0],"data_offsets":[0,0]}}}}"#, u64::MAX);
        assert!(SafeTensors::parse(raw_file(&h, &[]), F).is_ok());
    }

    #[test]
    fn unknown_dtype_is_named() {
        let h = r#"{"a":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}"#;
        let e = parse_err(raw_file(h, &[0]));
        assert!(e.to_string().contains("F8_E4M3") && e.to_string().contains("'a'"), "{e}");
    }

    #[test]
    fn duplicate_key() {
        let h = r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#;
        assert!(matches!(parse_err(raw_file(h, &[0])), SafetensorsError::DuplicateTensor { tensor, .. } if tensor == "a"));
        let h = r#"{"__metadata__":{},"__metadata__":{}}"#;
        assert!(matches!(parse_err(raw_file(h, &[])), SafetensorsError::DuplicateTensor { .. }));
    }

    #[test]
    fn reserved_name_refused_by_writer() {
        let mut t = BTreeMap::new();
        t.insert(METADATA_KEY.to_string(), OwnedTensor { dtype: Dtype::U8, shape: vec![], data: vec![0] });
        assert!(matches!(serialize(&t, &BTreeMap::new(), F), Err(SafetensorsError::ReservedName { .. })));
    }

    #[test]
    fn f16_conversion_is_exact() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        // Every finite f16 against its definition, computed independently in f64.
        for h in 0u16..0x7c00 {
            let (e, m) = (i32::from(h >> 10), f64::from(h & 0x3ff));
            let want = if e == 0 { libm::ldexp(m, -24) } else { libm::ldexp(1024.0 + m, e - 25) };
            assert_eq!(f64::from(f16_to_f32(h)), want, "bits {h:#06x}");
            assert_eq!(f16_to_f32(h | 0x8000), -f16_to_f32(h));
        }
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
        assert_eq!(bf16_to_f32(0xc0a0), -5.0);
        let bytes = [0x00, 0x3c, 0x00, 0xc0];
        let v = TensorView { name: "t", dtype: Dtype::F16, shape: &[2], data: &bytes, file: F };
        assert_eq!(v.to_f32_vec().unwrap(), vec![1.0, -2.0]);
    }

    #[test]
    fn sniffs_pickles() {
        assert!(sniff_pickle(b"PK\x03\x04rest"));
        assert!(sniff_pickle(&[0x80, 0x02, b'}']));
        assert!(!sniff_pickle(&raw_file("{}", &[])));
        assert!(!sniff_pickle(&[]));
    }

    /// A uniform draw below `n`.
    pub(super) fn below(rng: &mut crate::rng::Rng, n: u64) -> usize {
        (rng.next_u64() % n) as usize
    }

    /// The reference crate's view of a file: names, dtypes, shapes and bytes,
    /// or whether it refuses the file.
    pub(super) fn reference(bytes: &[u8]) -> Option<BTreeMap<String, (String, Vec<usize>, Vec<u8>)>> {
        let st = safetensors::SafeTensors::deserialize(bytes).ok()?;
        Some(st.tensors().into_iter().map(|(name, v)| (name, (format!("{:?}", v.dtype()), v.shape().to_vec(), v.data().to_vec()))).collect())
    }

    #[test]
    fn property_round_trip_and_no_panics_on_corruption() {
        let mut rng = crate::rng::Rng::new(42);
        let rng = &mut rng;
        for case in 0..300 {
            let mut tensors = BTreeMap::new();
            for _ in 0..below(rng, 6) {
                let dtype = Dtype::ALL[below(rng, Dtype::ALL.len() as u64)];
                let shape: Vec<usize> = (0..below(rng, 4)).map(|_| below(rng, 5)).collect();
                let n = byte_size(&shape, dtype).unwrap();
                let data = (0..n).map(|_| rng.next_u64() as u8).collect();
                let name = format!("t{}.{}", below(rng, 1000), ["w", "b", "Ä", "__x"][below(rng, 4)]);
                tensors.insert(name, OwnedTensor { dtype, shape, data });
            }
            let mut meta = BTreeMap::new();
            for _ in 0..below(rng, 3) {
                meta.insert(format!("k{}", below(rng, 10)), format!("v\"{}", below(rng, 10)));
            }
            let bytes = serialize(&tensors, &meta, F).unwrap();
            let st = SafeTensors::parse(bytes.clone(), F).unwrap_or_else(|e| panic!("case {case}: {e}"));
            assert_eq!(st.metadata(), &meta);
            let back: BTreeMap<String, OwnedTensor> =
                st.tensors().map(|v| (v.name.to_string(), OwnedTensor { dtype: v.dtype, shape: v.shape.to_vec(), data: v.data.to_vec() })).collect();
            assert_eq!(back, tensors, "case {case}");
            assert_eq!(serialize(&back, st.metadata(), F).unwrap(), bytes, "case {case}: re-serialization differs");
            // The reference reader loads what was written, tensor for tensor.
            let ours: BTreeMap<_, _> = tensors.iter().map(|(k, t)| (k.clone(), (t.dtype.to_string(), t.shape.clone(), t.data.clone()))).collect();
            assert_eq!(reference(&bytes).as_ref(), Some(&ours), "case {case}: the reference crate reads it otherwise");
            // Corruptions must be rejected or accepted, never panic, and
            // nothing the reference reader refuses is accepted.
            let mut bad = bytes.clone();
            let i = below(rng, bad.len() as u64);
            bad[i] = rng.next_u64() as u8;
            if let Ok(st) = SafeTensors::parse(bad.clone(), F) {
                assert!(reference(&bad).is_some_and(|r| r.len() == st.len()), "case {case}: byte {i} corrupted, accepted here only");
            }
            let cut = below(rng, bytes.len() as u64);
            assert!(SafeTensors::parse(bytes[..cut].to_vec(), F).is_err(), "case {case}: truncation at {cut} accepted");
            assert!(reference(&bytes[..cut]).is_none(), "case {case}: truncation at {cut} accepted by the reference");
        }
    }
}
