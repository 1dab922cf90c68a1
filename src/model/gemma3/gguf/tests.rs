//! The GGUF mapping on handcrafted files, and on the real 270M when given.

use super::*;
use crate::formats::gguf::tests::{parse, Builder};
use crate::formats::gguf::tests_gemma3::gemma3_file;
use crate::formats::gguf::GgmlType;

#[test]
fn gemma3_names_map_to_hugging_face() {
    let cases = [
        ("token_embd.weight", "model.embed_tokens.weight", false),
        ("output_norm.weight", "model.norm.weight", true),
        ("output.weight", "lm_head.weight", false),
        ("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight", false),
        ("blk.1.attn_k.weight", "model.layers.1.self_attn.k_proj.weight", false),
        ("blk.2.attn_v.weight", "model.layers.2.self_attn.v_proj.weight", false),
        ("blk.3.attn_output.weight", "model.layers.3.self_attn.o_proj.weight", false),
        ("blk.4.attn_q_norm.weight", "model.layers.4.self_attn.q_norm.weight", true),
        ("blk.5.attn_k_norm.weight", "model.layers.5.self_attn.k_norm.weight", true),
        ("blk.6.attn_norm.weight", "model.layers.6.input_layernorm.weight", true),
        ("blk.7.post_attention_norm.weight", "model.layers.7.post_attention_layernorm.weight", true),
        ("blk.8.ffn_norm.weight", "model.layers.8.pre_feedforward_layernorm.weight", true),
        ("blk.9.post_ffw_norm.weight", "model.layers.9.post_feedforward_layernorm.weight", true),
        ("blk.10.ffn_gate.weight", "model.layers.10.mlp.gate_proj.weight", false),
        ("blk.11.ffn_up.weight", "model.layers.11.mlp.up_proj.weight", false),
        ("blk.17.ffn_down.weight", "model.layers.17.mlp.down_proj.weight", false),
    ];
    for (gguf, hf, plus_one) in cases {
        let n = Name::from_gguf(gguf).unwrap_or_else(|| panic!("{gguf}"));
        assert_eq!((n.hf().as_str(), n.kind().stored_plus_one()), (hf, plus_one), "{gguf}");
        // The converter's own rule: `name.endswith("norm.weight")` on the HF name.
        assert_eq!(plus_one, hf.ends_with("norm.weight"), "{hf}");
    }
}

#[test]
fn gemma3_keys_with_llama_cpp_defaults() {
    let g = parse(gemma3_file().build()).unwrap();
    let c = GgufKeys::from_gguf(&g).unwrap();
    assert_eq!((c.embedding_length, c.block_count, c.head_count, c.head_count_kv, c.key_length), (640, 18, 4, 1, 256));
    assert_eq!((c.rope_freq_base, c.rope_freq_base_swa, c.sliding_window, c.sliding_window_pattern), (1e6, 10_000.0, 512, 6));
    assert_eq!((c.rms_norm_eps, c.rope_scaling.clone()), (1e-6, None));

    let g = parse(Builder::new().kv_str("general.architecture", "llama").build()).unwrap();
    let e = GgufKeys::from_gguf(&g).unwrap_err();
    assert!(matches!(e, GgufError::WrongArchitecture { .. }), "{e}");
    let g = parse(Builder::new().kv_str("general.architecture", "gemma3").build()).unwrap();
    let e = GgufKeys::from_gguf(&g).unwrap_err();
    assert_eq!(e.to_string(), "t.gguf: missing metadata key 'gemma3.context_length'");
}

/// [`gemma3_file`] with a `[640, rows]` embedding and the u32 value of
/// `key` replaced by `value`.
fn with_u32(key: &str, value: u32, rows: u64) -> Vec<u8> {
    let mut b = gemma3_file().tensor("token_embd.weight", &[640, rows], GgmlType::F32, &vec![0; 640 * rows as usize * 4]).build();
    let at = b.windows(key.len()).position(|w| w == key.as_bytes()).unwrap() + key.len() + 4;
    b[at..at + 4].copy_from_slice(&value.to_le_bytes());
    b
}

#[test]
fn hostile_gemma3_keys_are_refused_before_anything_is_allocated_from_them() {
    let err = |key: &str, value: u32| config_from_gguf(&parse(with_u32(key, value, 4)).unwrap()).unwrap_err().to_string();
    // Used to build a 4-billion-entry layer list, and abort on a 1.3 TB allocation.
    assert_eq!(err("gemma3.block_count", u32::MAX), "Gemma 3 config: field gemma3.block_count: 4294967295 is more than the 1024 accepted");
    assert_eq!(err("gemma3.context_length", 0), "Gemma 3 config: field gemma3.context_length (HF max_position_embeddings): must be positive");
    assert!(err("gemma3.embedding_length", u32::MAX).contains("gemma3.embedding_length (HF hidden_size): 4294967295 is more than"));
    assert!(err("gemma3.attention.head_count_kv", 0).contains("gemma3.attention.head_count_kv (HF num_key_value_heads): must be positive"));
    config_from_gguf(&parse(with_u32("gemma3.context_length", 1, 4)).unwrap()).unwrap();
}

