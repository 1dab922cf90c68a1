//! The ALC steps on a tiny, architecture-true Gemma 3 held in memory.

use super::chat_config;
use super::checkpoint::{Checkpoint, SpecialIds};
use super::package::{self, NativeLib, Package, PackageError};
use super::quantize::{run as quantize, AlcQuantizeParams};
use super::validate::{self, AlcValidateParams};
use crate::fixtures::gemma3::{tiny_config, weights as tiny_weights};
use crate::model::gemma3::names::{norm_scale, norm_weight, Name, MLC_PREFIX as PREFIX};
use crate::model::gemma3::tests::all_logits;
use crate::model::gemma3::{Gemma3, Gemma3Config, Gemma3Error, Gemma3Weights};
use crate::package::elf::Abi;
use crate::package::{tar, tensor_cache};
use crate::quant::q4;
use std::collections::BTreeMap;
use std::path::Path;

/// A checkpoint in memory, with a word-level tokenizer `t0 … t{vocab-1}`.
struct Mem {
    cfg: Gemma3Config,
    t: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Mem {
    fn new() -> Mem {
        let cfg = tiny_config();
        let t = tiny_weights(&cfg, 7);
        Mem { cfg, t }
    }
}

impl Gemma3Weights for Mem {
    fn tensor(&self, hf_name: &str) -> Result<(Vec<usize>, Vec<f32>), Gemma3Error> {
        self.t.tensor(hf_name)
    }
}

fn word_level_tokenizer(vocab: usize) -> Vec<u8> {
    let v: serde_json::Map<String, serde_json::Value> = (0..vocab).map(|i| (format!("t{i}"), serde_json::json!(i))).collect();
    let j = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
        "pre_tokenizer": { "type": "WhitespaceSplit" },
        "post_processor": { "type": "TemplateProcessing", "single": [{ "SpecialToken": { "id": "t2", "type_id": 0 } }, { "Sequence": { "id": "A", "type_id": 0 } }],
            "pair": [{ "Sequence": { "id": "A", "type_id": 0 } }, { "Sequence": { "id": "B", "type_id": 1 } }],
            "special_tokens": { "t2": { "id": "t2", "ids": [2], "tokens": ["t2"] } } },
        "decoder": null,
        "model": { "type": "WordLevel", "vocab": v, "unk_token": "t3" },
    });
    serde_json::to_vec(&j).unwrap()
}

impl Checkpoint for Mem {
    fn display(&self) -> &str {
        "<tiny>"
    }
    fn config(&self) -> &Gemma3Config {
        &self.cfg
    }
    fn tensor_names(&self) -> Vec<String> {
        self.t.keys().cloned().collect()
    }
    fn tokenizer_files(&self) -> Result<Vec<(String, Vec<u8>)>, super::checkpoint::CheckpointError> {
        Ok(vec![("tokenizer.json".into(), word_level_tokenizer(self.cfg.vocab_size))])
    }
    fn special_ids(&self) -> SpecialIds {
        SpecialIds { bos: Some(2), eos: vec![1, 106], pad: Some(0) }
    }
}

fn params(group: usize) -> AlcQuantizeParams {
    AlcQuantizeParams { group_size: group, ..AlcQuantizeParams::default() }
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap()).map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap())).collect()
}

