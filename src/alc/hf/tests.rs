//! A generated tiny Gemma 3 checkpoint, written sharded, single-file and
//! multimodal-style, read back; and one test per kind of bad input.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use tempfile::TempDir;

use super::*;
use crate::formats::safetensors::{self as st, OwnedTensor};
use crate::kernels::half::{bf16_to_f32, f32_to_bf16};
use crate::model::gemma3::Gemma3;

/// Two shards, as save_pretrained names them.
const SHARDS: [&str; 2] = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"];

/// The tiny model's `config.json`: both layer kinds (every 2nd layer is global),
/// grouped-query attention, a window of 4.
fn config() -> Value {
    json!({
        "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text",
        "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3,
        "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16,
        "sliding_window": 4, "sliding_window_pattern": 2, "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0, "query_pre_attn_scalar": 16,
        "max_position_embeddings": 128, "hidden_activation": "gelu_pytorch_tanh",
        "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0, "torch_dtype": "bfloat16"
    })
}

/// Tensors of the tiny model under `gemma3_text` names: shape and BF16
/// bits, from the one Gemma 3 fixture generator.
fn tensors() -> BTreeMap<String, (Vec<usize>, Vec<u16>)> {
    let cfg = Gemma3Config::from_value(&config()).unwrap();
    crate::fixtures::gemma3::weights(&cfg, 5).into_iter().map(|(n, (shape, v))| (n, (shape, v.iter().map(|&x| f32_to_bf16(x)).collect()))).collect()
}

fn bf16(shape: &[usize], bits: &[u16]) -> OwnedTensor {
    OwnedTensor { dtype: Dtype::BF16, shape: shape.to_vec(), data: bits.iter().flat_map(|b| b.to_le_bytes()).collect() }
}

/// A WordLevel `tokenizer.json` over the 64 ids, written by hand.
fn tokenizer_json() -> Vec<u8> {
    let mut vocab = serde_json::Map::new();
    for (i, t) in ["<pad>", "<eos>", "<bos>", "<unk>"].iter().enumerate() {
        vocab.insert(t.to_string(), json!(i));
    }
    for i in 4..64 {
        vocab.insert(format!("w{i}"), json!(i));
    }
    let t = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    });
    serde_json::to_vec_pretty(&t).unwrap()
}

fn write_json(dir: &Path, name: &str, v: &Value) {
    std::fs::write(dir.join(name), serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

/// How the weights are laid out on disk.
enum Layout {
    /// `model.safetensors`.
    Single,
    /// Two shards and an index: the first half of the names (sorted) in the first.
    Sharded,
}

/// Writes a checkpoint directory: `config`, the `tensors` under the names
/// `rename` gives (plus `extra` tensors, unrenamed), tokenizer files and a
/// `generation_config.json`.
fn write_checkpoint(config: &Value, rename: fn(&str) -> String, extra: BTreeMap<String, OwnedTensor>, layout: Layout) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    write_json(p, "config.json", config);
    write_json(p, "generation_config.json", &json!({"bos_token_id": 2, "eos_token_id": [1, 50], "pad_token_id": 0}));
    std::fs::write(p.join("tokenizer.json"), tokenizer_json()).unwrap();
    write_json(p, "tokenizer_config.json", &json!({"bos_token": "<bos>", "eos_token": "<eos>"}));
    let mut all: BTreeMap<String, OwnedTensor> = tensors().iter().map(|(n, (s, b))| (rename(n), bf16(s, b))).collect();
    all.extend(extra);
    match layout {
        Layout::Single => st::write(&p.join(SINGLE), &all, &BTreeMap::new()).unwrap(),
        Layout::Sharded => {
            let half = all.len() / 2;
            let mut weight_map = serde_json::Map::new();
            let mut parts: [BTreeMap<String, OwnedTensor>; 2] = Default::default();
            for (i, (name, t)) in all.into_iter().enumerate() {
                let s = usize::from(i >= half);
                weight_map.insert(name.clone(), json!(SHARDS[s]));
                parts[s].insert(name, t);
            }
            let meta: BTreeMap<String, String> = [("format".to_string(), "pt".to_string())].into();
            for (name, part) in SHARDS.iter().zip(&parts) {
                st::write(&p.join(name), part, &meta).unwrap();
            }
            write_json(p, INDEX, &json!({"metadata": {"total_size": 0}, "weight_map": weight_map}));
        }
    }
    dir
}

fn same(n: &str) -> String {
    n.to_string()
}

fn sharded() -> TempDir {
    write_checkpoint(&config(), same, BTreeMap::new(), Layout::Sharded)
}

/// Every position's logits of a fixed prompt, as bits.
fn logits(ckpt: &HfCheckpoint) -> Vec<u32> {
    let m = Gemma3::load(ckpt.config(), ckpt).unwrap();
    let mut cache = m.new_cache();
    let mut out = Vec::new();
    m.forward(&[2, 5, 9, 1, 33, 7, 63], &mut cache, &mut |_, l| out.extend(l.iter().map(|x| x.to_bits()))).unwrap();
    out
}

fn open_err(dir: &Path) -> String {
    HfCheckpoint::open(dir).unwrap_err().to_string()
}

fn read_index(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join(INDEX)).unwrap()).unwrap()
}

