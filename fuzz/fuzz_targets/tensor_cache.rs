//! `tensor-cache.json`: what parses writes back and reads back the same.
#![no_main]
use avac::package::tensor_cache::TensorCache;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(c) = TensorCache::from_json(data) else { return };
    let json = c.to_json();
    match TensorCache::from_json(&json) {
        Ok(back) => assert!(back.to_json() == json, "tensor-cache.json does not round-trip"),
        Err(e) => panic!("a tensor cache read from the input does not read back once written: {e}"),
    }
    if let Some(r) = c.records.first().and_then(|s| s.records.first()) {
        let _ = c.find(&r.name);
    }
});
