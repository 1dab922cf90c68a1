//! `avac build malbert-tiny-int8`: the same bytes for any thread count and
//! working directory, equal to golden/; the model runs in onnxruntime.

mod common;
use common::*;

#[test]
fn tiny_target_is_reproducible_and_golden() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    // From the repository (its rules/targets.toml), one thread.
    let o1 = avac(&repo(), &["--threads", "1", "build", "malbert-tiny-int8", "--out", a.path().to_str().unwrap()]);
    assert!(o1.status.success(), "{}", stderr(&o1));
    // From another directory (the embedded declaration), two threads.
    let o2 = avac(b.path(), &["--threads", "2", "build", "malbert-tiny-int8", "--out", "out"]);
    assert!(o2.status.success(), "{}", stderr(&o2));
    assert_eq!(digests(&o1), digests(&o2));
    assert_golden("malbert-tiny-int8", &digests(&o1));
    let report = read_json(&a.path().join("malbert-tiny-intent-classifier-int8.onnx.validation.json"));
    assert_eq!(report["fp32"]["agreement"], 1.0);
    assert!(report["fp32"]["max_abs_logit_diff"].as_f64().unwrap() <= 1e-3);
    let int8 = &report["int8"];
    assert!(int8["agreement_fp32"].as_f64().unwrap() >= 0.9, "{int8}");
    assert_eq!(int8["simulation_agreement"], 1.0, "tract and the reference INT8 simulation disagree: {int8}");
    assert_eq!(int8["float_weights"], serde_json::json!({}));
    assert!(int8["layers"].as_array().unwrap().len() >= 2);
    let q = read_json(&a.path().join("malbert-tiny-intent-classifier-int8.onnx.quantize.json"));
    // ALBERT's shared layer: one int8 copy of each of its weights, whatever the layer count.
    let shared: Vec<&str> = q["int8_weights"].as_array().unwrap().iter().filter_map(|w| w.as_str()).filter(|w| w.contains("shared")).collect();
    assert!((6..=8).contains(&shared.len()), "{shared:?}");
}

#[test]
fn int8_model_runs_in_onnxruntime_from_the_build() {
    let d = tempfile::tempdir().unwrap();
    let py = python();
    let o = avac(&repo(), &["build", "malbert-tiny-int8", "--out", d.path().to_str().unwrap(), "--ort-python", py.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = read_json(&d.path().join("malbert-tiny-intent-classifier-int8.onnx.validation.json"));
    let ort = &report["onnxruntime"];
    assert_eq!(ort["onnxruntime"], "1.31.1", "{ort}");
    assert!(ort["p50_ms"]["int8"].as_f64().unwrap() > 0.0 && ort["p50_ms"]["fp32"].as_f64().unwrap() > 0.0, "{ort}");
}

#[test]
fn summary_snapshot() {
    let d = tempfile::tempdir().unwrap();
    let o = avac(&repo(), &["--threads", "2", "build", "malbert-tiny-int8", "--out", d.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = avac(&repo(), &["summary", d.path().join("malbert-tiny-intent-classifier-int8.onnx").to_str().unwrap()]);
    assert!(s.status.success(), "{}", stderr(&s));
    insta::with_settings!({ snapshot_path => "../golden/snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!("malbert_tiny_summary", stdout(&s));
    });
}
