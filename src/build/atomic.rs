//! Outputs appear whole or not at all: written beside their final path
//! under a temporary name, then renamed.

use std::path::{Path, PathBuf};

/// The temporary sibling used while `path` is being written.
pub fn tmp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.avac-tmp-{}", std::process::id()))
}

/// Writes `bytes` to `path` atomically.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = tmp_path(path);
    let r = std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, path));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// Copies `from` to `to` atomically.
pub fn copy(from: &Path, to: &Path) -> std::io::Result<()> {
    let tmp = tmp_path(to);
    let r = std::fs::copy(from, &tmp).and_then(|_| std::fs::rename(&tmp, to));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// Creates a directory through `fill` in a temporary sibling, then renames it
/// into place; on failure the temporary directory is removed.
pub fn dir<E>(path: &Path, fill: impl FnOnce(&Path) -> Result<(), E>) -> Result<(), E>
where
    E: From<std::io::Error>,
{
    let tmp = tmp_path(path);
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let r = fill(&tmp).and_then(|_| std::fs::rename(&tmp, path).map_err(E::from));
    if r.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    r
}
