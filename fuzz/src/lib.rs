//! Helpers shared by the fuzz targets: the readers that take a path get the
//! input through one scratch file per process, and `avac diff` compares it
//! against small reference files.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The process's scratch directory (removed at exit only when the fuzzer
/// exits cleanly; it lives under `$TMPDIR`, so point that at a tmpfs).
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::Builder::new().prefix("avac-fuzz-").tempdir().expect("a scratch directory")).path()
}

/// Writes `data` to `scratch()/name`, replacing what the last run left.
pub fn write_input(name: &str, data: &[u8]) -> PathBuf {
    let path = scratch().join(name);
    std::fs::write(&path, data).expect("write the fuzz input");
    path
}

/// A fresh, empty directory under the scratch directory (for extraction).
pub fn empty_dir(name: &str) -> PathBuf {
    let path = scratch().join(name);
    if path.exists() {
        std::fs::remove_dir_all(&path).expect("clear the scratch directory");
    }
    path
}

/// `fuzz/refs/<name>`: a small real file of each kind `avac diff` reads.
pub fn reference(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("refs").join(name);
    assert!(path.is_file(), "missing reference file {} (run fuzz/seed.sh)", path.display());
    path
}
