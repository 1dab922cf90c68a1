//! The declaration: `rules/targets.toml`, the one file listing every
//! pinned source (`[sources.NAME]`, see [`crate::store`]) and every target
//! (`[targets.NAME]`). Loading it checks it whole ([`check`]): a target that
//! could not be planned is refused here, before any engine runs a step.
//!
//! ```toml
//! [targets.minilm-intent-int8]
//! rule = "aon"                       # the AON pipeline
//! description = "…"
//! default = true                     # the target README's main job builds
//! model = ["minilm"]                 # sources materialised into the model directory
//! intents = "voice-intents"          # {"train": [[text, label]…], "test": …}
//! calibration = "voice-calibration"  # JSON array of strings (optional)
//! artifact = "minilm-intent-classifier-int8.onnx"
//! convert = { classes = 100, pooling = "mean-normalized", max_seq_len = 128 }
//! quantize = { calibration = { method = "min-max" } }  # optional: INT8 (else FP32)
//! validate = { max_abs_logit_diff = 1e-3, int8 = { min_agreement = 0.99 } }
//!
//! [targets.gemma3-270m-q4bf16]
//! rule = "alc"                       # the ALC pipeline
//! description = "…"
//! model = ["gemma3-270m-gguf"]       # one .gguf, or the files of a HF directory
//! text = "alc-eval-text"             # the fixed validation text
//! artifact = "ava-GE3-270m-q4bf16_1-android.tar"
//! quantize = { group_size = 128 }    # q4bf16_1 (scale = "max_abs" | "mse_search")
//! compile = { wheels = ["tvm-apache-tvm", …] }  # optional: the TVM model library (artifact `…-android.tar`)
//! package = { zstd = true, libs = [{ abi = "arm64-v8a", name = "libtvm_runtime.so", source = "…" }] }
//! validate = { max_ppl_ratio = 3.5, min_top1_agreement = 0.4 }
//! ```

use crate::alc::quantize::AlcQuantizeParams;
use crate::alc::validate::AlcValidateParams;
use crate::aon::convert::AonConvertParams;
use crate::aon::quantize::AonQuantizeParams;
use crate::aon::validate::AonValidateParams;
use crate::store::Source;

pub mod check;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The declaration embedded in the binary.
pub const EMBEDDED: &str = include_str!("../../rules/targets.toml");

/// In-repo files embedded with the declaration, by repo-relative path.
pub const EMBEDDED_FILES: &[(&str, &[u8])] = &[
    ("data/intents/voice-assistant.json", include_bytes!("../../data/intents/voice-assistant.json")),
    ("data/intents/calibration.json", include_bytes!("../../data/intents/calibration.json")),
    ("data/alc/eval-text.txt", include_bytes!("../../data/alc/eval-text.txt")),
];

/// Failures reading the declaration.
#[derive(Debug, thiserror::Error)]
pub enum DeclError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Not a valid declaration.
    #[error("{path}: {source}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        source: toml::de::Error,
    },
    /// A source is invalid.
    #[error("{path}: {source}")]
    Source {
        /// The file.
        path: PathBuf,
        /// The store's error.
        source: crate::store::StoreError,
    },
    /// A target names a source that is not declared.
    #[error("{path}: target {target} uses unknown source {source_name:?}")]
    UnknownSource {
        /// The file.
        path: PathBuf,
        /// The target.
        target: String,
        /// The missing source.
        source_name: String,
    },
    /// A part of a `concat` source is undeclared or not one file.
    #[error("{path}: concat source {source_name:?}: part {part:?} {why}")]
    BadPart {
        /// The file.
        path: PathBuf,
        /// The concat source.
        source_name: String,
        /// The offending part.
        part: String,
        /// What is wrong with it.
        why: String,
    },
    /// A target's fields are inconsistent.
    #[error("{path}: target {target}: {source}")]
    Inconsistent {
        /// The file.
        path: PathBuf,
        /// The target.
        target: String,
        /// What is wrong.
        source: check::TargetError,
    },
    /// No such target.
    #[error("unknown target {name:?}; known targets: {known}")]
    UnknownTarget {
        /// The name asked for.
        name: String,
        /// Declared targets.
        known: String,
    },
}

