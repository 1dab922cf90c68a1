//! `avac diff A B [--json]` through the binary: exit codes (0 identical,
//! 4 differ, 1 unreadable input, 2 usage) and the human report on a real
//! artifact (`malbert-tiny-int8`, built once per run) and on packages
//! written by the crate's tar writer. Files are named relative to the
//! working directory, so the reports are the same on every machine.

mod common;
use common::*;
use prost::Message;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tract_onnx::pb;

const ARTIFACT: &str = "malbert-tiny-intent-classifier-int8.onnx";

/// The `malbert-tiny-int8` artifact, built once for this test binary.
fn artifact() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let out = tempfile::tempdir().unwrap().keep();
            let o = avac(&repo(), &["build", "malbert-tiny-int8", "--out", out.to_str().unwrap()]);
            assert!(o.status.success(), "{}", stderr(&o));
            out.join(ARTIFACT)
        })
        .clone()
}

/// A directory holding `a.onnx` (the artifact) and `b.onnx` (the artifact edited by `edit`).
fn onnx_pair(edit: impl FnOnce(&mut pb::ModelProto)) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(artifact()).unwrap();
    std::fs::write(d.path().join("a.onnx"), &bytes).unwrap();
    let mut m = pb::ModelProto::decode(bytes.as_slice()).unwrap();
    edit(&mut m);
    std::fs::write(d.path().join("b.onnx"), m.encode_to_vec()).unwrap();
    d
}

fn diff(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["diff"];
    all.extend_from_slice(args);
    let o = avac(dir, &all);
    (o.status.code().unwrap_or(-1), stdout(&o), stderr(&o))
}

#[test]
fn identical_files_exit_0() {
    let d = onnx_pair(|_| {});
    std::fs::copy(d.path().join("a.onnx"), d.path().join("b.onnx")).unwrap();
    let (code, out, err) = diff(d.path(), &["a.onnx", "b.onnx"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("onnx: a.onnx vs b.onnx: identical (") && out.lines().count() == 1, "{out}");
    let (code, out, _) = diff(d.path(), &["--json", "a.onnx", "b.onnx"]);
    assert_eq!(code, 0);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((j["identical"].as_bool(), j["sections"].as_array().map(Vec::len)), (Some(true), Some(0)));
    assert_eq!(j["a"]["kind"], "onnx");
}

#[test]
fn one_initializer_value_altered() {
    // One int8 weight of the classifier moves by one quantization step.
    let d = onnx_pair(|m| {
        let g = m.graph.as_mut().unwrap();
        let t = g.initializer.iter_mut().find(|t| t.name == "classifier.weight.Transpose.q").unwrap();
        t.raw_data[5] = t.raw_data[5].wrapping_add(1);
    });
    let (code, out, err) = diff(d.path(), &["a.onnx", "b.onnx"]);
    assert_eq!(code, 4, "{out}{err}");
    let line = out.lines().find(|l| l.contains("classifier.weight.Transpose.q")).unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains(": 1 of 6400 elements differ (first at 5), max |Δ| 1; after DequantizeLinear: 1 of 6400 values differ"), "{line}");
    insta::assert_snapshot!("onnx_initializer", out);
    let (code, json, _) = diff(d.path(), &["--json", "a.onnx", "b.onnx"]);
    assert_eq!(code, 4);
    assert!(!json.contains("NaN"));
    let j: serde_json::Value = serde_json::from_str(&json).unwrap();
    let inits = j["sections"].as_array().unwrap().iter().find(|s| s["name"] == "initializers").unwrap();
    let v = &inits["differences"][0];
    assert_eq!((&v["change"], &v["item"], &v["values"]["differing"]), (&"values".into(), &"classifier.weight.Transpose.q".into(), &1.into()));
}

#[test]
fn one_metadata_value_changed() {
    let d = onnx_pair(|m| {
        let e = m.metadata_props.iter_mut().find(|e| e.key == "avac.target").unwrap();
        e.value = "malbert-int8".into();
    });
    let (code, out, err) = diff(d.path(), &["a.onnx", "b.onnx"]);
    assert_eq!(code, 4, "{out}{err}");
    assert!(out.contains("metadata_props\n  ~ avac.target: \"malbert-tiny-int8\" → \"malbert-int8\"\n"), "{out}");
    insta::assert_snapshot!("onnx_metadata", out);
}

