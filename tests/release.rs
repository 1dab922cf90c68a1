//! Release tooling: the dist workflow is what `dist-workspace.toml`
//! generates, and the release notes list each artifact with the digests
//! its provenance records. `AVAC_REQUIRE_DIST=1` (set by .ci/run) makes a
//! missing `dist` (toolchains/release-tools.txt) a failure.

mod common;
use common::*;
use std::process::Command;

fn dist() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    let found = std::env::split_paths(&path).map(|d| d.join("dist")).find(|p| p.is_file());
    if found.is_none() {
        assert!(std::env::var("AVAC_REQUIRE_DIST").as_deref() != Ok("1"), "dist is not on PATH: pip install --require-hashes -r toolchains/release-tools.txt");
        eprintln!("skipped: dist is not on PATH");
    }
    found
}

#[test]
fn release_workflow_is_what_dist_generates() {
    let Some(dist) = dist() else { return };
    let v = Command::new(&dist).arg("--version").output().expect("run dist");
    assert_eq!(String::from_utf8_lossy(&v.stdout).trim(), "cargo-dist 0.33.0");
    let o = Command::new(&dist).args(["generate", "--check"]).current_dir(repo()).output().expect("run dist");
    assert!(o.status.success(), "dist generate --check: the workflow is out of date:\n{}{}", stdout(&o), stderr(&o));
    let plan = Command::new(&dist).args(["plan", "--output-format=json"]).current_dir(repo()).output().expect("run dist");
    assert!(plan.status.success(), "{}", stderr(&plan));
    let text = stdout(&plan);
    for t in ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl", "aarch64-apple-darwin", "x86_64-apple-darwin"] {
        assert!(text.contains(&format!("avac-{t}.tar.xz")), "dist plan lacks {t}");
    }
}

#[test]
fn release_notes_list_each_artifact_with_its_recorded_digest() {
    let d = tempfile::tempdir().unwrap();
    let o = avac(&repo(), &["build", "malbert-tiny-int8", "--out", d.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let sha = stdout(&o).lines().next().unwrap().split_whitespace().next().unwrap().to_string();
    let n = Command::new("python3").arg(repo().join("scripts/release-notes.py")).args(["--version", "0.1.0"]).arg(d.path()).output().unwrap();
    assert!(n.status.success(), "{}", stderr(&n));
    let notes = stdout(&n);
    assert!(notes.contains("### `malbert-tiny-int8`") && notes.contains(&sha) && notes.contains("avac audit"), "{notes}");
    // A file that no longer matches its provenance stops the notes.
    std::fs::write(d.path().join("malbert-tiny-intent-classifier-int8.onnx"), b"tampered").unwrap();
    let n = Command::new("python3").arg(repo().join("scripts/release-notes.py")).args(["--version", "0.1.0"]).arg(d.path()).output().unwrap();
    assert!(!n.status.success() && stderr(&n).contains("its provenance records"), "{}", stderr(&n));
}
