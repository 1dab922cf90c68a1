//! The content-addressed store: `root/sha256/<hex>` blobs, written through
//! `root/tmp/` and renamed into place once their digest is checked.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::error::{io_err, Result, StoreError};
use super::source::is_sha256_hex;
use crate::atomic::{tmp_prefix, Claimed};

/// Streaming buffer size: large enough for throughput, small enough that
/// multi-GB files never sit in memory.
const BUF: usize = 1 << 20;

/// A content-addressed blob store rooted at a directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store at `root`, removing what dead
    /// processes left in `tmp/`: their temporaries and entry locks (a
    /// partial download is kept, to be resumed).
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        for dir in [root.join("sha256"), root.join("tmp")] {
            fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        }
        let store = Store { root };
        store.remove_stale();
        Ok(store)
    }

    /// Best effort: temporaries of dead processes, and lock files nobody
    /// holds (a holder killed with SIGKILL could not remove its own).
    fn remove_stale(&self) {
        let tmp = self.tmp_dir();
        crate::atomic::remove_stale(&tmp);
        let Ok(entries) = fs::read_dir(&tmp) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(sha) = name.strip_suffix(".lock").filter(|s| is_sha256_hex(s)) {
                // Taken and dropped: the guard removes the file it holds.
                let _ = self.entry_lock(sha, false);
            }
        }
    }

    /// `AVAC_STORE`, else `$XDG_CACHE_HOME/avac/store`, else
    /// `$HOME/.cache/avac/store`. Relative `XDG_CACHE_HOME` values are
    /// ignored, as the XDG spec requires.
    pub fn default_root() -> Result<PathBuf> {
        root_from(|k| std::env::var_os(k))
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with this digest lives (whether or not it exists).
    pub fn blob_path(&self, sha256: &str) -> Result<PathBuf> {
        if !is_sha256_hex(sha256) {
            return Err(StoreError::BadDigest { digest: sha256.to_owned() });
        }
        Ok(self.root.join("sha256").join(sha256))
    }

    /// Whether a blob with this digest is present (not re-hashed; a
    /// symlink is not a blob).
    pub fn contains(&self, sha256: &str) -> bool {
        self.blob_path(sha256).is_ok_and(|p| is_regular(&p))
    }

    /// Re-hashes a present blob; `Ok(None)` when it is absent. An entry
    /// that is not what the store wrote — bytes with another digest, a
    /// symlink (never followed: it could lead anywhere), a directory — is
    /// removed with a warning and reported absent, so that it is fetched
    /// again; [`StoreError::CorruptBlob`] when it cannot be removed. Call
    /// it holding the entry's lock ([`Store::lock_entry`]).
    pub fn verify(&self, sha256: &str) -> Result<Option<PathBuf>> {
        let path = self.blob_path(sha256)?;
        let meta = match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            r => r.map_err(io_err("stat", &path))?,
        };
        let why = if meta.file_type().is_symlink() {
            "is a symlink, not a blob of the store".to_owned()
        } else if !meta.is_file() {
            "is not a regular file".to_owned()
        } else {
            let mut f = open_no_follow(&path)?;
            let mut h = Sha256::new();
            hash_into(&mut f, &mut h).map_err(io_err("read", &path))?;
            let actual = hex::encode(h.finalize());
            if actual == sha256 {
                return Ok(Some(path));
            }
            format!("is corrupt (its bytes have sha256 {actual})")
        };
        let removed = if meta.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
        if let Err(e) = removed {
            return Err(StoreError::CorruptBlob { path, why: format!("{why}; removing it failed: {e}") });
        }
        eprintln!("warning: store entry `{}` {why}; removed it, fetching it again", path.display());
        Ok(None)
    }

    /// Copies `path` into the store if it hashes to `expected_sha256`.
    /// `name` is the source the file is for (used in errors). Nothing is
    /// left behind on failure.
    pub fn add_file(&self, name: &str, path: &Path, expected_sha256: &str) -> Result<PathBuf> {
        let dest = self.blob_path(expected_sha256)?;
        let mut src = File::open(path).map_err(io_err("open", path))?;
        let mut tmp = self.temp_file()?;
        let tmp_name = tmp.path().to_owned();
        let (actual, _) = copy_hashing(&mut src, tmp.as_file_mut(), path, &tmp_name)?;
        if actual != expected_sha256 {
            return Err(StoreError::HashMismatch { name: name.to_owned(), file: path.display().to_string(), expected: expected_sha256.to_owned(), actual });
        }
        let tmp_path = tmp.into_inner().into_temp_path();
        self.adopt(&tmp_path, &dest)?;
        // The rename consumed the file; keep the guard from deleting a
        // same-named successor.
        let _ = tmp_path.keep();
        Ok(dest)
    }

    /// Moves an already-verified file from `tmp/` to its blob name,
    /// read-only. If the blob already exists the file is dropped.
    pub(crate) fn adopt(&self, verified: &Path, dest: &Path) -> Result<()> {
        make_read_only(verified).map_err(io_err("set permissions of", verified))?;
        // A symlink in its place is replaced, not trusted.
        if is_regular(dest) {
            fs::remove_file(verified).map_err(io_err("remove", verified))?;
            return Ok(());
        }
        fs::rename(verified, dest).map_err(io_err("rename into store", dest))
    }

    /// A fresh, uniquely named temp file inside the store (same filesystem
    /// as the blobs, so the final rename is atomic).
    /// Claimed ([`crate::atomic`]), so that it is removed if this process
    /// dies and never while it lives.
    pub(crate) fn temp_file(&self) -> Result<Claimed<tempfile::NamedTempFile>> {
        let dir = self.tmp_dir();
        let f = tempfile::Builder::new().prefix(&tmp_prefix("add")).tempfile_in(&dir).map_err(io_err("create temp file in", dir))?;
        let path = f.path().to_owned();
        Ok(Claimed::new(f, &path))
    }

    /// A fresh temp directory inside the store, claimed like [`Store::temp_file`].
    pub(crate) fn temp_dir(&self, what: &str) -> Result<Claimed<tempfile::TempDir>> {
        let dir = self.tmp_dir();
        let d = tempfile::Builder::new().prefix(&tmp_prefix(what)).tempdir_in(&dir).map_err(io_err("create temp directory in", dir))?;
        let path = d.path().to_owned();
        Ok(Claimed::new(d, &path))
    }

    /// Holds the store entry `sha256` for this process until the guard is
    /// dropped: a second process fetching the same source waits here, then
    /// finds the blob the first one adopted instead of sharing its partial
    /// download. An OS file lock, so it is released when a holder dies
    /// (kill -9 included) and never goes stale; the lock file is removed
    /// when the guard drops, so the store keeps nothing but its blobs.
    pub(crate) fn lock_entry(&self, sha256: &str) -> Result<EntryLock> {
        Ok(self.entry_lock(sha256, true)?.expect("a waiting lock is taken"))
    }

    /// [`Store::lock_entry`]; without `wait`, `None` when another holds it.
    fn entry_lock(&self, sha256: &str, wait: bool) -> Result<Option<EntryLock>> {
        let path = self.tmp_dir().join(format!("{sha256}.lock"));
        // Ctrl-C removes it with the process's temporaries.
        crate::interrupt::track(&path);
        let locked = self.entry_lock_at(&path, wait);
        if !matches!(locked, Ok(Some(_))) {
            crate::interrupt::untrack(&path);
        }
        locked
    }

    fn entry_lock_at(&self, path: &Path, wait: bool) -> Result<Option<EntryLock>> {
        use std::os::unix::fs::MetadataExt;
        let path = path.to_path_buf();
        loop {
            let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io_err("open lock", &path))?;
            if wait {
                file.lock().map_err(io_err("lock", &path))?;
            } else if file.try_lock().is_err() {
                return Ok(None);
            }
            // The previous holder may have removed the file between our open
            // and our lock: the lock counts only on the file the path names.
            let held = file.metadata().map_err(io_err("stat lock", &path))?;
            match fs::metadata(&path) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => return Ok(Some(EntryLock { file, path })),
                _ => continue,
            }
        }
    }

    /// Where a resumable download keyed by `key` accumulates.
    pub(crate) fn partial_path(&self, key: &str) -> PathBuf {
        self.tmp_dir().join(format!("{key}.partial"))
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }
}