/// Sets the mode field of the header of `entry` in the archive `bytes` and reseals its checksum.
fn set_mode(bytes: &mut [u8], archive: &Path, entry: &str, mode: &[u8; 8]) {
    let e = avac::package::tar::list(archive).unwrap().into_iter().find(|e| e.path == entry).unwrap();
    let h = e.data_offset as usize - 512;
    bytes[h + 100..h + 108].copy_from_slice(mode);
    bytes[h + 148..h + 156].copy_from_slice(b"        ");
    let sum: u64 = bytes[h..h + 512].iter().map(|&b| u64::from(b)).sum();
    bytes[h + 148..h + 156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

#[test]
fn tar_entry_mode_flipped() {
    use avac::package::tar::{write, Input, Options, Source};
    let d = tempfile::tempdir().unwrap();
    let input = |path: &str, bytes: &[u8], executable: bool| Input { path: path.into(), source: Source::Bytes(bytes.to_vec()), executable };
    let inputs = vec![
        input("mlc-chat-config.json", b"{\"model_type\": \"gemma3_text\"}\n", false),
        input("tokenizer.json", b"{\"model\": {}}\n", false),
        input("lib/arm64-v8a/libtvm4j_runtime_packed.so", b"\x7fELF", true),
    ];
    let a = d.path().join("a.tar");
    write(&a, inputs, &Options::default()).unwrap();
    let mut bytes = std::fs::read(&a).unwrap();
    set_mode(&mut bytes, &a, "tokenizer.json", b"0000664\0");
    std::fs::write(d.path().join("b.tar"), &bytes).unwrap();
    let (code, out, err) = diff(d.path(), &["a.tar", "b.tar"]);
    assert_eq!(code, 4, "{out}{err}");
    assert!(out.contains("entries\n  ~ tokenizer.json: mode 0644 → 0664\n"), "{out}");
    insta::assert_snapshot!("tar_mode", out);
}

#[test]
fn safetensors_checkpoints_with_other_weights() {
    let d = tempfile::tempdir().unwrap();
    let gen = |seed: u64, dir: &str| {
        let params = avac::fixtures::params_from(&serde_json::json!({ "seed": seed })).unwrap();
        avac::fixtures::generate("albert", &params, &d.path().join(dir)).unwrap();
    };
    gen(0, "a");
    gen(1, "b");
    let (code, out, err) = diff(d.path(), &["a/model.safetensors", "b/model.safetensors"]);
    assert_eq!(code, 4, "{out}{err}");
    assert!(out.starts_with("safetensors: a/model.safetensors vs b/model.safetensors: differ ("), "{out}");
    assert!(out.contains("\ntensors\n  ~ "), "{out}");
    assert!(out.contains("more\n"), "a long section is capped: {out}");
    // Different kinds are compared as bytes, and said to be.
    let (code, out, _) = diff(d.path(), &["a/model.safetensors", "a/config.json"]);
    assert_eq!(code, 4);
    assert!(out.starts_with("a/model.safetensors (safetensors) vs a/config.json (bytes): differ: different kinds"), "{out}");
}

#[test]
fn truncated_or_missing_files_exit_1_naming_them() {
    let d = onnx_pair(|_| {});
    let bytes = std::fs::read(d.path().join("a.onnx")).unwrap();
    std::fs::write(d.path().join("cut.onnx"), &bytes[..bytes.len() / 2]).unwrap();
    let (code, out, err) = diff(d.path(), &["a.onnx", "cut.onnx"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.is_empty() && err.starts_with("error: cut.onnx: not an ONNX model"), "{err}");
    let (code, _, err) = diff(d.path(), &["a.onnx", "nowhere.onnx"]);
    assert_eq!(code, 1);
    assert!(err.contains("nowhere.onnx"), "{err}");
    let (code, _, err) = diff(d.path(), &["a.onnx"]);
    assert_eq!(code, 2, "{err}");
}
