//! A Gemma 3 GGUF read as `alc quantize --source x.gguf` reads it: config,
//! tensor map, special ids, every weight, and the tokenizer turned into
//! `tokenizer.json` (then loaded, as the package's tokenizer is).
#![no_main]
use avac::alc::checkpoint::{Checkpoint, GgufCheckpoint};
use avac::formats::gguf::{hf_tokenizer, GgufFile, GgufTokenizer};
use avac::formats::tokenizer::Tokenizer;
use avac::model::gemma3::gguf::{config_from_gguf, hf_tensors, GgufKeys};
use avac::model::gemma3::Gemma3Weights;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(g) = GgufFile::parse(data.to_vec(), "fuzz.gguf") else { return };
    let _ = GgufKeys::from_gguf(&g);
    let _ = config_from_gguf(&g);
    let _ = hf_tensors(&g);
    if let Ok(c) = GgufCheckpoint::new(&g) {
        let _ = c.config().validate();
        for name in c.tensor_names() {
            let _ = c.tensor(&name);
        }
    }
    if let Ok(t) = GgufTokenizer::from_gguf(&g) {
        let _ = hf_tokenizer::derive_merges(&t, "fuzz.gguf");
        if let Ok(json) = hf_tokenizer::to_tokenizer_json(&t, "fuzz.gguf") {
            if let Ok(tok) = Tokenizer::from_bytes("tokenizer.json", json) {
                let _ = tok.encode("The capital of France is");
            }
        }
    }
});