#[test]
fn package_holds_exactly_the_quantized_source() {
    let src = Mem::new();
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("pkg");
    let r = quantize(&src, &params(32), None, &out, &mut |_, _| {}).unwrap();
    assert_eq!(r.source_params, src.t.values().map(|(_, v)| v.len() as u64).sum::<u64>());
    let pkg = Package::open(&out).unwrap();
    assert_eq!(pkg.chat.model, src.cfg);
    assert_eq!(pkg.group_size().unwrap(), 32);
    // Record order is MLC's module order; every record is in the cache.
    let names: Vec<&str> = pkg.cache.records.iter().flat_map(|s| s.records.iter().map(|r| r.name.as_str())).collect();
    assert_eq!(names[0], format!("{PREFIX}model.embed_tokens.q_weight"));
    assert_eq!(names[2], format!("{PREFIX}model.layers.0.self_attn.q_proj.q_weight"));
    assert_eq!(*names.last().unwrap(), format!("{PREFIX}model.norm.weight"));
    assert_eq!(names.len(), 2 + src.cfg.num_hidden_layers * (6 * 2 + 6) + 1);
    // Each tensor reads back as the quantize → dequantize of the source (norms: bf16(1 + w) − 1).
    let mut round_trip = BTreeMap::new();
    for (name, (shape, w)) in &src.t {
        let (got_shape, got) = pkg.tensor(name).unwrap();
        assert_eq!(&got_shape, shape, "{name}");
        let want: Vec<f32> = if Name::from_hf(name).unwrap().kind().stored_plus_one() {
            w.iter().map(|&x| norm_weight(q4::round_to_bf16(norm_scale(x)))).collect()
        } else {
            q4::dequantize(&q4::quantize_groups(w, shape[0], shape[1], 32).unwrap())
        };
        assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{name}");
        round_trip.insert(name.clone(), (shape.clone(), want));
    }
    // The package runs: bit for bit the forward of the round-tripped source,
    // which differs from the source, and by less than a model of the same
    // shape from other weights does.
    let load = |w: &dyn Gemma3Weights| Gemma3::load(&src.cfg, w).unwrap();
    let tokens: Vec<u32> = (0..12).map(|i| (i * 37 + 5) % 300).collect();
    let logits = |m: &Gemma3| all_logits(m, &tokens, 5);
    let package = logits(&Gemma3::load(&pkg.chat.model, &pkg).unwrap());
    assert_eq!(package.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), logits(&load(&round_trip)).iter().map(|x| x.to_bits()).collect::<Vec<_>>());
    let rms = |a: &[f32], b: &[f32]| (a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum::<f64>() / a.len() as f64).sqrt();
    let (source, other) = (logits(&load(&src)), logits(&load(&tiny_weights(&src.cfg, 8))));
    let (to_source, to_other) = (rms(&package, &source), rms(&other, &source));
    assert!(to_source > 0.0 && to_source < to_other, "RMS logit difference to the source {to_source}, between two sources {to_other}");
}

#[test]
fn same_bytes_for_any_thread_count_and_a_small_shard_cap_splits() {
    let src = Mem::new();
    let d = tempfile::tempdir().unwrap();
    let p = AlcQuantizeParams { group_size: 32, shard_cap: 16 << 10, ..AlcQuantizeParams::default() };
    let mut runs = Vec::new();
    for threads in [1, 3] {
        let out = d.path().join(format!("t{threads}"));
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| quantize(&src, &p, None, &out, &mut |_, _| {}).map(|_| ()).map_err(|e| e.to_string()))
            .unwrap();
        runs.push(files(&out));
    }
    assert_eq!(runs[0], runs[1]);
    let cache = tensor_cache::verify(&d.path().join("t1")).unwrap();
    assert!(cache.records.len() > 3, "{} shards", cache.records.len());
    assert!(cache.records.iter().all(|s| s.nbytes < 16 << 10 || s.records.len() == 1));
}

#[test]
fn chat_config_names_the_template_and_ids_and_round_trips() {
    let src = Mem::new();
    let bytes = chat_config::render(&src.cfg, &params(32), &src.special_ids(), &["tokenizer.json".into()]);
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["model_type"], "gemma3_text");
    assert_eq!(v["quantization"], "q4bf16_1");
    assert_eq!(v["conv_template"]["name"], "gemma3_instruction");
    assert_eq!(v["conv_template"]["stop_token_ids"], serde_json::json!([1, 106]));
    assert_eq!((v["bos_token_id"].clone(), v["eos_token_id"].clone(), v["pad_token_id"].clone()), (2.into(), serde_json::json!([1, 106]), 0.into()));
    assert_eq!(v["sliding_window_size"], 4);
    assert_eq!(v["context_window_size"], 8192);
    let back = chat_config::parse(&bytes).unwrap();
    assert_eq!(back.model, src.cfg);
    assert_eq!(back.ids, src.special_ids());
    // A missing model field is named.
    let mut broken = v.clone();
    broken["model_config"]["text_config"].as_object_mut().unwrap().remove("head_dim");
    let e = chat_config::parse(&serde_json::to_vec(&broken).unwrap()).unwrap_err().to_string();
    assert!(e.contains("mlc-chat-config.json") && e.contains("head_dim") && e.contains("missing"), "{e}");
}

