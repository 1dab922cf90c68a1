//! `avac alc`: the Gemma 3 steps available so far, on hostile files (default
//! tier) and on the real Gemma 3 270M GGUF (opt-in):
//!
//! ```text
//! AVAC_GEMMA_GGUF=/path/to/gemma-3-270m.gguf cargo test --release --test alc -- --ignored
//! ```

mod common;
use common::*;

#[test]
fn truncated_or_foreign_gguf_is_refused_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    // A GGUF magic and version, then nothing: truncated header.
    std::fs::write(d.path().join("cut.gguf"), b"GGUF\x03\x00\x00\x00\x01").unwrap();
    std::fs::write(d.path().join("not.gguf"), b"PK\x03\x04 a zip, not a gguf").unwrap();
    for f in ["cut.gguf", "not.gguf"] {
        let o = avac(d.path(), &["alc", "tokenizer", "--gguf", f, "--out", "tokenizer.json"]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains(f), "{}", stderr(&o));
        assert!(!d.path().join("tokenizer.json").exists());
        let o = avac(d.path(), &["alc", "run", "--gguf", f, "--prompt", "hello"]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains(f), "{}", stderr(&o));
    }
}

#[test]
#[ignore = "needs the real Gemma 3 270M GGUF in AVAC_GEMMA_GGUF"]
fn run_on_the_real_gemma3_270m_continues_like_llama_cpp() {
    let gguf = std::env::var("AVAC_GEMMA_GGUF").expect("AVAC_GEMMA_GGUF");
    let o = avac(&repo(), &["alc", "run", "--gguf", &gguf, "--prompt", "The capital of France is", "--max-new", "15"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    // llama.cpp's tokenization (with BOS) and greedy continuation (issue 4).
    assert_eq!(r["prompt_ids"], serde_json::json!([2, 818, 5279, 529, 7001, 563]));
    assert!(r["text"].as_str().unwrap().starts_with(" the capital of the country of France. It is the largest city in France"), "{r}");
}
