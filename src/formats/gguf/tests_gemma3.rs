//! Gemma 3's embedded tokenizer on handcrafted files (its names and
//! `gemma3.*` keys are tested in `model::gemma3::gguf`).

use super::tests::{parse, Builder};
use super::*;

/// A Gemma 3 270M-shaped header with a four-token tokenizer.
pub(crate) fn gemma3_file() -> Builder {
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
fn gemma3_tokenizer() {
    let g = parse(gemma3_file().build()).unwrap();
    let t = GgufTokenizer::from_gguf(&g).unwrap();
    assert_eq!((t.model, t.tokens.len(), t.scores.unwrap()[3], t.token_types.unwrap()[0]), ("llama", 4, -1.5, 3));
    assert_eq!((t.bos_token_id, t.eos_token_id, t.pad_token_id, t.unk_token_id, t.add_bos_token), (Some(2), Some(1), Some(0), None, Some(true)));

    let g = parse(gemma3_file().kv_u32("tokenizer.ggml.unknown_token_id", 4).build()).unwrap();
    let e = GgufTokenizer::from_gguf(&g).unwrap_err();
    assert_eq!(e.to_string(), "t.gguf: 'tokenizer.ggml.unknown_token_id' = 4 is outside the 4-token vocabulary");

    let g = parse(gemma3_file().kv_array("tokenizer.ggml.merges", 4, &[1u32], |v| v.to_le_bytes().to_vec()).build()).unwrap();
    let e = GgufTokenizer::from_gguf(&g).unwrap_err();
    assert_eq!(e.to_string(), "t.gguf: metadata key 'tokenizer.ggml.merges' is ARRAY[UINT32; 1], expected ARRAY[STRING]");
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
