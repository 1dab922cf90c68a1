//! MLC's parameter layout: `tensor-cache.json` plus `params_shard_{N}.bin`.
//!
//! # Grammar
//!
//! ```text
//! tensor-cache.json = { "metadata": Metadata, "records": [Shard, ...] }   (keys in this order)
//! Metadata = { "ParamSize": int,       number of records
//!              "ParamBytes": float,    sum of numel * itemsize(dtype)
//!              "BitsPerParam": float } ParamBytes * 8.0 / source parameter count
//! Shard    = { "dataPath": "params_shard_{N}.bin", "format": "raw-shard",
//!              "nbytes": int, "records": [Record, ...], "md5sum": hex md5 of the file }
//! Record   = { "name": str, "shape": [int, ...], "dtype": str,
//!              "format": "raw" | "f32-to-bf16", "nbytes": int, "byteOffset": int }
//! ```
//!
//! Shard `N` is listed at position `N`. A shard file is its records' bytes
//! back to back, in listed order, from offset 0 with no gaps; its size is
//! `nbytes`. A record's bytes are the tensor, row-major, little-endian; the
//! format `f32-to-bf16` means a `float32` record is stored as bfloat16
//! (2 bytes per element) and widened on load; for any other dtype it means
//! the same as `raw`.
//!
//! The JSON is `json.dump(..., indent=4)` byte for byte (4-space indent,
//! `", "`-free separators, non-ASCII escaped as `\uXXXX`, floats as Python's
//! `repr`) plus a trailing newline.
//!
//! # Sharding rule (MLC's, kept exactly)
//!
//! With `pending` bytes in the open shard and a record of `len` bytes:
//!
//! - if `pending + len >= cap` and `2 * len >= cap`, the record goes alone
//!   into a new shard that is closed at once ("out of band"), and the open
//!   shard stays open: it takes the next number when it closes, so shard
//!   numbers follow closing order, not record order;
//! - else if `pending + len >= cap`, the open shard is closed and the
//!   record starts a new one;
//! - else the record is appended at `byteOffset = pending`.
//!
//! So shards that hold several records stay strictly below the cap, and a
//! tensor is never split: a record larger than the cap gets its own shard
//! of its own size. This is why: the record format cannot express a tensor
//! spread over two files, MLC's runtime and tools expect this exact
//! placement (so an MLC-produced cache and ours can be compared byte for
//! byte), and the big tensor is still streamed straight to its file.
//!
//! # What MLC does, and where that was read
//!
//! - `apache/tvm` `python/tvm/contrib/tvmjs.py` (the PyPI `apache-tvm`
//!   0.27.0.post1 copy was read and run): `dump_tensor_cache` writes
//!   `tensor-cache.json` (formerly `dump_ndarray_cache` /
//!   `ndarray-cache.json`) as `json.dump({"metadata": ..., "records": ...},
//!   indent=4)` without a trailing newline; `TensorCacheShardingManager`
//!   builds records `{name, shape, dtype, format, nbytes}` and adds
//!   `byteOffset` last, shards `{dataPath, format: "raw-shard", nbytes,
//!   records, md5sum}` named `params_shard_{counter}.bin`; `append_or_update`
//!   holds the rule above (`>=`, `len(data) * 2 >= shard_cap_nbytes`);
//!   `shard_cap_mb=32` by default, in units of `1 << 20` bytes; a duplicate
//!   name is a `ValueError`.
//! - `mlc-ai/mlc-llm` `python/mlc_llm/interface/convert_weight.py`: calls
//!   `dump_tensor_cache(..., meta_data=_metadata_callback,
//!   encode_format="f32-to-bf16")`, so every record MLC writes says
//!   `"format": "f32-to-bf16"`, also its `uint32` and `bfloat16` ones
//!   (seen in real caches in MLC issue threads too); the metadata is
//!   `{"ParamSize": len(param_names), "ParamBytes": total_bytes (a float),
//!   "BitsPerParam": total_bytes * 8.0 / total_params}` where
//!   `total_params` counts the *source* checkpoint's elements.
//! - The runtimes (`tensor_cache_support.cc` in MLC and TVM) only look at
//!   `format` for `float32` records, so `raw` (avac's default, what the
//!   BRIEF asks for) and MLC's `f32-to-bf16` load identically for
//!   everything `q4bf16_1` stores; [`RecordFormat::F32ToBf16`] reproduces
//!   MLC's files exactly.
//!
//! # Where avac differs from tvmjs
//!
//! - Streaming: each record goes straight to its shard file; memory is one
//!   buffered writer, not the whole open shard.
//! - Files are written under temporary names and renamed only by
//!   [`ShardWriter::finish`]; a writer dropped before that (an error, a
//!   panic) removes everything it wrote. A directory that already holds a
//!   cache or shards is refused rather than overwritten.
//! - Refused: empty names, empty tensors (tvmjs silently drops a zero-byte
//!   record that ends up alone in the last shard), unknown dtypes, and data
//!   whose length does not match shape × dtype.
//! - The JSON ends with a newline.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

