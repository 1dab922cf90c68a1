//! Outputs appear whole or not at all: the one place avac writes a file or a
//! directory that someone else may read, and the one place that names,
//! claims and cleans up temporaries.
//!
//! Every output is written beside its final path under a temporary name
//! `.<name>.avac-tmp-<pid>-<n>` (same directory, so the same file system and
//! the rename is atomic; the process id and a per-process counter keep two
//! writers of one path apart, threads or processes), synced to disk, then
//! renamed into place. On any error, or when an [`AtomicFile`] is dropped
//! without [`AtomicFile::commit`], the temporary is removed: a failed step
//! leaves nothing behind.
//!
//! # Temporaries of dead processes
//!
//! Every temporary avac makes — outputs being written here, scratch
//! directories ([`scratch`]), the store's files in `tmp/` — is named
//! `.<what>.avac-tmp-<pid>-<rest>` and *claimed* while it lives: its owner
//! holds an OS lock (`flock`) on it, which the kernel drops when the owner
//! dies, kill -9 included. [`remove_stale`] removes a temporary only when
//! nobody holds its lock *and* its owner's pid is not alive (or, as the pid
//! may have been reused, it was last modified over an hour ago): a
//! concurrent build's temporaries are never touched. The lock alone is not
//! enough: a temporary exists unlocked for an instant between its creation
//! and its claim. Temporaries are also registered with [`crate::interrupt`],
//! which removes them on Ctrl-C.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// What every temporary's name holds, after `.<what>`.
const MARK: &str = ".avac-tmp-";

/// How old an unclaimed temporary of a live pid must be to be removed (its
/// pid then belongs to another process).
pub const STALE_AFTER: Duration = Duration::from_secs(3600);

/// A fresh temporary sibling of `path`, unique within this machine's
/// running processes.
pub fn tmp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!("{}{n}", tmp_prefix(&name)))
}

/// The start of this process's temporary names for `what`
/// (`.<what>.avac-tmp-<pid>-`), for temporaries named by another crate
/// (`tempfile` adds random characters).
pub fn tmp_prefix(what: &str) -> String {
    format!(".{what}{MARK}{}-", std::process::id())
}

/// The owner's pid, if `name` is a temporary's name.
pub fn tmp_owner(name: &str) -> Option<u32> {
    let rest = &name[name.strip_prefix('.')?.find(MARK)? + 1 + MARK.len()..];
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok()
}

/// A live temporary's claim: an OS lock on it (released by the kernel when
/// the process dies) and its registration with [`crate::interrupt`].
/// Dropping it unregisters the path; remove or rename the temporary first.
#[derive(Debug)]
pub struct Claim {
    path: PathBuf,
    _lock: Option<File>,
}

impl Claim {
    /// Registers `path` before it is created; [`Claim::lock`] it once it exists.
    fn register(path: &Path) -> Claim {
        crate::interrupt::track(path);
        Claim { path: path.to_path_buf(), _lock: None }
    }

    /// Takes the OS lock on the (now existing) temporary. Best effort: where
    /// the file system has no locks, [`remove_stale`] cannot take it either.
    fn lock(mut self) -> Claim {
        if let Ok(f) = File::open(&self.path) {
            if f.lock().is_ok() {
                self._lock = Some(f);
            }
        }
        self
    }

    /// Claims an existing temporary (one named with [`tmp_prefix`]).
    pub fn existing(path: &Path) -> Claim {
        Claim::register(path).lock()
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        crate::interrupt::untrack(&self.path);
    }
}

/// A value owning a temporary (a `tempfile` file or directory) with its
/// [`Claim`]; the value drops first, so the temporary is gone before the
/// claim is released.
#[derive(Debug)]
pub struct Claimed<T> {
    inner: T,
    _claim: Claim,
}

impl<T> Claimed<T> {
    /// Claims the temporary at `path` that `inner` owns.
    pub fn new(inner: T, path: &Path) -> Claimed<T> {
        Claimed { _claim: Claim::existing(path), inner }
    }

