//! The tokenizer a GGUF embeds (`tokenizer.ggml.*`), exposed as borrowed
//! arrays. Turning it into a `tokenizer.json` is the caller's job; this only
//! checks that the arrays agree with each other.

use super::error::{GgufError, Result};
use super::value::MetadataArray;
use super::GgufFile;

/// The tokenizer a GGUF embeds (`tokenizer.ggml.*`), borrowed from the file.
/// Lengths and special ids are checked against `tokens`.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufTokenizer<'a> {
    /// `tokenizer.ggml.model`: `llama` (SentencePiece) for Gemma.
    pub model: &'a str,
    /// `tokenizer.ggml.pre`, the pre-tokenizer name, if present.
    pub pre: Option<&'a str>,
    /// `tokenizer.ggml.tokens`: the vocabulary, indexed by id.
    pub tokens: &'a [String],
    /// `tokenizer.ggml.scores`, one per token, if present.
    pub scores: Option<&'a [f32]>,
    /// `tokenizer.ggml.token_type`, one per token (llama.cpp's `LLAMA_TOKEN_TYPE_*`), if present.
    pub token_types: Option<&'a [i32]>,
    /// `tokenizer.ggml.merges` (BPE models), if present.
    pub merges: Option<&'a [String]>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos_token_id: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos_token_id: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub pad_token_id: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`.
    pub unk_token_id: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos_token: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`.
    pub add_eos_token: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix`.
    pub add_space_prefix: Option<bool>,
}

impl<'a> GgufTokenizer<'a> {
    /// Reads and checks the tokenizer keys.
    pub fn from_gguf(g: &'a GgufFile) -> Result<GgufTokenizer<'a>> {
        let file = || g.file().to_string();
        let tokens = match g.get_array("tokenizer.ggml.tokens")? {
            MetadataArray::String(v) => v.as_slice(),
            other => return Err(wrong(g, "tokenizer.ggml.tokens", "ARRAY[STRING]", other.describe())),
        };
        let n = tokens.len();
        let check_len = |key: &str, len: usize| {
            if len == n {
                Ok(())
            } else {
                Err(GgufError::TokenizerLength { file: file(), key: key.to_string(), len, expected: n })
            }
        };
        let scores = match g.opt_array("tokenizer.ggml.scores")? {
            None => None,
            Some(MetadataArray::F32(v)) => Some(v.as_slice()),
            Some(other) => return Err(wrong(g, "tokenizer.ggml.scores", "ARRAY[FLOAT32]", other.describe())),
        };
        let token_types = match g.opt_array("tokenizer.ggml.token_type")? {
            None => None,
            Some(MetadataArray::I32(v)) => Some(v.as_slice()),
            Some(other) => return Err(wrong(g, "tokenizer.ggml.token_type", "ARRAY[INT32]", other.describe())),
        };
        let merges = match g.opt_array("tokenizer.ggml.merges")? {
            None => None,
            Some(MetadataArray::String(v)) => Some(v.as_slice()),
            Some(other) => return Err(wrong(g, "tokenizer.ggml.merges", "ARRAY[STRING]", other.describe())),
        };
        if let Some(s) = scores {
            check_len("tokenizer.ggml.scores", s.len())?;
        }
        if let Some(t) = token_types {
            check_len("tokenizer.ggml.token_type", t.len())?;
        }
        let id = |key: &str| -> Result<Option<u32>> {
            match g.opt_u64(key)? {
                None => Ok(None),
                Some(id) if id < n as u64 => Ok(Some(id as u32)),
                Some(id) => Err(GgufError::TokenIdOutOfRange { file: file(), key: key.to_string(), id, vocab: n }),
            }
        };
        Ok(GgufTokenizer {
            model: g.get_str("tokenizer.ggml.model")?,
            pre: g.opt_str("tokenizer.ggml.pre")?,
            tokens,
            scores,
            token_types,
            merges,
            bos_token_id: id("tokenizer.ggml.bos_token_id")?,
            eos_token_id: id("tokenizer.ggml.eos_token_id")?,
            pad_token_id: id("tokenizer.ggml.padding_token_id")?,
            unk_token_id: id("tokenizer.ggml.unknown_token_id")?,
            add_bos_token: g.opt_bool("tokenizer.ggml.add_bos_token")?,
            add_eos_token: g.opt_bool("tokenizer.ggml.add_eos_token")?,
            add_space_prefix: g.opt_bool("tokenizer.ggml.add_space_prefix")?,
        })
    }
}

fn wrong(g: &GgufFile, key: &str, expected: &'static str, found: String) -> GgufError {
    GgufError::WrongKeyType { file: g.file().to_string(), key: key.to_string(), expected, found }
}
