//! Config parsing, load errors and determinism of the Gemma 3 forward, on
//! the generated checkpoint of [`crate::fixtures::gemma3`] (a test-only use
//! of the layer above: the fixtures are built from this model's names table).

use super::*;
use crate::fixtures::gemma3::{tiny_config, weights as tiny_weights};

/// Logits of every position, feeding `tokens` in chunks of `chunk`.
pub(crate) fn all_logits(m: &Gemma3, tokens: &[u32], chunk: usize) -> Vec<f32> {
    let mut cache = m.new_cache();
    let mut out = Vec::with_capacity(tokens.len() * m.cfg.vocab_size);
    let mut next = 0;
    for c in tokens.chunks(chunk) {
        m.forward(c, &mut cache, &mut |p, l| {
            assert_eq!(p, next, "positions arrive in order");
            next += 1;
            out.extend_from_slice(l);
        })
        .unwrap();
    }
    assert_eq!(next, tokens.len());
    out
}

pub(super) fn tokens(n: usize, vocab: u32) -> Vec<u32> {
    (0..n as u32).map(|i| (i * 7919 + 13) % vocab).collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn same_bits_for_any_thread_count_and_chunking() {
    let cfg = tiny_config();
    let m = Gemma3::load(&cfg, &tiny_weights(&cfg, 1)).unwrap();
    let toks = tokens(2000, 300);
    let run = |threads: usize, chunk: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        bits(&pool.install(|| all_logits(&m, &toks, chunk)))
    };
    let whole = run(2, 2000);
    assert!(whole.iter().all(|&b| f32::from_bits(b).is_finite()));
    assert_eq!(whole, run(1, 2000), "1 vs 2 threads");
    assert_eq!(whole, run(2, 7), "chunks of 7");
    assert_eq!(whole, run(1, 1), "one token at a time");
    assert_eq!(whole, run(3, 33), "3 threads, chunks of 33");
}

#[test]
fn truncated_cache_gives_the_same_bits() {
    let cfg = tiny_config();
    let m = Gemma3::load(&cfg, &tiny_weights(&cfg, 2)).unwrap();
    let toks = tokens(40, 300);
    let want = all_logits(&m, &toks, 40);
    // The right prefix followed by a different continuation, truncated back to the prefix.
    let mut cache = m.new_cache();
    m.forward(&toks[..21], &mut cache, &mut |_, _| {}).unwrap();
    m.forward(&tokens(9, 251), &mut cache, &mut |_, _| {}).unwrap();
    cache.truncate(21);
    assert_eq!(cache.len(), 21);
    let mut tail = Vec::new();
    m.forward(&toks[21..], &mut cache, &mut |_, l| tail.extend_from_slice(l)).unwrap();
    assert_eq!(bits(&tail), bits(&want[21 * 300..]));
}

#[test]
fn greedy_and_log_probs_agree_with_forward() {
    let cfg = tiny_config();
    let m = Gemma3::load(&cfg, &tiny_weights(&cfg, 3)).unwrap();
    let prompt = tokens(9, 300);
    let new = m.greedy(&prompt, 12, &[]).unwrap();
    assert_eq!(new.len(), 12);
    let mut seq = prompt.clone();
    seq.extend(&new[..11]);
    let logits = all_logits(&m, &seq, 5);
    for (i, &t) in new.iter().enumerate() {
        let p = prompt.len() - 1 + i;
        assert_eq!(argmax(&logits[p * 300..(p + 1) * 300]), t, "step {i}");
    }
    let stop = m.greedy(&prompt, 12, &[new[2]]).unwrap();
    assert_eq!(stop, new[..=new.iter().position(|&t| t == new[2]).unwrap()]);
    let lp = m.log_probs(&seq, 4).unwrap();
    assert_eq!(lp.len(), seq.len() - 1);
    assert_eq!(lp, m.log_probs(&seq, 100).unwrap());
    let p = perplexity(&lp);
    assert!(p > 1.0 && p < 300.0, "{p}");
}

#[test]
fn log_softmax_is_normalised() {
    let l = [1.0f32, 2.0, 3.0, -50.0];
    let total: f64 = (0..4).map(|i| log_softmax_at(&l, i).exp()).sum();
    assert!((total - 1.0).abs() < 1e-12);
    assert!((log_softmax_at(&l, 2) - (3.0 - (1f64.exp() + 2f64.exp() + 3f64.exp() + (-50f64).exp()).ln())).abs() < 1e-12);
    assert_eq!(argmax(&[1.0, 3.0, 3.0, f32::NAN]), 1);
}

#[test]
fn shape_and_name_errors_are_specific() {
    let cfg = tiny_config();
    let mut w = tiny_weights(&cfg, 4);
    w.get_mut("model.layers.3.mlp.up_proj.weight").unwrap().0 = vec![64, 96];
    let e = Gemma3::load(&cfg, &w).unwrap_err().to_string();
    assert_eq!(e, "tensor model.layers.3.mlp.up_proj.weight has shape [64, 96], expected [96, 64]");
    w.remove("model.layers.3.mlp.up_proj.weight");
    let e = Gemma3::load(&cfg, &w).unwrap_err().to_string();
    assert_eq!(e, "missing tensor model.layers.3.mlp.up_proj.weight");
    let m = Gemma3::load(&cfg, &tiny_weights(&cfg, 4)).unwrap();
    let e = m.forward(&[1, 300], &mut m.new_cache(), &mut |_, _| {}).unwrap_err();
    assert_eq!(e.to_string(), "token id 300 is outside the vocabulary of 300");
}