    /// The value, releasing the claim (its temporary is about to be renamed).
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T> std::ops::Deref for Claimed<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T> std::ops::DerefMut for Claimed<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

/// A private working directory `$TMPDIR/.<what>.avac-tmp-<pid>-XXXXXX`,
/// removed on drop; the stale ones of dead processes are removed first.
pub fn scratch(what: &str) -> std::io::Result<Claimed<tempfile::TempDir>> {
    let tmp = std::env::temp_dir();
    remove_stale(&tmp);
    let dir = tempfile::Builder::new().prefix(&tmp_prefix(what)).tempdir_in(&tmp)?;
    let path = dir.path().to_path_buf();
    Ok(Claimed::new(dir, &path))
}

/// Removes the temporaries in `dir` (not below it) left by processes that
/// died, and returns how many it removed; see the module docs for when a
/// temporary counts as left behind. Best effort: a directory that cannot be
/// read or an entry that cannot be removed is left as it is.
pub fn remove_stale(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let Some(pid) = tmp_owner(&e.file_name().to_string_lossy()) else {
            continue;
        };
        let path = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        // avac never makes a temporary that is a symlink: not ours.
        if meta.file_type().is_symlink() {
            continue;
        }
        let old = meta.modified().ok().and_then(|m| m.elapsed().ok()).is_some_and(|age| age > STALE_AFTER);
        if pid_alive(pid) && !old {
            continue;
        }
        let Ok(f) = File::open(&path) else {
            continue;
        };
        if f.try_lock().is_ok() && crate::interrupt::remove(&path) {
            removed += 1;
        }
    }
    removed
}

/// Whether a process with this pid exists (in this pid namespace). A pid
/// that does not fit a `pid_t` is taken as alive: nothing is removed for it.
fn pid_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(p) = libc::pid_t::try_from(pid) else {
            return true;
        };
        if p <= 0 {
            return true;
        }
        // SAFETY: signal 0 only checks that the process exists.
        if unsafe { libc::kill(p, 0) } == 0 {
            return true;
        }
        std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Bytes available to this user on the file system holding `dir`.
pub fn available_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: `c` is a valid C string and `st` a valid out pointer.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Holds an exclusive OS lock on the directory `dir` until the returned
/// file drops (waiting for another holder): writers of a set of files in
/// one directory take it so that their sets do not interleave.
pub fn lock_dir(dir: &Path) -> std::io::Result<File> {
    let f = File::open(dir)?;
    f.lock()?;
    Ok(f)
}

/// A file being written to a temporary sibling of its destination; it
/// appears at the destination only on [`AtomicFile::commit`].
#[derive(Debug)]
pub struct AtomicFile {
    file: Option<File>,
    tmp: PathBuf,
    dest: PathBuf,
    _claim: Claim,
}

