//! `avac audit` on `malbert-tiny-int8` (builds in seconds): an untouched
//! artifact is reproducible from its provenance, from the build definition
//! it carries and from the declaration; one altered initializer value or
//! metadata field says `differs` and names the place; an altered provenance
//! record is caught before or after the rebuild. (The package cases — an
//! untouched `.tar` and one mode bit — are in tests/alc.rs, next to the
//! Gemma build.)

mod common;
use avac::graph::{ir::DType, onnx};
use common::*;
use std::path::{Path, PathBuf};

const TARGET: &str = "malbert-tiny-int8";
const ONNX: &str = "malbert-tiny-intent-classifier-int8.onnx";

fn build(dir: &Path) -> PathBuf {
    let o = avac(&repo(), &["build", TARGET, "--out", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    dir.join(ONNX)
}

fn audit(cwd: &Path, args: &[&str]) -> (i32, String) {
    let o = avac(cwd, &[&["audit"], args].concat());
    (o.status.code().unwrap_or(-1), format!("{}{}", stdout(&o), stderr(&o)))
}

/// A copy of the artifact in its own directory (with or without the provenance beside it).
fn copy_to(model: &Path, dir: &Path, with_provenance: bool) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let m = dir.join(ONNX);
    std::fs::copy(model, &m).unwrap();
    if with_provenance {
        let p = format!("{ONNX}.provenance.json");
        std::fs::copy(model.with_file_name(&p), dir.join(&p)).unwrap();
    }
    m
}

/// Rewrites the model through avac's ONNX codec after `edit`; the untouched
/// model must round-trip to the same bytes, so only `edit` changes them.
fn alter(path: &Path, edit: impl FnOnce(&mut avac::graph::ir::Model)) {
    let bytes = std::fs::read(path).unwrap();
    let mut m = onnx::from_bytes(&bytes, "model").unwrap();
    assert_eq!(onnx::to_bytes(&m), bytes, "the codec round-trips the artifact");
    edit(&mut m);
    std::fs::write(path, onnx::to_bytes(&m)).unwrap();
}

#[test]
fn untouched_artifact_is_reproducible_three_ways() {
    let d = tempfile::tempdir().unwrap();
    let model = build(&d.path().join("out"));
    // 1. The statement beside it.
    let (code, out) = audit(&repo(), &[model.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verdict: reproducible") && out.contains(".provenance.json"), "{out}");
    // 2. The build definition inside it alone, audited from outside the repository.
    let alone = copy_to(&model, &d.path().join("alone"), false);
    let (code, out) = audit(d.path(), &[alone.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("metadata_props avac.build_definition"), "{out}");
    // 3. The current declaration of the target.
    let (code, out) = audit(&repo(), &[model.to_str().unwrap(), "--target", TARGET, "--json"]);
    assert_eq!(code, 0, "{out}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["verdict"], "reproducible");
    assert_eq!(r["outputs"][0]["given"], r["outputs"][0]["rebuilt"]);
}

#[test]
fn one_initializer_value_differs_and_is_named() {
    let d = tempfile::tempdir().unwrap();
    let model = build(&d.path().join("out"));
    let t = copy_to(&model, &d.path().join("t"), true);
    let mut altered = String::new();
    alter(&t, |m| {
        let (name, tensor) = m.graph.initializers.iter_mut().find(|(_, t)| t.dtype == DType::I8 && t.data.len() > 100).expect("an int8 weight");
        tensor.data[7] = tensor.data[7].wrapping_add(1);
        altered = name.clone();
    });
    let (code, out) = audit(&repo(), &[t.to_str().unwrap()]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("verdict: differs"), "{out}");
    assert!(out.contains(&altered), "the diff names {altered}:\n{out}");
    // `avac diff` says the same about the two files.
    let o = avac(&repo(), &["diff", model.to_str().unwrap(), t.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stdout(&o).contains(&altered), "{}", stdout(&o));
}

#[test]
fn one_metadata_field_differs_and_is_named() {
    let d = tempfile::tempdir().unwrap();
    let model = build(&d.path().join("out"));
    let t = copy_to(&model, &d.path().join("t"), true);
    alter(&t, |m| {
        m.metadata.insert("avac.target".into(), "malbert-int8".into());
    });
    let (code, out) = audit(&repo(), &[t.to_str().unwrap()]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("avac.target"), "{out}");
}

#[test]
fn altered_provenance_is_caught() {
    let d = tempfile::tempdir().unwrap();
    let model = build(&d.path().join("out"));
    let statement = std::fs::read_to_string(model.with_file_name(format!("{ONNX}.provenance.json"))).unwrap();

    // A parameter changed in the record: caught before any rebuild, field named.
    let t = copy_to(&model, &d.path().join("param"), false);
    let forged = statement.replacen("\"smoothing\": 0.5", "\"smoothing\": 0.25", 1);
    assert_ne!(forged, statement);
    std::fs::write(t.with_file_name(format!("{ONNX}.provenance.json")), &forged).unwrap();
    let (code, out) = audit(&repo(), &[t.to_str().unwrap()]);
    assert_eq!(code, 5, "{out}");
    assert!(out.contains("verdict: provenance-mismatch") && out.contains("smoothing"), "{out}");

    // A subject digest changed: the rebuild equals the artifact, not the record.
    let t = copy_to(&model, &d.path().join("subject"), false);
    let v: serde_json::Value = serde_json::from_str(&statement).unwrap();
    let sha = v["subject"][0]["digest"]["sha256"].as_str().unwrap();
    let forged = statement.replace(sha, &"0".repeat(64));
    let p = d.path().join("forged.json");
    std::fs::write(&p, forged).unwrap();
    let (code, out) = audit(&repo(), &[t.to_str().unwrap(), "--provenance", p.to_str().unwrap()]);
    assert_eq!(code, 5, "{out}");
    assert!(out.contains(&"0".repeat(64)), "{out}");

    // Not an in-toto statement at all: an error naming the file.
    std::fs::write(&p, "{\"_type\": \"something else\"}").unwrap();
    let (code, out) = audit(&repo(), &[t.to_str().unwrap(), "--provenance", p.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("forged.json") && out.contains("in-toto Statement v1"), "{out}");
}

#[test]
fn embedded_build_definition_tampering_and_missing_provenance_are_errors() {
    let d = tempfile::tempdir().unwrap();
    let model = build(&d.path().join("out"));
    // The definition text altered without its digest: refused.
    let t = copy_to(&model, &d.path().join("t"), false);
    alter(&t, |m| {
        let bd = m.metadata.get_mut("avac.build_definition").unwrap();
        *bd = bd.replacen("\"smoothing\":0.5", "\"smoothing\":0.25", 1);
    });
    let (code, out) = audit(&repo(), &[t.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("embedded build definition was altered"), "{out}");
    // No definition anywhere: says what to pass.
    let bare = d.path().join("bare.onnx");
    alter(&copy_to(&model, &d.path().join("b"), false), |m| {
        m.metadata.clear();
    });
    std::fs::rename(d.path().join("b").join(ONNX), &bare).unwrap();
    let (code, out) = audit(&repo(), &[bare.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("--provenance") && out.contains("bare.onnx"), "{out}");
}

/// An attacker's artifact whose build definition (consistent, digest and
/// all) names its artifact with an absolute path or `..`: the audit refuses
/// the record when it reads it, naming the field, and writes nothing there
/// (the rebuild would otherwise have published outside its scratch dir).
#[test]
fn a_hostile_artifact_name_in_the_record_is_refused_and_nothing_is_written() {
    let d = tempfile::tempdir().unwrap();
    let model = build(&d.path().join("out"));
    let outside = d.path().join("outside");
    let cases = [outside.join("escaped.onnx").display().to_string(), "../../escaped.onnx".to_string(), "..".to_string(), String::new()];
    for (i, hostile) in cases.iter().enumerate() {
        let t = copy_to(&model, &d.path().join(format!("case{i}/a/b")), false);
        alter(&t, |m| {
            let bd = m.metadata.get("avac.build_definition").unwrap();
            let mut v: serde_json::Value = serde_json::from_str(bd).unwrap();
            v["externalParameters"]["declaration"]["artifact"] = serde_json::json!(hostile);
            let text = serde_json::to_string(&v).unwrap();
            m.metadata.insert("avac.build_definition.sha256".into(), avac::store::hash_bytes(text.as_bytes()));
            m.metadata.insert("avac.build_definition".into(), text);
        });
        let (code, out) = audit(t.parent().unwrap(), &[t.to_str().unwrap()]);
        assert_eq!(code, 1, "{hostile:?}: {out}");
        assert!(out.contains("must be a plain file name") && out.contains(&format!("{hostile:?}")), "{hostile:?}: {out}");
        assert!(!outside.exists(), "{hostile:?}: wrote outside the scratch directory");
        let mut left: Vec<String> = walk(&d.path().join(format!("case{i}")));
        left.sort();
        assert_eq!(left, [format!("a/b/{ONNX}")], "{hostile:?}: only the audited file is there");
    }
}

/// Every file below `dir`, relative.
fn walk(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(walk(&p).into_iter().map(|r| format!("{}/{r}", p.file_name().unwrap().to_string_lossy())));
        } else {
            v.push(p.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    v
}