fn config_json(edit: impl FnOnce(&mut serde_json::Value)) -> Result<Gemma3Config, Gemma3Error> {
    let mut v: serde_json::Value = serde_json::from_str(
        r#"{
        "model_type": "gemma3_text", "vocab_size": 262144, "hidden_size": 640, "intermediate_size": 2048,
        "num_hidden_layers": 18, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 256,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
        "sliding_window": 512, "_sliding_window_pattern": 6, "query_pre_attn_scalar": 256,
        "max_position_embeddings": 32768, "hidden_activation": "gelu_pytorch_tanh", "rope_scaling": null,
        "final_logit_softcapping": null, "attn_logit_softcapping": null, "use_bidirectional_attention": false
    }"#,
    )
    .unwrap();
    edit(&mut v);
    serde_json::from_value(v).map_err(|e| Gemma3Error::Config { field: "<serde>".into(), why: e.to_string() })
}

#[test]
fn config_reads_gemma3_270m_and_variants() {
    let c = config_json(|_| {}).unwrap();
    let globals: Vec<usize> = (0..18).filter(|&i| !c.is_sliding(i)).collect();
    assert_eq!(globals, vec![5, 11, 17]);
    assert_eq!((c.sliding_window, c.head_dim, c.rope_scaling_factor), (512, 256, None));

    let c = config_json(|v| {
        let mut types = vec![serde_json::json!("sliding_attention"); 18];
        types[0] = serde_json::json!("full_attention");
        v["layer_types"] = serde_json::Value::Array(types);
    })
    .unwrap();
    assert_eq!(c.layer_types[0], LayerType::FullAttention);
    assert!(c.is_sliding(5), "layer_types wins over the pattern");

    let c = config_json(|v| v["rope_scaling"] = serde_json::json!({"rope_type": "linear", "factor": 8.0})).unwrap();
    assert_eq!(c.rope_scaling_factor, Some(8.0));

    let text = config_json(|_| {}).unwrap();
    let multi = config_json(|v| {
        let inner = v.clone();
        *v = serde_json::json!({"model_type": "gemma3", "text_config": inner});
    })
    .unwrap();
    assert_eq!(multi, text);
}

#[test]
fn config_refuses_what_it_cannot_run() {
    let err = |edit: fn(&mut serde_json::Value)| config_json(edit).unwrap_err().to_string();
    assert!(err(|v| v["model_type"] = "llama".into()).contains("field model_type: expected \"gemma3_text\" or \"gemma3\", found \"llama\""));
    assert!(err(|v| {
        v.as_object_mut().unwrap().remove("head_dim");
    })
    .contains("field head_dim: missing"));
    assert!(err(|v| v["rope_scaling"] = serde_json::json!({"rope_type": "yarn", "factor": 8.0})).contains("field rope_scaling.rope_type"));
    assert!(err(|v| v["hidden_activation"] = "silu".into()).contains("field hidden_activation"));
    assert!(err(|v| v["layer_types"] = serde_json::json!(["sliding_attention"])).contains("field layer_types: 1 entries for 18 layers"));
    assert!(err(|v| v["num_key_value_heads"] = 3.into()).contains("field num_key_value_heads"));
    assert!(err(|v| v["use_bidirectional_attention"] = true.into()).contains("use_bidirectional_attention"));
}

/// Records what a layer-wise run shows it and replaces nothing.
#[derive(Default)]
struct Recorder {
    seen: Vec<(usize, Tap, usize)>,
    replaced: Vec<(usize, Tap)>,
}

impl calibrate::LayerHook for Recorder {
    type Error = Gemma3Error;
    fn weights_error(&self, e: Gemma3Error) -> Gemma3Error {
        e
    }
    fn observe(&mut self, layer: usize, tap: Tap, inputs: &[f32]) -> Result<(), Gemma3Error> {
        self.seen.push((layer, tap, inputs.len()));
        Ok(())
    }
    fn replace(&mut self, layer: usize, tap: Tap) -> Result<Option<Vec<f32>>, Gemma3Error> {
        self.replaced.push((layer, tap));
        Ok(None)
    }
}

use calibrate::{LayerwiseRun, Tap};

#[test]
fn layerwise_run_is_the_forward() {
    // The head inputs of a layer-wise run over several sequences are the
    // forward's final-norm hidden states of each sequence, bit for bit.
    let cfg = tiny_config();
    let w = tiny_weights(&cfg, 3);
    let m = Gemma3::load(&cfg, &w).unwrap();
    let len = 37;
    let seqs: Vec<Vec<u32>> = (0..5).map(|s| tokens(len + s, 300)[s..].to_vec()).collect();
    let mut run = LayerwiseRun::new(&cfg, &w, &seqs).unwrap();
    let mut rec = Recorder::default();
    for i in 0..cfg.num_hidden_layers {
        run.layer(&w, i, &mut rec).unwrap();
    }
    let got = run.head_inputs(&w).unwrap();
    let h = cfg.hidden_size;
    for (s, seq) in seqs.iter().enumerate() {
        let mut x = m.hidden(seq, &mut m.new_cache()).unwrap();
        rms_norm_rows(&mut x, &m.final_norm, cfg.rms_norm_eps as f32);
        assert_eq!(bits(&x), bits(&got[s * len * h..(s + 1) * len * h]), "sequence {s}");
    }
    let layers = cfg.num_hidden_layers;
    assert_eq!(rec.replaced.len(), 4 * layers);
    assert_eq!(rec.seen.len(), 4 * layers * seqs.len());
    for (layer, tap, n) in &rec.seen {
        assert_eq!(*n, len * tap.input_width(&cfg), "layer {layer} {tap:?}");
    }
}