#[test]
fn sharded_checkpoint_loads_and_generates() {
    let dir = sharded();
    let ckpt = HfCheckpoint::open(dir.path()).unwrap();
    assert_eq!(ckpt.display(), dir.path().display().to_string());
    assert_eq!((ckpt.config().hidden_size, ckpt.config().num_hidden_layers, ckpt.config().sliding_window_pattern), (32, 3, 2));
    assert_eq!(ckpt.special_ids(), SpecialIds { bos: Some(2), eos: vec![1, 50], pad: Some(0) });
    assert_eq!(ckpt.tensor_names(), tensors().into_keys().collect::<Vec<_>>());
    let model = Gemma3::load(ckpt.config(), &ckpt).unwrap();
    let new = model.greedy(&[1, 2, 3], 3, &[]).unwrap();
    assert_eq!(new.len(), 3);
    assert!(new.iter().all(|&t| t < 64), "{new:?}");

    let files = ckpt.tokenizer_files().unwrap();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["tokenizer.json", "tokenizer_config.json"]);
    assert_eq!(files[0].1, tokenizer_json());
    // The generated tokenizer is a real one.
    let tok = tokenizers::Tokenizer::from_bytes(&files[0].1).unwrap();
    assert_eq!(tok.encode("w4 w63 zz", false).unwrap().get_ids(), [4, 63, 3]);
}

#[test]
fn tensors_are_the_bf16_values_written() {
    let dir = sharded();
    let ckpt = HfCheckpoint::open(dir.path()).unwrap();
    for (name, (shape, bits)) in tensors() {
        let (s, v) = ckpt.tensor(&name).unwrap();
        assert_eq!(s, shape, "{name}");
        assert_eq!(v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), bits.iter().map(|&b| bf16_to_f32(b).to_bits()).collect::<Vec<_>>(), "{name}");
    }
    assert!(matches!(ckpt.tensor("model.layers.9.mlp.up_proj.weight"), Err(Gemma3Error::MissingTensor { .. })));
}

#[test]
fn single_file_gives_bit_identical_logits() {
    let (a, b) = (sharded(), write_checkpoint(&config(), same, BTreeMap::new(), Layout::Single));
    let (a, b) = (HfCheckpoint::open(a.path()).unwrap(), HfCheckpoint::open(b.path()).unwrap());
    assert_eq!(a.tensor_names(), b.tensor_names());
    let la = logits(&a);
    assert_eq!(la.len(), 7 * 64);
    assert_eq!(la, logits(&b));
}

/// A `gemma3` config nesting the tiny text config, ids split between the levels.
fn multimodal_config() -> Value {
    let mut text = config();
    let t = text.as_object_mut().unwrap();
    for k in ["architectures", "eos_token_id", "torch_dtype"] {
        t.remove(k);
    }
    json!({
        "architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
        "eos_token_id": [1, 60], "text_config": text,
        "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 8}
    })
}

fn vision_tensors(prefix: &str) -> BTreeMap<String, OwnedTensor> {
    [
        (format!("{prefix}vision_tower.vision_model.embeddings.patch_embedding.weight"), OwnedTensor::from_f32(vec![2, 3], &[0.5; 6])),
        (format!("{prefix}multi_modal_projector.mm_input_projection_weight"), OwnedTensor { dtype: Dtype::I64, shape: vec![1], data: vec![0; 8] }),
    ]
    .into()
}