#[test]
fn bad_checkpoints_are_refused_and_nothing_is_written() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("pkg");
    let cases: Vec<(Box<dyn Fn(&mut Mem)>, &str)> = vec![
        (Box::new(|m: &mut Mem| m.t.get_mut("model.layers.1.mlp.down_proj.weight").unwrap().0 = vec![64, 48]), "down_proj"),
        (Box::new(|m: &mut Mem| drop(m.t.remove("model.layers.2.self_attn.k_norm.weight"))), "missing tensor model.layers.2.self_attn.k_norm.weight"),
        (
            Box::new(|m: &mut Mem| drop(m.t.insert("model.layers.9.mlp.up_proj.weight".into(), (vec![1, 1], vec![0.0])))),
            "model.layers.9.mlp.up_proj.weight is not part",
        ),
        (Box::new(|m: &mut Mem| m.t.get_mut("model.layers.0.self_attn.q_proj.weight").unwrap().1[5] = f32::NAN), "q_proj.weight: weight [0, 5] is NaN"),
    ];
    for (break_it, want) in cases {
        let mut m = Mem::new();
        break_it(&mut m);
        let e = quantize(&m, &params(32), None, &out, &mut |_, _| {}).unwrap_err().to_string();
        assert!(e.contains(want), "{e} (wanted {want:?})");
        assert!(!out.exists() && std::fs::read_dir(d.path()).unwrap().count() == 0, "something was left behind for {want}");
    }
    // A group that does not divide a row (down_proj has 96 inputs).
    let e = quantize(&Mem::new(), &params(64), None, &out, &mut |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("down_proj") && e.contains("64"), "{e}");
    assert!(!out.exists());
}

fn so(dir: &Path, cc: &str, out: &str) -> std::path::PathBuf {
    let src = dir.join("lib.c");
    std::fs::write(&src, "int avac_answer(void) { return 42; }\n").unwrap();
    let o = dir.join(out);
    let run = std::process::Command::new(cc).args(["-shared", "-fPIC", "-o"]).arg(&o).arg(&src).output();
    let run = run.unwrap_or_else(|e| panic!("{cc} could not be run ({e}): install gcc and gcc-aarch64-linux-gnu"));
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    o
}

