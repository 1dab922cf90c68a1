//! `mlc-chat-config.json`, parsed strictly.
#![no_main]
use avac::alc::chat_config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = chat_config::parse(data);
});