/// One target: the pipeline it runs (`rule`) and that pipeline's fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "lowercase")]
pub enum Target {
    /// Encoder → intent classifier → ONNX (INT8).
    Aon(AonTarget),
    /// Gemma 3 → `q4bf16_1` package (`.tar`).
    Alc(AlcTarget),
}

/// `rule = "aon"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AonTarget {
    /// One line for `avac targets`.
    pub description: String,
    /// Built by README's main job.
    #[serde(default)]
    pub default: bool,
    /// Sources forming the model directory.
    pub model: Vec<String>,
    /// Labelled intents.
    pub intents: String,
    /// Calibration text.
    #[serde(default)]
    pub calibration: Option<String>,
    /// Artifact file name.
    pub artifact: String,
    /// Conversion parameters.
    pub convert: AonConvertParams,
    /// INT8 quantization; without it the artifact is the optimized FP32 model.
    #[serde(default)]
    pub quantize: Option<AonQuantizeParams>,
    /// Validation gates.
    #[serde(default)]
    pub validate: AonValidateParams,
}

/// A native library shipped in an ALC package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LibDecl {
    /// Android ABI (`arm64-v8a`, `armeabi-v7a`, `x86_64`, `x86`).
    pub abi: String,
    /// File name inside `lib/<abi>/`.
    pub name: String,
    /// The pinned source holding the library.
    pub source: String,
}

/// Packaging options of an ALC target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlcPackageParams {
    /// Also publish `ARTIFACT.zst` (pinned zstd parameters).
    #[serde(default)]
    pub zstd: bool,
    /// Native libraries, each checked against its ABI.
    #[serde(default)]
    pub libs: Vec<LibDecl>,
}

/// `compile = { … }` of an ALC target: the model library compiled by the
/// pinned TVM (`avac alc compile`, see [`crate::alc::compile`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlcCompileParams {
    /// The toolchain: one `pypi` source with `wheel` per wheel of
    /// `toolchains/tvm/requirements.txt` (the step checks them against it).
    pub wheels: Vec<String>,
    /// The CPython 3.11 interpreter that runs TVM: an absolute path, or a
    /// bare name looked up in the step's fixed search path (never `PATH`).
    #[serde(default = "default_python")]
    pub python: String,
}

fn default_python() -> String {
    crate::alc::compile::DEFAULT_PYTHON.to_string()
}

/// `rule = "alc"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlcTarget {
    /// One line for `avac targets`.
    pub description: String,
    /// Built by README's main job.
    #[serde(default)]
    pub default: bool,
    /// Sources forming the checkpoint: one `.gguf` file, or the files of a
    /// Hugging Face directory.
    pub model: Vec<String>,
    /// The fixed validation text.
    pub text: String,
    /// The calibration text of `quantize.gptq` (never the validation text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<String>,
    /// Package file name (`….tar`).
    pub artifact: String,
    /// `q4bf16_1` parameters.
    pub quantize: AlcQuantizeParams,
    /// The model library (off unless declared: it needs the TVM toolchain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile: Option<AlcCompileParams>,
    /// Packaging.
    #[serde(default)]
    pub package: AlcPackageParams,
    /// Validation gates.
    #[serde(default)]
    pub validate: AlcValidateParams,
}

impl Target {
    /// Every source the target reads, sorted.
    pub fn sources(&self) -> Vec<&str> {
        let mut v: Vec<&str> = Vec::new();
        match self {
            Target::Aon(t) => {
                v.extend(t.model.iter().map(String::as_str));
                v.push(&t.intents);
                v.extend(t.calibration.as_deref());
            }
            Target::Alc(t) => {
                v.extend(t.model.iter().map(String::as_str));
                v.push(&t.text);
                v.extend(t.calibration.as_deref());
                v.extend(t.package.libs.iter().map(|l| l.source.as_str()));
                v.extend(t.compile.iter().flat_map(|c| c.wheels.iter().map(String::as_str)));
            }
        }
        v.sort();
        v.dedup();
        v
    }

