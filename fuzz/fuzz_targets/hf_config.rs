//! An encoder's HF `config.json` (BERT, ALBERT).
#![no_main]
use avac::formats::hf_config::EncoderConfig;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = EncoderConfig::parse(data, Path::new("config.json")) {
        let _ = c.head_dim();
    }
});
