//! The streaming writer: records go straight to shard files written
//! through [`AtomicFile`]; `finish` commits them under their final names.

use std::collections::BTreeSet;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::atomic::AtomicFile;

use md5::{Digest, Md5};

use super::{
    io_err, is_shard_file_name, Dtype, Metadata, Record, RecordFormat, Result, Shard, ShardFormat, TensorCache, TensorCacheError, CACHE_FILE, SHARD_PREFIX,
};

/// Streams tensors into shard files and writes `tensor-cache.json`.
///
/// Memory is one buffered file writer whatever the number and size of the
/// tensors. Nothing is visible under its final name before
/// [`ShardWriter::finish`] succeeds; dropping the writer earlier removes
/// all its files.
pub struct ShardWriter {
    dir: PathBuf,
    cap: u64,
    format: RecordFormat,
    shards: Vec<Shard>,
    /// Each closed shard, uncommitted (dropping one removes it), in shard order.
    shard_files: Vec<AtomicFile>,
    open: Option<OpenShard>,
    names: BTreeSet<String>,
    param_bytes: u64,
    /// Files already renamed into place by a `finish` that then failed.
    published: Vec<PathBuf>,
    poisoned: bool,
    done: bool,
}

struct OpenShard {
    /// What errors name until the shard's number is known at close.
    name: PathBuf,
    file: BufWriter<AtomicFile>,
    md5: Md5,
    nbytes: u64,
    records: Vec<Record>,
}