mod json;
mod writer;

use json::{python_float_repr, PyFormatter};
pub use writer::ShardWriter;

/// Name of the index file.
pub const CACHE_FILE: &str = "tensor-cache.json";
/// Shard files are `{SHARD_PREFIX}_{N}.bin`.
pub const SHARD_PREFIX: &str = "params_shard";
/// MLC's shard cap: 32 MiB.
pub const DEFAULT_SHARD_CAP: u64 = 32 << 20;
/// Largest `tensor-cache.json` that [`TensorCache::read`] accepts.
pub const MAX_JSON_BYTES: u64 = 64 << 20;

/// Why a tensor cache could not be written, read or verified.
#[derive(Debug, thiserror::Error)]
pub enum TensorCacheError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The output directory already holds a cache or shard file.
    #[error("{path} already exists; write a tensor cache into a directory without one")]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// The shard cap is zero.
    #[error("the shard cap must be at least one byte")]
    ZeroCap,
    /// A tensor has an empty name.
    #[error("a tensor has an empty name")]
    EmptyName,
    /// Two tensors share a name.
    #[error("tensor {name:?} appears twice")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// A tensor has no elements.
    #[error("tensor {name:?} is empty; the tensor cache cannot hold zero-byte records")]
    EmptyTensor {
        /// The tensor.
        name: String,
    },
    /// The element count of a shape overflows.
    #[error("tensor {name:?}: the size of shape {shape:?} overflows")]
    ShapeOverflow {
        /// The tensor.
        name: String,
        /// Its shape.
        shape: Vec<u64>,
    },
    /// The data length does not match shape × dtype.
    #[error("tensor {name:?}: shape {shape:?} of {dtype} ({format}) needs {expected} bytes, got {got}")]
    SizeMismatch {
        /// The tensor.
        name: String,
        /// Its shape.
        shape: Vec<u64>,
        /// Its dtype.
        dtype: Dtype,
        /// Its record format.
        format: RecordFormat,
        /// Bytes implied by shape, dtype and format.
        expected: u64,
        /// Bytes given or recorded.
        got: u64,
    },
    /// `finish` was given a source parameter count of zero.
    #[error("the source parameter count is zero, so BitsPerParam is undefined")]
    ZeroSourceParams,
    /// The writer failed earlier and its files are no longer consistent.
    #[error("the shard writer failed earlier; drop it (which removes its files) and start again")]
    Poisoned,
    /// `tensor-cache.json` is not valid.
    #[error("{path}: {source}")]
    Json {
        /// The JSON file.
        path: PathBuf,
        /// The parse error, with line and column.
        source: serde_json::Error,
    },
    /// `tensor-cache.json` is implausibly large.
    #[error("{path} is {len} bytes, more than the {max}-byte limit for a tensor cache index")]
    JsonTooLarge {
        /// The JSON file.
        path: PathBuf,
        /// Its size.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A shard's `dataPath` is not a plain file name.
    #[error("shard dataPath {data_path:?} is not a plain file name in the cache directory")]
    BadDataPath {
        /// The offending path.
        data_path: String,
    },
    /// Two shards name the same file.
    #[error("shard file {data_path:?} is listed twice")]
    DuplicateDataPath {
        /// The repeated path.
        data_path: String,
    },
    /// A record does not start where the previous one ended.
    #[error("{data_path}: record {name:?} starts at byte {byte_offset}, expected {expected} (records are packed back to back)")]
    RecordLayout {
        /// The shard file.
        data_path: String,
        /// The record.
        name: String,
        /// Its recorded offset.
        byte_offset: u64,
        /// Where the previous record ended.
        expected: u64,
    },
    /// A shard's records do not add up to its size.
    #[error("{data_path}: records end at byte {records_end} but the shard says nbytes = {nbytes}")]
    ShardLayout {
        /// The shard file.
        data_path: String,
        /// End of the last record.
        records_end: u64,
        /// The shard's `nbytes`.
        nbytes: u64,
    },
    /// A shard file has the wrong size.
    #[error("{data_path}: file is {actual} bytes, tensor-cache.json says {expected}")]
    ShardSize {
        /// The shard file.
        data_path: String,
        /// Size from the index.
        expected: u64,
        /// Size on disk.
        actual: u64,
    },
    /// A shard file has the wrong md5.
    #[error("{data_path}: md5 is {actual}, tensor-cache.json says {expected}")]
    ShardMd5 {
        /// The shard file.
        data_path: String,
        /// md5 from the index.
        expected: String,
        /// md5 of the file.
        actual: String,
    },
    /// A metadata field disagrees with the records.
    #[error("metadata {field} is {found}, but the records give {expected}")]
    Metadata {
        /// `ParamSize`, `ParamBytes` or `BitsPerParam`.
        field: &'static str,
        /// Value implied by the records.
        expected: String,
        /// Value in the file.
        found: String,
    },
    /// A shard file in the directory is not listed in the index.
    #[error("{file} is in the cache directory but not in tensor-cache.json (a leftover from another build?)")]
    UnreferencedShard {
        /// The file name.
        file: String,
    },
    /// No record has this name.
    #[error("no tensor named {name:?} in the tensor cache")]
    MissingTensor {
        /// The requested name.
        name: String,
    },
}

