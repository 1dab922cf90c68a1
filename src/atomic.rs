//! Outputs appear whole or not at all: the one place avac writes a file or a
//! directory that someone else may read.
//!
//! Every output is written beside its final path under a temporary name
//! `.<name>.avac-tmp-<pid>-<n>` (same directory, so the same file system and
//! the rename is atomic; the process id and a per-process counter keep two
//! writers of one path apart, threads or processes), synced to disk, then
//! renamed into place. On any error, or when an [`AtomicFile`] is dropped
//! without [`AtomicFile::commit`], the temporary is removed: a failed step
//! leaves nothing behind.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh temporary sibling of `path`, unique within this machine's
/// running processes.
pub fn tmp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.avac-tmp-{}-{n}", std::process::id()))
}

/// A file being written to a temporary sibling of its destination; it
/// appears at the destination only on [`AtomicFile::commit`].
#[derive(Debug)]
pub struct AtomicFile {
    file: Option<File>,
    tmp: PathBuf,
    dest: PathBuf,
}

impl AtomicFile {
    /// Starts writing `dest` (its directory must exist).
    pub fn create(dest: &Path) -> std::io::Result<Self> {
        let tmp = tmp_path(dest);
        let file = File::create_new(&tmp)?;
        Ok(AtomicFile { file: Some(file), tmp, dest: dest.to_path_buf() })
    }

    /// The open temporary file.
    pub fn file(&self) -> &File {
        self.file.as_ref().expect("open until commit")
    }

    /// The destination path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Syncs the data and renames the file into place.
    pub fn commit(mut self) -> std::io::Result<()> {
        let file = self.file.take().expect("open until commit");
        file.sync_all()?;
        drop(file);
        std::fs::rename(&self.tmp, &self.dest)?;
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
    std::fs::create_dir_all(&tmp)?;
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

    #[test]
    fn temporary_names_are_unique_siblings() {
        let p = Path::new("/x/y/model.onnx");
        let (a, b) = (tmp_path(p), tmp_path(p));
        assert_ne!(a, b);
        assert_eq!(a.parent(), p.parent());
        assert!(a.file_name().unwrap().to_string_lossy().starts_with(".model.onnx.avac-tmp-"));
    }
}
