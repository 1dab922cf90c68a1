//! The ONNX `ModelProto` reader into avac's IR; what it accepts must
//! serialise and read back.
#![no_main]
use avac::graph::onnx;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = onnx::from_bytes(data, "fuzz.onnx") else { return };
    let bytes = onnx::to_bytes(&m);
    if let Err(e) = onnx::from_bytes(&bytes, "fuzz.onnx (written back)") {
        panic!("a model read from the input does not read back once written: {e}");
    }
});