    /// The rule's name as declared.
    pub fn rule(&self) -> &'static str {
        match self {
            Target::Aon(_) => "aon",
            Target::Alc(_) => "alc",
        }
    }

    /// One line for `avac targets`.
    pub fn description(&self) -> &str {
        match self {
            Target::Aon(t) => &t.description,
            Target::Alc(t) => &t.description,
        }
    }

    /// Built by README's main job.
    pub fn is_default(&self) -> bool {
        match self {
            Target::Aon(t) => t.default,
            Target::Alc(t) => t.default,
        }
    }

    /// The artifact's file name.
    pub fn artifact(&self) -> &str {
        match self {
            Target::Aon(t) => &t.artifact,
            Target::Alc(t) => &t.artifact,
        }
    }
}

/// The whole declaration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Declaration {
    /// Sources by name.
    #[serde(default)]
    pub sources: BTreeMap<String, Source>,
    /// Targets by name.
    #[serde(default)]
    pub targets: BTreeMap<String, Target>,
}

/// A declaration and where its `file` sources live.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The parsed declaration.
    pub decl: Declaration,
    /// Where it was read from (`<embedded>` for the built-in copy).
    pub path: PathBuf,
    /// Repository root for `file` sources; `None` for the embedded copy.
    pub repo_root: Option<PathBuf>,
}

impl Loaded {
    /// Parses and checks declaration text.
    pub fn parse(text: &str, path: &Path, repo_root: Option<PathBuf>) -> Result<Self, DeclError> {
        let decl: Declaration = toml::from_str(text).map_err(|source| DeclError::Toml { path: path.into(), source })?;
        Self::from_declaration(decl, path, repo_root)
    }

    /// Checks a parsed declaration (as [`Loaded::parse`] does after parsing).
    pub fn from_declaration(decl: Declaration, path: &Path, repo_root: Option<PathBuf>) -> Result<Self, DeclError> {
        for (name, s) in &decl.sources {
            s.validate(name).map_err(|source| DeclError::Source { path: path.into(), source })?;
            if let Source::Concat(c) = s {
                for part in &c.parts {
                    let why = match decl.sources.get(part) {
                        None => Some("is not a declared source"),
                        Some(p) => p.unfit_as_part(),
                    };
                    if let Some(why) = why {
                        return Err(DeclError::BadPart { path: path.into(), source_name: name.clone(), part: part.clone(), why: why.into() });
                    }
                }
            }
        }
        for (t, target) in &decl.targets {
            check::target(target).map_err(|source| DeclError::Inconsistent { path: path.into(), target: t.clone(), source })?;
            for s in target.sources() {
                if !decl.sources.contains_key(s) {
                    return Err(DeclError::UnknownSource { path: path.into(), target: t.clone(), source_name: s.into() });
                }
            }
        }
        Ok(Loaded { decl, path: path.into(), repo_root })
    }

    /// Reads `path` (repo root: the parent of its `rules/` directory).
    pub fn read(path: &Path) -> Result<Self, DeclError> {
        let text = std::fs::read_to_string(path).map_err(|source| DeclError::Io { path: path.into(), source })?;
        let root = path.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        Self::parse(&text, path, Some(root))
    }

    /// The embedded declaration.
    pub fn embedded() -> Self {
        Self::parse(EMBEDDED, Path::new("<embedded rules/targets.toml>"), None).expect("the embedded declaration is checked by tests")
    }

    /// `rules/targets.toml` in the current directory or a parent, else the embedded copy.
    pub fn discover() -> Result<Self, DeclError> {
        let mut dir = std::env::current_dir().ok();
        while let Some(d) = dir {
            let p = d.join("rules/targets.toml");
            if p.is_file() && d.join("Cargo.toml").is_file() {
                return Self::read(&p);
            }
            dir = d.parent().map(Path::to_path_buf);
        }
        Ok(Self::embedded())
    }

