//! `avac build-step …`: the parts of `avac build` that another engine runs
//! as its own actions (the Nix rules: one derivation each), so that every
//! engine writes the same bytes from one plan ([`super::plan`], read by the
//! rules from `rules/plan.json`).
//!
//! ```text
//! fetch-local  a pinned file copied into a fixed-output derivation; on a wrong
//!              digest it says which pin to fix (Nix then fails with its own
//!              hash-mismatch error)
//! source       a declared source materialised from its verified blobs, as the
//!              runner places it under in/<role>/ (generated sources generated)
//! params       the plan's parameter files (work/*.json), byte for byte
//! exec         one step: inputs copied to the runner's relative layout, the
//!              command line and outputs checked against the plan (a stale
//!              rules/plan.json is refused), run with the plan's environment
//!              only, the outputs copied out
//! publish      the published outputs and the provenance record
//! ```

use super::plan;
use super::runner::{self, BuildError};
use crate::atomic;
use crate::declaration::Loaded;
use crate::provenance::{self, Engine};
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
    /// The command line or outputs differ from the plan of this avac.
    #[error("step `{step}` of target {target}: the {what} differs from this avac's plan\n  given:   {given}\n  planned: {planned}\nhelp: rules/plan.json is stale; run `avac plan --all --out rules/plan.json` and commit it")]
    StalePlan {
        /// The target.
        target: String,
        /// The step.
        step: String,
        /// `command line` or `outputs`.
        what: &'static str,
        /// What was given.
        given: String,
        /// What this avac plans.
        planned: String,
    },
    /// A source to materialise is not pinned yet.
    #[error("source {source_name} is not locked (no sha256 pin)\nhelp: on a machine that can reach it, set its pinned revision in rules/targets.toml and run `avac lock {source_name}`, then commit the pin")]
    Unlocked {
        /// The unpinned source (the one asked for, or a part of it).
        source_name: String,
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
}

impl From<std::io::Error> for StepError {
    fn from(source: std::io::Error) -> Self {
        StepError::Build(source.into())
    }
}

/// An I/O error while doing `what` (the runner's [`BuildError::Io`]).
fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StepError {
    let f = runner::io(what);
    move |source| StepError::Build(f(source))
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
    // An engine evaluates every target, locked or not; one whose source has
    // no pin yet fails here, when it is built, with the command that pins it.
    let declared = l.decl.sources.get(name).ok_or_else(|| StepError::BadBlob { source_name: name.into(), why: "is not a declared source".into() })?;
    let parts: Vec<&str> = match declared {
        crate::store::Source::Concat(c) => std::iter::once(name).chain(c.parts.iter().map(String::as_str)).collect(),
        _ => vec![name],
    };
    if let Some(u) = parts.iter().find(|p| !l.decl.sources.get(**p).is_some_and(|s| s.is_locked())) {
        return Err(StepError::Unlocked { source_name: u.to_string() });
    }
    let tmp = atomic::scratch("avac-source").map_err(io("creating a scratch directory"))?;
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
    let p = plan::plan(l, target).map_err(BuildError::from)?;
    atomic::dir(out, |t| {
        for f in &p.files {
            let dest = t.join(&f.path);
            std::fs::create_dir_all(dest.parent().expect("work/")).map_err(io("creating work/"))?;
            std::fs::write(&dest, &f.bytes).map_err(io(format!("writing {}", f.path)))?;
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
    /// Work paths copied to `out` (as `out/<path>`) when the step succeeds:
    /// the step's outputs; must equal the plan's.
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
    let p = plan::plan(l, e.target).map_err(BuildError::from)?;
    let planned = p.step(e.step).ok_or_else(|| StepError::UnknownStep {
        target: e.target.into(),
        step: e.step.into(),
        known: p.steps.iter().map(|s| s.name).collect::<Vec<_>>().join(", "),
    })?;
    let stale = |what, given: &[String], planned: &[String]| StepError::StalePlan {
        target: e.target.into(),
        step: e.step.into(),
        what,
        given: given.join(" "),
        planned: planned.join(" "),
    };
    if planned.args != e.args {
        return Err(stale("command line", &e.args, &planned.args));
    }
    if planned.outputs != e.keep {
        return Err(stale("outputs", &e.keep, &planned.outputs));
    }
    let scratch = atomic::scratch("avac-step").map_err(io("creating the scratch directory"))?;
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
        .envs(&planned.env)
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
    let p = plan::plan(l, target).map_err(BuildError::from)?;
    let find = |work: &str| {
        dirs.iter().map(|d| d.join(work)).find(|f| f.is_file()).ok_or_else(|| StepError::MissingWork {
            target: target.into(),
            path: work.into(),
            dirs: dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "),
        })
    };
    let mut digests = Vec::new();
    for o in p.publish.iter().filter(|o| o.deterministic) {
        digests.push((o.name.clone(), store::hash_file(&find(&o.path)?).map_err(|e| StepError::Build(e.into()))?.0));
    }
    let exe = std::env::current_exe().map_err(io("locating the avac binary"))?;
    let avac_sha256 = store::hash_file(&exe).map_err(|e| StepError::Build(e.into()))?.0;
    let record = provenance::statement(&p.definition, &digests, Engine::Nix, &avac_sha256, provenance::source_date().as_deref());
    let prov_name = format!("{}.provenance.json", t.artifact());
    atomic::dir(out, |d| {
        for o in p.publish.iter().filter(|o| o.deterministic || !deterministic_only) {
            std::fs::copy(find(&o.path)?, d.join(&o.name)).map_err(io(format!("publishing {}", o.name)))?;
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
