//! Writes the seed corpora of the fuzz targets (see `fuzz/seed.sh`).
//!
//! `seed OUT REAL_GGUF MALBERT_DIR`: OUT is `fuzz/`; REAL_GGUF the Gemma 3
//! 270M GGUF (its metadata, tokenizer prefix and quantized blocks are copied
//! into tiny files); MALBERT_DIR the output of `avac build malbert-tiny-int8`
//! (its ONNX model and provenance). Each file is checked to be accepted by
//! the reader it seeds, so a seed that rots is noticed here.

use avac::alc::checkpoint::{Checkpoint, GgufCheckpoint};
use avac::alc::{self, quantize::AlcQuantizeParams};
use avac::fixtures::{albert::AlbertParams, gemma3, vocab};
use avac::formats::gguf::{GgmlType, GgufFile, MetadataArray, MetadataValue};
use avac::formats::safetensors::{self, OwnedTensor};
use avac::model::gemma3::names::{self, Name};
use avac::model::gemma3::Gemma3Config;
use avac::package::tar;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The tiny Gemma 3 of the GGUF and package seeds: real key names, a real
/// tokenizer prefix, every tensor kind; 32 wide so Q8_0 rows fit.
const TINY_GEMMA: &str = r#"{
    "model_type": "gemma3_text", "vocab_size": 512, "hidden_size": 32, "intermediate_size": 64,
    "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16,
    "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
    "sliding_window": 4, "query_pre_attn_scalar": 16, "max_position_embeddings": 128,
    "hidden_activation": "gelu_pytorch_tanh", "rope_scaling": null,
    "final_logit_softcapping": null, "attn_logit_softcapping": null
}"#;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, out, real_gguf, malbert] = args.as_slice() else {
        eprintln!("usage: seed OUT REAL_GGUF MALBERT_DIR");
        std::process::exit(2);
    };
    let out = Path::new(out);
    let real = GgufFile::read(Path::new(real_gguf)).expect("read the real GGUF");
    let malbert = Path::new(malbert);
    let onnx = find(malbert, ".onnx");
    let provenance = find(malbert, ".provenance.json");

    // ALBERT fixture: config.json, safetensors, Unigram tokenizer.json.
    let p = AlbertParams::tiny();
    let meta: BTreeMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    // The fixture's names and dtypes over shapes cut to at most 2 a side (the full one is 478 KB).
    let small: BTreeMap<String, OwnedTensor> = p
        .tensors()
        .into_iter()
        .map(|(name, t)| {
            let shape: Vec<usize> = t.shape.iter().map(|&d| d.min(2)).collect();
            let n = shape.iter().product::<usize>();
            (name, OwnedTensor::from_f32(shape, &(0..n).map(|i| i as f32 * 0.25 - 0.5).collect::<Vec<_>>()))
        })
        .collect();
    let st = safetensors::serialize(&small, &meta, "model.safetensors").unwrap();
    put(out, "safetensors", "albert-tiny.safetensors", &st);
    put(out, "hf_config", "albert-tiny-config.json", &json(&p.config_json()));
    put(out, "tokenizer", "albert-tiny-unigram.json", &json(&vocab::tokenizer_json(64.max(vocab::required_pieces().len()))));

    // Gemma 3: the tiny config, and the real GGUF's keys on tiny tensors.
    let cfg = Gemma3Config::from_json(TINY_GEMMA).unwrap();
    put(out, "gemma3_config", "tiny.json", TINY_GEMMA.as_bytes());
    let tiny = tiny_gguf(&real, &cfg);
    let g = GgufFile::parse(tiny.clone(), "tiny.gguf").expect("the tiny GGUF parses");
    let c = GgufCheckpoint::new(&g).expect("the tiny GGUF is a Gemma 3 checkpoint");
    let tok = c.tokenizer_files().expect("the tiny GGUF's tokenizer converts");
    put(out, "gguf", "gemma3-tiny.gguf", &tiny);
    put(out, "gemma3_gguf", "gemma3-tiny.gguf", &tiny);
    put(out, "tokenizer", "gemma3-tiny-from-gguf.json", &tok.iter().find(|(n, _)| n == "tokenizer.json").unwrap().1);
    let blocks = real_blocks(&real);
    GgufFile::parse(blocks.clone(), "blocks.gguf").expect("the block GGUF parses");
    put(out, "gguf", "real-blocks.gguf", &blocks);

    // A package of the tiny Gemma 3, carrying the real build definition.
    let work = tempfile::tempdir().unwrap();
    let params_dir = work.path().join("params");
    let q = AlcQuantizeParams { group_size: 32, ..AlcQuantizeParams::default() };
    alc::quantize::run(&c, &q, None, &params_dir, &mut |_, _| {}).expect("quantize the tiny GGUF");
    let statement: serde_json::Value = serde_json::from_slice(&std::fs::read(&provenance).unwrap()).unwrap();
    let definition = work.path().join("definition.json");
    std::fs::write(&definition, json(&statement["predicate"]["buildDefinition"])).unwrap();
    let tar_path = work.path().join("tiny.tar");
    let options = tar::Options::from_source_date_epoch("0").unwrap();
    alc::package::assemble(&params_dir, &[], None, Some(&definition), &tar_path, &options, false).expect("package the tiny Gemma 3");
    let package = std::fs::read(&tar_path).unwrap();
    alc::package::Package::open(&tar_path).expect("the tiny package opens");
    put(out, "package", "gemma3-tiny.tar", &package);
    put(out, "tar", "gemma3-tiny.tar", &package);
    let small = work.path().join("small.tar");
    let inputs = vec![
        tar::Input { path: "a/b/config.json".into(), source: tar::Source::Bytes(b"{}\n".to_vec()), executable: false },
        tar::Input { path: "lib/arm64-v8a/run".into(), source: tar::Source::Bytes(vec![0x7f, b'E', b'L', b'F']), executable: true },
        tar::Input { path: "empty".into(), source: tar::Source::Bytes(Vec::new()), executable: false },
    ];
    tar::write(&small, inputs, &options).unwrap();
    tar::list(&small).expect("the small tar lists");
    put(out, "tar", "small.tar", &std::fs::read(&small).unwrap());
    for f in ["tensor-cache.json", "mlc-chat-config.json"] {
        let target = if f == "tensor-cache.json" { "tensor_cache" } else { "chat_config" };
        put(out, target, f, &std::fs::read(params_dir.join(f)).unwrap());
    }
    let chat: serde_json::Value = serde_json::from_slice(&std::fs::read(params_dir.join("mlc-chat-config.json")).unwrap()).unwrap();
    put(out, "gemma3_config", "chat-config-model.json", &json(&chat["model_config"]));

    // ONNX, provenance, declaration: the real artifacts.
    let model = std::fs::read(&onnx).unwrap();
    avac::graph::onnx::from_bytes(&model, "malbert").expect("the ONNX model reads");
    put(out, "onnx_graph", "malbert-tiny-int8.onnx", &model);
    put(out, "provenance", "malbert-tiny-int8.provenance.json", &std::fs::read(&provenance).unwrap());
    put(out, "declaration", "targets.toml", avac::declaration::EMBEDDED.as_bytes());

    // `avac diff` compares against one file of each kind, and is seeded with them.
    for (name, bytes) in [("tiny.onnx", &model), ("tiny.tar", &package), ("tiny.safetensors", &st), ("tiny.gguf", &tiny)] {
        let path = out.join("refs").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        put(out, "diff", name, bytes);
    }
}

