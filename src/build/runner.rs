//! `avac build TARGET`: the local, hermetic runner.
//!
//! Sources are verified and materialised into a scratch directory; each
//! pipeline step then runs as its own `avac aon <step>` process with a
//! cleared environment, the scratch directory as working directory and only
//! relative paths, exactly as a Nix derivation would run it. Only when every
//! step (validation included) succeeds are the artifact, its validation and
//! optimization reports and its provenance renamed into the output directory.

use super::atomic;
use super::decl::{AlcTarget, AonTarget, DeclError, Loaded, Target, EMBEDDED_FILES};
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

/// Inputs and scratch space shared by every rule's step planner.
struct Ctx<'a> {
    l: &'a Loaded,
    name: &'a str,
    root: &'a Path,
    store: Store,
    fetch: FetchOptions,
}

impl Ctx<'_> {
    /// Writes `v` as `work/NAME` and returns that relative path.
    fn write_json(&self, name: &str, v: &serde_json::Value) -> Result<String, BuildError> {
        let mut b = serde_json::to_vec_pretty(v).expect("serialisable");
        b.push(b'\n');
        std::fs::write(self.root.join("work").join(name), b).map_err(io(format!("writing {name}")))?;
        Ok(format!("work/{name}"))
    }

    fn materialize(&self, source: &str, dest: &str) -> Result<(), BuildError> {
        materialize(&self.store, &self.fetch, &self.l.decl.sources, source, &self.root.join(dest))
    }

    fn single(&self, source: &str, dest: &str) -> Result<String, BuildError> {
        single(&self.store, &self.fetch, &self.l.decl.sources, source, &self.root.join(dest))
    }

    fn step_error(&self, step: &str, why: impl Into<String>) -> BuildError {
        BuildError::Step { target: self.name.into(), step: step.into(), stderr: why.into() }
    }
}

