//! `avac diff`: the input against a small real file of each kind (ONNX,
//! package `.tar`, safetensors, GGUF), so whichever kind the input is
//! detected as, its reader and comparison run; and against itself.
#![no_main]
use avac::diff::diff_paths;
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

fn references() -> &'static [PathBuf] {
    static REFS: OnceLock<Vec<PathBuf>> = OnceLock::new();
    REFS.get_or_init(|| ["tiny.onnx", "tiny.tar", "tiny.safetensors", "tiny.gguf"].iter().map(|n| avac_fuzz::reference(n)).collect())
}

fuzz_target!(|data: &[u8]| {
    let input = avac_fuzz::write_input("input", data);
    if let Ok(d) = diff_paths(&input, &input) {
        let _ = d.render();
    }
    for r in references() {
        if let Ok(d) = diff_paths(&input, r) {
            let _ = (d.render(), d.count(), d.identical());
        }
    }
});
