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
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.path().join("malbert-tiny-intent-classifier-fp32.onnx.validation.json")).unwrap()).unwrap();
    assert_eq!(report["agreement"], 1.0);
    assert!(report["max_abs_logit_diff"].as_f64().unwrap() <= 1e-3);
}

#[test]
fn summary_snapshot() {
    let d = tempfile::tempdir().unwrap();
    let o = avac(&repo(), &["--threads", "2", "build", "malbert-tiny-int8", "--out", d.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = avac(&repo(), &["summary", d.path().join("malbert-tiny-intent-classifier-fp32.onnx").to_str().unwrap()]);
    assert!(s.status.success(), "{}", stderr(&s));
    insta::with_settings!({ snapshot_path => "../golden/snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!("malbert_tiny_summary", stdout(&s));
    });
}
