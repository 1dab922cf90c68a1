//! The step plan of a target: a pure function of the declaration, and the
//! one description of a build that every engine executes.
//!
//! A [`Plan`] is data: each [`Step`] names its typed [`Input`]s (a declared
//! source, a parameter file, an earlier step's output), the work paths it
//! produces, its command line and its environment. The local runner
//! ([`super::runner`]) runs the steps in order in one scratch directory; the
//! Nix rules read the same plans from `rules/plan.json` (written by
//! [`super::plan_file`]) and make one derivation per step from the inputs,
//! outputs and command line given there, spelling none of them. Nothing here
//! touches the file system.
//!
//! Paths are relative to the scratch root:
//!
//! ```text
//! in/<role>/…      materialised sources (in/model, in/intents, in/calibration, in/text, in/libs/<abi>, in/tvm-wheels)
//! work/<name>.json parameter files (Plan::files) and every step's outputs
//! ```

use crate::declaration::{AlcTarget, AonTarget, DeclError, Loaded, Target};
use crate::provenance;
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;

/// What a step reads, placed at a relative path of its scratch directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Input {
    /// The declared source `source`, materialised into the directory `at`
    /// (several sources may share one, e.g. the files of a model directory).
    Source {
        /// The source's name.
        source: String,
        /// Its directory (`in/model`, …).
        at: String,
    },
    /// A parameter file of the plan ([`Plan::files`]).
    Param {
        /// Its work path.
        path: String,
    },
    /// An output of an earlier step.
    Step {
        /// That step's name.
        step: String,
        /// The work path it produced.
        path: String,
    },
}

/// One step: `avac --threads N <args…>`, run in the scratch root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The step's name (`convert`, `export`, …), as recorded in provenance.
    pub name: &'static str,
    /// Everything it reads.
    pub inputs: Vec<Input>,
    /// The work paths it produces (files or directories).
    pub outputs: Vec<String>,
    /// The command line after `avac --threads N`.
    pub args: Vec<String>,
    /// The whole environment of the step process (everything else is
    /// cleared); empty for every step today.
    pub env: BTreeMap<String, String>,
}

/// A parameter file written before the first step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamFile {
    /// Its work path.
    pub path: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// An output the build publishes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Publish {
    /// The step producing it.
    pub step: &'static str,
    /// Its work path.
    pub path: String,
    /// Its file name in the output directory.
    pub name: String,
    /// Deterministic outputs are hashed into provenance and pinned in
    /// `golden/`; the others are reports carrying measurements.
    pub deterministic: bool,
}

/// Everything a target's build does, in order.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The target's name.
    pub target: String,
    /// Parameter files, written before the first step.
    pub files: Vec<ParamFile>,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// What is published, the artifact first.
    pub publish: Vec<Publish>,
    /// The build definition (see [`crate::provenance`]): embedded in the
    /// artifact and recorded in its provenance.
    pub definition: serde_json::Value,
}

impl Plan {
    /// The step called `name`.
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// Every `(source, directory)` some step reads, each once, in the order
    /// the steps first read them.
    pub fn sources(&self) -> Vec<(&str, &str)> {
        let mut v: Vec<(&str, &str)> = Vec::new();
        for s in &self.steps {
            for i in &s.inputs {
                if let Input::Source { source, at } = i {
                    if !v.contains(&(source.as_str(), at.as_str())) {
                        v.push((source, at));
                    }
                }
            }
        }
        v
    }
}

/// Plans target `name` (its declaration was checked when it loaded).
pub fn plan(l: &Loaded, name: &str) -> Result<Plan, DeclError> {
    let target = l.target(name)?;
    let mut p = match target {
        Target::Aon(t) => plan_aon(l, t),
        Target::Alc(t) => plan_alc(l, t),
    };
    p.target = name.to_string();
    let steps: Vec<&str> = p.steps.iter().map(|s| s.name).collect();
    p.definition = provenance::build_definition(l, name, target, &steps);
    let canonical = provenance::canonical(&p.definition);
    let carried = match target {
        Target::Aon(_) => json_file(
            AON_METADATA,
            &json!({
                "avac.target": name,
                (provenance::META_BUILD_DEFINITION): String::from_utf8(canonical).expect("JSON is UTF-8"),
                (provenance::META_BUILD_DEFINITION_SHA256): provenance::digest(&p.definition),
            }),
        ),
        Target::Alc(_) => ParamFile { path: ALC_DEFINITION.to_string(), bytes: canonical },
    };
    p.files.push(carried);
    Ok(p)
}