type Result<T, E = TensorCacheError> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TensorCacheError + '_ {
    move |source| TensorCacheError::Io { path: path.to_path_buf(), source }
}

macro_rules! dtypes {
    ($($variant:ident = $name:literal, $size:literal;)*) => {
        /// Element types, named as TVM names them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum Dtype {
            $(
                #[doc = concat!("`", $name, "`")]
                #[serde(rename = $name)]
                $variant,
            )*
        }

        impl Dtype {
            /// TVM's name for the dtype.
            pub fn name(self) -> &'static str {
                match self { $(Dtype::$variant => $name,)* }
            }

            /// Bytes per element.
            pub fn itemsize(self) -> u64 {
                match self { $(Dtype::$variant => $size,)* }
            }
        }
    };
}

dtypes! {
    Bool = "bool", 1;
    I8 = "int8", 1;
    I16 = "int16", 2;
    I32 = "int32", 4;
    I64 = "int64", 8;
    U8 = "uint8", 1;
    U16 = "uint16", 2;
    U32 = "uint32", 4;
    U64 = "uint64", 8;
    F16 = "float16", 2;
    BF16 = "bfloat16", 2;
    F32 = "float32", 4;
    F64 = "float64", 8;
    F8E4M3FN = "float8_e4m3fn", 1;
    F8E5M2 = "float8_e5m2", 1;
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a record's bytes encode its dtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RecordFormat {
    /// The bytes are the dtype's own.
    #[serde(rename = "raw")]
    Raw,
    /// A `float32` record is stored as bfloat16; other dtypes are raw.
    /// MLC's `convert_weight` labels every record this way.
    #[serde(rename = "f32-to-bf16")]
    F32ToBf16,
}

impl std::fmt::Display for RecordFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecordFormat::Raw => "raw",
            RecordFormat::F32ToBf16 => "f32-to-bf16",
        })
    }
}

/// The only shard format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ShardFormat {
    /// Records back to back.
    #[serde(rename = "raw-shard")]
    RawShard,
}

/// The parsed `tensor-cache.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorCache {
    /// Totals over all records.
    pub metadata: Metadata,
    /// The shards, shard `N` at position `N`.
    pub records: Vec<Shard>,
}

/// MLC's totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Number of records.
    #[serde(rename = "ParamSize")]
    pub param_size: u64,
    /// Sum over records of element count × dtype size.
    #[serde(rename = "ParamBytes")]
    pub param_bytes: f64,
    /// `ParamBytes * 8 / (elements in the source checkpoint)`.
    #[serde(rename = "BitsPerParam")]
    pub bits_per_param: f64,
}

