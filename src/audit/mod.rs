//! `avac audit`: is this released artifact exactly what its pins produce?
//!
//! 1. **Find the build definition.** From `--provenance FILE`, else the
//!    current declaration of `--target NAME`, else `<artifact>.provenance.json`
//!    beside the artifact, else the copy the artifact carries (ONNX
//!    `metadata_props`, or a package's `avac-build-definition.json`).
//! 2. **Check the record against the artifact** before building anything: a
//!    statement must be an in-toto Statement v1 with SLSA provenance v1, and
//!    its build definition must hash to the one the artifact carries. When it
//!    does not, the provenance was altered (or belongs to another artifact):
//!    verdict [`Verdict::ProvenanceMismatch`], with the fields that differ.
//! 3. **Rebuild** the recorded target from the recorded pins with
//!    [`crate::engine::runner::build`] in a scratch directory (sources come from the
//!    store, verified by their pins, fetched if missing).
//! 4. **Compare bytes**: the artifact, and every other subject of the
//!    statement found beside it. Equal bytes and a statement naming them:
//!    [`Verdict::Reproducible`]. Different bytes: [`Verdict::Differs`], with
//!    the semantic diff of [`crate::diff`]. Equal bytes but a statement
//!    recording other digests: the statement was altered.

use crate::declaration::Loaded;
use crate::engine::runner::{self, BuildError, BuildOptions};
use crate::package::{tar, BUILD_DEFINITION_FILE};
use crate::provenance::{self, ProvenanceError, Statement};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What to audit against.
#[derive(Clone, Debug)]
pub struct AuditOptions {
    /// A provenance statement (default: beside the artifact, else embedded).
    pub provenance: Option<PathBuf>,
    /// Rebuild this target of the current declaration instead.
    pub target: Option<String>,
    /// Keep the rebuilt outputs here.
    pub keep: Option<PathBuf>,
    /// How to rebuild (`out` is replaced by a scratch directory).
    pub build: BuildOptions,
}

/// The outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The pins rebuild these exact bytes.
    Reproducible,
    /// The rebuild gives other bytes.
    Differs,
    /// The provenance record does not match the artifact it came with.
    ProvenanceMismatch,
}

impl Verdict {
    /// As printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Reproducible => "reproducible",
            Verdict::Differs => "differs",
            Verdict::ProvenanceMismatch => "provenance-mismatch",
        }
    }
}

/// One compared output.
#[derive(Clone, Debug, Serialize)]
pub struct Compared {
    /// The output's file name.
    pub name: String,
    /// sha256 of the file audited (`None`: not found beside the artifact).
    pub given: Option<String>,
    /// sha256 the statement records (`None`: no statement, or not a subject).
    pub recorded: Option<String>,
    /// sha256 of the rebuild.
    pub rebuilt: String,
}

/// What the audit found.
#[derive(Clone, Debug, Serialize)]
pub struct AuditReport {
    /// The artifact audited.
    pub artifact: String,
    /// Where the build definition came from.
    pub definition_from: String,
    /// The recorded target.
    pub target: String,
    /// sha256 of the build definition used.
    pub definition_sha256: String,
    /// Observations on the way (version differences, missing files …).
    pub notes: Vec<String>,
    /// The outputs compared, artifact first (empty when no rebuild ran).
    pub outputs: Vec<Compared>,
    /// The verdict.
    pub verdict: Verdict,
    /// Why the provenance does not match (field-level), when it does not.
    pub mismatch: Vec<String>,
    /// The semantic diff of the artifact against its rebuild, when they differ.
    pub diff: Option<crate::diff::Diff>,
}

impl AuditReport {
    /// The human-readable report.
    pub fn render(&self) -> String {
        let mut s = format!("audit {}\n", self.artifact);
        s += &format!("  build definition: {} (sha256 {})\n", self.definition_from, self.definition_sha256);
        if !self.target.is_empty() {
            s += &format!("  target: {}\n", self.target);
        }
        for n in &self.notes {
            s += &format!("  note: {n}\n");
        }
        for m in &self.mismatch {
            s += &format!("  mismatch: {m}\n");
        }
        for o in &self.outputs {
            let short = |d: &Option<String>| d.as_deref().map(|d| d[..16.min(d.len())].to_string()).unwrap_or_else(|| "-".into());
            let same = o.given.as_deref() == Some(o.rebuilt.as_str());
            s += &format!(
                "  {} {}: given {} recorded {} rebuilt {}\n",
                if same { "=" } else { "≠" },
                o.name,
                short(&o.given),
                short(&o.recorded),
                &o.rebuilt[..16.min(o.rebuilt.len())]
            );
        }
        if let Some(d) = &self.diff {
            for line in d.render().lines() {
                s += &format!("  | {line}\n");
            }
        }
        s += &format!("verdict: {}\n", self.verdict.as_str());
        s
    }
}

