//! `avac build TARGET`: the local, hermetic runner.
//!
//! Sources are verified and materialised into a scratch directory; each
//! pipeline step then runs as its own `avac aon <step>` process with a
//! cleared environment, the scratch directory as working directory and only
//! relative paths, exactly as a Nix derivation would run it. Only when every
//! step (validation included) succeeds are the artifact, its validation and
//! optimization reports and its provenance renamed into the output directory.
//!
//! Builds may be killed and may run side by side: the output directory is
//! checked (a directory, writable) and cleared of dead builds' temporaries
//! before anything runs; the scratch directory is a claimed temporary
//! ([`atomic::scratch`]); a step dies with its build; publishing holds the
//! output directory's lock, so two builds' files never interleave, and
//! first checks that the files fit, so a full disk publishes nothing.

use super::plan;
use crate::atomic;
use crate::declaration::{DeclError, Loaded, EMBEDDED_FILES};
use crate::provenance::{self, Engine};
use crate::store::{self, FetchOptions, Source, Store};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How to build.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// Output directory (created if missing).
    pub out: PathBuf,
    /// Never touch the network.
    pub offline: bool,
    /// Seed the store from this directory.
    pub from: Option<PathBuf>,
    /// Threads for each step (results do not depend on it).
    pub threads: usize,
    /// The store root.
    pub store: PathBuf,
    /// The avac executable that runs the steps.
    pub exe: PathBuf,
    /// A Python with onnxruntime for the validation report's latency figures (not part of any digest).
    pub ort_python: Option<PathBuf>,
}

/// What a build produced.
#[derive(Clone, Debug)]
pub struct BuildResult {
    /// `(path, sha256)` of each deterministic output, artifact first.
    pub outputs: Vec<(PathBuf, String)>,
    /// The validation report's path.
    pub report: PathBuf,
}