/// One shard file and its records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shard {
    /// File name, relative to the cache directory.
    #[serde(rename = "dataPath")]
    pub data_path: String,
    /// Always `raw-shard`.
    pub format: ShardFormat,
    /// File size.
    pub nbytes: u64,
    /// The records in file order.
    pub records: Vec<Record>,
    /// Lowercase hex md5 of the file.
    pub md5sum: String,
}

/// One tensor inside a shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Parameter name, e.g. `model.layers.0.mlp.down_proj.q_weight`.
    pub name: String,
    /// Shape, outermost first.
    pub shape: Vec<u64>,
    /// Element type.
    pub dtype: Dtype,
    /// Encoding of the bytes.
    pub format: RecordFormat,
    /// Stored size.
    pub nbytes: u64,
    /// Offset inside the shard file.
    #[serde(rename = "byteOffset")]
    pub byte_offset: u64,
}

impl Record {
    /// Element count of `shape` (1 for a scalar), or `None` on overflow.
    pub fn numel(shape: &[u64]) -> Option<u64> {
        shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d))
    }

    /// Stored bytes for `shape`, `dtype` and `format`, or `None` on overflow.
    pub fn stored_nbytes(shape: &[u64], dtype: Dtype, format: RecordFormat) -> Option<u64> {
        let per = if format == RecordFormat::F32ToBf16 && dtype == Dtype::F32 { 2 } else { dtype.itemsize() };
        Record::numel(shape)?.checked_mul(per)
    }
}

impl TensorCache {
    /// Parses `tensor-cache.json` bytes (no file checks; see [`verify`]).
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Reads `dir/tensor-cache.json` (no shard checks; see [`verify`]).
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(CACHE_FILE);
        let file = File::open(&path).map_err(io_err(&path))?;
        let len = file.metadata().map_err(io_err(&path))?.len();
        if len > MAX_JSON_BYTES {
            return Err(TensorCacheError::JsonTooLarge { path, len, max: MAX_JSON_BYTES });
        }
        let mut bytes = Vec::with_capacity(len as usize);
        file.take(MAX_JSON_BYTES + 1).read_to_end(&mut bytes).map_err(io_err(&path))?;
        TensorCache::from_json(&bytes).map_err(|source| TensorCacheError::Json { path, source })
    }

    /// The deterministic JSON: Python's `json.dump(indent=4)` bytes plus a
    /// trailing newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(&mut out, PyFormatter::new());
        self.serialize(&mut ser).expect("serializing to memory cannot fail");
        out.push(b'\n');
        out
    }

    /// The shard and record of a tensor.
    pub fn find(&self, name: &str) -> Option<(&Shard, &Record)> {
        self.records.iter().find_map(|s| s.records.iter().find(|r| r.name == name).map(|r| (s, r)))
    }

    /// Reads one tensor's stored bytes from the cache in `dir`.
    pub fn read_tensor(&self, dir: &Path, name: &str) -> Result<Vec<u8>> {
        let (shard, rec) = self.find(name).ok_or_else(|| TensorCacheError::MissingTensor { name: name.to_string() })?;
        check_data_path(&shard.data_path)?;
        match rec.byte_offset.checked_add(rec.nbytes) {
            Some(end) if end <= shard.nbytes => {}
            _ => {
                return Err(TensorCacheError::ShardLayout {
                    data_path: shard.data_path.clone(),
                    records_end: rec.byte_offset.saturating_add(rec.nbytes),
                    nbytes: shard.nbytes,
                })
            }
        }
        let path = dir.join(&shard.data_path);
        let mut file = File::open(&path).map_err(io_err(&path))?;
        file.seek(SeekFrom::Start(rec.byte_offset)).map_err(io_err(&path))?;
        let mut buf = vec![0u8; usize::try_from(rec.nbytes).map_err(|_| TensorCacheError::ShapeOverflow { name: name.to_string(), shape: rec.shape.clone() })?];
        file.read_exact(&mut buf).map_err(io_err(&path))?;
        Ok(buf)
    }
}