/// The AON export step's `metadata_props` file (target name and build definition).
const AON_METADATA: &str = "work/metadata.json";
/// The build definition an ALC package carries.
const ALC_DEFINITION: &str = "work/build-definition.json";

/// Pretty JSON with a final newline, as every parameter file is written.
fn json_file(path: &str, v: &serde_json::Value) -> ParamFile {
    let mut bytes = serde_json::to_vec_pretty(v).expect("serialisable");
    bytes.push(b'\n');
    ParamFile { path: path.to_string(), bytes }
}

fn to_json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).expect("serialisable")
}

/// A step under construction: inputs and outputs are declared where the
/// command line names them, so the two cannot disagree.
struct StepBuilder {
    step: Step,
}

impl StepBuilder {
    fn new(name: &'static str, command: &[&str]) -> Self {
        StepBuilder { step: Step { name, inputs: Vec::new(), outputs: Vec::new(), args: strings(command), env: BTreeMap::new() } }
    }

    /// `flag value` on the command line.
    fn arg(mut self, flag: &str, value: &str) -> Self {
        self.step.args.extend([flag.to_string(), value.to_string()]);
        self
    }

    /// A bare flag.
    fn flag(mut self, flag: &str) -> Self {
        self.step.args.push(flag.to_string());
        self
    }

    /// `flag path`, `path` read from what `input` places there.
    fn read(mut self, flag: &str, path: &str, input: Input) -> Self {
        self.step.args.extend([flag.to_string(), path.to_string()]);
        self.input(input)
    }

    /// An input the command line names indirectly (inside a directory
    /// argument, or a parameter of another flag).
    fn input(mut self, input: Input) -> Self {
        if !self.step.inputs.contains(&input) {
            self.step.inputs.push(input);
        }
        self
    }

    /// `flag path` of a parameter file.
    fn param(self, flag: &str, path: &str) -> Self {
        self.read(flag, path, Input::Param { path: path.into() })
    }

    /// `flag path` of an earlier step's output.
    fn from(self, flag: &str, step: &str, path: &str) -> Self {
        self.read(flag, path, Input::Step { step: step.into(), path: path.into() })
    }

    /// `flag path` of a produced work path.
    fn writes(mut self, flag: &str, path: &str) -> Self {
        self.step.args.extend([flag.to_string(), path.to_string()]);
        self.produces(path)
    }

