//! The real Gemma 3 270M (Q4_K_M GGUF, dequantized to f32) against candle.
//! Ignored by default:
//!
//! ```text
//! AVAC_GEMMA_GGUF=/path/to/gemma-3-270m.gguf cargo test --release -- --ignored --nocapture gemma3_270m
//! ```
//!
//! Two oracles run on the same file: candle-transformers' `gemma3::Model` in
//! f32 on the same dequantized weights (same math, so top-1 should agree
//! almost everywhere), and its `quantized_gemma3::ModelWeights` on the GGUF
//! itself, which multiplies with Q8_K-quantized activations and, in 0.11.1,
//! uses SiLU instead of GELU-tanh in the MLP (`candle_nn::ops::silu(&gate)`),
//! so it is a loose reference only. llama.cpp's greedy continuation of
//! "The capital of France is" (with BOS) is checked as text.

use std::collections::HashMap;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::{gemma3 as cg, quantized_gemma3 as cq};

use super::*;
use crate::formats::gguf::{GgufFile, GgufTokenizer};

fn config(g: &GgufFile) -> Gemma3Config {
    super::gguf::config_from_gguf(g).unwrap()
}

/// Longest-match tokenization per whitespace-separated word (SentencePiece's
/// `▁` marks a preceding space; Gemma adds no space prefix). Not the
/// canonical BPE segmentation, but a valid id sequence for scoring.
fn tokenize(vocab: &[String], text: &str) -> Vec<u32> {
    let index: HashMap<&str, u32> = vocab.iter().enumerate().map(|(i, t)| (t.as_str(), i as u32)).collect();
    let mut ids = vec![2];
    for (i, word) in text.split(' ').enumerate() {
        let w = if i == 0 { word.to_string() } else { format!("▁{word}") };
        let mut rest = w.as_str();
        while !rest.is_empty() {
            let end = (1..=rest.len()).rev().filter(|&e| rest.is_char_boundary(e)).find(|&e| index.contains_key(&rest[..e])).expect("byte fallback not needed");
            ids.push(index[&rest[..end]]);
            rest = &rest[end..];
        }
    }
    ids
}

fn detok(vocab: &[String], ids: &[u32]) -> String {
    ids.iter().map(|&i| vocab[i as usize].replace('▁', " ")).collect()
}

/// The start of the project's own validation text (`data/alc/eval-text.txt`).
fn text() -> &'static str {
    let t = include_str!("../../../data/alc/eval-text.txt");
    &t[..t[..1200].rfind(' ').unwrap()]
}

/// Logits of every position of `ids` from a candle model fed one token at a time.
fn candle_steps(ids: &[u32], mut step: impl FnMut(&Tensor, usize) -> Tensor) -> Vec<Vec<f32>> {
    ids.iter()
        .enumerate()
        .map(|(p, &t)| {
            let x = Tensor::new(&[t], &Device::Cpu).unwrap().unsqueeze(0).unwrap();
            step(&x, p).flatten_all().unwrap().to_vec1::<f32>().unwrap()
        })
        .collect()
}