/// Failures that prevent a verdict.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The artifact cannot be read.
    #[error("{path}: {why}")]
    Artifact {
        /// The artifact.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// No build definition anywhere.
    #[error("{path}: no provenance beside it ({beside}) and no build definition inside it; pass --provenance FILE or --target NAME")]
    NoProvenance {
        /// The artifact.
        path: PathBuf,
        /// The file looked for.
        beside: String,
    },
    /// The provenance cannot be read.
    #[error(transparent)]
    Provenance(#[from] ProvenanceError),
    /// The declaration (for `--target`).
    #[error(transparent)]
    Decl(#[from] crate::declaration::DeclError),
    /// The rebuild failed.
    #[error("rebuilding {target} from the recorded pins failed: {source}")]
    Rebuild {
        /// The target.
        target: String,
        /// The error.
        source: BuildError,
    },
    /// The diff failed.
    #[error("comparing with the rebuild: {0}")]
    Diff(#[from] crate::diff::DiffError),
    /// I/O.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> AuditError {
    let what = what.into();
    move |source| AuditError::Io { what, source }
}

/// Protobuf's own limit on a message: no ONNX model is larger.
const MAX_ONNX_BYTES: u64 = 2 << 30;

/// The build definition an artifact carries, if any: `(bytes, where)`.
pub fn embedded_definition(artifact: &Path) -> Result<Option<(Vec<u8>, String)>, AuditError> {
    let bad = |why: String| AuditError::Artifact { path: artifact.to_path_buf(), why };
    let mut head = [0u8; 512];
    let n = {
        use std::io::Read;
        let mut f = std::fs::File::open(artifact).map_err(|e| bad(e.to_string()))?;
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..]).map_err(|e| bad(e.to_string()))? {
                0 => break,
                k => n += k,
            }
        }
        n
    };
    if n == 512 && &head[257..262] == b"ustar" {
        let entries = tar::list(artifact).map_err(|e| bad(e.to_string()))?;
        let Some(e) = entries.iter().find(|e| e.path == BUILD_DEFINITION_FILE) else { return Ok(None) };
        if e.size > provenance::MAX_DEFINITION_BYTES {
            return Err(bad(format!("{BUILD_DEFINITION_FILE} is {} bytes; a build definition is a few kilobytes", e.size)));
        }
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(artifact).map_err(|e| bad(e.to_string()))?;
        f.seek(SeekFrom::Start(e.data_offset)).map_err(|e| bad(e.to_string()))?;
        let mut b = vec![0u8; e.size as usize];
        f.read_exact(&mut b).map_err(|e| bad(e.to_string()))?;
        return Ok(Some((b, format!("{BUILD_DEFINITION_FILE} inside the package"))));
    }
    let len = std::fs::metadata(artifact).map_err(|e| bad(e.to_string()))?.len();
    if len > MAX_ONNX_BYTES {
        return Err(bad(format!("{len} bytes: neither a package (no tar header) nor an ONNX model (at most {MAX_ONNX_BYTES} bytes)")));
    }
    let bytes = std::fs::read(artifact).map_err(|e| bad(e.to_string()))?;
    let Ok(model) = crate::graph::onnx::from_bytes(&bytes, &artifact.display().to_string()) else { return Ok(None) };
    let Some(bd) = model.metadata.get(provenance::META_BUILD_DEFINITION) else { return Ok(None) };
    if bd.len() as u64 > provenance::MAX_DEFINITION_BYTES {
        return Err(bad(format!("metadata_props {} is {} bytes; a build definition is a few kilobytes", provenance::META_BUILD_DEFINITION, bd.len())));
    }
    if let Some(d) = model.metadata.get(provenance::META_BUILD_DEFINITION_SHA256) {
        let actual = crate::store::hash_bytes(bd.as_bytes());
        if *d != actual {
            return Err(bad(format!(
                "metadata_props {} is {d} but {} hashes to {actual}: the embedded build definition was altered",
                provenance::META_BUILD_DEFINITION_SHA256,
                provenance::META_BUILD_DEFINITION
            )));
        }
    }
    Ok(Some((bd.clone().into_bytes(), format!("metadata_props {} of the model", provenance::META_BUILD_DEFINITION))))
}