impl ShardWriter {
    /// A writer into `dir` (created if missing) with a shard cap in bytes
    /// ([`DEFAULT_SHARD_CAP`](super::DEFAULT_SHARD_CAP) is MLC's), labelling records `raw`. Refuses a
    /// directory that already holds `tensor-cache.json` or a shard.
    pub fn new(dir: &Path, cap: u64) -> Result<Self> {
        if cap == 0 {
            return Err(TensorCacheError::ZeroCap);
        }
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let name = entry.map_err(io_err(dir))?.file_name().to_string_lossy().into_owned();
            if name == CACHE_FILE || is_shard_file_name(&name) {
                return Err(TensorCacheError::Exists { path: dir.join(name) });
            }
        }
        Ok(ShardWriter {
            dir: dir.to_path_buf(),
            cap,
            format: RecordFormat::Raw,
            shards: Vec::new(),
            shard_files: Vec::new(),
            open: None,
            names: BTreeSet::new(),
            param_bytes: 0,
            published: Vec::new(),
            poisoned: false,
            done: false,
        })
    }

    /// Labels every record with `format` instead of `raw`;
    /// [`RecordFormat::F32ToBf16`] reproduces MLC's `convert_weight` output
    /// (and then a `float32` tensor must be given as bfloat16 bytes).
    pub fn with_record_format(mut self, format: RecordFormat) -> Self {
        self.format = format;
        self
    }

    /// Appends one tensor (row-major, little-endian bytes as stored).
    pub fn add(&mut self, name: &str, shape: &[usize], dtype: Dtype, bytes: &[u8]) -> Result<()> {
        if self.poisoned {
            return Err(TensorCacheError::Poisoned);
        }
        if name.is_empty() {
            return Err(TensorCacheError::EmptyName);
        }
        if self.names.contains(name) {
            return Err(TensorCacheError::DuplicateName { name: name.to_string() });
        }
        let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let overflow = || TensorCacheError::ShapeOverflow { name: name.to_string(), shape: shape.clone() };
        let expected = Record::stored_nbytes(&shape, dtype, self.format).ok_or_else(overflow)?;
        let full = Record::numel(&shape).and_then(|n| n.checked_mul(dtype.itemsize())).ok_or_else(overflow)?;
        let len = bytes.len() as u64;
        if len != expected {
            return Err(TensorCacheError::SizeMismatch { name: name.to_string(), shape, dtype, format: self.format, expected, got: len });
        }
        if len == 0 {
            return Err(TensorCacheError::EmptyTensor { name: name.to_string() });
        }
        let param_bytes = self.param_bytes.checked_add(full).ok_or_else(overflow)?;
        let record = Record { name: name.to_string(), shape, dtype, format: self.format, nbytes: len, byte_offset: 0 };
        let r = self.place(record, bytes);
        if r.is_err() {
            self.poisoned = true;
        } else {
            self.names.insert(name.to_string());
            self.param_bytes = param_bytes;
        }
        r
    }

    fn place(&mut self, mut record: Record, bytes: &[u8]) -> Result<()> {
        let len = record.nbytes;
        let pending = self.open.as_ref().map_or(0, |s| s.nbytes);
        if pending.saturating_add(len) >= self.cap {
            if len.saturating_mul(2) >= self.cap {
                // Out of band: alone in a shard closed now; the open one stays open.
                let mut shard = self.open_shard()?;
                shard.append(record, bytes)?;
                return self.close(shard);
            }
            if let Some(shard) = self.open.take() {
                self.close(shard)?;
            }
        }
        if self.open.is_none() {
            self.open = Some(self.open_shard()?);
        }
        let shard = self.open.as_mut().expect("opened above");
        record.byte_offset = shard.nbytes;
        shard.append(record, bytes)
    }

    fn open_shard(&mut self) -> Result<OpenShard> {
        // Shards are numbered as they close, so the final name is given at commit.
        let name = self.dir.join(SHARD_PREFIX);
        let file = AtomicFile::create(&name).map_err(io_err(&name))?;
        Ok(OpenShard { name, file: BufWriter::with_capacity(1 << 16, file), md5: Md5::new(), nbytes: 0, records: Vec::new() })
    }

    fn close(&mut self, shard: OpenShard) -> Result<()> {
        let OpenShard { name, file, md5, nbytes, records } = shard;
        let file = file.into_inner().map_err(|e| e.into_error()).map_err(io_err(&name))?;
        self.shard_files.push(file);
        let data_path = format!("{SHARD_PREFIX}_{}.bin", self.shards.len());
        self.shards.push(Shard { data_path, format: ShardFormat::RawShard, nbytes, records, md5sum: hex::encode(md5.finalize()) });
        Ok(())
    }

    /// Closes the last shard, writes `tensor-cache.json` and renames every
    /// file into place. `source_params` is the element count of the source
    /// checkpoint's tensors (before fusing or quantizing), from which MLC
    /// computes `BitsPerParam`.
    pub fn finish(mut self, source_params: u64) -> Result<TensorCache> {
        if self.poisoned {
            return Err(TensorCacheError::Poisoned);
        }
        if source_params == 0 {
            return Err(TensorCacheError::ZeroSourceParams);
        }
        if let Some(shard) = self.open.take() {
            self.close(shard)?;
        }
        let param_bytes = self.param_bytes as f64;
        let cache = TensorCache {
            metadata: Metadata { param_size: self.names.len() as u64, param_bytes, bits_per_param: param_bytes * 8.0 / source_params as f64 },
            records: std::mem::take(&mut self.shards),
        };
        let json_path = self.dir.join(CACHE_FILE);
        let mut json = AtomicFile::create(&json_path).map_err(io_err(&json_path))?;
        json.write_all(&cache.to_json()).map_err(io_err(&json_path))?;
        let files = std::mem::take(&mut self.shard_files).into_iter().chain([json]);
        for (name, file) in cache.records.iter().map(|s| s.data_path.as_str()).chain([CACHE_FILE]).zip(files) {
            let dest = self.dir.join(name);
            file.commit_as(&dest).map_err(io_err(&dest))?;
            self.published.push(dest);
        }
        self.done = true;
        Ok(cache)
    }
}

impl OpenShard {
    fn append(&mut self, record: Record, bytes: &[u8]) -> Result<()> {
        self.file.write_all(bytes).map_err(io_err(&self.name))?;
        self.md5.update(bytes);
        self.nbytes += record.nbytes;
        self.records.push(record);
        Ok(())
    }
}

impl Drop for ShardWriter {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Uncommitted shards remove themselves as they drop.
        drop(self.open.take());
        for path in &self.published {
            let _ = std::fs::remove_file(path);
        }
    }
}
