//! `avac build-step …`: the parts of `avac build` that the Nix rules run as
//! derivations, so that both engines write the same bytes from one planner
//! ([`super::plan`]).
//!
//! ```text
//! fetch-local  a pinned file copied into a fixed-output derivation; on a wrong
//!              digest it says which pin to fix (Nix then fails with its own
//!              hash-mismatch error)
//! source       a declared source materialised from its verified blobs, as the
//!              runner places it under in/<role>/ (generated sources generated)
//! params       the plan's parameter files (work/*.json), byte for byte
//! exec         one step: inputs copied to the runner's relative layout, the
//!              command line checked against the plan, run with a cleared
//!              environment, the kept work files copied out
//! publish      the published outputs and the provenance record
//! ```

use crate::atomic;
use super::decl::Loaded;
use super::plan;
use super::provenance::{self, Engine};
use super::runner::{self, BuildError};
use crate::store::{self, FetchOptions, Store};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Failures of a build step run outside the local runner.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Planning, declaration or store error.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The target's plan has no such step.
    #[error("target {target} has no step `{step}`; its steps: {known}")]
    UnknownStep {
        /// The target.
        target: String,
        /// The step asked for.
        step: String,
        /// The plan's steps.
        known: String,
    },
    /// The command line differs from the one `avac build` runs.
    #[error("step `{step}` of target {target}: the command line differs from the one `avac build` runs\n  given:   avac {given}\n  planned: avac {planned}\nhelp: rules/*.nix and src/build/plan.rs must agree; fix the rule")]
    ArgsDiffer {
        /// The target.
        target: String,
        /// The step.
        step: String,
        /// The command line given.
        given: String,
        /// The command line planned.
        planned: String,
    },
    /// A `--blob` names a source that is not declared or not pinned.
    #[error("--blob {source_name}: {why}")]
    BadBlob {
        /// The source.
        source_name: String,
        /// What is wrong.
        why: String,
    },
    /// A published work file is in none of the step outputs given.
    #[error("publish {target}: {path} is in none of the step outputs given ({dirs})")]
    MissingWork {
        /// The target.
        target: String,
        /// The work path.
        path: String,
        /// The directories searched.
        dirs: String,
    },
    /// The step itself failed (its stderr went to ours).
    #[error("step `{step}` of target {target} failed ({status})")]
    Failed {
        /// The target.
        target: String,
        /// The step.
        step: String,
        /// Its exit status.
        status: std::process::ExitStatus,
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

impl From<std::io::Error> for StepError {
    fn from(source: std::io::Error) -> Self {
        StepError::Io { what: "writing outputs".into(), source }
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StepError {
    let what = what.into();
    move |source| StepError::Io { what, source }
}

/// Copies the pinned file `file` of source `name` to `out`. A digest other
/// than `sha256` is reported with the fix, but the copy still succeeds: the
/// fixed-output derivation around it then fails with Nix's own hash
/// mismatch, which is the error Nix users know.
pub fn fetch_local(name: &str, file: &Path, sha256: &str, out: &Path) -> Result<(), StepError> {
    std::fs::copy(file, out).map_err(io(format!("copying {}", file.display())))?;
    let (actual, size) = store::hash_file(out).map_err(|e| StepError::Build(e.into()))?;
    if actual != sha256 {
        eprintln!(
            "avac: source {name}: the file has sha256 {actual} ({size} bytes), but rules/targets.toml pins {sha256}\n\
             help: if the new bytes are intended, run `avac lock {name}` (or set sha256 = \"{actual}\" in [sources.{name}]) and commit the pin; \
             otherwise restore the file"
        );
    }
    Ok(())
}

/// Materialises source `name` into `out` from its blobs (`(source, path)`:
/// the source's own, or its parts' for a `concat` source), each verified
/// against its pin. A `generated` source needs none.
pub fn source(l: &Loaded, name: &str, blobs: &[(String, PathBuf)], out: &Path) -> Result<(), StepError> {
    let tmp = tempfile::Builder::new().prefix("avac-source-").tempdir().map_err(io("creating a scratch directory"))?;
    let st = Store::open(tmp.path().join("store")).map_err(|e| StepError::Build(e.into()))?;
    for (s, path) in blobs {
        let decl = l.decl.sources.get(s).ok_or_else(|| StepError::BadBlob { source_name: s.clone(), why: "is not a declared source".into() })?;
        let pin = decl.sha256().ok_or_else(|| StepError::BadBlob { source_name: s.clone(), why: "is not locked (no sha256 pin)".into() })?;
        st.add_file(s, path, pin).map_err(|e| StepError::Build(e.into()))?;
    }
    let mut opts = FetchOptions::from_env(tmp.path().join("no-repo"));
    opts.offline = true;
    opts.quiet = true;
    opts.hf_token = None;
    let dest = tmp.path().join("out");
    runner::materialize(&st, &opts, &l.decl.sources, name, &dest)?;
    atomic::dir(out, |t| copy_tree(&dest, t))
}

/// Writes the plan's parameter files of `target` under `out` (`out/work/…`).
pub fn params(l: &Loaded, target: &str, out: &Path) -> Result<(), StepError> {
    let p = plan::plan(l, target, None)?;
    atomic::dir(out, |t| {
        for (path, bytes) in &p.files {
            let dest = t.join(path);
            std::fs::create_dir_all(dest.parent().expect("work/")).map_err(io("creating work/"))?;
            std::fs::write(&dest, bytes).map_err(io(format!("writing {path}")))?;
        }
        Ok(())
    })
}

/// One step of `target`, run like the runner runs it.
#[derive(Clone, Debug)]
pub struct Exec<'a> {
    /// The target.
    pub target: &'a str,
    /// The step's name in the plan.
    pub step: &'a str,
    /// `(relative destination, path)`: a directory's entries are copied into
    /// the destination directory (several may share one), a file to it.
    pub inputs: Vec<(String, PathBuf)>,
    /// Work paths copied to `out` (as `out/<path>`) when the step succeeds.
    pub keep: Vec<String>,
    /// Output directory.
    pub out: &'a Path,
    /// The command line after `avac --threads N`; must equal the plan's.
    pub args: Vec<String>,
    /// The avac executable and thread count for the step.
    pub exe: &'a Path,
    /// Worker threads (outputs do not depend on it).
    pub threads: usize,
}

/// Runs one step: checks its command line against the plan, lays out its
/// inputs in a scratch directory, runs it with a cleared environment there
/// and copies the kept outputs to `out`.
pub fn exec(l: &Loaded, e: &Exec) -> Result<(), StepError> {
    let p = plan::plan(l, e.target, None)?;
    let planned = p.step(e.step).ok_or_else(|| StepError::UnknownStep {
        target: e.target.into(),
        step: e.step.into(),
        known: p.steps.iter().map(|s| s.name).collect::<Vec<_>>().join(", "),
    })?;
    if planned.args != e.args {
        return Err(StepError::ArgsDiffer { target: e.target.into(), step: e.step.into(), given: e.args.join(" "), planned: planned.args.join(" ") });
    }
    let scratch = tempfile::Builder::new().prefix("avac-step-").tempdir().map_err(io("creating the scratch directory"))?;
    let root = scratch.path();
    std::fs::create_dir_all(root.join("work")).map_err(io("creating work/"))?;
    for (rel, path) in &e.inputs {
        let dest = root.join(rel);
        if path.is_dir() {
            copy_tree(path, &dest)?;
        } else {
            std::fs::create_dir_all(dest.parent().expect("relative path")).map_err(io(format!("creating the parent of {rel}")))?;
            std::fs::copy(path, &dest).map_err(io(format!("copying {} to {rel}", path.display())))?;
        }
    }
    let status = Command::new(e.exe)
        .env_clear()
        .current_dir(root)
        .args(["--threads", &e.threads.to_string()])
        .args(&e.args)
        .status()
        .map_err(io(format!("running step {}", e.step)))?;
    if !status.success() {
        return Err(StepError::Failed { target: e.target.into(), step: e.step.into(), status });
    }
    atomic::dir(e.out, |t| {
        for k in &e.keep {
            let (from, to) = (root.join(k), t.join(k));
            std::fs::create_dir_all(to.parent().expect("relative path")).map_err(io(format!("creating the parent of {k}")))?;
            if from.is_dir() {
                copy_tree(&from, &to)?;
            } else {
                std::fs::copy(&from, &to).map_err(io(format!("keeping {k}")))?;
            }
        }
        Ok(())
    })
}

/// Publishes `target` into `out` from step output directories (each holding
/// `work/…`): the plan's published files and `<artifact>.provenance.json`.
/// With `deterministic_only`, the reports (which carry timings) are left
/// out, so that the output can be rebuilt bit for bit (`nix build --rebuild`).
/// Returns `(output name, sha256)` of the deterministic outputs and the
/// provenance record, as `avac build` prints them.
pub fn publish(l: &Loaded, target: &str, dirs: &[PathBuf], out: &Path, deterministic_only: bool) -> Result<Vec<(String, String)>, StepError> {
    let t = l.target(target).map_err(BuildError::from)?;
    let p = plan::plan(l, target, None)?;
    let find = |work: &str| {
        dirs.iter().map(|d| d.join(work)).find(|f| f.is_file()).ok_or_else(|| StepError::MissingWork {
            target: target.into(),
            path: work.into(),
            dirs: dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "),
        })
    };
    let mut digests = Vec::new();
    for (work, name, deterministic) in &p.publish {
        if *deterministic {
            digests.push((name.clone(), store::hash_file(&find(work)?).map_err(|e| StepError::Build(e.into()))?.0));
        }
    }
    let exe = std::env::current_exe().map_err(io("locating the avac binary"))?;
    let avac_sha256 = store::hash_file(&exe).map_err(|e| StepError::Build(e.into()))?.0;
    let record = provenance::statement(&p.definition, &digests, Engine::Nix, &avac_sha256, provenance::source_date().as_deref());
    let prov_name = format!("{}.provenance.json", t.artifact());
    atomic::dir(out, |d| {
        for (work, name, _) in p.publish.iter().filter(|(_, _, det)| *det || !deterministic_only) {
            std::fs::copy(find(work)?, d.join(name)).map_err(io(format!("publishing {name}")))?;
        }
        std::fs::write(d.join(&prov_name), &record).map_err(io("writing provenance"))
    })?;
    digests.push((prov_name, store::hash_bytes(&record)));
    Ok(digests)
}

/// Copies the tree `from` into `to` (created; existing entries are kept),
/// entries in name order.
fn copy_tree(from: &Path, to: &Path) -> Result<(), StepError> {
    std::fs::create_dir_all(to).map_err(io(format!("creating {}", to.display())))?;
    let mut entries: Vec<_> = std::fs::read_dir(from).map_err(io(format!("listing {}", from.display())))?.collect::<Result<_, _>>().map_err(io("listing"))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let (src, dest) = (entry.path(), to.join(entry.file_name()));
        if src.is_dir() {
            copy_tree(&src, &dest)?;
        } else {
            std::fs::copy(&src, &dest).map_err(io(format!("copying {}", src.display())))?;
        }
    }
    Ok(())
}