#[test]
fn tar_is_deterministic_loads_whole_and_refuses_wrong_abi_libs() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("pkg");
    quantize(&Mem::new(), &params(32), None, &dir, &mut |_, _| {}).unwrap();
    let arm = so(d.path(), "aarch64-linux-gnu-gcc", "libarm.so");
    let x86 = so(d.path(), "cc", "libx86.so");
    let libs = vec![NativeLib { abi: Abi::Arm64V8a, file: arm, name: "libavac_runtime.so".into() }];
    let (t1, t2) = (d.path().join("a.tar"), d.path().join("b.tar"));
    let (w1, z1) = package::assemble(&dir, &libs, None, None, &t1, &tar::Options::default(), true).unwrap();
    let (w2, _) = package::assemble(&dir, &libs, None, None, &t2, &tar::Options::default(), false).unwrap();
    assert_eq!(w1.sha256, w2.sha256);
    assert!(z1.is_some() && d.path().join("a.tar.zst").is_file());
    let paths: Vec<String> = tar::list(&t1).unwrap().into_iter().map(|e| e.path).collect();
    assert!(paths.contains(&"lib/arm64-v8a/libavac_runtime.so".to_string()) && paths.contains(&"mlc-chat-config.json".to_string()), "{paths:?}");
    let pkg = Package::open(&t1).unwrap();
    assert_eq!(pkg.libs, ["lib/arm64-v8a/libavac_runtime.so"]);
    let model = Gemma3::load(&pkg.chat.model, &pkg).unwrap();
    let tok = pkg.tokenizer().unwrap();
    let ids = tok.encode("t5 t9 t13").unwrap().ids;
    assert_eq!(ids, [2, 5, 9, 13]);
    assert_eq!(model.greedy(&ids, 4, &[]).unwrap().len(), 4);

    // An x86-64 library declared for arm64-v8a: refused, named, nothing written.
    let bad = d.path().join("bad.tar");
    let libs = vec![NativeLib { abi: Abi::Arm64V8a, file: x86.clone(), name: "libavac_runtime.so".into() }];
    let e = package::assemble(&dir, &libs, None, None, &bad, &tar::Options::default(), true).unwrap_err();
    assert!(matches!(e, PackageError::Lib { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("libx86.so") && msg.contains("arm64-v8a"), "{msg}");
    assert!(!bad.exists() && !d.path().join("bad.tar.zst").exists());
}

#[test]
fn tampered_packages_are_refused_naming_the_fault() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("pkg");
    quantize(&Mem::new(), &params(32), None, &dir, &mut |_, _| {}).unwrap();
    // A flipped byte in a shard: md5 mismatch.
    let shard = dir.join("params_shard_0.bin");
    let mut b = std::fs::read(&shard).unwrap();
    b[100] ^= 1;
    std::fs::write(&shard, &b).unwrap();
    let e = Package::open(&dir).err().unwrap().to_string();
    assert!(e.contains("params_shard_0.bin"), "{e}");
    b[100] ^= 1;
    std::fs::write(&shard, &b).unwrap();
    // An unexpected file.
    std::fs::write(dir.join("evil.py"), "import os").unwrap();
    let e = Package::open(&dir).err().unwrap().to_string();
    assert!(e.contains("evil.py"), "{e}");
    std::fs::remove_file(dir.join("evil.py")).unwrap();
    // A truncated archive.
    let t = d.path().join("p.tar");
    package::assemble(&dir, &[], None, None, &t, &tar::Options::default(), false).unwrap();
    let bytes = std::fs::read(&t).unwrap();
    std::fs::write(&t, &bytes[..bytes.len() / 2]).unwrap();
    let e = Package::open(&t).err().unwrap().to_string();
    assert!(e.contains("p.tar") && e.contains("truncated"), "{e}");
}

#[test]
fn a_hostile_tokenizer_is_refused_when_packaged_and_when_opened_naming_the_archive_member() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("pkg");
    quantize(&Mem::new(), &params(32), None, &dir, &mut |_, _| {}).unwrap();
    let good = std::fs::read(dir.join("tokenizer.json")).unwrap();
    // Not JSON: alc package used to accept it, and alc run then panicked.
    std::fs::write(dir.join("tokenizer.json"), b"\x00\x01 not json").unwrap();
    let t = d.path().join("p.tar");
    let e = package::assemble(&dir, &[], None, None, &t, &tar::Options::default(), false).err().unwrap().to_string();
    assert!(e.contains(&format!("{}/tokenizer.json: not valid JSON", dir.display())), "{e}");
    assert!(!t.exists());
    // A 200 KB piece (the tokenizers crate's stack overflow), in an archive
    // written around the packager: opening it names the member in the archive.
    let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
    v["model"]["vocab"]["x".repeat(200_000)] = serde_json::json!(999_999);
    let mut inputs: Vec<tar::Input> = files(&dir)
        .into_iter()
        .filter(|(n, _)| n != "tokenizer.json")
        .map(|(path, b)| tar::Input { path, source: tar::Source::Bytes(b), executable: false })
        .collect();
    inputs.push(tar::Input { path: "tokenizer.json".into(), source: tar::Source::Bytes(serde_json::to_vec(&v).unwrap()), executable: false });
    tar::write(&t, inputs, &tar::Options::default()).unwrap();
    let e = Package::open(&t).err().unwrap().to_string();
    assert!(e.starts_with(&format!("{}/tokenizer.json: /model/vocab (key ", t.display())) && e.contains("200000 bytes"), "{e}");
    assert!(!e.contains("avac-package-"), "the message names the private extraction directory: {e}");
}

