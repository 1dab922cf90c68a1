//! Provenance: an in-toto Statement v1 whose predicate is SLSA provenance v1.
//!
//! A record has two halves with different lifetimes:
//!
//! - the **build definition** (`predicate.buildDefinition`): the target's
//!   declaration, every input with its pin, the avac version and the step
//!   names. It is a pure function of the declaration, known before the first
//!   step runs, so the artifact carries it: ONNX models in `metadata_props`
//!   ([`META_BUILD_DEFINITION`] and its digest [`META_BUILD_DEFINITION_SHA256`]),
//!   packages as the file [`crate::package::BUILD_DEFINITION_FILE`].
//!   `avac audit` rebuilds from it alone.
//! - the **statement** around it: the subjects (the deterministic outputs and
//!   their sha256) and `runDetails` (which engine ran, the avac version and
//!   the sha256 of the avac binary that ran the steps). It is written beside
//!   the artifact as `<artifact>.provenance.json`.
//!
//! Both are deterministic: JSON with a fixed key order, no time, host or
//! path. `runDetails.metadata.startedOn`/`finishedOn` appear only when
//! `SOURCE_DATE_EPOCH` is set, and then hold that instant. The statement's
//! bytes depend on the avac binary (its digest is recorded), so `golden/`
//! pins the artifacts, which hold the build definition, and not the
//! statement.
//!
//! Formats: <https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md>,
//! <https://slsa.dev/spec/v1.0/provenance>.

use crate::declaration::{DeclError, Declaration, Loaded, Target};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `_type` of an in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// `predicateType` of SLSA provenance v1.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// `buildDefinition.buildType`: an avac target built from its declaration.
pub const BUILD_TYPE: &str = "urn:avac:build-type:target:v1";
/// ONNX `metadata_props` key holding the build definition (compact JSON).
pub const META_BUILD_DEFINITION: &str = "avac.build_definition";
/// ONNX `metadata_props` key holding the build definition's sha256.
pub const META_BUILD_DEFINITION_SHA256: &str = "avac.build_definition.sha256";
/// Declaration fields that do not change what is built (left out of the
/// build definition so that editing them changes no artifact byte).
const COSMETIC: [&str; 2] = ["description", "default"];

/// Which engine ran the steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// `avac build`.
    Local,
    /// `nix build` (`avac build-step` in derivations).
    Nix,
}

impl Engine {
    /// `runDetails.builder.id`.
    pub fn id(self) -> &'static str {
        match self {
            Engine::Local => "urn:avac:builder:avac-build",
            Engine::Nix => "urn:avac:builder:nix",
        }
    }
}

/// Failures reading a provenance record or a build definition.
#[derive(Debug, thiserror::Error)]
pub enum ProvenanceError {
    /// Not JSON, or not the expected shape.
    #[error("{file}: {why}")]
    Invalid {
        /// The file (or `ARTIFACT metadata`).
        file: String,
        /// What is wrong.
        why: String,
    },
    /// The declaration it records does not check.
    #[error("{file}: the recorded declaration does not check: {source}")]
    Decl {
        /// The file.
        file: String,
        /// The error.
        source: DeclError,
    },
}

/// The build definition of target `name`: a pure function of the
/// declaration and the avac version.
pub fn build_definition(l: &Loaded, name: &str, t: &Target, steps: &[&str]) -> Value {
    let mut declaration = serde_json::to_value(t).expect("serialisable");
    if let Value::Object(m) = &mut declaration {
        for k in COSMETIC {
            m.shift_remove(k);
        }
    }
    let deps: Vec<Value> = l
        .inputs_of(t)
        .into_iter()
        .map(|s| {
            let src = &l.decl.sources[s];
            json!({
                "name": s,
                "uri": source_uri(s, src),
                "digest": { "sha256": src.sha256().unwrap_or("") },
                "annotations": { "avac.source": src },
            })
        })
        .collect();
    json!({
        "buildType": BUILD_TYPE,
        "externalParameters": { "target": name, "declaration": declaration },
        "internalParameters": { "avac_version": crate::VERSION, "steps": steps },
        "resolvedDependencies": deps,
    })
}