fn candle_greedy(prompt: &[u32], n: usize, mut step: impl FnMut(&Tensor, usize) -> Tensor) -> Vec<u32> {
    let x = Tensor::new(prompt, &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let mut next = argmax(&step(&x, 0).flatten_all().unwrap().to_vec1::<f32>().unwrap());
    let mut out = vec![];
    while out.len() < n {
        out.push(next);
        if next == 1 || next == 106 {
            break;
        }
        let x = Tensor::new(&[next], &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        next = argmax(&step(&x, prompt.len() + out.len() - 1).flatten_all().unwrap().to_vec1::<f32>().unwrap());
    }
    out
}

/// (top-1 agreement, mean |Δ log p(next)|, max |Δ logit|) of `theirs` against `ours`.
fn agreement(ids: &[u32], ours: &[Vec<f32>], theirs: &[Vec<f32>]) -> (f64, f64, f32) {
    let n = ids.len() - 1;
    let (mut same, mut dlp, mut dmax) = (0usize, 0.0f64, 0.0f32);
    for p in 0..n {
        same += usize::from(argmax(&ours[p]) == argmax(&theirs[p]));
        let next = ids[p + 1] as usize;
        dlp += (log_softmax_at(&ours[p], next) - log_softmax_at(&theirs[p], next)).abs();
        dmax = ours[p].iter().zip(&theirs[p]).map(|(a, b)| (a - b).abs()).fold(dmax, f32::max);
    }
    (same as f64 / n as f64, dlp / n as f64, dmax)
}

#[test]
#[ignore = "needs AVAC_GEMMA_GGUF (the Gemma 3 270M GGUF) and a few GB of RAM"]
fn gemma3_270m_against_candle() {
    let Ok(path) = std::env::var("AVAC_GEMMA_GGUF") else {
        eprintln!("AVAC_GEMMA_GGUF is not set; skipping");
        return;
    };
    let t = Instant::now();
    let g = GgufFile::read(std::path::Path::new(&path)).unwrap();
    let cfg = config(&g);
    let weights = super::gguf::GgufWeights::new(&g).unwrap();
    let model = Gemma3::load(&cfg, &weights).unwrap();
    println!("loaded in {:.1} s", t.elapsed().as_secs_f64());
    let vocab = GgufTokenizer::from_gguf(&g).unwrap().tokens;

    // Greedy continuation; llama.cpp: " the capital of the country of France. It is the largest city in France."
    let prompt = tokenize(vocab, "The capital of France is");
    assert_eq!(prompt, [2, 818, 5279, 529, 7001, 563]);
    let t = Instant::now();
    let ours = model.greedy(&prompt, 20, &[1, 106]).unwrap();
    let dt = t.elapsed().as_secs_f64();
    println!("avac greedy ({:.2} tok/s incl. prefill): {ours:?} {:?}", ours.len() as f64 / dt, detok(vocab, &ours));
    // The first 15 tokens agree with llama.cpp; its 16th is "." where the f32 forward (and candle's f32 model) continue " and".
    assert!(detok(vocab, &ours).starts_with(" the capital of the country of France. It is the largest city in France"));

    // Per-position logits of a ~200-token text, prefilled in one call.
    let ids = tokenize(vocab, text());
    let t = Instant::now();
    let mut ours_logits = Vec::new();
    model.forward(&ids, &mut model.new_cache(), &mut |_, l| ours_logits.push(l.to_vec())).unwrap();
    let dt = t.elapsed().as_secs_f64();
    println!("avac prefill: {} tokens in {dt:.2} s = {:.1} tok/s (incl. full-vocab logits)", ids.len(), ids.len() as f64 / dt);
    let mut cache = model.new_cache();
    model.forward(&ids[..1], &mut cache, &mut |_, _| {}).unwrap();
    let t = Instant::now();
    for &id in &ids[1..65] {
        model.forward(&[id], &mut cache, &mut |_, _| {}).unwrap();
    }
    println!("avac decode: {:.1} tok/s (64 steps)", 64.0 / t.elapsed().as_secs_f64());
    let lp: Vec<f64> = (0..ids.len() - 1).map(|p| log_softmax_at(&ours_logits[p], ids[p + 1] as usize)).collect();
    println!("avac perplexity over {} tokens: {:.3}", lp.len(), perplexity(&lp));

    // candle gemma3::Model, f32, same dequantized weights in HF convention.
    let dev = Device::Cpu;
    let ts: HashMap<String, Tensor> = weights
        .hf_names()
        .map(|n| {
            let (shape, v) = weights.tensor(n).unwrap();
            (n.to_string(), Tensor::from_vec(v, shape.as_slice(), &dev).unwrap())
        })
        .collect();
    // The GGUF config has no softcapping, so candle's gets none either.
    let ccfg = super::tests_candle::candle_config(&cfg, cfg.sliding_window, 1024);
    let mut cf = cg::Model::new(false, &ccfg, candle_nn::VarBuilder::from_tensors(ts, DType::F32, &dev)).unwrap();
    let t = Instant::now();
    let f32_logits = candle_steps(&ids, |x, p| cf.forward(x, p).unwrap());
    println!("candle gemma3 f32 decode: {:.1} tok/s", ids.len() as f64 / t.elapsed().as_secs_f64());
    cf.clear_kv_cache();
    let f32_greedy = candle_greedy(&prompt, 20, |x, p| cf.forward(x, p).unwrap());
    drop(cf);

    // candle quantized_gemma3 on the GGUF itself.
    let mut file = std::fs::File::open(&path).unwrap();
    let content = candle_core::quantized::gguf_file::Content::read(&mut file).unwrap();
    let mut cq = cq::ModelWeights::from_gguf(content, &mut file, &dev).unwrap();
    let t = Instant::now();
    let q_logits = candle_steps(&ids, |x, p| cq.forward(x, p).unwrap());
    println!("candle quantized_gemma3 decode: {:.1} tok/s", ids.len() as f64 / t.elapsed().as_secs_f64());
    let q_greedy = candle_greedy(&prompt, 20, |x, p| cq.forward(x, p).unwrap());

    let (top1_f, dlp_f, dmax_f) = agreement(&ids, &ours_logits, &f32_logits);
    let (top1_q, dlp_q, dmax_q) = agreement(&ids, &ours_logits, &q_logits);
    println!("vs candle gemma3 f32 ({} positions): top-1 agreement {:.4}, mean |Δ log p| {dlp_f:.3e}, max |Δ logit| {dmax_f:.3e}", ids.len() - 1, top1_f);
    println!("vs candle quantized_gemma3: top-1 agreement {top1_q:.4}, mean |Δ log p| {dlp_q:.4}, max |Δ logit| {dmax_q:.3}");
    println!("candle f32 greedy: {f32_greedy:?} {:?}", detok(vocab, &f32_greedy));
    println!("candle quantized greedy: {q_greedy:?} {:?}", detok(vocab, &q_greedy));
    assert_eq!(f32_greedy, ours);
    assert!(top1_f >= 0.99 && dlp_f < 1e-2, "top-1 {top1_f}, mean |Δ log p| {dlp_f}");
}