/// Checks a tensor cache directory: the index parses; every shard is a
/// plain, unique file of the stated size and md5; records are unique,
/// sized by shape × dtype, and packed back to back; the metadata totals
/// match; no unlisted `params_shard_*.bin` lies beside it. Returns the
/// index.
pub fn verify(dir: &Path) -> Result<TensorCache> {
    let cache = TensorCache::read(dir)?;
    let mut names = BTreeSet::new();
    let mut paths = BTreeSet::new();
    let mut param_bytes: u64 = 0;
    for shard in &cache.records {
        let data_path = &shard.data_path;
        check_data_path(data_path)?;
        if !paths.insert(data_path.as_str()) {
            return Err(TensorCacheError::DuplicateDataPath { data_path: data_path.clone() });
        }
        let mut end = 0u64;
        for rec in &shard.records {
            if !names.insert(rec.name.as_str()) {
                return Err(TensorCacheError::DuplicateName { name: rec.name.clone() });
            }
            let overflow = || TensorCacheError::ShapeOverflow { name: rec.name.clone(), shape: rec.shape.clone() };
            let expected = Record::stored_nbytes(&rec.shape, rec.dtype, rec.format).ok_or_else(overflow)?;
            if rec.nbytes != expected {
                return Err(TensorCacheError::SizeMismatch {
                    name: rec.name.clone(),
                    shape: rec.shape.clone(),
                    dtype: rec.dtype,
                    format: rec.format,
                    expected,
                    got: rec.nbytes,
                });
            }
            if rec.byte_offset != end {
                return Err(TensorCacheError::RecordLayout {
                    data_path: data_path.clone(),
                    name: rec.name.clone(),
                    byte_offset: rec.byte_offset,
                    expected: end,
                });
            }
            end = end.checked_add(rec.nbytes).ok_or_else(overflow)?;
            let full = Record::numel(&rec.shape).and_then(|n| n.checked_mul(rec.dtype.itemsize())).ok_or_else(overflow)?;
            param_bytes = param_bytes.checked_add(full).ok_or_else(overflow)?;
        }
        if end != shard.nbytes {
            return Err(TensorCacheError::ShardLayout { data_path: data_path.clone(), records_end: end, nbytes: shard.nbytes });
        }
        let path = dir.join(data_path);
        let (actual_len, md5) = md5_file(&path)?;
        if actual_len != shard.nbytes {
            return Err(TensorCacheError::ShardSize { data_path: data_path.clone(), expected: shard.nbytes, actual: actual_len });
        }
        if md5 != shard.md5sum {
            return Err(TensorCacheError::ShardMd5 { data_path: data_path.clone(), expected: shard.md5sum.clone(), actual: md5 });
        }
    }
    let meta = &cache.metadata;
    if meta.param_size != names.len() as u64 {
        return Err(TensorCacheError::Metadata { field: "ParamSize", expected: names.len().to_string(), found: meta.param_size.to_string() });
    }
    if meta.param_bytes != param_bytes as f64 {
        return Err(TensorCacheError::Metadata {
            field: "ParamBytes",
            expected: python_float_repr(param_bytes as f64),
            found: python_float_repr(meta.param_bytes),
        });
    }
    if !(meta.bits_per_param.is_finite() && meta.bits_per_param >= 0.0) {
        return Err(TensorCacheError::Metadata {
            field: "BitsPerParam",
            expected: "a finite non-negative number".into(),
            found: meta.bits_per_param.to_string(),
        });
    }
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let file = entry.map_err(io_err(dir))?.file_name().to_string_lossy().into_owned();
        if is_shard_file_name(&file) && !paths.contains(file.as_str()) {
            return Err(TensorCacheError::UnreferencedShard { file });
        }
    }
    Ok(cache)
}

fn is_shard_file_name(name: &str) -> bool {
    name.strip_prefix(SHARD_PREFIX)
        .and_then(|s| s.strip_prefix('_'))
        .and_then(|s| s.strip_suffix(".bin"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn check_data_path(data_path: &str) -> Result<()> {
    let plain = !data_path.is_empty() && data_path != "." && data_path != ".." && !data_path.contains(['/', '\\', '\0']);
    if plain {
        Ok(())
    } else {
        Err(TensorCacheError::BadDataPath { data_path: data_path.to_string() })
    }
}

fn md5_file(path: &Path) -> Result<(u64, String)> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((len, hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod tests;
