//! The step plan of a target: a pure function of the declaration.
//!
//! Both engines build from it. The local runner ([`super::runner`])
//! materialises [`Plan::inputs`], writes [`Plan::files`], runs
//! [`Plan::steps`] in a scratch directory and publishes [`Plan::publish`];
//! the Nix rules (`rules/*.nix`) write one derivation per step with the same
//! command line, and `avac build-step` checks it against this plan, writes
//! the same parameter files and the same provenance record. Nothing here
//! touches the file system.
//!
//! Paths are relative to the scratch root:
//!
//! ```text
//! in/<role>/…      materialised sources (in/model, in/intents, in/calibration, in/text, in/libs/<abi>)
//! work/<name>.json parameter files (Plan::files) and every step's outputs
//! ```

use super::decl::{AlcTarget, AonTarget, Loaded, Target};
use super::provenance;
use super::runner::BuildError;
use serde_json::json;
use std::path::Path;

/// One step: `avac <args…>` (the runner prepends `--threads N`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The step's name (`convert`, `export`, …), as recorded in provenance.
    pub name: &'static str,
    /// The command line after `avac --threads N`.
    pub args: Vec<String>,
}

/// Everything a target's build does, in order.
#[derive(Clone, Debug)]
pub struct Plan {
    /// `(source, directory)`: each source materialised into that directory
    /// (several sources may share one, e.g. the files of a model directory).
    pub inputs: Vec<(String, String)>,
    /// `(path, bytes)`: parameter files written before the first step.
    pub files: Vec<(String, Vec<u8>)>,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// `(work path, output name, deterministic)`: what is published, the
    /// artifact first; deterministic outputs are hashed into provenance and
    /// pinned in `golden/`.
    pub publish: Vec<(String, String, bool)>,
    /// The build definition (see [`super::provenance`]): embedded in the
    /// artifact and recorded in its provenance.
    pub definition: serde_json::Value,
}

impl Plan {
    /// The step called `name`.
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }
}

/// Plans target `name`. `ort_python` adds onnxruntime latency to an AON
/// validation report (a figure outside every digest).
pub fn plan(l: &Loaded, name: &str, ort_python: Option<&Path>) -> Result<Plan, BuildError> {
    let target = l.target(name)?;
    let mut p = match target {
        Target::Aon(t) => plan_aon(l, name, t, ort_python)?,
        Target::Alc(t) => plan_alc(l, t)?,
    };
    let steps: Vec<&str> = p.steps.iter().map(|s| s.name).collect();
    p.definition = provenance::build_definition(l, name, target, &steps);
    let canonical = provenance::canonical(&p.definition);
    match target {
        Target::Aon(_) => p.files.push(json_file(
            AON_METADATA,
            &json!({
                "avac.target": name,
                (provenance::META_BUILD_DEFINITION): String::from_utf8(canonical).expect("JSON is UTF-8"),
                (provenance::META_BUILD_DEFINITION_SHA256): provenance::digest(&p.definition),
            }),
        )),
        Target::Alc(_) => p.files.push((ALC_DEFINITION.to_string(), canonical)),
    }
    Ok(p)
}

/// The AON export step's `metadata_props` file (target name and build definition).
const AON_METADATA: &str = "work/metadata.json";
/// The build definition an ALC package carries.
const ALC_DEFINITION: &str = "work/build-definition.json";

/// Pretty JSON with a final newline, as every parameter file is written.
fn json_file(path: &str, v: &serde_json::Value) -> (String, Vec<u8>) {
    let mut b = serde_json::to_vec_pretty(v).expect("serialisable");
    b.push(b'\n');
    (path.to_string(), b)
}

fn to_json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).expect("serialisable")
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// The path of one-file source `source` materialised into `dir`.
fn single(l: &Loaded, source: &str, dir: &str) -> String {
    let file = l.decl.sources.get(source).and_then(|s| s.file_name()).unwrap_or_else(|| source.to_string());
    format!("{dir}/{file}")
}

