//! Gemma 3 names, config and tokenizer on handcrafted files.

use super::gemma3::{hf_name, Gemma3Config, HfTensorName};
use super::tests::{parse, Builder};
use super::*;

#[test]
fn gemma3_names_map_to_hugging_face() {
    let cases = [
        ("token_embd.weight", "model.embed_tokens.weight", false),
        ("output_norm.weight", "model.norm.weight", true),
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
        assert_eq!(hf_name(gguf), Some(HfTensorName { name: hf.to_string(), norm_plus_one: plus_one }), "{gguf}");
    }
    for bad in ["blk.01.attn_q.weight", "blk.x.attn_q.weight", "blk..attn_q.weight", "blk.0.attn_qkv.weight", "rope_freqs.weight", "blk.0.attn_q.bias"] {
        assert_eq!(hf_name(bad), None, "{bad}");
    }
}

fn gemma3_file() -> Builder {
    Builder::new()
        .kv_str("general.architecture", "gemma3")
        .kv_u32("gemma3.context_length", 32768)
        .kv_u32("gemma3.embedding_length", 640)
        .kv_u32("gemma3.block_count", 18)
        .kv_u32("gemma3.feed_forward_length", 2048)
        .kv_u32("gemma3.attention.head_count", 4)
        .kv_f32("gemma3.attention.layer_norm_rms_epsilon", 1e-6)
        .kv_u32("gemma3.attention.key_length", 256)
        .kv_u32("gemma3.attention.value_length", 256)
        .kv_f32("gemma3.rope.freq_base", 1e6)
        .kv_u32("gemma3.attention.sliding_window", 512)
        .kv_u32("gemma3.attention.head_count_kv", 1)
        .kv_str("tokenizer.ggml.model", "llama")
        .kv_str_array("tokenizer.ggml.tokens", &["<pad>", "<eos>", "<bos>", "a"])
        .kv_array("tokenizer.ggml.scores", 6, &[0f32, 0.0, 0.0, -1.5], |v| v.to_le_bytes().to_vec())
        .kv_array("tokenizer.ggml.token_type", 5, &[3i32, 3, 3, 1], |v| v.to_le_bytes().to_vec())
        .kv_u32("tokenizer.ggml.bos_token_id", 2)
        .kv_u32("tokenizer.ggml.eos_token_id", 1)
        .kv_u32("tokenizer.ggml.padding_token_id", 0)
        .kv_bool("tokenizer.ggml.add_bos_token", true)
}

#[test]
fn gemma3_config_and_tokenizer() {
    let g = parse(gemma3_file().build()).unwrap();
    let c = Gemma3Config::from_gguf(&g).unwrap();
    assert_eq!((c.embedding_length, c.block_count, c.head_count, c.head_count_kv, c.key_length), (640, 18, 4, 1, 256));
    assert_eq!((c.rope_freq_base, c.rope_freq_base_swa, c.sliding_window, c.sliding_window_pattern), (1e6, 10_000.0, 512, 6));
    assert_eq!((c.rms_norm_eps, c.rope_scaling.clone()), (1e-6, None));
    let t = GgufTokenizer::from_gguf(&g).unwrap();
    assert_eq!((t.model, t.tokens.len(), t.scores.unwrap()[3], t.token_types.unwrap()[0]), ("llama", 4, -1.5, 3));
    assert_eq!((t.bos_token_id, t.eos_token_id, t.pad_token_id, t.unk_token_id, t.add_bos_token), (Some(2), Some(1), Some(0), None, Some(true)));

    let g = parse(gemma3_file().kv_u32("tokenizer.ggml.unknown_token_id", 4).build()).unwrap();
    let e = GgufTokenizer::from_gguf(&g).unwrap_err();
    assert_eq!(e.to_string(), "t.gguf: 'tokenizer.ggml.unknown_token_id' = 4 is outside the 4-token vocabulary");

    let g = parse(gemma3_file().kv_array("tokenizer.ggml.merges", 4, &[1u32], |v| v.to_le_bytes().to_vec()).build()).unwrap();
    let e = GgufTokenizer::from_gguf(&g).unwrap_err();
    assert_eq!(e.to_string(), "t.gguf: metadata key 'tokenizer.ggml.merges' is ARRAY[UINT32; 1], expected ARRAY[STRING]");

    let g = parse(Builder::new().kv_str("general.architecture", "llama").build()).unwrap();
    let e = Gemma3Config::from_gguf(&g).unwrap_err();
    assert!(matches!(e, GgufError::WrongArchitecture { .. }), "{e}");
    let g = parse(Builder::new().kv_str("general.architecture", "gemma3").build()).unwrap();
    let e = Gemma3Config::from_gguf(&g).unwrap_err();
    assert_eq!(e.to_string(), "t.gguf: missing metadata key 'gemma3.context_length'");
}

#[test]
fn gemma3_tokenizer_lengths_must_agree() {
    let g = parse(
        Builder::new()
            .kv_str("tokenizer.ggml.model", "llama")
            .kv_str_array("tokenizer.ggml.tokens", &["a", "b"])
            .kv_array("tokenizer.ggml.scores", 6, &[0f32], |v| v.to_le_bytes().to_vec())
            .build(),
    )
    .unwrap();
    let e = GgufTokenizer::from_gguf(&g).unwrap_err();
    assert!(matches!(e, GgufError::TokenizerLength { len: 1, expected: 2, .. }), "{e}");
}

#[test]
fn gemma3_unknown_tensors_are_errors() {
    let g = parse(Builder::new().tensor("token_embd.weight", &[1], GgmlType::F32, &[0; 4]).tensor("mystery", &[1], GgmlType::F32, &[0; 4]).build()).unwrap();
    let e = g.gemma3_hf_tensors().unwrap_err();
    assert_eq!(e.to_string(), "t.gguf: tensor 'mystery' has no Hugging Face name for gemma3");
}