#[test]
fn multimodal_names_map_to_text_names_and_vision_is_skipped() {
    let text_dir = sharded();
    let text = HfCheckpoint::open(text_dir.path()).unwrap();
    let want = logits(&text);
    let old = |n: &str| n.replacen("model.", "language_model.model.", 1);
    let new = |n: &str| n.replacen("model.", "model.language_model.", 1);
    for (rename, prefix) in [(old as fn(&str) -> String, ""), (new, "model.")] {
        let mut extra = vision_tensors(prefix);
        extra.insert("lm_head.weight".into(), bf16(&[64, 32], &tensors()["model.embed_tokens.weight"].1));
        let dir = write_checkpoint(&multimodal_config(), rename, extra, Layout::Sharded);
        let ckpt = HfCheckpoint::open(dir.path()).unwrap();
        let mut names = text.tensor_names();
        names.push("lm_head.weight".into());
        names.sort();
        assert_eq!(ckpt.tensor_names(), names, "{prefix:?}");
        assert_eq!(ckpt.config(), text.config());
        assert_eq!(ckpt.special_ids(), SpecialIds { bos: Some(2), eos: vec![1, 50, 60], pad: Some(0) });
        assert_eq!(logits(&ckpt), want, "{prefix:?}");
    }
    assert_eq!(role("language_model.lm_head.weight"), Role::Text("lm_head.weight".into()));
    assert_eq!(role("vision_tower.x"), Role::Vision);
    assert_eq!(role("encoder.layer.0.weight"), Role::Unknown);
}

/// Asserts `msg` mentions each of `parts`.
#[track_caller]
fn names_all(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "{msg:?} does not mention {p:?}");
    }
}

#[test]
fn index_naming_a_missing_shard() {
    let dir = sharded();
    std::fs::remove_file(dir.path().join(SHARDS[1])).unwrap();
    let index = read_index(dir.path());
    let first = index["weight_map"].as_object().unwrap().iter().find(|(_, s)| *s == SHARDS[1]).unwrap().0.clone();
    names_all(&open_err(dir.path()), &[INDEX, &first, SHARDS[1], "not in"]);
}

#[test]
fn shard_name_leaving_the_directory() {
    let dir = sharded();
    let mut index = read_index(dir.path());
    index["weight_map"]["model.norm.weight"] = json!(format!("../{}", SHARDS[0]));
    write_json(dir.path(), INDEX, &index);
    names_all(&open_err(dir.path()), &[INDEX, "model.norm.weight", "../", "not a plain file name"]);
    for bad in ["..", ".", "", "/etc/passwd", "a/b.safetensors", "a\\b.safetensors"] {
        assert!(!plain_file_name(bad), "{bad:?}");
    }
    assert!(plain_file_name(SHARDS[0]));
}

#[test]
fn index_listing_a_tensor_its_shard_lacks() {
    let dir = sharded();
    let mut index = read_index(dir.path());
    index["weight_map"]["model.extra.weight"] = json!(SHARDS[0]);
    write_json(dir.path(), INDEX, &index);
    names_all(&open_err(dir.path()), &[INDEX, "model.extra.weight", SHARDS[0], "does not hold it"]);
}

#[test]
fn tensor_in_two_shards_or_listed_twice() {
    let dir = sharded();
    // model.norm.weight is in the second shard; put a copy in the first too.
    let first = dir.path().join(SHARDS[0]);
    let mut part: BTreeMap<String, OwnedTensor> = {
        let f = SafeTensorsFile::open(&first).unwrap();
        f.names().iter().map(|n| (n.to_string(), f.read(n).unwrap())).collect()
    };
    part.insert("model.norm.weight".into(), bf16(&[32], &[0; 32]));
    st::write(&first, &part, &BTreeMap::new()).unwrap();
    names_all(&open_err(dir.path()), &[INDEX, "model.norm.weight", SHARDS[0], SHARDS[1], "in both"]);

    let dir = sharded();
    let text = String::from_utf8(std::fs::read(dir.path().join(INDEX)).unwrap()).unwrap();
    let dup = text.replacen("\"weight_map\": {", &format!("\"weight_map\": {{\n    \"model.norm.weight\": \"{}\",", SHARDS[0]), 1);
    assert_ne!(dup, text);
    std::fs::write(dir.path().join(INDEX), dup).unwrap();
    names_all(&open_err(dir.path()), &[INDEX, "model.norm.weight", "listed twice"]);
}

#[test]
fn shard_tensor_missing_from_the_index() {
    let dir = sharded();
    let mut index = read_index(dir.path());
    index["weight_map"].as_object_mut().unwrap().remove("model.norm.weight");
    write_json(dir.path(), INDEX, &index);
    names_all(&open_err(dir.path()), &[INDEX, "model.norm.weight", SHARDS[1], "does not list it"]);
}

#[test]
fn truncated_shard_fails_at_open() {
    let dir = sharded();
    let path = dir.path().join(SHARDS[1]);
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 2).unwrap();
    names_all(&open_err(dir.path()), &[SHARDS[1], "past the", "truncated"]);
}

