//! safetensors, both readers: in memory (`SafeTensors::parse`) and on disk
//! (`SafeTensorsFile::open`, which seeks to each tensor); every tensor read.
#![no_main]
use avac::formats::safetensors::{SafeTensors, SafeTensorsFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(st) = SafeTensors::parse(data.to_vec(), "fuzz.safetensors") {
        let _ = st.metadata();
        for t in st.tensors() {
            let _ = t.numel();
            let _ = t.to_f32_vec();
        }
    }
    let path = avac_fuzz::write_input("fuzz.safetensors", data);
    if let Ok(f) = SafeTensorsFile::open(&path) {
        for name in f.names() {
            let _ = f.info(name);
            let _ = f.read(name);
            let _ = f.read_f32(name);
        }
    }
});
