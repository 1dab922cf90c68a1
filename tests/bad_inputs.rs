//! Hostile and mistaken inputs: each gives a clear error naming the file
//! and the fault, a non-zero exit, and nothing in the output location.

mod common;
use common::*;
use std::path::{Path, PathBuf};

/// A fresh tiny ALBERT checkpoint directory.
fn tiny(dir: &Path) -> PathBuf {
    let m = dir.join("model");
    avac::fixtures::generate("albert", &Default::default(), &m).unwrap();
    m
}

/// Runs `aon convert` and checks it fails naming `needles`, leaving no output.
fn convert_fails(dir: &Path, model: &Path, intents: &Path, classes: usize, needles: &[&str]) {
    let out = dir.join("out");
    let o = convert(dir, model, intents, classes, &out);
    let err = stderr(&o);
    assert!(!o.status.success(), "unexpected success");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {err}");
    }
    assert!(!out.exists(), "output left behind");
    let leftovers: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().contains("avac-tmp")).collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

fn intents() -> PathBuf {
    repo().join("data/intents/voice-assistant.json")
}

#[test]
fn truncated_safetensors() {
    let d = tempfile::tempdir().unwrap();
    let m = tiny(d.path());
    let f = m.join("model.safetensors");
    let len = std::fs::metadata(&f).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
    file.set_len(len / 2).unwrap();
    convert_fails(d.path(), &m, &intents(), 100, &["model.safetensors"]);
}

#[test]
fn overlapping_offsets() {
    let d = tempfile::tempdir().unwrap();
    let m = tiny(d.path());
    let header = br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0u8; 12]);
    std::fs::write(m.join("model.safetensors"), bytes).unwrap();
    convert_fails(d.path(), &m, &intents(), 100, &["model.safetensors", "overlap"]);
}

#[test]
fn malformed_safetensors_header() {
    let d = tempfile::tempdir().unwrap();
    let m = tiny(d.path());
    let mut bytes = 10u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{not json}");
    std::fs::write(m.join("model.safetensors"), bytes).unwrap();
    convert_fails(d.path(), &m, &intents(), 100, &["model.safetensors"]);
}

#[test]
fn missing_tokenizer() {
    let d = tempfile::tempdir().unwrap();
    let m = tiny(d.path());
    std::fs::remove_file(m.join("tokenizer.json")).unwrap();
    convert_fails(d.path(), &m, &intents(), 100, &["tokenizer.json"]);
}

#[test]
fn a_tokenizer_piece_that_would_overflow_the_tokenizers_crate_stack_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let m = tiny(d.path());
    let p = m.join("tokenizer.json");
    let mut v = read_json(&p);
    let vocab = v["model"]["vocab"].as_array_mut().expect("the tiny ALBERT's Unigram vocabulary");
    let at = vocab.len();
    vocab.push(serde_json::json!(["x".repeat(200_000), -30.0]));
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    // Before: the process died of a stack overflow (SIGABRT), no message.
    convert_fails(d.path(), &m, &intents(), 100, &[&format!("{}: /model/vocab/{at}/0: a piece of 200000 bytes", p.display())]);
}

#[test]
fn unsupported_model_type() {
    let d = tempfile::tempdir().unwrap();
    let m = tiny(d.path());
    let cfg = std::fs::read_to_string(m.join("config.json")).unwrap().replace("\"albert\"", "\"gpt2\"");
    std::fs::write(m.join("config.json"), cfg).unwrap();
    convert_fails(d.path(), &m, &intents(), 100, &["config.json", "unsupported model_type \"gpt2\""]);
}

#[test]
fn pickle_checkpoint_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let m = tiny(d.path());
    std::fs::remove_file(m.join("model.safetensors")).unwrap();
    // A pickle whose execution would create a file: it must never run.
    std::fs::write(m.join("pytorch_model.bin"), b"\x80\x04cposix\nsystem\n(S'touch pwned'\ntR.").unwrap();
    convert_fails(d.path(), &m, &intents(), 100, &["pytorch_model.bin", "pickle", "safetensors"]);
    assert!(!d.path().join("pwned").exists());
}