/// The AON steps: convert → export → optimize → [quantize] → validate.
fn plan_aon(l: &Loaded, name: &str, target: &AonTarget, ort_python: Option<&Path>) -> Result<Plan, BuildError> {
    let mut inputs: Vec<(String, String)> = target.model.iter().map(|s| (s.clone(), "in/model".to_string())).collect();
    inputs.push((target.intents.clone(), "in/intents".into()));
    let intents = single(l, &target.intents, "in/intents");
    let calibration = target.calibration.as_ref().map(|c| {
        inputs.push((c.clone(), "in/calibration".into()));
        single(l, c, "in/calibration")
    });
    let (convert, validate, meta) = ("work/convert.json", "work/validate.json", AON_METADATA);
    let mut files = vec![json_file(convert, &to_json(&target.convert)), json_file(validate, &to_json(&target.validate))];
    let quantize = target.quantize.as_ref().map(|q| {
        files.push(json_file("work/quantize.json", &to_json(q)));
        "work/quantize.json"
    });

    let mut convert_args = strings(&["aon", "convert", "--model", "in/model", "--intents", &intents, "--params", convert, "--out", "work/classifier"]);
    if let Some(c) = &calibration {
        convert_args.extend(strings(&["--calibration", c]));
    }
    let mut steps = vec![
        Step { name: "convert", args: convert_args },
        Step { name: "export", args: strings(&["aon", "export", "--classifier", "work/classifier", "--metadata", meta, "--out", "work/model.onnx"]) },
        Step {
            name: "optimize",
            args: strings(&["aon", "optimize", "--in", "work/model.onnx", "--out", "work/model.opt.onnx", "--report", "work/optimize.json"]),
        },
    ];
    let mut validate_args =
        strings(&["aon", "validate", "--classifier", "work/classifier", "--intents", &intents, "--params", validate, "--report", "work/validation.json"]);
    let final_model = match quantize {
        Some(q) => {
            let Some(c) = &calibration else {
                return Err(BuildError::Step {
                    target: name.into(),
                    step: "quantize".into(),
                    stderr: "static INT8 needs a `calibration` source in the target".into(),
                });
            };
            let a = ["aon", "quantize", "--in", "work/model.opt.onnx", "--classifier", "work/classifier", "--calibration", c, "--params", q];
            steps.push(Step { name: "quantize", args: strings(&[&a[..], &["--out", "work/model.int8.onnx", "--report", "work/quantize.json"]].concat()) });
            validate_args.extend(strings(&["--model", "work/model.int8.onnx", "--fp32", "work/model.opt.onnx"]));
            "work/model.int8.onnx"
        }
        None => {
            validate_args.extend(strings(&["--model", "work/model.opt.onnx"]));
            "work/model.opt.onnx"
        }
    };
    if let Some(py) = ort_python {
        validate_args.extend(strings(&["--ort-python", py.to_str().unwrap_or("python3")]));
    }
    steps.push(Step { name: "validate", args: validate_args });
    let a = &target.artifact;
    let mut publish = vec![
        (final_model.to_string(), a.clone(), true),
        ("work/validation.json".into(), format!("{a}.validation.json"), false),
        ("work/optimize.json".into(), format!("{a}.optimize.json"), false),
    ];
    if quantize.is_some() {
        publish.push(("work/quantize.json".into(), format!("{a}.quantize.json"), false));
    }
    Ok(Plan { inputs, files, steps, publish, definition: serde_json::Value::Null })
}

/// The ALC steps: quantize → package → validate.
fn plan_alc(l: &Loaded, target: &AlcTarget) -> Result<Plan, BuildError> {
    let sources = &l.decl.sources;
    let mut inputs: Vec<(String, String)> = target.model.iter().map(|s| (s.clone(), "in/model".to_string())).collect();
    // One `.gguf` file is the checkpoint itself; otherwise the directory is.
    let model = match target.model.as_slice() {
        [one] => match sources.get(one).and_then(|s| s.file_name()) {
            Some(f) if f.ends_with(".gguf") => format!("in/model/{f}"),
            _ => "in/model".to_string(),
        },
        _ => "in/model".to_string(),
    };
    inputs.push((target.text.clone(), "in/text".into()));
    let text = single(l, &target.text, "in/text");
    let mut package_args = strings(&["alc", "package", "--dir", "work/params", "--build-definition", ALC_DEFINITION, "--out"]);
    package_args.push(format!("work/{}", target.artifact));
    for lib in &target.package.libs {
        let dir = format!("in/libs/{}", lib.abi);
        let path = single(l, &lib.source, &dir);
        inputs.push((lib.source.clone(), dir));
        package_args.extend(["--lib".to_string(), format!("{}={}={}", lib.abi, lib.name, path)]);
    }
    if target.package.zstd {
        package_args.push("--zstd".into());
    }
    let (quantize, validate) = ("work/quantize-params.json", "work/validate-params.json");
    let files = vec![json_file(quantize, &to_json(&target.quantize)), json_file(validate, &to_json(&target.validate))];
    let a = &target.artifact;
    let steps = vec![
        Step {
            name: "quantize",
            args: strings(&["alc", "quantize", "--source", &model, "--params", quantize, "--out", "work/params", "--report", "work/quantize.json"]),
        },
        Step { name: "package", args: package_args },
        Step {
            name: "validate",
            args: strings(&[
                "alc",
                "validate",
                "--package",
                &format!("work/{a}"),
                "--source",
                &model,
                "--text",
                &text,
                "--params",
                validate,
                "--report",
                "work/validation.json",
            ]),
        },
    ];
    let mut publish = vec![(format!("work/{a}"), a.clone(), true)];
    if target.package.zstd {
        publish.push((format!("work/{a}.zst"), format!("{a}.zst"), true));
    }
    publish.push(("work/validation.json".into(), format!("{a}.validation.json"), false));
    publish.push(("work/quantize.json".into(), format!("{a}.quantize.json"), false));
    Ok(Plan { inputs, files, steps, publish, definition: serde_json::Value::Null })
}