/// What a rule's planner hands back: the steps to run, then which work files
/// to publish under which output names (artifact first; `true` marks the
/// deterministic outputs whose digests are printed and pinned in `golden/`).
struct Plan {
    steps: Vec<(&'static str, Vec<String>)>,
    publish: Vec<(String, String, bool)>,
    parameters: serde_json::Value,
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
    let mut fetch = FetchOptions::from_env(&repo_root);
    fetch.offline = o.offline;
    fetch.from = o.from.clone();
    let ctx = Ctx { l, name, root, store: Store::open(&o.store)?, fetch };
    std::fs::create_dir_all(root.join("work")).map_err(io("creating the work directory"))?;
    let plan = match target {
        Target::Aon(t) => plan_aon(&ctx, t, o)?,
        Target::Alc(t) => plan_alc(&ctx, t)?,
    };
    let threads = o.threads.to_string();
    for (step, args) in &plan.steps {
        let out =
            Command::new(&o.exe).env_clear().current_dir(root).args(["--threads", &threads]).args(args).output().map_err(io(format!("running step {step}")))?;
        if !out.status.success() {
            return Err(ctx.step_error(step, String::from_utf8_lossy(&out.stderr).trim_end()));
        }
    }

    // Publish: every output renamed into place, the artifact last.
    std::fs::create_dir_all(&o.out).map_err(io(format!("creating {}", o.out.display())))?;
    let mut digests = Vec::new();
    for (work, out_name, deterministic) in &plan.publish {
        if *deterministic {
            digests.push((out_name.clone(), store::hash_file(&root.join(work))?.0));
        }
    }
    let step_names: Vec<&str> = plan.steps.iter().map(|s| s.0).collect();
    let provenance = provenance(l, name, target, &step_names, &plan.parameters, &digests);
    let prov_path = o.out.join(format!("{}.provenance.json", target.artifact()));
    let mut outputs = Vec::new();
    for (work, out_name, deterministic) in plan.publish.iter().rev() {
        let dest = o.out.join(out_name);
        atomic::copy(&root.join(work), &dest)?;
        if *deterministic {
            let d = digests.iter().find(|(n, _)| n == out_name).expect("hashed above").1.clone();
            outputs.push((dest, d));
        }
    }
    outputs.reverse();
    atomic::write(&prov_path, &provenance)?;
    outputs.push((prov_path, store::hash_bytes(&provenance)));
    Ok(BuildResult { outputs, report: o.out.join(format!("{}.validation.json", target.artifact())) })
}

/// The AON steps: convert → export → optimize → [quantize] → validate.
fn plan_aon(ctx: &Ctx, target: &AonTarget, o: &BuildOptions) -> Result<Plan, BuildError> {
    let (l, name) = (ctx.l, ctx.name);
    for s in &target.model {
        ctx.materialize(s, "in/model")?;
    }
    let intents = ctx.single(&target.intents, "in/intents")?;
    let calibration = match &target.calibration {
        Some(c) => Some(ctx.single(c, "in/calibration")?),
        None => None,
    };
    let pins: BTreeMap<&str, &str> = l.inputs_of(l.target(name)?).into_iter().map(|s| (s, l.decl.sources[s].sha256().unwrap_or(""))).collect();
    let convert = ctx.write_json("convert.json", &serde_json::to_value(&target.convert).expect("serialisable"))?;
    let validate = ctx.write_json("validate.json", &serde_json::to_value(&target.validate).expect("serialisable"))?;
    let quantize = match &target.quantize {
        Some(q) => Some(ctx.write_json("quantize.json", &serde_json::to_value(q).expect("serialisable"))?),
        None => None,
    };
    let meta = ctx.write_json("metadata.json", &json!({ "avac.target": name, "avac.source_pins": serde_json::to_string(&pins).expect("serialisable") }))?;
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    let mut convert_args = args(&["aon", "convert", "--model", "in/model", "--intents", &intents, "--params", &convert, "--out", "work/classifier"]);
    if let Some(c) = &calibration {
        convert_args.extend(args(&["--calibration", c]));
    }
    let mut steps = vec![
        ("convert", convert_args),
        ("export", args(&["aon", "export", "--classifier", "work/classifier", "--metadata", &meta, "--out", "work/model.onnx"])),
        ("optimize", args(&["aon", "optimize", "--in", "work/model.onnx", "--out", "work/model.opt.onnx", "--report", "work/optimize.json"])),
    ];
    let mut validate_args = args(&["aon", "validate", "--classifier", "work/classifier", "--intents", &intents, "--params", &validate, "--report", "work/validation.json"]);
    let final_model = match &quantize {
        Some(q) => {
            let Some(c) = &calibration else {
                return Err(ctx.step_error("quantize", "static INT8 needs a `calibration` source in the target"));
            };
            let a = ["aon", "quantize", "--in", "work/model.opt.onnx", "--classifier", "work/classifier", "--calibration", c, "--params", q];
            steps.push(("quantize", args(&[&a[..], &["--out", "work/model.int8.onnx", "--report", "work/quantize.json"]].concat())));
            validate_args.extend(args(&["--model", "work/model.int8.onnx", "--fp32", "work/model.opt.onnx"]));
            "work/model.int8.onnx"
        }
        None => {
            validate_args.extend(args(&["--model", "work/model.opt.onnx"]));
            "work/model.opt.onnx"
        }
    };
    if let Some(py) = &o.ort_python {
        validate_args.extend(args(&["--ort-python", py.to_str().unwrap_or("python3")]));
    }
    steps.push(("validate", validate_args));
    let a = &target.artifact;
    let mut publish = vec![
        (final_model.to_string(), a.clone(), true),
        ("work/validation.json".into(), format!("{a}.validation.json"), false),
        ("work/optimize.json".into(), format!("{a}.optimize.json"), false),
    ];
    if quantize.is_some() {
        publish.push(("work/quantize.json".into(), format!("{a}.quantize.json"), false));
    }
    let parameters = json!({ "convert": target.convert, "quantize": target.quantize, "validate": target.validate });
    Ok(Plan { steps, publish, parameters })
}

/// The ALC steps: quantize → package → validate.
fn plan_alc(ctx: &Ctx, target: &AlcTarget) -> Result<Plan, BuildError> {
    let sources = &ctx.l.decl.sources;
    for s in &target.model {
        ctx.materialize(s, "in/model")?;
    }
    // One `.gguf` file is the checkpoint itself; otherwise the directory is.
    let model = match target.model.as_slice() {
        [one] => match sources[one].file_name() {
            Some(f) if f.ends_with(".gguf") => format!("in/model/{f}"),
            _ => "in/model".to_string(),
        },
        _ => "in/model".to_string(),
    };
    let text = ctx.single(&target.text, "in/text")?;
    let mut package_args: Vec<String> = ["alc", "package", "--dir", "work/params", "--out"].iter().map(|s| s.to_string()).collect();
    package_args.push(format!("work/{}", target.artifact));
    for lib in &target.package.libs {
        let path = ctx.single(&lib.source, &format!("in/libs/{}", lib.abi))?;
        package_args.extend(["--lib".to_string(), format!("{}={}={}", lib.abi, lib.name, path)]);
    }
    if target.package.zstd {
        package_args.push("--zstd".into());
    }
    let quantize = ctx.write_json("quantize-params.json", &serde_json::to_value(&target.quantize).expect("serialisable"))?;
    let validate = ctx.write_json("validate-params.json", &serde_json::to_value(&target.validate).expect("serialisable"))?;
    let s = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    let a = &target.artifact;
    let steps = vec![
        ("quantize", s(&["alc", "quantize", "--source", &model, "--params", &quantize, "--out", "work/params", "--report", "work/quantize.json"])),
        ("package", package_args),
        ("validate", s(&["alc", "validate", "--package", &format!("work/{a}"), "--source", &model, "--text", &text, "--params", &validate, "--report", "work/validation.json"])),
    ];
    let mut publish = vec![(format!("work/{a}"), a.clone(), true)];
    if target.package.zstd {
        publish.push((format!("work/{a}.zst"), format!("{a}.zst"), true));
    }
    publish.push(("work/validation.json".into(), format!("{a}.validation.json"), false));
    publish.push(("work/quantize.json".into(), format!("{a}.quantize.json"), false));
    let parameters = json!({ "quantize": target.quantize, "package": target.package, "validate": target.validate });
    Ok(Plan { steps, publish, parameters })
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
fn provenance(l: &Loaded, name: &str, t: &Target, steps: &[&str], parameters: &serde_json::Value, digests: &[(String, String)]) -> Vec<u8> {
    let inputs: serde_json::Map<String, serde_json::Value> =
        l.inputs_of(t).into_iter().map(|s| (s.to_string(), serde_json::to_value(&l.decl.sources[s]).expect("serialisable"))).collect();
    let outputs: serde_json::Map<String, serde_json::Value> = digests.iter().map(|(n, d)| (n.clone(), json!({ "sha256": d }))).collect();
    let v = json!({
        "schema": "avac.provenance/v1",
        "target": name,
        "rule": t.rule(),
        "avac_version": crate::VERSION,
        "inputs": inputs,
        "parameters": parameters,
        "steps": steps,
        "outputs": outputs,
    });
    let mut b = serde_json::to_vec_pretty(&v).expect("serialisable");
    b.push(b'\n');
    b
}
