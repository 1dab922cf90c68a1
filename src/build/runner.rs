//! `avac build TARGET`: the local, hermetic runner.
//!
//! Sources are verified and materialised into a scratch directory; each
//! pipeline step then runs as its own `avac aon <step>` process with a
//! cleared environment, the scratch directory as working directory and only
//! relative paths, exactly as a Nix derivation would run it. Only when every
//! step (validation included) succeeds are the artifact, its validation and
//! optimization reports and its provenance renamed into the output directory.

use super::atomic;
use super::decl::{DeclError, Loaded, Target, EMBEDDED_FILES};
use crate::store::{self, FetchOptions, Source, Store};
use serde_json::json;
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

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BuildError {
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
    let scratch = tempfile::Builder::new().prefix("avac-build-").tempdir().map_err(io("creating the scratch directory"))?;
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
    let mut fetch_opts = FetchOptions::from_env(&repo_root);
    fetch_opts.offline = o.offline;
    fetch_opts.from = o.from.clone();
    let store = Store::open(&o.store)?;
    let model_dir = root.join("in/model");
    let sources = &l.decl.sources;
    for s in &target.model {
        materialize(&store, &fetch_opts, sources, s, &model_dir)?;
    }
    let intents = single(&store, &fetch_opts, sources, &target.intents, &root.join("in/intents"))?;
    let calibration = match &target.calibration {
        Some(c) => Some(single(&store, &fetch_opts, sources, c, &root.join("in/calibration"))?),
        None => None,
    };

    let work = root.join("work");
    std::fs::create_dir_all(&work).map_err(io("creating the work directory"))?;
    let write_json = |name: &str, v: &serde_json::Value| -> Result<String, BuildError> {
        let mut b = serde_json::to_vec_pretty(v).expect("serialisable");
        b.push(b'\n');
        std::fs::write(work.join(name), b).map_err(io(format!("writing {name}")))?;
        Ok(format!("work/{name}"))
    };
    let pins: BTreeMap<&str, &str> = l.inputs_of(target).into_iter().map(|s| (s, l.decl.sources[s].sha256().unwrap_or(""))).collect();
    let convert = write_json("convert.json", &serde_json::to_value(&target.convert).expect("serialisable"))?;
    let validate = write_json("validate.json", &serde_json::to_value(&target.validate).expect("serialisable"))?;
    let quantize = match &target.quantize {
        Some(q) => Some(write_json("quantize.json", &serde_json::to_value(q).expect("serialisable"))?),
        None => None,
    };
    let meta = write_json("metadata.json", &json!({ "avac.target": name, "avac.source_pins": serde_json::to_string(&pins).expect("serialisable") }))?;
    let mut convert_args = vec!["aon", "convert", "--model", "in/model", "--intents", &intents, "--params", &convert, "--out", "work/classifier"];
    if let Some(c) = &calibration {
        convert_args.extend(["--calibration", c.as_str()]);
    }
    let mut steps: Vec<(&str, Vec<&str>)> = vec![
        ("convert", convert_args),
        ("export", vec!["aon", "export", "--classifier", "work/classifier", "--metadata", &meta, "--out", "work/model.onnx"]),
        ("optimize", vec!["aon", "optimize", "--in", "work/model.onnx", "--out", "work/model.opt.onnx", "--report", "work/optimize.json"]),
    ];
    let mut validate_args =
        vec!["aon", "validate", "--classifier", "work/classifier", "--intents", &intents, "--params", &validate, "--report", "work/validation.json"];
    let final_model = match &quantize {
        Some(q) => {
            let Some(c) = &calibration else {
                return Err(BuildError::Step {
                    target: name.into(),
                    step: "quantize".into(),
                    stderr: "static INT8 needs a `calibration` source in the target".into(),
                });
            };
            let args = ["aon", "quantize", "--in", "work/model.opt.onnx", "--classifier", "work/classifier", "--calibration", c, "--params", q];
            steps.push(("quantize", [&args[..], &["--out", "work/model.int8.onnx", "--report", "work/quantize.json"]].concat()));
            validate_args.extend(["--model", "work/model.int8.onnx", "--fp32", "work/model.opt.onnx"]);
            "model.int8.onnx"
        }
        None => {
            validate_args.extend(["--model", "work/model.opt.onnx"]);
            "model.opt.onnx"
        }
    };
    if let Some(py) = &o.ort_python {
        validate_args.extend(["--ort-python", py.to_str().unwrap_or("python3")]);
    }
    steps.push(("validate", validate_args));
    let threads = o.threads.to_string();
    for (step, args) in &steps {
        let out =
            Command::new(&o.exe).env_clear().current_dir(root).args(["--threads", &threads]).args(args).output().map_err(io(format!("running step {step}")))?;
        if !out.status.success() {
            return Err(BuildError::Step { target: name.into(), step: step.to_string(), stderr: String::from_utf8_lossy(&out.stderr).trim_end().to_string() });
        }
    }

    // Publish: artifact, report, provenance — each renamed into place.
    std::fs::create_dir_all(&o.out).map_err(io(format!("creating {}", o.out.display())))?;
    let artifact = o.out.join(&target.artifact);
    let model_bytes = std::fs::read(work.join(final_model)).map_err(io("reading the final model"))?;
    let digest = store::hash_bytes(&model_bytes);
    let step_names: Vec<&str> = steps.iter().map(|s| s.0).collect();
    let provenance = provenance(l, name, target, &step_names, &digest);
    let prov_path = o.out.join(format!("{}.provenance.json", target.artifact));
    let report = o.out.join(format!("{}.validation.json", target.artifact));
    atomic::copy(&work.join("validation.json"), &report)?;
    atomic::copy(&work.join("optimize.json"), &o.out.join(format!("{}.optimize.json", target.artifact)))?;
    if quantize.is_some() {
        atomic::copy(&work.join("quantize.json"), &o.out.join(format!("{}.quantize.json", target.artifact)))?;
    }
    atomic::write(&prov_path, &provenance)?;
    atomic::write(&artifact, &model_bytes)?;
    Ok(BuildResult { outputs: vec![(artifact, digest), (prov_path, store::hash_bytes(&provenance))], report })
}

