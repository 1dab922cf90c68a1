//! What the ALC pipeline reads: a Gemma 3 checkpoint, whatever file format
//! holds it.
//!
//! A [`Checkpoint`] gives the text model's config, its tensors under Hugging
//! Face names and in HF conventions (PyTorch `[out, in]` shapes, RMSNorm
//! weights as `w`, the model multiplying by `1 + w`), one at a time as f32,
//! and the tokenizer files a runtime needs. Two implementations:
//!
//! - [`GgufCheckpoint`]: a llama.cpp GGUF (tensors dequantized, norms shifted
//!   back from `1 + w`, the embedded tokenizer written as `tokenizer.json`);
//! - [`super::hf::HfCheckpoint`]: a Hugging Face directory (`config.json`,
//!   one `model.safetensors` or shards listed in
//!   `model.safetensors.index.json`, tokenizer files copied as they are).

use crate::formats::gguf::{hf_tokenizer, GgufError, GgufFile, GgufTokenizer};
use crate::model::gemma3::{gguf, Gemma3Config, Gemma3Error, Gemma3Weights};

/// Failures opening a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The GGUF file cannot be read (the message names it).
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// The GGUF is not a Gemma 3 text model this pipeline reads.
    #[error("{file}: {source}")]
    GgufModel {
        /// The GGUF file.
        file: String,
        /// What is wrong.
        source: Gemma3Error,
    },
    /// The GGUF's embedded tokenizer cannot be written as `tokenizer.json`
    /// (the message names the file).
    #[error(transparent)]
    GgufTokenizer(#[from] hf_tokenizer::HfTokenizerError),
    /// The Hugging Face directory is not a Gemma 3 checkpoint (the message
    /// names the file inside it).
    #[error(transparent)]
    Hf(#[from] super::hf::HfError),
}

/// Token ids a runtime needs besides the vocabulary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecialIds {
    /// Beginning of sequence.
    pub bos: Option<u32>,
    /// End of sequence (generation stops on any of them).
    pub eos: Vec<u32>,
    /// Padding.
    pub pad: Option<u32>,
}

/// A Gemma 3 text model being compiled.
pub trait Checkpoint: Gemma3Weights {
    /// The file or directory, for messages.
    fn display(&self) -> &str;
    /// The text model's hyper-parameters.
    fn config(&self) -> &Gemma3Config;
    /// HF names of every tensor the checkpoint holds, sorted.
    fn tensor_names(&self) -> Vec<String>;
    /// Tokenizer files as `(file name, bytes)`, sorted by name; `tokenizer.json` is always among them.
    fn tokenizer_files(&self) -> Result<Vec<(String, Vec<u8>)>, CheckpointError>;
    /// BOS, EOS and padding ids.
    fn special_ids(&self) -> SpecialIds;
}

/// A Gemma 3 GGUF.
pub struct GgufCheckpoint<'a> {
    g: &'a GgufFile,
    cfg: Gemma3Config,
    weights: gguf::GgufWeights<'a>,
    ids: SpecialIds,
}

impl<'a> GgufCheckpoint<'a> {
    /// Reads the config, the tensor map and the tokenizer's ids of `g`.
    pub fn new(g: &'a GgufFile) -> Result<Self, Gemma3Error> {
        // Errors leave the file to the caller (`CheckpointError::GgufModel`).
        let cfg = gguf::config_from_gguf(g)?;
        let weights = gguf::GgufWeights::new(g)?;
        let t = GgufTokenizer::from_gguf(g).map_err(|e| Gemma3Error::Config { field: "tokenizer.ggml.*".into(), why: e.to_string() })?;
        // The converter cuts the embedding to the tokenizer's length, so the
        // two agree in every real file; otherwise ids would index past the
        // table, or rows would have no token.
        if t.tokens.len() != cfg.vocab_size {
            let why = format!("{} tokens, but the embedding token_embd.weight has {} rows", t.tokens.len(), cfg.vocab_size);
            return Err(Gemma3Error::Config { field: "tokenizer.ggml.tokens".into(), why });
        }
        let ids = SpecialIds { bos: t.bos_token_id, eos: t.eos_token_id.into_iter().collect(), pad: t.pad_token_id };
        Ok(GgufCheckpoint { g, cfg, weights, ids })
    }
}

impl Gemma3Weights for GgufCheckpoint<'_> {
    fn tensor(&self, hf_name: &str) -> Result<(Vec<usize>, Vec<f32>), Gemma3Error> {
        self.weights.tensor(hf_name)
    }
}

impl Checkpoint for GgufCheckpoint<'_> {
    fn display(&self) -> &str {
        self.g.file()
    }

    fn config(&self) -> &Gemma3Config {
        &self.cfg
    }

    fn tensor_names(&self) -> Vec<String> {
        self.weights.hf_names().map(str::to_string).collect()
    }

    fn tokenizer_files(&self) -> Result<Vec<(String, Vec<u8>)>, CheckpointError> {
        let t = GgufTokenizer::from_gguf(self.g)?;
        let json = hf_tokenizer::to_tokenizer_json(&t, self.g.file())?;
        Ok(vec![("tokenizer.json".into(), json)])
    }

    fn special_ids(&self) -> SpecialIds {
        self.ids.clone()
    }
}