/// Found by `cargo fuzz run package`: a package whose `tokenizer.json` is not
/// JSON made the `tokenizers` crate panic inside its decoder's deserializer.
#[test]
fn a_tokenizer_json_that_is_not_json_is_refused_not_a_panic() {
    let d = tempfile::tempdir().unwrap();
    let t = d.path().join("p.tar");
    std::fs::write(&t, include_bytes!("../../fuzz/regressions/package/tokenizer-json-not-json.tar")).unwrap();
    let e = Package::open(&t).err().unwrap().to_string();
    assert!(e.contains("p.tar/tokenizer.json: not valid JSON"), "{e}");
}

/// Keys of a JSON object, in order.
fn keys(v: &serde_json::Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

#[test]
fn validation_report_has_the_documented_keys_in_order() {
    let src = Mem::new();
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("pkg");
    quantize(&src, &params(32), None, &dir, &mut |_, _| {}).unwrap();
    let pkg = Package::open(&dir).unwrap();
    let text: String = (0..40).map(|i| format!("t{} ", (i * 37 + 5) % 300)).collect();
    let p = AlcValidateParams { min_tokens: 20, prompts: vec!["t5 t9".into()], max_new: 3, min_top1_agreement: 1.1, ..AlcValidateParams::default() };
    let r = validate::validate(&pkg, "pkg", &src, &text, &p, None).unwrap();
    assert_eq!((r.text_tokens, r.positions, r.group_size), (41, 40, 32));
    assert!(!r.passed() && r.gates.failures.len() == 1 && r.gates.failures[0].starts_with("top-1 agreement"), "{:?}", r.gates);
    assert_eq!(r.samples.package[0].ids.len(), 3);
    let v = serde_json::to_value(&r).unwrap();
    let top = [
        "package",
        "source",
        "quantization",
        "group_size",
        "text_tokens",
        "positions",
        "perplexity",
        "top1_agreement",
        "kl",
        "gates",
        "samples",
        "timing_not_deterministic",
    ];
    assert_eq!(keys(&v), top);
    assert_eq!(keys(&v["perplexity"]), ["source", "package", "ratio"]);
    assert_eq!(keys(&v["kl"]), ["mean", "max"]);
    assert_eq!(keys(&v["gates"]), ["max_ppl_ratio", "min_top1_agreement", "max_mean_kl", "passed", "failures"]);
    assert_eq!(v["gates"]["max_mean_kl"], serde_json::Value::Null);
    assert_eq!(keys(&v["samples"]), ["package", "source"]);
    assert_eq!(keys(&v["samples"]["source"][0]), ["prompt", "ids", "text"]);
    let timing = [
        "package_load_s",
        "source_load_s",
        "package_decode_tokens_per_s",
        "comparison_s",
        "comparison_tokens_per_s_both_models",
        "threads",
        "peak_rss_package_only_bytes",
        "peak_rss_bytes",
    ];
    assert_eq!(keys(&v["timing_not_deterministic"]), timing);
    let back: validate::ValidationReport = serde_json::from_value(v).unwrap();
    assert_eq!(back.perplexity, r.perplexity);
    // A text too short for the target is an error, not a failed gate.
    let e = validate::validate(&pkg, "pkg", &src, "t1 t2", &p, None).unwrap_err();
    assert!(matches!(e, validate::ValidateError::TextTooShort { tokens: 3, min: 20 }), "{e}");
}

fn gptq_params(embedding: super::quantize::EmbeddingMethod) -> AlcQuantizeParams {
    let gptq = super::quantize::GptqSettings { calibration_samples: 12, seq_len: 9, damp: 0.01, act_order: true, seed: 5, embedding, head_damp: Some(0.1) };
    AlcQuantizeParams { group_size: 32, gptq: Some(gptq), ..AlcQuantizeParams::default() }
}

/// A calibration text of the word-level tokenizer's pieces.
fn calibration_text(n: usize) -> String {
    (0..n).map(|i| format!("t{}", (i * 37 + 11) % 290 + 4)).collect::<Vec<_>>().join(" ")
}

#[test]
fn gptq_is_deterministic_and_beats_nearest_codes_on_its_calibration_set() {
    use super::quantize::EmbeddingMethod;
    let src = Mem::new();
    let text = calibration_text(400);
    let d = tempfile::tempdir().unwrap();
    for method in [EmbeddingMethod::HeadGptq, EmbeddingMethod::HeadGptqFirst, EmbeddingMethod::RoundToNearest] {
        let p = gptq_params(method);
        let mut runs = Vec::new();
        for threads in [1, 3] {
            let out = d.path().join(format!("{method:?}-{threads}"));
            let r = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| quantize(&src, &p, Some(&text), &out, &mut |_, _| {}))
                .unwrap();
            assert_eq!((r.method, r.calibration_tokens), ("gptq", 12 * 9));
            runs.push(files(&out));
        }
        assert_eq!(runs[0], runs[1], "{method:?}: 1 vs 3 threads");
    }
    // On the calibration sequences themselves, GPTQ's package predicts the
    // source's next tokens better than nearest codes do.
    let rtn = d.path().join("rtn");
    quantize(&src, &params(32), None, &rtn, &mut |_, _| {}).unwrap();
    let tok = crate::formats::tokenizer::Tokenizer::from_bytes("t", word_level_tokenizer(src.cfg.vocab_size)).unwrap();
    let seqs = super::calibrate::calibration_set(&tok, Some(2), &text, gptq_params(EmbeddingMethod::HeadGptq).gptq.as_ref().unwrap()).unwrap();
    let source = Gemma3::load(&src.cfg, &src).unwrap();
    let err = |dir: &Path| {
        let pk = package_dir_model(dir);
        let mut e = 0.0f64;
        for s in &seqs {
            let (a, b) = (all_logits(&source, s, 64), all_logits(&pk, s, 64));
            e += a.iter().zip(&b).map(|(x, y)| f64::from(x - y).powi(2)).sum::<f64>();
        }
        e
    };
    let (e_rtn, e_gptq) = (err(&rtn), err(&d.path().join("HeadGptq-1")));
    assert!(e_gptq < e_rtn, "logit error GPTQ {e_gptq} vs nearest {e_rtn}");
}