    /// Every source `target` reads, sorted: its own ([`Target::sources`])
    /// and the parts of those that are `concat` sources, which are fetched to
    /// build them and so are inputs too (their pins belong in provenance).
    pub fn inputs_of<'a>(&'a self, target: &'a Target) -> Vec<&'a str> {
        let mut v = target.sources();
        for s in target.sources() {
            if let Some(Source::Concat(c)) = self.decl.sources.get(s) {
                v.extend(c.parts.iter().map(String::as_str));
            }
        }
        v.sort();
        v.dedup();
        v
    }

    /// A target by name.
    pub fn target(&self, name: &str) -> Result<&Target, DeclError> {
        self.decl
            .targets
            .get(name)
            .ok_or_else(|| DeclError::UnknownTarget { name: name.into(), known: self.decl.targets.keys().cloned().collect::<Vec<_>>().join(", ") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_declaration_parses_and_pins_embedded_files() {
        let l = Loaded::embedded();
        assert!(l.decl.targets.values().filter(|t| t.is_default()).count() == 1);
        for (path, bytes) in EMBEDDED_FILES {
            let sha = crate::store::hash_bytes(bytes);
            let pinned = l.decl.sources.values().any(|s| matches!(s, Source::File(f) if f.path == *path && f.sha256 == sha));
            assert!(pinned, "{path} is embedded but its pin in rules/targets.toml does not match ({sha})");
        }
    }

    const PARTS: &str = r#"
[sources.a]
kind = "file"
path = "a.bin"
sha256 = ""
[sources.b]
kind = "url"
url = "https://example.org/b.bin"
[sources.gguf]
kind = "concat"
parts = ["a", "b"]
file = "m.gguf"
[sources.intents]
kind = "file"
path = "i.json"
[targets.t]
rule = "aon"
description = "d"
model = ["gguf", "a"]
intents = "intents"
artifact = "m.onnx"
convert = { classes = 2, pooling = "mean-normalized" }
"#;

    fn bad_part(text: &str) -> (String, String, String) {
        match Loaded::parse(text, Path::new("t.toml"), None) {
            Err(e @ DeclError::BadPart { .. }) => {
                let msg = e.to_string();
                let DeclError::BadPart { source_name, part, .. } = e else { unreachable!() };
                (source_name, part, msg)
            }
            other => panic!("expected BadPart, got {other:?}"),
        }
    }

    #[test]
    fn concat_parts_are_declared_one_file_sources() {
        let l = Loaded::parse(PARTS, Path::new("t.toml"), None).expect("valid");
        // The parts are inputs of a target using the concat source.
        assert_eq!(l.inputs_of(l.target("t").expect("t")), ["a", "b", "gguf", "intents"]);
        assert_eq!(l.target("t").expect("t").sources(), ["a", "gguf", "intents"]);

        let cases = [
            (PARTS.replace(r#"parts = ["a", "b"]"#, r#"parts = ["a", "nope"]"#), "nope", "not a declared source"),
            (PARTS.replace(r#"parts = ["a", "b"]"#, r#"parts = ["a", "gguf"]"#), "gguf", "itself a concat source"),
            (PARTS.replace("path = \"a.bin\"\n", "path = \"a.bin\"\nunpack = \"zip\"\n"), "a", "unpacked"),
            (PARTS.replace("kind = \"file\"\npath = \"a.bin\"\nsha256 = \"\"\n", "kind = \"generated\"\ngenerator = \"albert\"\n"), "a", "generated"),
        ];
        for (text, part, why) in cases {
            let (source_name, got, msg) = bad_part(&text);
            assert_eq!((source_name.as_str(), got.as_str()), ("gguf", part));
            assert!(msg.contains("\"gguf\"") && msg.contains(&format!("{part:?}")) && msg.contains(why), "{msg}");
        }
    }
}
