//! The real all-MiniLM-L6-v2 (PyPI, pinned): the reference forward agrees
//! with candle-transformers' independent BERT, and the default target
//! builds to the golden digests with a model onnxruntime runs.

mod common;
use common::*;

#[test]
fn reference_forward_matches_candle_bert() {
    use candle_core::{DType, Device, Tensor};
    let tmp = tempfile::tempdir().unwrap();
    let dir = minilm_dir(tmp.path());
    let cfg = avac::formats::hf_config::EncoderConfig::read(&dir.join("config.json")).unwrap();
    let st = avac::formats::safetensors::SafeTensors::read(&dir.join("model.safetensors")).unwrap();
    let enc = avac::model::Encoder::load(&cfg, &st).unwrap();
    let tok = avac::formats::tokenizer::Tokenizer::load(dir.join("tokenizer.json")).unwrap();

    let ccfg: candle_transformers::models::bert::Config = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    // SAFETY: the file is not modified while mapped.
    let vb = unsafe { candle_nn::VarBuilder::from_mmaped_safetensors(&[dir.join("model.safetensors")], DType::F32, &Device::Cpu).unwrap() };
    let bert = candle_transformers::models::bert::BertModel::load(vb, &ccfg).unwrap();

    let data: serde_json::Value = serde_json::from_slice(&std::fs::read(repo().join("data/intents/voice-assistant.json")).unwrap()).unwrap();
    let texts: Vec<String> = data["test"].as_array().unwrap().iter().step_by(12).map(|p| p[0].as_str().unwrap().to_string()).collect();
    let mut worst = 0.0f32;
    for t in &texts {
        let ids = tok.encode(t).unwrap().ids;
        let ours = enc.embed(&[ids.clone()], avac::model::Pooling::MeanNormalized, 4096).unwrap();
        let n = ids.len();
        let input = Tensor::new(ids.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        let types = input.zeros_like().unwrap();
        let mask = input.ones_like().unwrap();
        let hidden = bert.forward(&input, &types, Some(&mask)).unwrap(); // [1, n, h]
        let hidden: Vec<Vec<f32>> = hidden.squeeze(0).unwrap().to_vec2().unwrap();
        let h = hidden[0].len();
        let mut mean = vec![0.0f64; h];
        for row in &hidden {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += *v as f64 / n as f64;
            }
        }
        let norm = mean.iter().map(|v| v * v).sum::<f64>().sqrt();
        for (a, b) in ours.iter().zip(&mean) {
            worst = worst.max((a - (b / norm) as f32).abs());
        }
    }
    eprintln!("{} utterances, max |avac - candle| of pooled features = {worst:e}", texts.len());
    assert!(worst < 1e-4, "pooled outputs differ by {worst}");
}

#[test]
fn default_target_builds_golden_and_runs_in_onnxruntime() {
    let out = tempfile::tempdir().unwrap();
    minilm_dir(out.path()); // fetch under the test lock before the build looks for it
    let o = avac(&repo(), &["build", "minilm-intent-int8", "--out", out.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_golden("minilm-intent-int8", &digests(&o));
    let report = read_json(&out.path().join("minilm-intent-classifier-int8.onnx.validation.json"));
    eprintln!("validation: {report}");
    assert!(report["accuracy_reference"].as_f64().unwrap() >= 0.8);
    let int8 = &report["int8"];
    assert!(int8["accuracy_drop"].as_f64().unwrap() <= 0.01, "{int8}");
    assert!(int8["model_bytes"].as_u64().unwrap() < 15_000_000 && int8["size_ratio"].as_f64().unwrap() <= 0.27, "{int8}");
    // The golden artifact is what its provenance's pins produce.
    let a = avac(&repo(), &["audit", out.path().join("minilm-intent-classifier-int8.onnx").to_str().unwrap()]);
    assert_eq!(a.status.code(), Some(0), "{}{}", stdout(&a), stderr(&a));
    assert!(stdout(&a).contains("verdict: reproducible"), "{}", stdout(&a));
}