/// Verifies the declared source `name` (a `concat` source with its parts)
/// and places its content into `dest`.
fn materialize(store: &Store, opts: &FetchOptions, sources: &BTreeMap<String, Source>, name: &str, dest: &Path) -> Result<(), BuildError> {
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

/// Materialises a one-file source and returns its path relative to the scratch root.
fn single(store: &Store, opts: &FetchOptions, sources: &BTreeMap<String, Source>, name: &str, dest: &Path) -> Result<String, BuildError> {
    materialize(store, opts, sources, name, dest)?;
    let file = sources.get(name).and_then(Source::file_name).unwrap_or_else(|| name.to_string());
    let rel = format!("in/{}/{}", dest.file_name().expect("named").to_string_lossy(), file);
    Ok(rel)
}

/// The provenance record: deterministic JSON (no time, host or paths).
fn provenance(l: &Loaded, name: &str, t: &Target, steps: &[&str], digest: &str) -> Vec<u8> {
    let inputs: serde_json::Map<String, serde_json::Value> =
        l.inputs_of(t).into_iter().map(|s| (s.to_string(), serde_json::to_value(&l.decl.sources[s]).expect("serialisable"))).collect();
    let v = json!({
        "schema": "avac.provenance/v1",
        "target": name,
        "rule": t.rule,
        "avac_version": crate::VERSION,
        "inputs": inputs,
        "parameters": { "convert": t.convert, "quantize": t.quantize, "validate": t.validate },
        "steps": steps,
        "outputs": { t.artifact.clone(): { "sha256": digest } },
    });
    let mut b = serde_json::to_vec_pretty(&v).expect("serialisable");
    b.push(b'\n');
    b
}