/// A source's address as a URI without any host name: package URLs for
/// registries (`pkg:pypi/…`, `pkg:huggingface/…`), the URL itself for
/// `url` sources, `urn:avac:…` for the rest.
fn source_uri(name: &str, s: &crate::store::Source) -> String {
    use crate::store::Source;
    match s {
        Source::Hf(h) => format!("pkg:huggingface/{}@{}#{}", h.repo, h.revision, h.file),
        Source::Pypi(p) => match &p.file {
            Some(f) => format!("pkg:pypi/{}@{}#{}", p.package, p.version, f),
            None => format!("pkg:pypi/{}@{}", p.package, p.version),
        },
        Source::Url(u) => u.url.clone(),
        Source::File(f) => format!("urn:avac:file:{}", f.path),
        Source::Generated(g) => format!("urn:avac:generated:{}:{name}", g.generator),
        Source::Concat(c) => format!("urn:avac:concat:{}", c.parts.join("+")),
    }
}

/// The canonical bytes of a build definition (compact JSON, keys in the
/// order written), as embedded in artifacts and digested.
pub fn canonical(definition: &Value) -> Vec<u8> {
    serde_json::to_vec(definition).expect("serialisable")
}

/// The sha256 of a build definition's canonical bytes.
pub fn digest(definition: &Value) -> String {
    crate::store::hash_bytes(&canonical(definition))
}

/// `SOURCE_DATE_EPOCH` as an RFC 3339 UTC instant, when it is set and valid.
pub fn source_date() -> Option<String> {
    let secs: i64 = std::env::var("SOURCE_DATE_EPOCH").ok()?.trim().parse().ok()?;
    Some(rfc3339(secs))
}

/// Seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic
/// Gregorian, civil-from-days).
fn rfc3339(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// The statement: `subjects` are `(file name, sha256)` of the deterministic
/// outputs, artifact first; `avac_sha256` is the digest of the avac binary
/// that ran the steps. Pretty JSON with a final newline.
pub fn statement(definition: &Value, subjects: &[(String, String)], engine: Engine, avac_sha256: &str, date: Option<&str>) -> Vec<u8> {
    let subject: Vec<Value> = subjects.iter().map(|(n, d)| json!({ "name": n, "digest": { "sha256": d } })).collect();
    let mut run = json!({
        "builder": { "id": engine.id(), "version": { "avac": crate::VERSION } },
        "byproducts": [{ "name": "avac", "digest": { "sha256": avac_sha256 } }],
    });
    if let Some(d) = date {
        run["metadata"] = json!({ "startedOn": d, "finishedOn": d });
    }
    let v = json!({
        "_type": STATEMENT_TYPE,
        "subject": subject,
        "predicateType": PREDICATE_TYPE,
        "predicate": { "buildDefinition": definition, "runDetails": run },
    });
    let mut b = serde_json::to_vec_pretty(&v).expect("serialisable");
    b.push(b'\n');
    b
}

/// A parsed statement.
#[derive(Clone, Debug)]
pub struct Statement {
    /// `(name, sha256)` of each subject, in order.
    pub subjects: Vec<(String, String)>,
    /// `predicate.buildDefinition` as written.
    pub definition: Value,
    /// `runDetails.builder.version.avac`.
    pub avac_version: String,
    /// `runDetails.byproducts[avac].digest.sha256`, when recorded.
    pub avac_sha256: Option<String>,
}

/// Largest provenance statement read: real ones are a few kilobytes.
pub const MAX_STATEMENT_BYTES: u64 = 16 << 20;
/// Largest build definition read (embedded in an artifact, or in a statement).
pub const MAX_DEFINITION_BYTES: u64 = 1 << 20;

/// Reads `path`, refusing more than `max` bytes before reading any.
pub fn read_capped(path: &Path, max: u64, what: &str) -> Result<Vec<u8>, ProvenanceError> {
    let bad = |why: String| ProvenanceError::Invalid { file: path.display().to_string(), why };
    let len = std::fs::metadata(path).map_err(|e| bad(format!("cannot read: {e}")))?.len();
    if len > max {
        return Err(bad(format!("{len} bytes; {what} is at most {max}")));
    }
    std::fs::read(path).map_err(|e| bad(format!("cannot read: {e}")))
}

/// Parses a statement (checking its types and shape, not its truth).
pub fn parse_statement(bytes: &[u8], file: &str) -> Result<Statement, ProvenanceError> {
    let bad = |why: String| ProvenanceError::Invalid { file: file.into(), why };
    if bytes.len() as u64 > MAX_STATEMENT_BYTES {
        return Err(bad(format!("{} bytes; a provenance statement is at most {MAX_STATEMENT_BYTES}", bytes.len())));
    }
    let v: Value = serde_json::from_slice(bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
    let s = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
    if s(&v, "/_type").as_deref() != Some(STATEMENT_TYPE) {
        return Err(bad(format!("_type is {:?}, expected {STATEMENT_TYPE:?} (an in-toto Statement v1)", s(&v, "/_type"))));
    }
    if s(&v, "/predicateType").as_deref() != Some(PREDICATE_TYPE) {
        return Err(bad(format!("predicateType is {:?}, expected {PREDICATE_TYPE:?} (SLSA provenance v1)", s(&v, "/predicateType"))));
    }
    let subjects = v
        .get("subject")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| bad("subject is missing or empty".into()))?
        .iter()
        .enumerate()
        .map(|(i, x)| match (s(x, "/name"), s(x, "/digest/sha256")) {
            (Some(n), Some(d)) if is_sha256(&d) => Ok((n, d)),
            _ => Err(bad(format!("subject[{i}] needs a name and a 64-hex digest.sha256"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let definition = v.pointer("/predicate/buildDefinition").cloned().ok_or_else(|| bad("predicate.buildDefinition is missing".into()))?;
    let avac_version = s(&v, "/predicate/runDetails/builder/version/avac").ok_or_else(|| bad("runDetails.builder.version.avac is missing".into()))?;
    let avac_sha256 = v
        .pointer("/predicate/runDetails/byproducts")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|b| s(b, "/name").as_deref() == Some("avac")))
        .and_then(|b| s(b, "/digest/sha256"));
    Ok(Statement { subjects, definition, avac_version, avac_sha256 })
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What a build definition asks to build: the target's name and a
/// declaration holding just that target and its sources.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The target's name.
    pub target: String,
    /// The declaration to rebuild from.
    pub loaded: Loaded,
    /// The avac version that wrote it.
    pub avac_version: String,
}

/// Reads a build definition back into a declaration `avac build` can run.
/// `repo_root` is where `file` sources live (`None`: the embedded copies).
pub fn recorded(definition: &Value, file: &str, repo_root: Option<PathBuf>) -> Result<Recorded, ProvenanceError> {
    let bad = |why: String| ProvenanceError::Invalid { file: file.into(), why };
    if definition.get("buildType").and_then(Value::as_str) != Some(BUILD_TYPE) {
        return Err(bad(format!("buildDefinition.buildType is not {BUILD_TYPE:?}: not an avac build")));
    }
    // avac writes exactly these keys; anything else was not written by avac
    // and would be ignored by the rebuild, so it is refused.
    let keys = [
        ("buildDefinition", definition, &["buildType", "externalParameters", "internalParameters", "resolvedDependencies"][..]),
        ("buildDefinition.externalParameters", definition.get("externalParameters").unwrap_or(&Value::Null), &["target", "declaration"][..]),
    ];
    for (at, v, known) in keys {
        if let Some(k) = v.as_object().and_then(|o| o.keys().find(|k| !known.contains(&k.as_str()))) {
            return Err(bad(format!("{at} has the unknown key {k:?} (avac writes {known:?})")));
        }
    }
    let target = definition
        .pointer("/externalParameters/target")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("buildDefinition.externalParameters.target is missing".into()))?
        .to_string();
    let mut declaration =
        definition.pointer("/externalParameters/declaration").cloned().ok_or_else(|| bad("externalParameters.declaration is missing".into()))?;
    if let Value::Object(m) = &mut declaration {
        m.insert("description".into(), json!(format!("recorded in {file}")));
    }
    let avac_version = definition.pointer("/internalParameters/avac_version").and_then(Value::as_str).unwrap_or("").to_string();
    let mut sources = Map::new();
    for (i, d) in
        definition.get("resolvedDependencies").and_then(Value::as_array).ok_or_else(|| bad("resolvedDependencies is missing".into()))?.iter().enumerate()
    {
        let name = d.get("name").and_then(Value::as_str).ok_or_else(|| bad(format!("resolvedDependencies[{i}] has no name")))?;
        let decl = d
            .pointer("/annotations/avac.source")
            .cloned()
            .ok_or_else(|| bad(format!("resolvedDependencies[{i}] ({name}) has no annotations.\"avac.source\"")))?;
        let pinned = decl.get("sha256").and_then(Value::as_str);
        let digest = d.pointer("/digest/sha256").and_then(Value::as_str);
        if pinned != digest {
            return Err(bad(format!("resolvedDependencies[{i}] ({name}): digest.sha256 {digest:?} disagrees with its declaration's pin {pinned:?}")));
        }
        sources.insert(name.to_string(), decl);
    }
    let decl_value = json!({ "sources": sources, "targets": { target.clone(): declaration } });
    let decl: Declaration = serde_json::from_value(decl_value).map_err(|e| bad(format!("the recorded declaration does not parse: {e}")))?;
    let loaded = Loaded::from_declaration(decl, Path::new(file), repo_root).map_err(|source| ProvenanceError::Decl { file: file.into(), source })?;
    // Every input the target reads must be recorded, and nothing else.
    let t = loaded.target(&target).map_err(|source| ProvenanceError::Decl { file: file.into(), source })?;
    let inputs: Vec<&str> = loaded.inputs_of(t);
    let listed: Vec<&str> = loaded.decl.sources.keys().map(String::as_str).collect();
    if inputs != listed {
        return Err(bad(format!("resolvedDependencies list {listed:?} but the target reads {inputs:?}")));
    }
    Ok(Recorded { target, loaded, avac_version })
}

/// Field-level differences between two JSON values (`path: a → b`), for
/// explaining a build definition that does not match; at most `limit`.
pub fn json_differences(a: &Value, b: &Value, limit: usize) -> Vec<String> {
    fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<String>, limit: usize) {
        if out.len() >= limit || a == b {
            return;
        }
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: BTreeMap<&String, ()> = x.keys().chain(y.keys()).map(|k| (k, ())).collect();
                for k in keys.keys() {
                    let p = format!("{path}.{k}");
                    match (x.get(*k), y.get(*k)) {
                        (Some(u), Some(v)) => walk(&p, u, v, out, limit),
                        (Some(_), None) => out.push(format!("{p}: only in the first")),
                        (None, Some(_)) => out.push(format!("{p}: only in the second")),
                        (None, None) => {}
                    }
                }
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                for (i, (u, v)) in x.iter().zip(y).enumerate() {
                    walk(&format!("{path}[{i}]"), u, v, out, limit);
                }
            }
            _ => out.push(format!("{path}: {} → {}", short(a), short(b))),
        }
    }
    let mut out = Vec::new();
    walk("", a, b, &mut out, limit);
    out.iter().map(|s| s.trim_start_matches('.').to_string()).collect()
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(315_532_800), "1980-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(rfc3339(4_102_444_800), "2100-01-01T00:00:00Z");
    }

    #[test]
    fn every_target_round_trips_through_its_build_definition() {
        let l = Loaded::embedded();
        for (name, t) in &l.decl.targets {
            let bd = build_definition(&l, name, t, &["a", "b"]);
            let r = recorded(&bd, "p.json", None).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(r.target, *name);
            let back = r.loaded.target(name).unwrap();
            let again = build_definition(&r.loaded, name, back, &["a", "b"]);
            assert_eq!(canonical(&again), canonical(&bd), "{name}: the build definition is a fixed point");
        }
    }

    #[test]
    fn statement_parses_back_and_rejects_other_types() {
        let l = Loaded::embedded();
        let t = l.target("malbert-tiny-int8").unwrap();
        let bd = build_definition(&l, "malbert-tiny-int8", t, &["convert"]);
        let sha = "a".repeat(64);
        let st = statement(&bd, &[("m.onnx".into(), sha.clone())], Engine::Local, &"b".repeat(64), None);
        let p = parse_statement(&st, "m.onnx.provenance.json").unwrap();
        assert_eq!(p.subjects, vec![("m.onnx".to_string(), sha)]);
        assert_eq!(digest(&p.definition), digest(&bd));
        assert_eq!(p.avac_sha256.as_deref(), Some("b".repeat(64).as_str()));
        let text = String::from_utf8(st).unwrap();
        assert!(!text.contains("startedOn"), "no time unless SOURCE_DATE_EPOCH is set");
        let other = text.replace(STATEMENT_TYPE, "https://in-toto.io/Statement/v0.1");
        let e = parse_statement(other.as_bytes(), "x.json").unwrap_err().to_string();
        assert!(e.contains("x.json") && e.contains("Statement v1"), "{e}");
        let dated = statement(&bd, &[("m.onnx".into(), "a".repeat(64))], Engine::Nix, &"b".repeat(64), Some("1980-01-01T00:00:00Z"));
        assert!(String::from_utf8(dated).unwrap().contains("\"startedOn\": \"1980-01-01T00:00:00Z\""));
    }

    #[test]
    fn a_dependency_whose_digest_disagrees_with_its_pin_is_refused() {
        let l = Loaded::embedded();
        let t = l.target("malbert-tiny-int8").unwrap();
        let mut bd = build_definition(&l, "malbert-tiny-int8", t, &[]);
        bd["resolvedDependencies"][0]["digest"]["sha256"] = json!("0".repeat(64));
        let e = recorded(&bd, "p.json", None).unwrap_err().to_string();
        assert!(e.contains("disagrees with its declaration's pin"), "{e}");
        let mut bd = build_definition(&l, "malbert-tiny-int8", t, &[]);
        bd["resolvedDependencies"].as_array_mut().unwrap().pop();
        let e = recorded(&bd, "p.json", None).unwrap_err().to_string();
        assert!(e.contains("the target reads") || e.contains("unknown source"), "{e}");
    }

    #[test]
    fn unknown_keys_and_oversized_statements_are_refused() {
        let l = Loaded::embedded();
        let t = l.target("malbert-tiny-int8").unwrap();
        let mut bd = build_definition(&l, "malbert-tiny-int8", t, &[]);
        bd["externalParameters"]["out_dir"] = json!("/etc");
        let e = recorded(&bd, "p.json", None).unwrap_err().to_string();
        assert!(e.starts_with("p.json: buildDefinition.externalParameters has the unknown key \"out_dir\""), "{e}");
        let mut bd = build_definition(&l, "malbert-tiny-int8", t, &[]);
        bd["runHere"] = json!(true);
        assert!(recorded(&bd, "p.json", None).unwrap_err().to_string().contains("unknown key \"runHere\""));
        // The recorded declaration itself refuses unknown keys (serde).
        let mut bd = build_definition(&l, "malbert-tiny-int8", t, &[]);
        bd["externalParameters"]["declaration"]["post_build"] = json!("rm -rf /");
        assert!(recorded(&bd, "p.json", None).unwrap_err().to_string().contains("post_build"));

        let big = vec![b' '; MAX_STATEMENT_BYTES as usize + 1];
        assert!(parse_statement(&big, "s.json").unwrap_err().to_string().contains("at most"));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.provenance.json");
        std::fs::File::create(&p).unwrap().set_len(MAX_STATEMENT_BYTES + 1).unwrap();
        let e = read_capped(&p, MAX_STATEMENT_BYTES, "a provenance statement").unwrap_err().to_string();
        assert!(e.contains("big.provenance.json") && e.contains("a provenance statement is at most"), "{e}");
    }

    #[test]
    fn json_differences_name_the_changed_field() {
        let a = json!({ "x": { "y": [1, 2], "z": "q" } });
        let b = json!({ "x": { "y": [1, 3], "w": true } });
        assert_eq!(json_differences(&a, &b, 10), vec!["x.w: only in the second", "x.y[1]: 2 → 3", "x.z: only in the first"]);
    }
}
