//! ustar packages (`.tar`, `.tar.zst`): entries, then what the entries mean.
//!
//! Both archives are read by [`crate::package::tar::list`], which checks
//! every header and hashes every file; entries are compared by path (type,
//! mode in octal, uid, gid, mtime, size, sha256). Then, for each
//! `tensor-cache.json` present at the same path in both, the tensor records
//! (see [`super::tensor_cache`]), and for each other `.json` entry that
//! differs (`mlc-chat-config.json`, tokenizer files) its keys, as paths
//! like `model_config.vocab_size` or `stop_token_ids[1]`.
//!
//! A `.tar.zst` is decompressed into a temporary file first (at most
//! [`MAX_DECOMPRESSED`] bytes), which is removed afterwards.

use super::{io_err, section, tensor_cache, text, DiffError, Difference, Section};
use crate::package::tar::{self, Entry, Kind};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The largest archive a `.tar.zst` may decompress to.
pub const MAX_DECOMPRESSED: u64 = 64 << 30;
/// The largest JSON entry whose keys are compared.
const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// A listed archive: where its bytes are read, the name it is reported
/// under, and its entries by path.
pub(super) struct Archive {
    read_from: PathBuf,
    pub name: PathBuf,
    pub entries: BTreeMap<String, Entry>,
}

impl Archive {
    fn open(read_from: &Path, name: &Path) -> Result<Archive, tar::TarError> {
        let entries = tar::list(read_from)?.into_iter().map(|e| (e.path.clone(), e)).collect();
        Ok(Archive { read_from: read_from.to_path_buf(), name: name.to_path_buf(), entries })
    }

    /// `len` bytes at `offset` inside the file entry `path` (the caller has
    /// checked that they lie within it).
    pub fn read(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>, DiffError> {
        let e = self.entries.get(path).ok_or_else(|| self.fault(path, "no such entry".into()))?;
        if offset.checked_add(len).is_none_or(|end| end > e.size) {
            return Err(self.fault(path, format!("bytes {offset}..+{len} lie outside the {}-byte entry", e.size)));
        }
        let len = usize::try_from(len).map_err(|_| self.fault(path, format!("{len} bytes cannot be held in memory here")))?;
        let mut f = File::open(&self.read_from).map_err(io_err(&self.name))?;
        f.seek(SeekFrom::Start(e.data_offset + offset)).map_err(io_err(&self.name))?;
        let mut buf = vec![0u8; len];
        f.read_exact(&mut buf).map_err(io_err(&self.name))?;
        Ok(buf)
    }

    /// A fault in an entry of this archive.
    pub fn fault(&self, entry: &str, what: String) -> DiffError {
        DiffError::Package { file: self.name.clone(), entry: entry.to_string(), what }
    }
}

/// The sections of a tar comparison (empty when `same`: the archives are
/// then only checked).
pub(super) fn diff(a: &Path, b: &Path, same: bool) -> Result<Vec<Section>, DiffError> {
    let (xa, xb) = (Archive::open(a, a)?, Archive::open(b, b)?);
    if same {
        return Ok(Vec::new());
    }
    archives(&xa, &xb)
}

/// [`diff`] of two `.tar.zst` files, through temporary decompressed copies.
pub(super) fn diff_zst(a: &Path, b: &Path, same: bool) -> Result<Vec<Section>, DiffError> {
    let (ta, tb) = (decompress(a)?, decompress(b)?);
    let open = |t: &tempfile::NamedTempFile, name: &Path| {
        Archive::open(t.path(), name).map_err(|e| DiffError::Compressed { file: name.to_path_buf(), what: format!("the decompressed archive: {e}") })
    };
    let (xa, xb) = (open(&ta, a)?, open(&tb, b)?);
    if same {
        return Ok(Vec::new());
    }
    archives(&xa, &xb)
}

fn decompress(path: &Path) -> Result<tempfile::NamedTempFile, DiffError> {
    let bad = |what: String| DiffError::Compressed { file: path.to_path_buf(), what };
    let src = File::open(path).map_err(io_err(path))?;
    let mut tmp = tempfile::Builder::new().prefix(".avac-diff-").tempfile().map_err(|e| bad(format!("cannot create a temporary file: {e}")))?;
    let dec = zstd::stream::read::Decoder::new(src).map_err(|e| bad(format!("not a zstd stream: {e}")))?;
    let n = std::io::copy(&mut dec.take(MAX_DECOMPRESSED + 1), tmp.as_file_mut()).map_err(|e| bad(format!("zstd: {e}")))?;
    if n > MAX_DECOMPRESSED {
        return Err(bad(format!("decompresses to more than {MAX_DECOMPRESSED} bytes")));
    }
    Ok(tmp)
}

fn kind(e: &Entry) -> &'static str {
    match e.kind {
        Kind::File => "file",
        Kind::Dir => "directory",
    }
}