#[test]
fn an_embedding_whose_rows_are_not_the_tokens_is_refused_naming_the_file() {
    let g = parse(with_u32("gemma3.context_length", 32768, 5)).unwrap();
    let e = crate::alc::checkpoint::GgufCheckpoint::new(&g).err().unwrap().to_string();
    assert_eq!(e, "Gemma 3 config: field tokenizer.ggml.tokens: 4 tokens, but the embedding token_embd.weight has 5 rows");
}

#[test]
fn gemma3_unknown_tensors_are_errors() {
    let g = parse(Builder::new().tensor("token_embd.weight", &[1], GgmlType::F32, &[0; 4]).tensor("mystery", &[1], GgmlType::F32, &[0; 4]).build()).unwrap();
    let e = hf_tensors(&g).unwrap_err();
    assert_eq!(e.to_string(), "t.gguf: tensor 'mystery' has no Hugging Face name for gemma3");
    assert!(GgufWeights::new(&g).is_err());
}

#[test]
fn norms_are_shifted_back_to_hugging_face_values() {
    let bytes: Vec<u8> = [1.5f32, 0.25].iter().flat_map(|v| v.to_le_bytes()).collect();
    let g = parse(Builder::new().tensor("output_norm.weight", &[2], GgmlType::F32, &bytes).tensor("blk.0.attn_q.weight", &[2], GgmlType::F32, &bytes).build())
        .unwrap();
    let w = GgufWeights::new(&g).unwrap();
    assert_eq!(w.hf_names().collect::<Vec<_>>(), ["model.layers.0.self_attn.q_proj.weight", "model.norm.weight"]);
    assert_eq!(w.tensor("model.norm.weight").unwrap(), (vec![2], vec![0.5, -0.75]));
    assert_eq!(w.tensor("model.layers.0.self_attn.q_proj.weight").unwrap(), (vec![2], vec![1.5, 0.25]));
    assert!(matches!(w.tensor("lm_head.weight"), Err(Gemma3Error::MissingTensor { .. })));
}

#[test]
#[ignore = "needs AVAC_GEMMA_GGUF pointing at the Gemma 3 270M Q4_K_M GGUF"]
fn gemma3_270m_names_shapes_and_keys() {
    let path = std::env::var_os("AVAC_GEMMA_GGUF").expect("set AVAC_GEMMA_GGUF to the Gemma 3 270M GGUF to run this test");
    let g = GgufFile::read(std::path::Path::new(&path)).unwrap();
    let hf = hf_tensors(&g).unwrap();
    let shape = |hf_name: &str| hf.iter().find(|(n, _)| n.hf() == hf_name).map(|(_, t)| t.hf_shape()).unwrap();
    assert_eq!(shape("model.embed_tokens.weight"), [262_144, 640]);
    assert_eq!(shape("model.layers.0.self_attn.q_proj.weight"), [1024, 640]);
    assert_eq!(shape("model.layers.0.self_attn.k_proj.weight"), [256, 640]);
    assert_eq!(shape("model.layers.0.self_attn.o_proj.weight"), [640, 1024]);
    assert_eq!(shape("model.layers.17.mlp.down_proj.weight"), [640, 2048]);
    assert_eq!(shape("model.layers.17.mlp.gate_proj.weight"), [2048, 640]);
    assert_eq!(shape("model.layers.0.self_attn.q_norm.weight"), [256]);
    assert_eq!(hf.len(), 2 + 18 * 13);
    // Every tensor has the shape the table gives it under the file's config.
    let cfg = config_from_gguf(&g).unwrap();
    for (n, t) in &hf {
        assert_eq!(t.hf_shape(), n.shape(&cfg), "{}", n.hf());
    }

    // Norms are stored as w + 1 from bf16 w: subtracting 1 gives bf16 values and adds back exactly.
    let mut norm_values = 0;
    for (n, t) in hf.iter().filter(|(n, _)| n.kind().stored_plus_one()) {
        for v in g.dequantize(t.name()).unwrap() {
            let w = names::norm_weight(v);
            assert_eq!(w.to_bits() & 0xffff, 0, "{}: {v} - 1 is not a bf16 value", n.hf());
            assert_eq!(names::norm_scale(w), v, "{}", n.hf());
            norm_values += 1;
        }
    }
    assert_eq!(norm_values, 55_936);

    let c = GgufKeys::from_gguf(&g).unwrap();
    assert_eq!(
        c,
        GgufKeys {
            context_length: 32_768,
            embedding_length: 640,
            block_count: 18,
            feed_forward_length: 2048,
            head_count: 4,
            head_count_kv: 1,
            key_length: 256,
            value_length: 256,
            rms_norm_eps: 1e-6,
            rope_freq_base: 1e6,
            rope_freq_base_swa: 10_000.0,
            sliding_window: 512,
            sliding_window_pattern: 6,
            rope_scaling: None,
        }
    );
}