#[test]
fn missing_config_or_field() {
    let dir = sharded();
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    names_all(&open_err(dir.path()), &["config.json", "missing"]);

    let mut c = config();
    c.as_object_mut().unwrap().remove("hidden_size");
    write_json(dir.path(), "config.json", &c);
    names_all(&open_err(dir.path()), &["config.json", "field hidden_size", "missing"]);

    let mut c = multimodal_config();
    c["text_config"].as_object_mut().unwrap().remove("hidden_size");
    write_json(dir.path(), "config.json", &c);
    names_all(&open_err(dir.path()), &["config.json", "field text_config.hidden_size", "missing"]);

    std::fs::write(dir.path().join("config.json"), b"{\"model_type\": ").unwrap();
    names_all(&open_err(dir.path()), &["config.json", "EOF"]);
}

#[test]
fn bad_special_ids() {
    let dir = sharded();
    let mut c = config();
    c["eos_token_id"] = json!("<eos>");
    write_json(dir.path(), "config.json", &c);
    names_all(&open_err(dir.path()), &["config.json", "field eos_token_id", "\"<eos>\""]);
    write_json(dir.path(), "config.json", &config());
    write_json(dir.path(), "generation_config.json", &json!({"eos_token_id": [1, 64]}));
    names_all(&open_err(dir.path()), &["generation_config.json", "field eos_token_id", "64 is outside the vocabulary"]);
}

#[test]
fn unsupported_dtype() {
    let mut extra = BTreeMap::new();
    extra.insert("model.layers.0.self_attn.rotary.inv_freq".into(), OwnedTensor { dtype: Dtype::I64, shape: vec![2], data: vec![0; 16] });
    let dir = write_checkpoint(&config(), same, extra, Layout::Single);
    names_all(&open_err(dir.path()), &[SINGLE, "model.layers.0.self_attn.rotary.inv_freq", "I64", "BF16, F16 or F32"]);
}

#[test]
fn pickle_checkpoints_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_json(dir.path(), "config.json", &config());
    std::fs::write(dir.path().join("pytorch_model.bin"), b"PK\x03\x04not executed").unwrap();
    names_all(&open_err(dir.path()), &["pytorch_model.bin", "never executed", "safetensors"]);
    // A pickle under the safetensors name is named as a pickle too.
    std::fs::rename(dir.path().join("pytorch_model.bin"), dir.path().join(SINGLE)).unwrap();
    names_all(&open_err(dir.path()), &[SINGLE, "never executed"]);
    std::fs::remove_file(dir.path().join(SINGLE)).unwrap();
    names_all(&open_err(dir.path()), &[SINGLE, INDEX, "no "]);
}

#[test]
fn both_weight_layouts_are_ambiguous() {
    let dir = sharded();
    std::fs::copy(dir.path().join(SHARDS[0]), dir.path().join(SINGLE)).unwrap();
    names_all(&open_err(dir.path()), &[SINGLE, INDEX, "both"]);
}

#[test]
fn unknown_tensor_names_are_refused() {
    let mut extra = BTreeMap::new();
    extra.insert("encoder.layer.0.weight".into(), OwnedTensor::from_f32(vec![1], &[0.0]));
    let dir = write_checkpoint(&config(), same, extra, Layout::Single);
    names_all(&open_err(dir.path()), &[SINGLE, "encoder.layer.0.weight", "not a Gemma 3 tensor"]);
}

#[test]
fn tokenizer_json_is_required_and_checked() {
    let dir = sharded();
    let ckpt = HfCheckpoint::open(dir.path()).unwrap();
    std::fs::write(dir.path().join("tokenizer.model"), b"\x0a\x03sp").unwrap();
    let names: Vec<String> = ckpt.tokenizer_files().unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["tokenizer.json", "tokenizer.model", "tokenizer_config.json"]);
    std::fs::write(dir.path().join("tokenizer.json"), b"{not json").unwrap();
    names_all(&ckpt.tokenizer_files().unwrap_err().to_string(), &["tokenizer.json", "not valid JSON"]);
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    names_all(&ckpt.tokenizer_files().unwrap_err().to_string(), &[&dir.path().display().to_string(), "no tokenizer.json"]);
}

#[test]
fn shape_disagreeing_with_the_config() {
    let mut c = config();
    c["intermediate_size"] = json!(48);
    let dir = write_checkpoint(&c, same, BTreeMap::new(), Layout::Sharded);
    let ckpt = HfCheckpoint::open(dir.path()).unwrap();
    let e = Gemma3::load(ckpt.config(), &ckpt).unwrap_err();
    assert!(
        matches!(&e, Gemma3Error::Shape { name, expected, found } if name == "model.layers.0.mlp.gate_proj.weight" && expected == &[48, 32] && found == &[64, 32]),
        "{e}"
    );
}
