//! Benchmark: embed CLINC150's 15,000 training utterances with a BERT-family
//! checkpoint through the reference forward.
//!
//! `AVAC_BENCH_MODEL=DIR cargo bench --bench embed_clinc` (DIR holds
//! config.json, model.safetensors, tokenizer.json). Reports wall time,
//! tokens/s and GFLOP/s of the dense layers, for all threads and 1 thread
//! (checking the bits agree), then fits the intent head on the train split
//! and reports accuracy on the 4,500 in-scope test utterances.

use avac::formats::hf_config::EncoderConfig;
use avac::formats::safetensors::SafeTensors;
use avac::formats::tokenizer::{SeqPolicy, Tokenizer};
use avac::model::{Encoder, Pooling};
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let dir = PathBuf::from(std::env::var("AVAC_BENCH_MODEL").unwrap_or_else(|_| "/tmp/wheels/x".into()));
    let data = std::env::var("AVAC_BENCH_DATA").unwrap_or_else(|_| "../shared/datasets/clinc150/data_full.json".into());
    let cfg = EncoderConfig::read(&dir.join("config.json")).expect("config");
    let st = SafeTensors::read(&dir.join("model.safetensors")).expect("weights");
    let enc = Encoder::load(&cfg, &st).expect("encoder");
    let tok = Tokenizer::load(dir.join("tokenizer.json")).expect("tokenizer");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&data).expect("data")).expect("json");
    let texts: Vec<String> = v["train"].as_array().unwrap().iter().map(|p| p[0].as_str().unwrap().to_string()).collect();
    let t0 = Instant::now();
    let seqs: Vec<Vec<u32>> = tok.encode_batch_capped(&texts, &SeqPolicy::default()).unwrap().into_iter().map(|e| e.ids).collect();
    let tok_s = t0.elapsed().as_secs_f64();
    let tokens: usize = seqs.iter().map(|s| s.len()).sum();
    let (h, f, l) = (cfg.hidden_size as f64, cfg.intermediate_size as f64, cfg.num_layers as f64);
    let flops = tokens as f64 * l * 2.0 * (4.0 * h * h + 2.0 * h * f);
    println!("{} utterances, {} tokens, tokenize {:.2}s", texts.len(), tokens, tok_s);
    let mut reference: Option<Vec<f32>> = None;
    for threads in [rayon::current_num_threads(), 1] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let t = Instant::now();
        let out = pool.install(|| enc.embed(&seqs, Pooling::MeanNormalized, 4096)).unwrap();
        let s = t.elapsed().as_secs_f64();
        println!("threads={threads}: {:.2}s  {:.0} utt/s  {:.0} tok/s  {:.1} GFLOP/s", s, texts.len() as f64 / s, tokens as f64 / s, flops / s / 1e9);
        match &reference {
            None => reference = Some(out),
            Some(r) => assert!(r.iter().zip(&out).all(|(a, b)| a.to_bits() == b.to_bits()), "bits differ across thread counts"),
        }
    }
    println!("bit-identical across thread counts");

    let labels: Vec<String> = {
        let mut l: Vec<String> = v["train"].as_array().unwrap().iter().map(|p| p[1].as_str().unwrap().to_string()).collect();
        l.sort();
        l.dedup();
        l
    };
    let id = |p: &serde_json::Value| labels.binary_search(&p[1].as_str().unwrap().to_string()).unwrap();
    let y: Vec<usize> = v["train"].as_array().unwrap().iter().map(id).collect();
    let test: Vec<(String, usize)> = v["test"].as_array().unwrap().iter().map(|p| (p[0].as_str().unwrap().to_string(), id(p))).collect();
    let t = Instant::now();
    let head = avac::aon::head::fit(reference.as_ref().unwrap(), &y, cfg.hidden_size, labels.len(), &Default::default());
    println!("head fit ({} classes, {} examples): {:.1}s, final loss {:.4}", labels.len(), y.len(), t.elapsed().as_secs_f64(), head.final_loss);
    let test_texts: Vec<String> = test.iter().map(|(t, _)| t.clone()).collect();
    let seqs: Vec<Vec<u32>> = tok.encode_batch_capped(&test_texts, &SeqPolicy::default()).unwrap().into_iter().map(|e| e.ids).collect();
    let feats = enc.embed(&seqs, Pooling::MeanNormalized, 4096).unwrap();
    let h = cfg.hidden_size;
    let mut correct = 0;
    for (i, (_, want)) in test.iter().enumerate() {
        let f = &feats[i * h..(i + 1) * h];
        let mut best = (f32::NEG_INFINITY, 0);
        for c in 0..labels.len() {
            let mut acc = 0.0f32;
            for (a, b) in head.w[c * h..(c + 1) * h].iter().zip(f) {
                acc += a * b;
            }
            let s = acc + head.b[c];
            if s > best.0 {
                best = (s, c);
            }
        }
        correct += (best.1 == *want) as usize;
    }
    println!("CLINC150 in-scope test accuracy (FP32 reference): {}/{} = {:.2}%", correct, test.len(), 100.0 * correct as f64 / test.len() as f64);
}