/// An exclusive, inter-process lock on one store entry ([`Store::lock_entry`]).
#[derive(Debug)]
pub(crate) struct EntryLock {
    file: File,
    path: PathBuf,
}

impl Drop for EntryLock {
    fn drop(&mut self) {
        // Removed while still locked, so a waiter that then locks the
        // removed file sees that the path names another file and retries.
        let _ = fs::remove_file(&self.path);
        let _ = self.file.unlock();
        crate::interrupt::untrack(&self.path);
    }
}

/// Whether `path` is a regular file itself (not through a symlink).
fn is_regular(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
}

/// Opens a blob for reading, refusing a symlink put there meanwhile.
fn open_no_follow(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path).map_err(io_err("open", path))
}

fn root_from(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<PathBuf> {
    let nonempty = |k: &str| var(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(p) = nonempty("AVAC_STORE") {
        return Ok(p);
    }
    if let Some(p) = nonempty("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return Ok(p.join("avac").join("store"));
    }
    if let Some(p) = nonempty("HOME") {
        return Ok(p.join(".cache").join("avac").join("store"));
    }
    Err(StoreError::NoStoreRoot)
}

#[cfg(test)]
pub(crate) fn root_from_for_test(vars: &[(&str, &str)]) -> Result<PathBuf> {
    root_from(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).into()))
}

/// Makes a file read-only (0444 on unix, whatever the umask).
fn make_read_only(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    let perms = {
        use std::os::unix::fs::PermissionsExt;
        fs::Permissions::from_mode(0o444)
    };
    #[cfg(not(unix))]
    let perms = {
        let mut p = fs::metadata(path)?.permissions();
        p.set_readonly(true);
        p
    };
    fs::set_permissions(path, perms)
}

/// sha256 (lowercase hex) and length of a file, streamed.
pub fn hash_file(path: &Path) -> Result<(String, u64)> {
    let mut f = File::open(path).map_err(io_err("open", path))?;
    let mut h = Sha256::new();
    let n = hash_into(&mut f, &mut h).map_err(io_err("read", path))?;
    Ok((hex::encode(h.finalize()), n))
}

/// Feeds a reader into a hasher; returns the byte count.
pub(crate) fn hash_into(r: &mut impl Read, h: &mut Sha256) -> io::Result<u64> {
    let mut buf = vec![0u8; BUF];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..k]);
        n += k as u64;
    }
}

/// Copies `r` to `w` while hashing; returns digest and length. The paths
/// only label errors.
pub(crate) fn copy_hashing(r: &mut impl Read, w: &mut impl Write, from: &Path, to: &Path) -> Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; BUF];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err("read", from)(e)),
        };
        h.update(&buf[..k]);
        w.write_all(&buf[..k]).map_err(io_err("write", to))?;
        n += k as u64;
    }
    w.flush().map_err(io_err("write", to))?;
    Ok((hex::encode(h.finalize()), n))
}

/// sha256 (lowercase hex) of bytes in memory.
pub fn hash_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