/// Failures building a target.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Declaration error (unknown target, …).
    #[error(transparent)]
    Decl(#[from] DeclError),
    /// A source is not pinned yet.
    #[error("source {source_name} of target {target} is not locked (no sha256 pin)\nhelp: on a machine that can reach it, set its pinned revision in rules/targets.toml and run `avac lock {source_name}`, then commit the pin")]
    Unlocked {
        /// The target.
        target: String,
        /// The source.
        source_name: String,
    },
    /// Store or fetch error.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// Fixture generation error.
    #[error("source {source_name}: {source}")]
    Generate {
        /// The source.
        source_name: String,
        /// The generator's error.
        source: crate::fixtures::FixtureError,
    },
    /// A generated tree does not match its pin.
    #[error("source {source_name}: generated tree digest {actual} does not match the pinned {expected}")]
    GeneratedDigest {
        /// The source.
        source_name: String,
        /// Pinned digest.
        expected: String,
        /// Digest produced.
        actual: String,
    },
    /// A step succeeded without producing an output its plan declares.
    #[error("step `{step}` of target {target} did not produce {path}")]
    MissingOutput {
        /// The target.
        target: String,
        /// The step.
        step: String,
        /// The declared work path.
        path: String,
    },
    /// A step failed.
    #[error("step `{step}` of target {target} failed:\n{stderr}")]
    Step {
        /// The target.
        target: String,
        /// The step.
        step: String,
        /// What the step printed.
        stderr: String,
    },
    /// The output directory is unusable: not a directory, or not writable.
    #[error("output directory `{}`: {source}\nhelp: give --out a writable directory", dir.display())]
    OutDir {
        /// The directory given.
        dir: PathBuf,
        /// Why it cannot be written.
        source: std::io::Error,
    },
    /// The outputs do not fit in the output directory's file system.
    #[error("no space left on device for the outputs in `{}`: they need {need} bytes, {available} are available\nhelp: free space there or choose another --out; nothing was published", dir.display())]
    NoSpace {
        /// The output directory.
        dir: PathBuf,
        /// Bytes publishing needs at its peak.
        need: u64,
        /// Bytes available.
        available: u64,
    },
    /// Writing an output failed (its temporary was removed).
    #[error("writing `{}`: {source}{}", path.display(), if source.kind() == std::io::ErrorKind::StorageFull { "\nhelp: the file system is full: free space and build again; the file was not written" } else { "" })]
    Write {
        /// The output.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// I/O error.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

impl From<std::io::Error> for BuildError {
    fn from(source: std::io::Error) -> Self {
        BuildError::Io { what: "writing outputs".into(), source }
    }
}

/// An I/O error while doing `what`.
pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BuildError {
    let what = what.into();
    move |source| BuildError::Io { what, source }
}

/// Builds `name` from the declaration `l`.
pub fn build(l: &Loaded, name: &str, o: &BuildOptions) -> Result<BuildResult, BuildError> {
    let target = l.target(name)?;
    for s in l.inputs_of(target) {
        if !l.decl.sources[s].is_locked() {
            return Err(BuildError::Unlocked { target: name.into(), source_name: s.into() });
        }
    }
    let mut plan = plan::plan(l, name)?;
    if let Some(py) = &o.ort_python {
        // onnxruntime latency: a figure outside every digest, so not part of the plan.
        if let Some(v) = plan.steps.iter_mut().find(|s| s.name == "validate" && s.args.first().is_some_and(|a| a == "aon")) {
            v.args.extend(["--ort-python".to_string(), py.to_str().unwrap_or("python3").to_string()]);
        }
    }
    prepare_out(&o.out)?;
    let scratch = atomic::scratch("avac-build").map_err(io("creating the scratch directory"))?;
    let root = scratch.path();
    let repo_root = match &l.repo_root {
        Some(r) => r.clone(),
        None => {
            let r = root.join("embedded");
            for (path, bytes) in EMBEDDED_FILES {
                let p = r.join(path);
                std::fs::create_dir_all(p.parent().expect("relative path")).map_err(io("unpacking embedded files"))?;
                std::fs::write(&p, bytes).map_err(io("unpacking embedded files"))?;
            }
            r
        }
    };
    let mut fetch = FetchOptions::from_env(&repo_root);
    fetch.offline = o.offline;
    fetch.from = o.from.clone();
    let store = Store::open(&o.store)?;
    std::fs::create_dir_all(root.join("work")).map_err(io("creating the work directory"))?;
    for (source, dir) in plan.sources() {
        materialize(&store, &fetch, &l.decl.sources, source, &root.join(dir))?;
    }
    for f in &plan.files {
        std::fs::write(root.join(&f.path), &f.bytes).map_err(io(format!("writing {}", f.path)))?;
    }
    let threads = o.threads.to_string();
    for step in &plan.steps {
        let mut cmd = Command::new(&o.exe);
        cmd.env_clear().envs(&step.env).current_dir(root).args(["--threads", &threads]).args(&step.args);
        let (status, stderr) = crate::interrupt::run_child(&mut cmd).map_err(io(format!("running step {}", step.name)))?;
        if !status.success() {
            return Err(BuildError::Step { target: name.into(), step: step.name.into(), stderr: String::from_utf8_lossy(&stderr).trim_end().into() });
        }
        if let Some(path) = step.outputs.iter().find(|p| !root.join(p).exists()) {
            return Err(BuildError::MissingOutput { target: name.into(), step: step.name.into(), path: path.clone() });
        }
    }

    // Publish: every output renamed into place, the artifact last.
    let mut digests = Vec::new();
    for p in plan.publish.iter().filter(|p| p.deterministic) {
        digests.push((p.name.clone(), store::hash_file(&root.join(&p.path))?.0));
    }
    let avac_sha256 = store::hash_file(&o.exe)?.0;
    let provenance = provenance::statement(&plan.definition, &digests, Engine::Local, &avac_sha256, provenance::source_date().as_deref());
    let prov_path = o.out.join(format!("{}.provenance.json", target.artifact()));
    std::fs::create_dir_all(&o.out).map_err(|source| BuildError::OutDir { dir: o.out.clone(), source })?;
    let _publishing = atomic::lock_dir(&o.out).map_err(|source| BuildError::OutDir { dir: o.out.clone(), source })?;
    let mut files: Vec<(PathBuf, PathBuf)> = plan.publish.iter().rev().map(|p| (root.join(&p.path), o.out.join(&p.name))).collect();
    let prov_tmp = root.join(".provenance.json");
    std::fs::write(&prov_tmp, &provenance).map_err(io("writing the provenance statement"))?;
    files.push((prov_tmp, prov_path.clone()));
    check_space(&o.out, &files)?;
    let mut outputs = Vec::new();
    for (p, (from, dest)) in plan.publish.iter().rev().zip(&files) {
        atomic::copy(from, dest).map_err(|source| BuildError::Write { path: dest.clone(), source })?;
        if p.deterministic {
            let d = digests.iter().find(|(n, _)| n == &p.name).expect("hashed above").1.clone();
            outputs.push((dest.clone(), d));
        }
    }
    outputs.reverse();
    let (from, dest) = files.last().expect("the provenance");
    atomic::copy(from, dest).map_err(|source| BuildError::Write { path: dest.clone(), source })?;
    outputs.push((prov_path, store::hash_bytes(&provenance)));
    Ok(BuildResult { outputs, report: o.out.join(format!("{}.validation.json", target.artifact())) })
}

/// Checks, before anything is built, that `out` is (or can become) a
/// writable directory (following a symlink the user gave), and removes the
/// temporaries dead builds left in it.
fn prepare_out(out: &Path) -> Result<(), BuildError> {
    let fail = |source| BuildError::OutDir { dir: out.to_path_buf(), source };
    if let Ok(m) = std::fs::symlink_metadata(out) {
        let target = std::fs::metadata(out);
        if m.file_type().is_symlink() && target.is_err() {
            let to = std::fs::read_link(out).map(|t| t.display().to_string()).unwrap_or_default();
            return Err(fail(std::io::Error::new(std::io::ErrorKind::NotFound, format!("is a symlink to `{to}`, which does not exist"))));
        }
        if !target.is_ok_and(|t| t.is_dir()) {
            return Err(fail(std::io::Error::new(std::io::ErrorKind::NotADirectory, "exists and is not a directory")));
        }
    }
    // A directory that does not exist yet is created only when publishing
    // (a failed build leaves no empty one behind); its nearest existing
    // ancestor must take files now.
    let mut dir = out;
    while !dir.exists() {
        dir = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
    }
    if !dir.is_dir() {
        return Err(fail(std::io::Error::new(std::io::ErrorKind::NotADirectory, format!("`{}` is not a directory", dir.display()))));
    }
    if dir == out {
        atomic::remove_stale(out);
    }
    // A file created and dropped: its temporary is removed at once.
    drop(atomic::AtomicFile::create(&dir.join("probe")).map_err(fail)?);
    Ok(())
}

/// Fails unless the `(from, to)` copies fit beside what they replace: each
/// is written whole before the file it replaces goes, so the peak is the
/// largest running sum of new sizes less the old sizes already replaced
/// (each rounded up to 4 KiB blocks).
fn check_space(dir: &Path, files: &[(PathBuf, PathBuf)]) -> Result<(), BuildError> {
    let blocks = |n: u64| n.div_ceil(4096) * 4096;
    let (mut used, mut need) = (0i128, 0i128);
    for (from, to) in files {
        let new = std::fs::metadata(from).map_err(io(format!("reading {}", from.display())))?.len();
        used += blocks(new) as i128;
        need = need.max(used);
        used -= std::fs::symlink_metadata(to).ok().filter(|m| m.is_file()).map_or(0, |m| blocks(m.len())) as i128;
    }
    let need = need.max(0) as u64;
    match atomic::available_bytes(dir) {
        Ok(available) if available < need => Err(BuildError::NoSpace { dir: dir.to_path_buf(), need, available }),
        _ => Ok(()),
    }
}

/// Verifies the declared source `name` (a `concat` source with its parts)
/// and places its content into `dest`.
pub(crate) fn materialize(store: &Store, opts: &FetchOptions, sources: &BTreeMap<String, Source>, name: &str, dest: &Path) -> Result<(), BuildError> {
    let source = sources.get(name).ok_or_else(|| store::StoreError::UnknownSource { name: name.into() })?;
    std::fs::create_dir_all(dest).map_err(io(format!("creating {}", dest.display())))?;
    if let Source::Generated(g) = source {
        let params = crate::fixtures::params_from(&g.params).map_err(|source| BuildError::Generate { source_name: name.into(), source })?;
        let tmp = dest.with_file_name(format!("gen-{name}"));
        let tree = crate::fixtures::generate(&g.generator, &params, &tmp).map_err(|source| BuildError::Generate { source_name: name.into(), source })?;
        if tree.digest != g.sha256 {
            return Err(BuildError::GeneratedDigest { source_name: name.into(), expected: g.sha256.clone(), actual: tree.digest });
        }
        for f in &tree.files {
            std::fs::rename(tmp.join(&f.path), dest.join(&f.path)).map_err(io("moving generated files"))?;
        }
        return Ok(());
    }
    store::fetch_declared(store, sources, name, opts)?;
    store::materialize(store, name, source, dest)?;
    Ok(())
}
