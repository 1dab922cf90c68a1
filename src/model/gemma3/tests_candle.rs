//! The forward against candle-transformers 0.11's `gemma3::Model` (f32,
//! CPU), an implementation nobody here wrote, on the tiny generated
//! checkpoint of [`crate::fixtures::gemma3`].
//!
//! Semantic differences of candle's `gemma3.rs`, and how the test bridges them:
//!
//! - Its prefill mask keeps keys with `j + sliding_window >= i`, i.e.
//!   `sliding_window + 1` keys, one more than HF (`i - j < sliding_window`);
//!   its single-token decode keeps a rotating cache of `sliding_window`
//!   keys, the query included, which is HF's rule. So prefill runs candle
//!   with `sliding_window - 1` and decode with `sliding_window`.
//! - It scales scores by `head_dim^-0.5`, not `query_pre_attn_scalar^-0.5`
//!   (equal for every released Gemma 3 and for the tiny config here).
//! - It returns the last position's logits only, so prefill is run once per
//!   prefix length.
//! - It ignores `rope_scaling` (the 4B+ models' linear factor 8).

use std::collections::{BTreeMap, HashMap};

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::gemma3 as cg;

use super::tests::{all_logits, tokens};
use super::*;
use crate::fixtures::gemma3::{tiny_config, weights as tiny_weights};

/// candle's config for `cfg`, with its own sliding window and position table size.
pub(super) fn candle_config(cfg: &Gemma3Config, sliding_window: usize, max_positions: usize) -> cg::Config {
    cg::Config {
        attention_bias: false,
        head_dim: cfg.head_dim,
        hidden_activation: candle_nn::Activation::GeluPytorchTanh,
        hidden_size: cfg.hidden_size,
        intermediate_size: cfg.intermediate_size,
        num_attention_heads: cfg.num_attention_heads,
        num_hidden_layers: cfg.num_hidden_layers,
        num_key_value_heads: cfg.num_key_value_heads,
        rms_norm_eps: cfg.rms_norm_eps,
        rope_theta: cfg.rope_theta,
        rope_local_base_freq: cfg.rope_local_base_freq,
        vocab_size: cfg.vocab_size,
        final_logit_softcapping: cfg.final_logit_softcapping,
        attn_logit_softcapping: cfg.attn_logit_softcapping,
        query_pre_attn_scalar: cfg.query_pre_attn_scalar as usize,
        sliding_window,
        sliding_window_pattern: cfg.sliding_window_pattern,
        max_position_embeddings: max_positions,
    }
}

fn candle_model(cfg: &Gemma3Config, w: &BTreeMap<String, (Vec<usize>, Vec<f32>)>, sliding_window: usize) -> cg::Model {
    let dev = Device::Cpu;
    let ts: HashMap<String, Tensor> = w.iter().map(|(n, (shape, v))| (n.clone(), Tensor::from_vec(v.clone(), shape.as_slice(), &dev).unwrap())).collect();
    let vb = candle_nn::VarBuilder::from_tensors(ts, DType::F32, &dev);
    cg::Model::new(false, &candle_config(cfg, sliding_window, 64), vb).unwrap()
}

fn last_logits(t: Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Max |Δ| over all positions: (candle prefill per prefix, candle decode).
fn compare(cfg: &Gemma3Config, seed: u64) -> (f32, f32, f32) {
    let w = tiny_weights(cfg, seed);
    let ours = Gemma3::load(cfg, &w).unwrap();
    let toks = tokens(20, cfg.vocab_size as u32);
    let want = all_logits(&ours, &toks, 20);
    let v = cfg.vocab_size;
    let scale = want.iter().fold(0.0f32, |m, x| m.max(x.abs()));

    let mut prefill = candle_model(cfg, &w, cfg.sliding_window - 1);
    let mut d_prefill = 0.0f32;
    for t in 1..=toks.len() {
        prefill.clear_kv_cache();
        let ids = Tensor::new(&toks[..t], &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        let got = last_logits(prefill.forward(&ids, 0).unwrap());
        d_prefill = d_prefill.max(max_abs_diff(&got, &want[(t - 1) * v..t * v]));
    }

    let mut decode = candle_model(cfg, &w, cfg.sliding_window);
    let mut d_decode = 0.0f32;
    for (p, &tok) in toks.iter().enumerate() {
        let ids = Tensor::new(&[tok], &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        let got = last_logits(decode.forward(&ids, p).unwrap());
        d_decode = d_decode.max(max_abs_diff(&got, &want[p * v..(p + 1) * v]));
    }
    (d_prefill, d_decode, scale)
}

#[test]
fn matches_candle_gemma3_f32() {
    let cfg = tiny_config();
    let (prefill, decode, scale) = compare(&cfg, 11);
    println!("candle gemma3 vs avac, 20 positions, logits up to {scale:.2}: max |Δ| prefill {prefill:.3e}, decode {decode:.3e}");
    assert!(prefill < 1e-4 && decode < 1e-4, "prefill {prefill}, decode {decode}");
}

#[test]
fn matches_candle_gemma3_with_softcapping() {
    let mut cfg = tiny_config();
    cfg.attn_logit_softcapping = Some(2.0);
    cfg.final_logit_softcapping = Some(3.0);
    let (prefill, decode, scale) = compare(&cfg, 12);
    println!("candle gemma3 vs avac with softcapping: max |Δ| prefill {prefill:.3e}, decode {decode:.3e} (logits up to {scale:.2})");
    assert!(prefill < 1e-4 && decode < 1e-4, "prefill {prefill}, decode {decode}");
}

/// The test above would not notice a forward that ignores the window, so
/// check that candle with HF's window disagrees with candle with one more key.
#[test]
fn candle_window_off_by_one_is_visible() {
    let cfg = tiny_config();
    let w = tiny_weights(&cfg, 11);
    let toks = tokens(20, cfg.vocab_size as u32);
    let ids = Tensor::new(toks.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let a = last_logits(candle_model(&cfg, &w, cfg.sliding_window - 1).forward(&ids, 0).unwrap());
    let b = last_logits(candle_model(&cfg, &w, cfg.sliding_window).forward(&ids, 0).unwrap());
    assert!(max_abs_diff(&a, &b) > 1e-2);
}
