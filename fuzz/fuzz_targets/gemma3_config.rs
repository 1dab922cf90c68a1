//! A Gemma 3 `config.json` (the HF checkpoint's and the chat config's model).
#![no_main]
use avac::model::gemma3::Gemma3Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(c) = Gemma3Config::from_json(text) {
        let _ = c.validate();
        for i in 0..c.num_hidden_layers.min(64) {
            let _ = c.is_sliding(i);
        }
    }
});
