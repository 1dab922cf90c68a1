//! The GGUF reader: header, metadata, tensor infos, then every tensor's
//! bytes and dequantized values (the data the file itself holds).
#![no_main]
use avac::formats::gguf::GgufFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(g) = GgufFile::parse(data.to_vec(), "fuzz.gguf") else { return };
    for v in g.metadata().values() {
        let _ = v.describe();
    }
    let names: Vec<String> = g.tensors().iter().map(|t| t.name().to_string()).collect();
    for name in &names {
        let _ = g.tensor_data(name);
        let _ = g.dequantize(name);
        if let Ok(t) = g.tensor(name) {
            let rows = t.n_rows().min(2);
            let mut out = vec![0f32; rows * t.row_len()];
            let _ = g.dequantize_rows(name, 0..rows, &mut out);
        }
    }
});
