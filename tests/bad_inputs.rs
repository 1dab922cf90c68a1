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