fn describe(e: &Entry) -> String {
    match e.kind {
        Kind::File => format!("file, {} bytes, mode {:04o}", e.size, e.mode),
        Kind::Dir => format!("directory, mode {:04o}", e.mode),
    }
}

fn archives(a: &Archive, b: &Archive) -> Result<Vec<Section>, DiffError> {
    let mut out = Vec::new();
    for (p, ea) in &a.entries {
        let Some(eb) = b.entries.get(p) else {
            out.push(Difference::Removed { item: p.clone(), detail: describe(ea) });
            continue;
        };
        let mut field = |f: &str, x: String, y: String| {
            if x != y {
                out.push(Difference::Changed { item: p.clone(), field: f.into(), a: x, b: y });
            }
        };
        field("type", kind(ea).into(), kind(eb).into());
        field("mode", format!("{:04o}", ea.mode), format!("{:04o}", eb.mode));
        field("uid", ea.uid.to_string(), eb.uid.to_string());
        field("gid", ea.gid.to_string(), eb.gid.to_string());
        field("mtime", ea.mtime.to_string(), eb.mtime.to_string());
        if ea.kind == eb.kind {
            field("size", ea.size.to_string(), eb.size.to_string());
            if let (Some(x), Some(y)) = (&ea.sha256, &eb.sha256) {
                field("sha256", x.clone(), y.clone());
            }
        }
    }
    for (p, eb) in b.entries.iter().filter(|(p, _)| !a.entries.contains_key(*p)) {
        out.push(Difference::Added { item: p.clone(), detail: describe(eb) });
    }
    let mut sections = vec![section("entries", out)];
    let both_files = |name: &str| {
        a.entries
            .iter()
            .filter(move |(p, e)| e.kind == Kind::File && (p.as_str() == name || p.ends_with(&format!("/{name}"))))
            .filter(|(p, _)| b.entries.get(*p).is_some_and(|e| e.kind == Kind::File))
            .map(|(p, _)| p.clone())
            .collect::<Vec<_>>()
    };
    for p in both_files(crate::package::tensor_cache::CACHE_FILE) {
        sections.push(section(&p, tensor_cache::diff(a, b, &p)?));
    }
    // Other JSON files that differ (mlc-chat-config.json, tokenizer and
    // build definitions), key by key.
    for (p, ea) in &a.entries {
        let json = p.ends_with(".json") && !p.ends_with(crate::package::tensor_cache::CACHE_FILE) && ea.kind == Kind::File;
        if json && b.entries.get(p).is_some_and(|eb| eb.kind == Kind::File && eb.sha256 != ea.sha256) {
            sections.push(section(p, json_keys(a, b, p)?));
        }
    }
    Ok(sections)
}

/// Leaves of a JSON value by path (`a.b[2]`), as JSON text.
fn flatten(v: &serde_json::Value, path: String, out: &mut BTreeMap<String, String>) {
    match v {
        serde_json::Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                flatten(x, if path.is_empty() { k.clone() } else { format!("{path}.{k}") }, out);
            }
        }
        serde_json::Value::Array(a) if !a.is_empty() => {
            for (i, x) in a.iter().enumerate() {
                flatten(x, format!("{path}[{i}]"), out);
            }
        }
        _ => {
            out.insert(path, v.to_string());
        }
    }
}

/// Key-level differences of a JSON entry present in both archives.
fn json_keys(a: &Archive, b: &Archive, path: &str) -> Result<Vec<Difference>, DiffError> {
    let read = |x: &Archive| -> Result<Option<serde_json::Value>, DiffError> {
        let size = x.entries[path].size;
        if size > MAX_CONFIG_BYTES {
            return Ok(None);
        }
        Ok(serde_json::from_slice(&x.read(path, 0, size)?).ok())
    };
    match (read(a)?, read(b)?) {
        (Some(va), Some(vb)) => {
            let (mut fa, mut fb) = (BTreeMap::new(), BTreeMap::new());
            flatten(&va, String::new(), &mut fa);
            flatten(&vb, String::new(), &mut fb);
            let mut out = Vec::new();
            text::kv_diff(&fa, &fb, false, &mut out);
            Ok(out)
        }
        _ => Ok(vec![Difference::Note { item: path.into(), text: format!("not JSON of at most {MAX_CONFIG_BYTES} bytes on both sides: keys not compared") }]),
    }
}