    /// A produced work path the command line names indirectly.
    fn produces(mut self, path: &str) -> Self {
        self.step.outputs.push(path.to_string());
        self
    }
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn source(s: &str, at: &str) -> Input {
    Input::Source { source: s.into(), at: at.into() }
}

/// The path of one-file source `source` materialised into `dir`.
fn single(l: &Loaded, source: &str, dir: &str) -> String {
    let file = l.decl.sources.get(source).and_then(|s| s.file_name()).unwrap_or_else(|| source.to_string());
    format!("{dir}/{file}")
}

/// The AON steps: convert → export → optimize → [quantize] → validate.
fn plan_aon(l: &Loaded, target: &AonTarget) -> Plan {
    let (convert_p, validate_p, quantize_p) = ("work/convert.json", "work/validate.json", "work/quantize-params.json");
    let mut files = vec![json_file(convert_p, &to_json(&target.convert)), json_file(validate_p, &to_json(&target.validate))];
    if let Some(q) = &target.quantize {
        files.push(json_file(quantize_p, &to_json(q)));
    }
    let intents = single(l, &target.intents, "in/intents");
    let calibration = target.calibration.as_ref().map(|c| (single(l, c, "in/calibration"), source(c, "in/calibration")));

    let mut convert = StepBuilder::new("convert", &["aon", "convert"]).arg("--model", "in/model");
    for m in &target.model {
        convert = convert.input(source(m, "in/model"));
    }
    convert = convert.read("--intents", &intents, source(&target.intents, "in/intents")).param("--params", convert_p).writes("--out", "work/classifier");
    if let Some((path, input)) = &calibration {
        convert = convert.read("--calibration", path, input.clone());
    }
    let mut steps = vec![
        convert.step,
        StepBuilder::new("export", &["aon", "export"])
            .from("--classifier", "convert", "work/classifier")
            .param("--metadata", AON_METADATA)
            .writes("--out", "work/model.onnx")
            .step,
        StepBuilder::new("optimize", &["aon", "optimize"])
            .from("--in", "export", "work/model.onnx")
            .writes("--out", "work/model.opt.onnx")
            .writes("--report", "work/optimize.json")
            .step,
    ];
    let mut validate = StepBuilder::new("validate", &["aon", "validate"])
        .from("--classifier", "convert", "work/classifier")
        .read("--intents", &intents, source(&target.intents, "in/intents"))
        .param("--params", validate_p)
        .writes("--report", "work/validation.json");
    let a = &target.artifact;
    let mut publish = Vec::new();
    match (&target.quantize, &calibration) {
        (Some(_), Some((path, input))) => {
            steps.push(
                StepBuilder::new("quantize", &["aon", "quantize"])
                    .from("--in", "optimize", "work/model.opt.onnx")
                    .from("--classifier", "convert", "work/classifier")
                    .read("--calibration", path, input.clone())
                    .param("--params", quantize_p)
                    .writes("--out", "work/model.int8.onnx")
                    .writes("--report", "work/quantize.json")
                    .step,
            );
            validate = validate.from("--model", "quantize", "work/model.int8.onnx").from("--fp32", "optimize", "work/model.opt.onnx");
            publish.push(out("quantize", "work/model.int8.onnx", a, true));
        }
        // The declaration check refuses `quantize` without `calibration`.
        _ => {
            validate = validate.from("--model", "optimize", "work/model.opt.onnx");
            publish.push(out("optimize", "work/model.opt.onnx", a, true));
        }
    }
    steps.push(validate.step);
    publish.push(out("validate", "work/validation.json", &format!("{a}.validation.json"), false));
    publish.push(out("optimize", "work/optimize.json", &format!("{a}.optimize.json"), false));
    if target.quantize.is_some() {
        publish.push(out("quantize", "work/quantize.json", &format!("{a}.quantize.json"), false));
    }
    Plan { target: String::new(), files, steps, publish, definition: serde_json::Value::Null }
}

fn out(step: &'static str, path: &str, name: &str, deterministic: bool) -> Publish {
    Publish { step, path: path.into(), name: name.into(), deterministic }
}

/// The ALC steps: quantize → [compile] → package → validate.
fn plan_alc(l: &Loaded, target: &AlcTarget) -> Plan {
    let sources = &l.decl.sources;
    // One `.gguf` file is the checkpoint itself; otherwise the directory is.
    let model = match target.model.as_slice() {
        [one] => match sources.get(one).and_then(|s| s.file_name()) {
            Some(f) if f.ends_with(".gguf") => format!("in/model/{f}"),
            _ => "in/model".to_string(),
        },
        _ => "in/model".to_string(),
    };
    let with_model = |mut b: StepBuilder| {
        for m in &target.model {
            b = b.input(source(m, "in/model"));
        }
        b
    };
    let (quantize_p, validate_p) = ("work/quantize-params.json", "work/validate-params.json");
    let files = vec![json_file(quantize_p, &to_json(&target.quantize)), json_file(validate_p, &to_json(&target.validate))];
    let a = &target.artifact;
    let package_out = format!("work/{a}");

    let mut quantize = with_model(StepBuilder::new("quantize", &["alc", "quantize"]).arg("--source", &model)).param("--params", quantize_p);
    if let Some(c) = &target.calibration {
        quantize = quantize.read("--calibration", &single(l, c, "in/calibration"), source(c, "in/calibration"));
    }
    let quantize = quantize.writes("--out", "work/params").writes("--report", "work/quantize.json");
    let mut steps = vec![quantize.step];
    // The model library: the toolchain's wheels in one directory, the
    // interpreter as declared (see `alc::compile`).
    let (wheels, model_lib) = ("in/tvm-wheels", "work/model-lib");
    let with_wheels = |mut b: StepBuilder, c: &crate::declaration::AlcCompileParams| {
        b = b.arg("--wheels", wheels);
        for w in &c.wheels {
            b = b.input(source(w, wheels));
        }
        b.arg("--python", &c.python)
    };
    if let Some(c) = &target.compile {
        let compile = StepBuilder::new("compile", &["alc", "compile"]).from("--dir", "quantize", "work/params");
        steps.push(with_wheels(compile, c).writes("--out", model_lib).step);
    }
    let mut package = StepBuilder::new("package", &["alc", "package"])
        .from("--dir", "quantize", "work/params")
        .param("--build-definition", ALC_DEFINITION)
        .writes("--out", &package_out);
    for lib in &target.package.libs {
        let dir = format!("in/libs/{}", lib.abi);
        let path = single(l, &lib.source, &dir);
        package = package.read("--lib", &format!("{}={}={path}", lib.abi, lib.name), source(&lib.source, &dir));
    }
    if target.compile.is_some() {
        package = package.from("--model-lib", "compile", model_lib);
    }
    if target.package.zstd {
        package = package.flag("--zstd").produces(&format!("{package_out}.zst"));
    }
    let mut validate = with_model(StepBuilder::new("validate", &["alc", "validate"]).from("--package", "package", &package_out).arg("--source", &model))
        .read("--text", &single(l, &target.text, "in/text"), source(&target.text, "in/text"))
        .param("--params", validate_p)
        .writes("--report", "work/validation.json");
    if let Some(c) = &target.compile {
        validate = with_wheels(validate.from("--model-lib", "compile", model_lib), c);
    }
    steps.extend([package.step, validate.step]);

    let mut publish = vec![out("package", &package_out, a, true)];
    if target.package.zstd {
        publish.push(out("package", &format!("{package_out}.zst"), &format!("{a}.zst"), true));
    }
    publish.push(out("validate", "work/validation.json", &format!("{a}.validation.json"), false));
    publish.push(out("quantize", "work/quantize.json", &format!("{a}.quantize.json"), false));
    Plan { target: String::new(), files, steps, publish, definition: serde_json::Value::Null }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every input of every step is a parameter file, a declared source or
    /// an output of an earlier step, and every published path is an output
    /// of the step it names: the plan is complete as data.
    #[test]
    fn every_input_is_produced_before_it_is_read() {
        let l = Loaded::embedded();
        for name in l.decl.targets.keys() {
            let p = plan(&l, name).unwrap();
            let mut produced: Vec<(&str, &str)> = Vec::new();
            for s in &p.steps {
                for i in &s.inputs {
                    match i {
                        Input::Param { path } => assert!(p.files.iter().any(|f| &f.path == path), "{name}/{}: {path}", s.name),
                        Input::Source { source, .. } => assert!(l.decl.sources.contains_key(source), "{name}/{}: {source}", s.name),
                        Input::Step { step, path } => assert!(produced.contains(&(step.as_str(), path.as_str())), "{name}/{}: {step}:{path}", s.name),
                    }
                }
                produced.extend(s.outputs.iter().map(|o| (s.name, o.as_str())));
                assert!(s.env.is_empty(), "{name}/{}: steps run with a cleared environment", s.name);
            }
            for o in &p.publish {
                assert!(produced.contains(&(o.step, o.path.as_str())), "{name}: publish {}", o.path);
            }
            assert!(p.publish[0].deterministic && p.publish[0].name == l.target(name).unwrap().artifact());
        }
    }
}