impl AtomicFile {
    /// Starts writing `dest` (its directory must exist).
    pub fn create(dest: &Path) -> std::io::Result<Self> {
        // A leftover of a dead process with this pid may hold a name: take the next.
        let mut tries = 0;
        loop {
            let tmp = tmp_path(dest);
            let claim = Claim::register(&tmp);
            match File::create_new(&tmp) {
                Ok(file) => return Ok(AtomicFile { file: Some(file), _claim: claim.lock(), tmp, dest: dest.to_path_buf() }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 100 => tries += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// The open temporary file.
    pub fn file(&self) -> &File {
        self.file.as_ref().expect("open until commit")
    }

    /// The destination path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Syncs the data and renames the file into place. On failure the
    /// temporary is removed.
    pub fn commit(mut self) -> std::io::Result<()> {
        let file = self.file.as_ref().expect("open until commit");
        file.sync_all()?;
        // Renamed while still claimed: no cleaner sees it unclaimed.
        std::fs::rename(&self.tmp, &self.dest)?;
        self.file = None;
        sync_parent(&self.dest);
        Ok(())
    }
}

impl AtomicFile {
    /// Like [`AtomicFile::commit`], to a destination chosen only after the
    /// writing (a tensor cache numbers its shards in the order they close).
    /// It must be in the directory given to [`AtomicFile::create`], so that
    /// the rename stays within one file system.
    pub fn commit_as(mut self, dest: &Path) -> std::io::Result<()> {
        if dest.parent() != self.dest.parent() {
            let msg = format!("{} is not beside {}", dest.display(), self.dest.display());
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, msg));
        }
        self.dest = dest.to_path_buf();
        self.commit()
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.as_mut().expect("open until commit").write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().expect("open until commit").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Makes a rename durable where the platform allows it (best effort: not
/// every file system lets a directory be opened and synced).
fn sync_parent(path: &Path) {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if let Ok(d) = File::open(parent) {
            let _ = d.sync_all();
        }
    }
}

/// Writes `bytes` to `path` atomically.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(bytes)?;
    f.commit()
}

/// Copies `from` to `to` atomically.
pub fn copy(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut f = AtomicFile::create(to)?;
    std::io::copy(&mut File::open(from)?, &mut f)?;
    f.commit()
}

/// Creates the directory `path` through `fill` in a temporary sibling, then
/// renames it into place (replacing nothing: an existing `path` is an
/// error of the rename); on failure the temporary directory is removed.
pub fn dir<E>(path: &Path, fill: impl FnOnce(&Path) -> Result<(), E>) -> Result<(), E>
where
    E: From<std::io::Error>,
{
    let tmp = tmp_path(path);
    let claim = Claim::register(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let _claim = claim.lock();
    let r = fill(&tmp).and_then(|_| {
        std::fs::rename(&tmp, path)?;
        sync_parent(path);
        Ok(())
    });
    if r.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn a_file_appears_only_on_commit_and_a_dropped_one_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("a.bin");
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"abc").unwrap();
        assert!(!dest.exists());
        f.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"abc");

        let mut g = AtomicFile::create(&d.path().join("b.bin")).unwrap();
        g.write_all(b"partial").unwrap();
        drop(g);
        assert_eq!(names(d.path()), ["a.bin"]);
    }

    #[test]
    fn a_file_can_be_named_when_it_is_committed() {
        let d = tempfile::tempdir().unwrap();
        let mut f = AtomicFile::create(&d.path().join("shard")).unwrap();
        f.write_all(b"abc").unwrap();
        f.commit_as(&d.path().join("shard_1.bin")).unwrap();
        assert_eq!(names(d.path()), ["shard_1.bin"]);
        let elsewhere = tempfile::tempdir().unwrap();
        let g = AtomicFile::create(&d.path().join("shard")).unwrap();
        assert!(g.commit_as(&elsewhere.path().join("shard_2.bin")).is_err());
        assert_eq!(names(d.path()), ["shard_1.bin"]);
    }

    #[test]
    fn write_and_copy_replace_a_file_whole() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        write(&a, b"one").unwrap();
        write(&a, b"two").unwrap();
        copy(&a, &b).unwrap();
        assert_eq!(std::fs::read(&b).unwrap(), b"two");
        assert_eq!(names(d.path()), ["a", "b"]);
    }