/// Audits `artifact`; `current` is the declaration `--target` refers to.
pub fn audit(artifact: &Path, current: Option<&Loaded>, o: &AuditOptions) -> Result<AuditReport, AuditError> {
    let display = artifact.display().to_string();
    let name = artifact.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let given_sha = crate::store::hash_file(artifact).map_err(|e| AuditError::Artifact { path: artifact.to_path_buf(), why: e.to_string() })?.0;
    let embedded = embedded_definition(artifact)?;
    let embedded_value = match &embedded {
        Some((b, from)) => Some(
            serde_json::from_slice::<serde_json::Value>(b)
                .map_err(|e| ProvenanceError::Invalid { file: format!("{display}: {from}"), why: format!("not JSON: {e}") })?,
        ),
        None => None,
    };
    let beside = artifact.with_file_name(format!("{name}.provenance.json"));
    let mut notes = Vec::new();

    // 1. The statement (if any) and the build definition to rebuild from.
    let statement_path = o.provenance.clone().or_else(|| (o.target.is_none() && beside.is_file()).then(|| beside.clone()));
    let statement: Option<Statement> = match &statement_path {
        Some(p) => {
            let bytes = provenance::read_capped(p, provenance::MAX_STATEMENT_BYTES, "a provenance statement")?;
            Some(provenance::parse_statement(&bytes, &p.display().to_string())?)
        }
        None => None,
    };
    let repo_root = current.and_then(|l| l.repo_root.clone());
    let (definition, from, label) = match (&o.target, &statement, &embedded_value) {
        (Some(t), _, _) => {
            let l = current.expect("a declaration with --target");
            let plan = crate::engine::plan(l, t)?;
            (plan.definition, format!("target {t} of {}", l.path.display()), l.path.display().to_string())
        }
        (None, Some(s), _) => (
            s.definition.clone(),
            statement_path.as_ref().expect("read above").display().to_string(),
            statement_path.as_ref().expect("read above").display().to_string(),
        ),
        (None, None, Some(v)) => {
            let (_, from) = embedded.as_ref().expect("parsed above");
            (v.clone(), from.clone(), format!("{display} ({from})"))
        }
        (None, None, None) => return Err(AuditError::NoProvenance { path: artifact.to_path_buf(), beside: beside.display().to_string() }),
    };
    let definition_sha256 = provenance::digest(&definition);
    let mut report = AuditReport {
        artifact: display.clone(),
        definition_from: from,
        target: String::new(),
        definition_sha256: definition_sha256.clone(),
        notes: Vec::new(),
        outputs: Vec::new(),
        verdict: Verdict::Reproducible,
        mismatch: Vec::new(),
        diff: None,
    };

    // 2. The record against the artifact, before any rebuild.
    if let Some(e) = &embedded_value {
        if provenance::digest(e) != definition_sha256 {
            let diffs = provenance::json_differences(e, &definition, 20);
            if o.target.is_some() {
                notes.push(format!("the declaration changed since the artifact was built: {}", diffs.join("; ")));
            } else {
                report.verdict = Verdict::ProvenanceMismatch;
                report.mismatch = diffs.iter().map(|d| format!("build definition field {d} (artifact → provenance)")).collect();
                report.mismatch.insert(
                    0,
                    format!(
                        "the provenance's build definition (sha256 {definition_sha256}) is not the one the artifact carries (sha256 {})",
                        provenance::digest(e)
                    ),
                );
                report.notes = notes;
                return Ok(report);
            }
        }
    } else {
        notes.push("the artifact carries no build definition: only the rebuild can vouch for it".into());
    }
    if let Some(s) = &statement {
        if s.subjects.first().map(|(n, _)| n.as_str()) != Some(name.as_str()) {
            notes.push(format!("the statement's first subject is {:?}, not {name:?}", s.subjects.first().map(|(n, _)| n)));
        }
        if s.avac_version != crate::VERSION {
            notes.push(format!("recorded by avac {}, audited with avac {}: a difference may come from the version", s.avac_version, crate::VERSION));
        }
    }
    let recorded = provenance::recorded(&definition, &label, repo_root)?;
    if !recorded.avac_version.is_empty() && recorded.avac_version != crate::VERSION && statement.is_none() {
        notes.push(format!("built by avac {}, audited with avac {}: a difference may come from the version", recorded.avac_version, crate::VERSION));
    }
    report.target = recorded.target.clone();

    // 3. Rebuild in scratch.
    let scratch = crate::atomic::scratch("avac-audit").map_err(io("creating the scratch directory"))?;
    let mut b = o.build.clone();
    b.out = scratch.path().join("out");
    let built = runner::build(&recorded.loaded, &recorded.target, &b).map_err(|source| AuditError::Rebuild { target: recorded.target.clone(), source })?;
    let artifact_name = recorded.loaded.target(&recorded.target)?.artifact().to_string();
    if artifact_name != name {
        notes.push(format!("the recorded target publishes {artifact_name:?}; auditing {name:?} against it"));
    }

    // 4. Compare every deterministic output (the provenance statement aside).
    let recorded_sha = |n: &str| statement.as_ref().and_then(|s| s.subjects.iter().find(|(x, _)| x == n).map(|(_, d)| d.clone()));
    let mut rebuilt_artifact = None;
    for (path, sha) in &built.outputs {
        let out_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if out_name.ends_with(".provenance.json") {
            continue;
        }
        let is_artifact = out_name == artifact_name;
        let given = if is_artifact {
            Some(given_sha.clone())
        } else {
            let p = artifact.with_file_name(&out_name);
            if p.is_file() {
                Some(crate::store::hash_file(&p).map_err(|e| AuditError::Artifact { path: p.clone(), why: e.to_string() })?.0)
            } else {
                notes.push(format!("{out_name} is not beside the artifact; compared by its recorded digest only"));
                None
            }
        };
        let shown = if is_artifact { name.clone() } else { out_name.clone() };
        if is_artifact {
            rebuilt_artifact = Some(path.clone());
        }
        report.outputs.push(Compared { name: shown, given, recorded: recorded_sha(&out_name), rebuilt: sha.clone() });
    }
    if let Some(s) = &statement {
        for (n, _) in &s.subjects {
            if !report.outputs.iter().any(|c| c.name == *n) && *n != artifact_name {
                notes.push(format!("the statement lists {n}, which the recorded target does not publish"));
            }
        }
    }
    let any_bytes_differ = report.outputs.iter().any(|c| c.given.as_deref().is_some_and(|g| g != c.rebuilt));
    let record_wrong = statement.is_some() && report.outputs.iter().any(|c| c.recorded.as_deref() != Some(c.rebuilt.as_str()));
    report.verdict = if any_bytes_differ {
        Verdict::Differs
    } else if record_wrong {
        report.mismatch = report
            .outputs
            .iter()
            .filter(|c| c.recorded.as_deref() != Some(c.rebuilt.as_str()))
            .map(|c| {
                format!(
                    "the statement records {} for {}, but the artifact and its rebuild are {}",
                    c.recorded.as_deref().unwrap_or("no digest"),
                    c.name,
                    c.rebuilt
                )
            })
            .collect();
        Verdict::ProvenanceMismatch
    } else {
        Verdict::Reproducible
    };
    if report.verdict == Verdict::Differs {
        if let Some(r) = &rebuilt_artifact {
            if report.outputs.first().is_some_and(|c| c.given.as_deref() != Some(c.rebuilt.as_str())) {
                let mut d = crate::diff::diff_paths(artifact, r)?;
                // The rebuild lives in a scratch directory that is gone after the audit.
                d.b.path = match &o.keep {
                    Some(k) => k.join(&artifact_name).display().to_string(),
                    None => format!("rebuild of {}", recorded.target),
                };
                report.diff = Some(d);
            }
        }
    }
    if let Some(k) = &o.keep {
        std::fs::create_dir_all(k).map_err(io(format!("creating {}", k.display())))?;
        for (p, _) in &built.outputs {
            let dest = k.join(p.file_name().expect("file name"));
            crate::atomic::copy(p, &dest).map_err(io(format!("keeping {}", dest.display())))?;
        }
    }
    report.notes = notes;
    Ok(report)
}