/// The model of a quantize output directory.
fn package_dir_model(dir: &Path) -> Gemma3 {
    let d = tempfile::tempdir().unwrap();
    let tar = d.path().join("p.tar");
    package::assemble(dir, &[], None, None, &tar, &tar::Options::default(), false).unwrap();
    let pkg = Package::open(&tar).unwrap();
    Gemma3::load(&pkg.chat.model, &pkg).unwrap()
}

#[test]
fn gptq_refuses_a_missing_or_short_calibration_text() {
    let src = Mem::new();
    let d = tempfile::tempdir().unwrap();
    let p = gptq_params(super::quantize::EmbeddingMethod::HeadGptq);
    let e = quantize(&src, &p, None, &d.path().join("a"), &mut |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("needs a calibration text"), "{e}");
    let e = quantize(&src, &p, Some("t5 t6"), &d.path().join("b"), &mut |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("calibration text has 2 tokens, fewer than one sequence of 9"), "{e}");
    let mut bad = p.clone();
    bad.gptq.as_mut().unwrap().damp = 0.0;
    let e = quantize(&src, &bad, Some(&calibration_text(50)), &d.path().join("c"), &mut |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("quantize.gptq.damp"), "{e}");
    assert!(!d.path().join("a").exists() && !d.path().join("b").exists() && !d.path().join("c").exists());
}