fn find(dir: &Path, suffix: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.to_string_lossy().ends_with(suffix)).collect();
    found.sort();
    found.into_iter().next().unwrap_or_else(|| panic!("no *{suffix} in {}", dir.display()))
}

fn json(v: &serde_json::Value) -> Vec<u8> {
    let mut b = serde_json::to_vec_pretty(v).unwrap();
    b.push(b'\n');
    b
}

fn put(out: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = out.join("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
    println!("{:>8} corpus/{target}/{name}", bytes.len());
}

/// The real GGUF's metadata with the `gemma3.*` sizes of `cfg` and its
/// tokenizer cut to `cfg.vocab_size` tokens, over the fixture's weights:
/// the embedding as Q8_0, linear weights as F16, norms as F32 (`1 + w`).
fn tiny_gguf(real: &GgufFile, cfg: &Gemma3Config) -> Vec<u8> {
    let v = cfg.vocab_size;
    let mut meta: Vec<(String, MetadataValue)> = Vec::new();
    for (k, val) in real.metadata() {
        let val = match (k.as_str(), val) {
            ("gemma3.block_count", _) => MetadataValue::U32(cfg.num_hidden_layers as u32),
            ("gemma3.embedding_length", _) => MetadataValue::U32(cfg.hidden_size as u32),
            ("gemma3.feed_forward_length", _) => MetadataValue::U32(cfg.intermediate_size as u32),
            ("gemma3.attention.head_count", _) => MetadataValue::U32(cfg.num_attention_heads as u32),
            ("gemma3.attention.head_count_kv", _) => MetadataValue::U32(cfg.num_key_value_heads as u32),
            ("gemma3.attention.key_length" | "gemma3.attention.value_length", _) => MetadataValue::U32(cfg.head_dim as u32),
            ("gemma3.context_length", _) => MetadataValue::U32(cfg.max_position_embeddings as u32),
            ("gemma3.attention.sliding_window", _) => MetadataValue::U32(cfg.sliding_window as u32),
            (_, MetadataValue::Array(a)) if k.starts_with("tokenizer.ggml.") => MetadataValue::Array(truncate(a, v)),
            (_, other) => other.clone(),
        };
        meta.push((k.clone(), val));
    }
    let mut tensors: Vec<(String, Vec<u64>, GgmlType, Vec<u8>)> = Vec::new();
    for (hf, (shape, values)) in gemma3::weights(cfg, 7) {
        let n = Name::from_hf(&hf).unwrap();
        let ne: Vec<u64> = shape.iter().rev().map(|&d| d as u64).collect();
        let (ty, bytes) = if n.kind().stored_plus_one() {
            (GgmlType::F32, values.iter().flat_map(|&x| names::norm_scale(x).to_le_bytes()).collect())
        } else if hf.contains("embed_tokens") {
            (GgmlType::Q8_0, q8_0(&values))
        } else {
            (GgmlType::F16, values.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect())
        };
        tensors.push((n.gguf(), ne, ty, bytes));
    }
    write_gguf(&meta, &tensors)
}

/// One tensor per type the real GGUF holds, one block copied from its
/// first tensor of that type (real block bytes).
fn real_blocks(real: &GgufFile) -> Vec<u8> {
    let mut tensors = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for t in real.tensors() {
        let ty = t.ggml_type();
        // One block (32 elements at least), when a row holds whole blocks.
        let elems = ty.block_size().max(32);
        if t.row_len() % elems != 0 || !seen.insert(ty.id()) {
            continue;
        }
        let n = ty.byte_size(elems).unwrap();
        let data = real.tensor_data(t.name()).unwrap();
        tensors.push((format!("{}.{}", t.name(), ty.name()), vec![elems as u64, 1], ty, data[..n].to_vec()));
    }
    let meta = vec![
        ("general.architecture".to_string(), MetadataValue::String("gemma3".into())),
        ("general.alignment".to_string(), MetadataValue::U32(32)),
    ];
    write_gguf(&meta, &tensors)
}

fn truncate(a: &MetadataArray, n: usize) -> MetadataArray {
    match a {
        MetadataArray::String(v) => MetadataArray::String(v.iter().take(n).cloned().collect()),
        MetadataArray::F32(v) => MetadataArray::F32(v.iter().take(n).copied().collect()),
        MetadataArray::I32(v) => MetadataArray::I32(v.iter().take(n).copied().collect()),
        other => other.clone(),
    }
}

/// Q8_0: blocks of 32 values, an f16 scale `max|x| / 127` and 32 int8s.
fn q8_0(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    for block in values.chunks(32) {
        let amax = block.iter().fold(0f32, |m, x| m.max(x.abs()));
        let d = amax / 127.0;
        out.extend(half::f16::from_f32(d).to_le_bytes());
        out.extend(block.iter().map(|&x| if d == 0.0 { 0 } else { (x / d).round() as i8 as u8 }));
    }
    out
}

fn put_str(o: &mut Vec<u8>, s: &str) {
    o.extend((s.len() as u64).to_le_bytes());
    o.extend(s.as_bytes());
}

fn type_id(v: &MetadataValue) -> u32 {
    match v {
        MetadataValue::U8(_) => 0,
        MetadataValue::I8(_) => 1,
        MetadataValue::U16(_) => 2,
        MetadataValue::I16(_) => 3,
        MetadataValue::U32(_) => 4,
        MetadataValue::I32(_) => 5,
        MetadataValue::F32(_) => 6,
        MetadataValue::Bool(_) => 7,
        MetadataValue::String(_) => 8,
        MetadataValue::Array(_) => 9,
        MetadataValue::U64(_) => 10,
        MetadataValue::I64(_) => 11,
        MetadataValue::F64(_) => 12,
    }
}

fn put_value(o: &mut Vec<u8>, v: &MetadataValue) {
    match v {
        MetadataValue::U8(x) => o.push(*x),
        MetadataValue::I8(x) => o.push(*x as u8),
        MetadataValue::U16(x) => o.extend(x.to_le_bytes()),
        MetadataValue::I16(x) => o.extend(x.to_le_bytes()),
        MetadataValue::U32(x) => o.extend(x.to_le_bytes()),
        MetadataValue::I32(x) => o.extend(x.to_le_bytes()),
        MetadataValue::F32(x) => o.extend(x.to_le_bytes()),
        MetadataValue::Bool(x) => o.push(*x as u8),
        MetadataValue::String(s) => put_str(o, s),
        MetadataValue::Array(a) => put_array(o, a),
        MetadataValue::U64(x) => o.extend(x.to_le_bytes()),
        MetadataValue::I64(x) => o.extend(x.to_le_bytes()),
        MetadataValue::F64(x) => o.extend(x.to_le_bytes()),
    }
}

fn put_array(o: &mut Vec<u8>, a: &MetadataArray) {
    fn items<T>(o: &mut Vec<u8>, id: u32, v: &[T], mut f: impl FnMut(&mut Vec<u8>, &T)) {
        o.extend(id.to_le_bytes());
        o.extend((v.len() as u64).to_le_bytes());
        for x in v {
            f(o, x);
        }
    }
    match a {
        MetadataArray::U8(v) => items(o, 0, v, |o, x| o.push(*x)),
        MetadataArray::I8(v) => items(o, 1, v, |o, x| o.push(*x as u8)),
        MetadataArray::U16(v) => items(o, 2, v, |o, x| o.extend(x.to_le_bytes())),
        MetadataArray::I16(v) => items(o, 3, v, |o, x| o.extend(x.to_le_bytes())),
        MetadataArray::U32(v) => items(o, 4, v, |o, x| o.extend(x.to_le_bytes())),
        MetadataArray::I32(v) => items(o, 5, v, |o, x| o.extend(x.to_le_bytes())),
        MetadataArray::F32(v) => items(o, 6, v, |o, x| o.extend(x.to_le_bytes())),
        MetadataArray::Bool(v) => items(o, 7, v, |o, x| o.push(*x as u8)),
        MetadataArray::String(v) => items(o, 8, v, |o, x| put_str(o, x)),
        MetadataArray::Array(v) => items(o, 9, v, put_array),
        MetadataArray::U64(v) => items(o, 10, v, |o, x| o.extend(x.to_le_bytes())),
        MetadataArray::I64(v) => items(o, 11, v, |o, x| o.extend(x.to_le_bytes())),
        MetadataArray::F64(v) => items(o, 12, v, |o, x| o.extend(x.to_le_bytes())),
    }
}

/// GGUF v3, alignment 32: header, metadata, tensor infos, then the data,
/// each tensor at an aligned offset, nothing after the last.
fn write_gguf(meta: &[(String, MetadataValue)], tensors: &[(String, Vec<u64>, GgmlType, Vec<u8>)]) -> Vec<u8> {
    const ALIGN: usize = 32;
    let mut o = b"GGUF".to_vec();
    o.extend(3u32.to_le_bytes());
    o.extend((tensors.len() as u64).to_le_bytes());
    o.extend((meta.len() as u64).to_le_bytes());
    for (k, v) in meta {
        put_str(&mut o, k);
        o.extend(type_id(v).to_le_bytes());
        put_value(&mut o, v);
    }
    let mut offset = 0usize;
    let mut offsets = Vec::new();
    for (name, ne, ty, bytes) in tensors {
        put_str(&mut o, name);
        o.extend((ne.len() as u32).to_le_bytes());
        for d in ne {
            o.extend(d.to_le_bytes());
        }
        o.extend(ty.id().to_le_bytes());
        o.extend((offset as u64).to_le_bytes());
        offsets.push(offset);
        offset = (offset + bytes.len()).div_ceil(ALIGN) * ALIGN;
    }
    let data_start = o.len().div_ceil(ALIGN) * ALIGN;
    o.resize(data_start, 0);
    for ((_, _, _, bytes), at) in tensors.iter().zip(offsets) {
        o.resize(data_start + at, 0);
        o.extend(bytes);
    }
    o
}