    #[test]
    fn a_failed_directory_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let r: std::io::Result<()> = dir(&out, |t| {
            std::fs::write(t.join("x"), b"x")?;
            Err(std::io::Error::other("fails"))
        });
        assert!(r.is_err());
        assert!(names(d.path()).is_empty());
        dir(&out, |t| std::fs::write(t.join("x"), b"x")).unwrap();
        assert_eq!(names(&out), ["x"]);
    }

    /// The pid of a process that has exited (and been reaped).
    fn dead_pid() -> u32 {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    }

    /// Sets a path's modification time to two hours ago.
    fn age(path: &Path) {
        let t = std::time::SystemTime::now() - Duration::from_secs(7200);
        File::open(path).unwrap().set_modified(t).unwrap();
    }

    #[test]
    fn owners_are_read_from_temporary_names_only() {
        assert_eq!(tmp_owner(".model.onnx.avac-tmp-123-4"), Some(123));
        assert_eq!(tmp_owner(".add.avac-tmp-77-Xy3kQ"), Some(77));
        let own = tmp_path(Path::new("/d/a.bin"));
        assert_eq!(tmp_owner(&own.file_name().unwrap().to_string_lossy()), Some(std::process::id()));
        for name in ["model.onnx", "model.avac-tmp-1-2", ".x.avac-tmp--2", ".x.avac-tmp-12", ".x.avac-tmp-ab-1"] {
            assert_eq!(tmp_owner(name), None, "{name}");
        }
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        let dead = dead_pid();
        std::fs::write(d.path().join(format!(".a.onnx.avac-tmp-{dead}-0")), b"partial").unwrap();
        std::fs::create_dir(d.path().join(format!(".work.avac-tmp-{dead}-1"))).unwrap();
        std::fs::write(d.path().join(format!(".work.avac-tmp-{dead}-1/x")), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", d.path().join(format!(".l.avac-tmp-{dead}-2"))).unwrap();
        std::fs::write(d.path().join("a.onnx"), b"whole").unwrap();
        // Unclaimed but fresh, of a live pid: maybe a writer about to claim it.
        let fresh = tmp_path(&d.path().join("b"));
        std::fs::write(&fresh, b"").unwrap();
        // Being written by this process (claimed), even when old.
        let mut live = AtomicFile::create(&d.path().join("c")).unwrap();
        live.write_all(b"c").unwrap();
        age(&live.tmp);
        assert_eq!(remove_stale(d.path()), 2);
        let mut left = names(d.path());
        left.retain(|n| !n.starts_with(".b.avac-tmp-") && !n.starts_with(".c.avac-tmp-"));
        assert_eq!(left, [format!(".l.avac-tmp-{dead}-2"), "a.onnx".to_string()]);
        live.commit().unwrap();
        // An old unclaimed temporary of a live pid: the pid was reused.
        age(&fresh);
        assert_eq!(remove_stale(d.path()), 1);
        assert!(!fresh.exists());
        assert!(d.path().join("c").exists());
    }

    #[test]
    fn a_directory_being_filled_is_claimed() {
        let d = tempfile::tempdir().unwrap();
        dir(&d.path().join("out"), |t| {
            age(t);
            assert_eq!(remove_stale(d.path()), 0);
            std::fs::write(t.join("x"), b"x")
        })
        .unwrap();
        assert_eq!(names(&d.path().join("out")), ["x"]);
    }

    #[test]
    fn a_scratch_directory_is_claimed_and_removed_on_drop() {
        let s = scratch("avac-unit").unwrap();
        let path = s.path().to_path_buf();
        age(&path);
        remove_stale(path.parent().unwrap());
        assert!(path.is_dir());
        drop(s);
        assert!(!path.exists());
    }

    /// A full disk: the error is ENOSPC and no temporary is left. Needs a
    /// 64 KiB tmpfs (root); elsewhere the test says why it did not run.
    #[test]
    fn a_full_disk_fails_the_write_and_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let m = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"]).arg(d.path()).output();
        match m {
            Ok(o) if o.status.success() => {}
            Ok(o) => return eprintln!("skipped: mount tmpfs failed: {}", String::from_utf8_lossy(&o.stderr).trim()),
            Err(e) => return eprintln!("skipped: no mount: {e}"),
        }
        let big = vec![7u8; 256 * 1024];
        let e = write(&d.path().join("big.bin"), &big).unwrap_err();
        let e2 = copy(&d.path().join("missing"), &d.path().join("c.bin")).unwrap_err();
        let left = names(d.path());
        let _ = std::process::Command::new("umount").arg(d.path()).status();
        assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "{e}");
        assert_eq!(e2.kind(), std::io::ErrorKind::NotFound, "{e2}");
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn temporary_names_are_unique_siblings() {
        let p = Path::new("/x/y/model.onnx");
        let (a, b) = (tmp_path(p), tmp_path(p));
        assert_ne!(a, b);
        assert_eq!(a.parent(), p.parent());
        assert!(a.file_name().unwrap().to_string_lossy().starts_with(".model.onnx.avac-tmp-"));
    }
}