#[test]
fn intents_of_the_wrong_shape() {
    let d = tempfile::tempdir().unwrap();
    let m = tiny(d.path());
    let bad = d.path().join("intents.json");
    std::fs::write(&bad, r#"{"train": [["turn on the lights"]], "test": []}"#).unwrap();
    convert_fails(d.path(), &m, &bad, 1, &["intents.json", "train[0]", "[text, label]"]);
}

#[test]
fn more_classes_than_declared() {
    let d = tempfile::tempdir().unwrap();
    let m = tiny(d.path());
    convert_fails(d.path(), &m, &intents(), 99, &["voice-assistant.json", "100 intent classes", "declares 99"]);
}

#[test]
fn unknown_target() {
    let d = tempfile::tempdir().unwrap();
    let o = avac(d.path(), &["build", "no-such-target", "--out", "out"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("unknown target \"no-such-target\"") && err.contains("malbert-tiny-int8"), "{err}");
    assert!(!d.path().join("out").exists());
}

#[test]
fn wrong_sha256_pin() {
    let d = tempfile::tempdir().unwrap();
    let decl = std::fs::read_to_string(repo().join("rules/targets.toml")).unwrap();
    let good = "8a722e4b8a7704b0d91642f6d3c94ed662d193f15460a2d2be906568d69e7da3";
    assert!(decl.contains(good), "update this test's pin of voice-assistant.json");
    let bad = decl.replace(good, &"0".repeat(64));
    std::fs::create_dir_all(d.path().join("rules")).unwrap();
    std::fs::write(d.path().join("rules/targets.toml"), bad).unwrap();
    std::fs::create_dir_all(d.path().join("data/intents")).unwrap();
    for f in ["voice-assistant.json", "calibration.json"] {
        std::fs::copy(repo().join("data/intents").join(f), d.path().join("data/intents").join(f)).unwrap();
    }
    let store = d.path().join("store");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_avac"))
        .current_dir(d.path())
        .env("AVAC_STORE", &store)
        .args(["--targets", "rules/targets.toml", "build", "malbert-tiny-int8", "--out", "out", "--offline"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("voice-intents") && err.contains(&"0".repeat(64)) && err.contains(good), "{err}");
    assert!(!d.path().join("out").exists());
}

#[test]
fn unlocked_target_says_how_to_lock() {
    let d = tempfile::tempdir().unwrap();
    let o = avac(&repo(), &["build", "malbert-int8", "--out", d.path().join("out").to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("is not locked") && err.contains("avac lock albert-base-v2-"), "{err}");
    assert!(!d.path().join("out").exists());
}

/// A tiny ALBERT converted, exported and optimized in `dir`: (classifier, FP32 model).
fn tiny_fp32(dir: &Path) -> (PathBuf, PathBuf) {
    let model = tiny(dir);
    let cls = dir.join("classifier");
    let o = convert(dir, &model, &intents(), 100, &cls);
    assert!(o.status.success(), "{}", stderr(&o));
    for args in
        [&["aon", "export", "--classifier", "classifier", "--out", "model.onnx"][..], &["aon", "optimize", "--in", "model.onnx", "--out", "model.opt.onnx"]]
    {
        let o = avac(dir, args);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    (cls, dir.join("model.opt.onnx"))
}

/// `aon quantize` with calibration text `cal` (raw bytes): must fail naming `needles`, writing nothing.
fn quantize_fails(cal: &[u8], needles: &[&str]) {
    let d = tempfile::tempdir().unwrap();
    let (_cls, _fp32) = tiny_fp32(d.path());
    std::fs::write(d.path().join("cal.json"), cal).unwrap();
    let o = avac(d.path(), &["aon", "quantize", "--in", "model.opt.onnx", "--classifier", "classifier", "--calibration", "cal.json", "--out", "q.onnx"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    for n in needles {
        assert!(stderr(&o).contains(n), "stderr lacks {n:?}: {}", stderr(&o));
    }
    assert!(!d.path().join("q.onnx").exists(), "output written");
}

#[test]
fn calibration_that_is_not_an_array_of_strings_shows_the_expected_format() {
    quantize_fails(br#"{"texts": ["set an alarm"]}"#, &["cal.json", "JSON array of non-empty strings", "e.g. [", "top level is not an array"]);
    quantize_fails(br#"["set an alarm", 7]"#, &["cal.json", "element 1 is not a non-empty string"]);
}

#[test]
fn empty_calibration_set_is_refused() {
    quantize_fails(b"[]", &["no calibration sequences", "JSON array of strings"]);
}

#[test]
fn calibration_text_longer_than_the_cap_is_refused() {
    // The targets declare overflow = "reject": a text past 128 tokens is an error, not silently cut.
    let long = vec!["alarm"; 400].join(" ");
    quantize_fails(serde_json::to_string(&[long]).unwrap().as_bytes(), &["128"]);
}

#[test]
fn a_model_left_above_the_size_limit_fails_validation_and_lists_its_float_weights() {
    let d = tempfile::tempdir().unwrap();
    let (_cls, _fp32) = tiny_fp32(d.path());
    // Nothing reaches the threshold: quantization changes nothing.
    std::fs::write(d.path().join("q.json"), r#"{"min_weight_elements": 1000000000, "embedding": false}"#).unwrap();
    let cal = repo().join("data/intents/calibration.json");
    let o = avac(
        d.path(),
        &[
            "aon",
            "quantize",
            "--in",
            "model.opt.onnx",
            "--classifier",
            "classifier",
            "--calibration",
            cal.to_str().unwrap(),
            "--params",
            "q.json",
            "--out",
            "q.onnx",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = avac(
        d.path(),
        &[
            "aon",
            "validate",
            "--model",
            "q.onnx",
            "--fp32",
            "model.opt.onnx",
            "--classifier",
            "classifier",
            "--intents",
            intents().to_str().unwrap(),
            "--report",
            "v.json",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("q.onnx") && err.contains("of FP32") && err.contains("float weights left") && err.contains("albert_layer.shared"), "{err}");
    // The report is still written: it explains the failure.
    let r = read_json(&d.path().join("v.json"));
    assert!(!r["int8"]["float_weights"].as_object().unwrap().is_empty());
}
