//! `tokenizer.json`: loaded, then used on a fixed text.
#![no_main]
use avac::formats::tokenizer::{SeqPolicy, Tokenizer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(t) = Tokenizer::from_bytes("tokenizer.json", data.to_vec()) else { return };
    let _ = (t.model_type(), t.vocab_size(), t.special_ids(), t.pad_id(), t.num_special_tokens());
    let _ = t.encode("set an alarm for 7 am, please");
    let _ = t.encode_capped("what's the weather like in Zürich tomorrow?", &SeqPolicy::default());
});
