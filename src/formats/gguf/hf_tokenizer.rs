//! The SentencePiece tokenizer a GGUF embeds (`tokenizer.ggml.model = llama`,
//! as in Gemma), written out as a Hugging Face `tokenizer.json` that encodes
//! text to the same ids as llama.cpp's SPM tokenizer (`llm_tokenizer_spm` in
//! `llama-vocab.cpp`) with `parse_special = true`.
//!
//! # What llama.cpp does, and how each step is expressed here
//!
//! llama.cpp tokenizes a `llama` vocabulary in four steps; each maps onto one
//! part of the `tokenizer.json`:
//!
//! 1. **Special-token partition** (`tokenizer_st_partition`). Control (type 3),
//!    unknown (2) and user-defined (4) tokens are cut out of the raw text,
//!    byte-exact, before anything else. Here they are `added_tokens` with
//!    `normalized: false` (matched on the raw text, so Gemma's `"  "` and
//!    `"\n\n"` tokens match real spaces and newlines) and no strip/single-word
//!    flags. Control and unknown tokens are `special: true`; user-defined ones
//!    are `special: false`, because llama.cpp's detokenizer prints user-defined
//!    tokens as text and hides control tokens unless asked to show them
//!    (transformers' GGUF loader draws the same line). Unused (5), byte (6) and
//!    normal (1) tokens stay plain vocabulary, as in llama.cpp.
//! 2. **Whitespace escape**: `' '` becomes `'▁'`, after prefixing one space to
//!    each raw-text fragment that starts the text or follows a partitioned
//!    token when `add_space_prefix` holds. Here: a `Replace(" ", "▁")`
//!    normalizer, preceded by `Prepend("▁")` when `add_space_prefix` holds
//!    (Hugging Face normalizes each segment between added tokens separately,
//!    which is llama.cpp's fragment rule). Gemma sets it to false. No
//!    pre-tokenizer: SPM never splits the text into words.
//! 3. **Score-greedy bigram merging**: start from UTF-8 characters, repeatedly
//!    merge the adjacent pair whose concatenation is a vocabulary entry with
//!    the highest score (equal scores: the leftmost pair). Any token type
//!    takes part. This is SentencePiece BPE, which a Hugging Face `BPE` model
//!    reproduces once the scores are turned into ranked merges, see
//!    [`derive_merges`].
//! 4. **Byte fallback** (`resegment`): a character that is not a token becomes
//!    its UTF-8 bytes as `<0xXX>` tokens. Here: `byte_fallback: true` (and
//!    `fuse_unk: true`, Hugging Face's setting for SentencePiece models; it only
//!    matters if a byte token were missing, which [`to_tokenizer_json`] refuses).
//!
//! Then `<bos>`/`<eos>` are added when `add_bos_token`/`add_eos_token` hold:
//! a `TemplateProcessing` post-processor (for pairs, each sequence gets its own
//! markers, as Hugging Face's Llama and Gemma tokenizers do). The decoder undoes
//! the escape (`Replace("▁", " ")`, `ByteFallback`, `Fuse`, and `Strip` of one
//! leading space when a prefix space was added).
//!
//! # Merges from scores
//!
//! A GGUF of a `llama` vocabulary stores scores, not merges. Every split of a
//! token into two tokens is a merge (Hugging Face's `SentencePieceExtractor`
//! and transformers' `generate_merges` do the same); merges are ranked by
//!
//! 1. the merged token's score, highest first (compared as llama.cpp compares
//!    floats: `-0.0 == 0.0`);
//! 2. then the merged token's id, lowest first (equal scores only occur for
//!    non-normal tokens in Gemma: bytes score 0, control and user-defined
//!    tokens -1000);
//! 3. then the left piece's length, longest first: if `x+y == y+z` for
//!    adjacent `x y z`, llama.cpp merges the leftmost pair, `(x, y)`, whose
//!    left piece is the longer one (transformers sorts the same way).
//!
//! Two cases stay out of reach of any merge list, because Hugging Face breaks
//! rank ties by position and a merge list cannot hold equal ranks: two pairs
//! whose merged tokens have equal scores, or are the same token from different
//! splits, at non-adjacent places. llama.cpp takes the leftmost; here the rank
//! above decides. With Gemma's unique scores on normal tokens this needs a
//! byte token's literal spelling (`<0x41>`) in the text.
//!
//! Hugging Face matches added tokens leftmost-longest; llama.cpp cuts the
//! longest token first, everywhere. They differ only when one added token
//! overlaps another in the text, which Gemma's added tokens cannot.
//!
//! transformers' own GGUF conversion differs on purpose in one place: it
//! respells Gemma's space-run tokens (`"  "`) as `"▁▁"` merges, so text that
//! contains a literal `▁` encodes differently there; llama.cpp, and this
//! module, match those tokens on real spaces only.
//!
//! # Defaults for absent keys
//!
//! llama.cpp's defaults for a `llama` vocabulary: `add_bos_token = true`,
//! `add_eos_token = false`, `add_space_prefix = true`, BOS id 1, EOS id 2,
//! unknown id 0. A missing `tokenizer.ggml.token_type` makes every token
//! normal. `tokenizer.ggml.merges`, if present, is ignored (llama.cpp ignores
//! it for this model too).
//!
//! # Output bytes
//!
//! Compact JSON (no whitespace), keys in the order Hugging Face writes them
//! (`version, truncation, padding, added_tokens, normalizer, pre_tokenizer,
//! post_processor, decoder, model`), `added_tokens` by id, `vocab` by id,
//! `merges` by rank, each merge a `[left, right]` pair (pieces may contain
//! spaces). The same tokenizer gives the same bytes on every machine.

use std::cmp::Reverse;
use std::collections::HashMap;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::GgufTokenizer;
use crate::formats::tokenizer::{MAX_PIECE_BYTES, MAX_VOCAB};

/// Most bytes [`derive_merges`] may scan: the sum over tokens of their
/// length squared (every split of a token hashes both halves). About 40
/// times Gemma 3's, and about a second of work.
pub const MAX_MERGE_SCAN: u64 = 1 << 30;

/// A GGUF tokenizer that cannot be expressed as a `tokenizer.json`, or a check that failed.
#[derive(Debug, thiserror::Error)]
pub enum HfTokenizerError {
    /// A tokenizer model other than SentencePiece (`llama`).
    #[error("{file}: tokenizer.ggml.model is '{model}'; only 'llama' (SentencePiece) can be converted to tokenizer.json")]
    UnsupportedModel {
        /// The file.
        file: String,
        /// The model found.
        model: String,
    },

    /// More tokens than a `tokenizer.json` may hold ([`MAX_VOCAB`]).
    #[error("{file}: tokenizer.ggml.tokens has {n} tokens, more than the {max} accepted")]
    TooManyTokens {
        /// The file.
        file: String,
        /// Tokens found.
        n: usize,
        /// The cap.
        max: usize,
    },

    /// A token longer than a `tokenizer.json` piece may be ([`MAX_PIECE_BYTES`]).
    #[error("{file}: token {id} is {len} bytes long, more than the {max} accepted for one piece")]
    TokenTooLong {
        /// The file.
        file: String,
        /// Its id.
        id: u32,
        /// Its length in bytes.
        len: usize,
        /// The cap.
        max: usize,
    },

    /// Deriving merges tries every split of every token, whose cost grows
    /// with the square of each token's length; the total is capped at
    /// [`MAX_MERGE_SCAN`] so a hostile vocabulary cannot stall the build.
    #[error(
        "{file}: deriving merges would scan {scan} bytes (the sum of each token's length squared), more than the {max} accepted; \
         real SentencePiece vocabularies hold short pieces (Gemma 3's 262,144 tokens: 26.5 million)"
    )]
    MergeScanTooLarge {
        /// The file.
        file: String,
        /// Sum over tokens of their length in bytes, squared.
        scan: u64,
        /// The cap.
        max: u64,
    },

    /// No `tokenizer.ggml.scores`, which rank the merges.
    #[error("{file}: tokenizer.ggml.scores is missing; a 'llama' tokenizer needs one score per token to rank its merges")]
    MissingScores {
        /// The file.
        file: String,
    },

    /// A per-token array whose length is not the number of tokens.
    #[error("{file}: '{key}' has {len} entries but tokenizer.ggml.tokens has {expected}")]
    Length {
        /// The file.
        file: String,
        /// The array's key.
        key: &'static str,
        /// Its length.
        len: usize,
        /// Number of tokens.
        expected: usize,
    },

    /// Two ids spelled the same: a `tokenizer.json` vocabulary maps each spelling to one id.
    #[error("{file}: token {token:?} appears twice in tokenizer.ggml.tokens, at ids {first} and {second}")]
    DuplicateToken {
        /// The file.
        file: String,
        /// The spelling.
        token: String,
        /// Its first id.
        first: u32,
        /// The repeated id.
        second: u32,
    },

    /// An empty token, which can neither be merged to nor matched.
    #[error("{file}: token {id} is the empty string")]
    EmptyToken {
        /// The file.
        file: String,
        /// The id.
        id: u32,
    },

    /// A NaN or infinite score, which cannot be ranked.
    #[error("{file}: token {id} ({token:?}) has score {score}; scores must be finite")]
    NonFiniteScore {
        /// The file.
        file: String,
        /// The id.
        id: u32,
        /// The token.
        token: String,
        /// The score.
        score: f32,
    },

    /// A token type outside llama.cpp's table (1 normal .. 6 byte).
    #[error("{file}: token {id} ({token:?}) has token_type {token_type}; expected 1..=6 (normal, unknown, control, user-defined, unused, byte)")]
    UnknownTokenType {
        /// The file.
        file: String,
        /// The id.
        id: u32,
        /// The token.
        token: String,
        /// The type found.
        token_type: i32,
    },

    /// A special id (given, or llama.cpp's default) outside the vocabulary.
    #[error("{file}: '{key}' = {id} is outside the {vocab}-token vocabulary")]
    SpecialIdOutOfRange {
        /// The file.
        file: String,
        /// The key (the default applies when the key is absent).
        key: &'static str,
        /// The id.
        id: u32,
        /// Vocabulary size.
        vocab: usize,
    },

    /// One of the 256 `<0xXX>` tokens byte fallback needs is absent.
    #[error("{file}: byte token '<0x{byte:02X}>' is missing; SentencePiece byte fallback needs all 256")]
    MissingByteToken {
        /// The file.
        file: String,
        /// The byte.
        byte: u8,
    },

    /// The `tokenizers` crate refused the JSON.
    #[error("{file}: tokenizer.json does not load: {message}")]
    Load {
        /// The file.
        file: String,
        /// The crate's message.
        message: String,
    },

    /// The `tokenizers` crate could not encode a text.
    #[error("{file}: encoding {text:?} failed: {message}")]
    Encode {
        /// The file.
        file: String,
        /// The text.
        text: String,
        /// The crate's message.
        message: String,
    },

    /// A text encoded to other ids than expected.
    #[error("{file}: {text:?} encodes to {actual:?}, expected {expected:?}")]
    Mismatch {
        /// The file.
        file: String,
        /// The text.
        text: String,
        /// The expected ids.
        expected: Vec<u32>,
        /// The ids produced.
        actual: Vec<u32>,
    },
}

/// Results of this module.
pub type Result<T, E = HfTokenizerError> = std::result::Result<T, E>;

/// llama.cpp's `LLAMA_TOKEN_TYPE_*`, minus `UNDEFINED` (0), which no converter writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenType {
    fn from_i32(t: i32) -> Option<TokenType> {
        Some(match t {
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => return None,
        })
    }
}

/// A `llama` tokenizer whose arrays and ids have been checked.
struct Checked<'a> {
    tokens: &'a [String],
    scores: &'a [f32],
    types: Vec<TokenType>,
    ids: HashMap<&'a str, u32>,
    bos: u32,
    eos: u32,
    unk: u32,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
}

fn check<'a>(t: &GgufTokenizer<'a>, file: &str) -> Result<Checked<'a>> {
    let f = || file.to_string();
    if t.model != "llama" {
        return Err(HfTokenizerError::UnsupportedModel { file: f(), model: t.model.to_string() });
    }
    let tokens = t.tokens;
    let n = tokens.len();
    let scores = t.scores.ok_or_else(|| HfTokenizerError::MissingScores { file: f() })?;
    if scores.len() != n {
        return Err(HfTokenizerError::Length { file: f(), key: "tokenizer.ggml.scores", len: scores.len(), expected: n });
    }
    if let Some(tt) = t.token_types {
        if tt.len() != n {
            return Err(HfTokenizerError::Length { file: f(), key: "tokenizer.ggml.token_type", len: tt.len(), expected: n });
        }
    }
    if n > MAX_VOCAB {
        return Err(HfTokenizerError::TooManyTokens { file: f(), n, max: MAX_VOCAB });
    }
    let mut scan = 0u64;
    let mut ids = HashMap::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    for (i, token) in tokens.iter().enumerate() {
        let id = i as u32;
        if token.is_empty() {
            return Err(HfTokenizerError::EmptyToken { file: f(), id });
        }
        if token.len() > MAX_PIECE_BYTES {
            return Err(HfTokenizerError::TokenTooLong { file: f(), id, len: token.len(), max: MAX_PIECE_BYTES });
        }
        scan += (token.len() as u64).pow(2);
        if let Some(first) = ids.insert(token.as_str(), id) {
            return Err(HfTokenizerError::DuplicateToken { file: f(), token: token.clone(), first, second: id });
        }
        if !scores[i].is_finite() {
            return Err(HfTokenizerError::NonFiniteScore { file: f(), id, token: token.clone(), score: scores[i] });
        }
        let raw = t.token_types.map_or(1, |tt| tt[i]);
        let ty = TokenType::from_i32(raw).ok_or_else(|| HfTokenizerError::UnknownTokenType { file: f(), id, token: token.clone(), token_type: raw })?;
        types.push(ty);
    }
    if scan > MAX_MERGE_SCAN {
        return Err(HfTokenizerError::MergeScanTooLarge { file: f(), scan, max: MAX_MERGE_SCAN });
    }
    for byte in 0..=255u8 {
        if !ids.contains_key(byte_token(byte).as_str()) {
            return Err(HfTokenizerError::MissingByteToken { file: f(), byte });
        }
    }
    let special = |key: &'static str, id: Option<u32>, default: u32| {
        let id = id.unwrap_or(default);
        if (id as usize) < n {
            Ok(id)
        } else {
            Err(HfTokenizerError::SpecialIdOutOfRange { file: f(), key, id, vocab: n })
        }
    };
    Ok(Checked {
        tokens,
        scores,
        types,
        ids,
        bos: special("tokenizer.ggml.bos_token_id", t.bos_token_id, 1)?,
        eos: special("tokenizer.ggml.eos_token_id", t.eos_token_id, 2)?,
        unk: special("tokenizer.ggml.unknown_token_id", t.unk_token_id, 0)?,
        add_bos: t.add_bos_token.unwrap_or(true),
        add_eos: t.add_eos_token.unwrap_or(false),
        add_space_prefix: t.add_space_prefix.unwrap_or(true),
    })
}

/// The spelling of a byte-fallback token, as SentencePiece and llama.cpp write it.
fn byte_token(byte: u8) -> String {
    format!("<0x{byte:02X}>")
}

/// Every split of a token into two tokens, as `(left id, right id)`, ranked
/// best first (see the module docs for the order), after the same checks as
/// [`to_tokenizer_json`].
///
/// Cost: one or two hash lookups per character boundary of the vocabulary,
/// then one sort: about a second for Gemma's 262,144 tokens.
pub fn derive_merges(t: &GgufTokenizer, file: &str) -> Result<Vec<(u32, u32)>> {
    let c = check(t, file)?;
    Ok(merges_with(c.tokens, c.scores, &c.ids))
}

/// How merges sort: the merged token's score (highest first), its id, the
/// left piece's length in bytes (longest first). Unique per merge.
type MergeKey = (Reverse<u32>, u32, Reverse<usize>);

fn merges_with(tokens: &[String], scores: &[f32], ids: &HashMap<&str, u32>) -> Vec<(u32, u32)> {
    let mut merges: Vec<(MergeKey, (u32, u32))> = Vec::new();
    for (merged, token) in tokens.iter().enumerate() {
        for (k, _) in token.char_indices().skip(1) {
            if let Some(&l) = ids.get(&token[..k]) {
                if let Some(&r) = ids.get(&token[k..]) {
                    merges.push(((Reverse(score_key(scores[merged])), merged as u32, Reverse(k)), (l, r)));
                }
            }
        }
    }
    // Keys are unique, so the unstable sort is deterministic.
    merges.sort_unstable_by_key(|m| m.0);
    merges.into_iter().map(|(_, pair)| pair).collect()
}

/// A finite score as an integer in the same order as llama.cpp's float `<`:
/// `-0.0` and `0.0` are one key (adding `0.0` turns `-0.0` into `0.0`), and
/// flipping the sign bit (and every bit of negatives) makes IEEE bits sort
/// as unsigned integers.
fn score_key(score: f32) -> u32 {
    let bits = (score + 0.0).to_bits();
    if bits >> 31 == 1 {
        !bits
    } else {
        bits | 1 << 31
    }
}

/// The `tokenizer.json` bytes for a `llama` (SentencePiece) GGUF tokenizer;
/// `file` names the GGUF in errors.
pub fn to_tokenizer_json(t: &GgufTokenizer, file: &str) -> Result<Vec<u8>> {
    let c = check(t, file)?;
    let merges = merges_with(c.tokens, c.scores, &c.ids);
    let doc = TokenizerJson {
        version: "1.0",
        truncation: None,
        padding: None,
        added_tokens: added_tokens(&c),
        normalizer: normalizer(c.add_space_prefix),
        pre_tokenizer: None,
        post_processor: post_processor(&c),
        decoder: decoder(c.add_space_prefix),
        model: BpeModel {
            kind: "BPE",
            dropout: None,
            unk_token: &c.tokens[c.unk as usize],
            continuing_subword_prefix: None,
            end_of_word_suffix: None,
            fuse_unk: true,
            byte_fallback: true,
            ignore_merges: false,
            vocab: Vocab(c.tokens),
            merges: merges.iter().map(|&(l, r)| (c.tokens[l as usize].as_str(), c.tokens[r as usize].as_str())).collect(),
        },
    };
    // Strings, numbers, maps and sequences only: serializing cannot fail.
    Ok(serde_json::to_vec(&doc).expect("serializing tokenizer.json"))
}

/// The document, fields in the order the `tokenizers` crate writes them.
#[derive(Serialize)]
struct TokenizerJson<'a> {
    version: &'static str,
    truncation: Option<()>,
    padding: Option<()>,
    added_tokens: Vec<AddedToken<'a>>,
    normalizer: Value,
    pre_tokenizer: Option<()>,
    post_processor: Value,
    decoder: Value,
    model: BpeModel<'a>,
}

#[derive(Serialize)]
struct AddedToken<'a> {
    id: u32,
    content: &'a str,
    single_word: bool,
    lstrip: bool,
    rstrip: bool,
    normalized: bool,
    special: bool,
}

#[derive(Serialize)]
struct BpeModel<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    dropout: Option<f32>,
    unk_token: &'a str,
    continuing_subword_prefix: Option<&'a str>,
    end_of_word_suffix: Option<&'a str>,
    fuse_unk: bool,
    byte_fallback: bool,
    ignore_merges: bool,
    vocab: Vocab<'a>,
    merges: Vec<(&'a str, &'a str)>,
}

/// The vocabulary as a JSON object from token to id, in id order.
struct Vocab<'a>(&'a [String]);

impl Serialize for Vocab<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (id, token) in self.0.iter().enumerate() {
            map.serialize_entry(token, &id)?;
        }
        map.end()
    }
}

fn added_tokens<'a>(c: &Checked<'a>) -> Vec<AddedToken<'a>> {
    let tokens = c.tokens.iter().zip(&c.types).enumerate();
    let added = tokens.filter_map(|(id, (token, ty))| {
        let special = match ty {
            TokenType::Control | TokenType::Unknown => true,
            TokenType::UserDefined => false,
            TokenType::Normal | TokenType::Unused | TokenType::Byte => return None,
        };
        Some(AddedToken { id: id as u32, content: token, single_word: false, lstrip: false, rstrip: false, normalized: false, special })
    });
    added.collect()
}

fn normalizer(add_space_prefix: bool) -> Value {
    let replace = json!({"type": "Replace", "pattern": {"String": " "}, "content": "▁"});
    if add_space_prefix {
        json!({"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, replace]})
    } else {
        replace
    }
}

fn post_processor(c: &Checked) -> Value {
    if !c.add_bos && !c.add_eos {
        return Value::Null;
    }
    let mut special_tokens = Map::new();
    let mut marker = |id: u32| {
        let token = &c.tokens[id as usize];
        special_tokens.insert(token.clone(), json!({"id": token, "ids": [id], "tokens": [token]}));
        token.clone()
    };
    let bos = c.add_bos.then(|| marker(c.bos));
    let eos = c.add_eos.then(|| marker(c.eos));
    let sequence = |seq: &str, type_id: u32| {
        let special = |t: &Option<String>| t.as_ref().map(|t| json!({"SpecialToken": {"id": t, "type_id": type_id}}));
        let pieces = [special(&bos), Some(json!({"Sequence": {"id": seq, "type_id": type_id}})), special(&eos)];
        pieces.into_iter().flatten().collect::<Vec<_>>()
    };
    let single = sequence("A", 0);
    let pair: Vec<Value> = single.iter().cloned().chain(sequence("B", 1)).collect();
    json!({"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": special_tokens})
}

fn decoder(add_space_prefix: bool) -> Value {
    let mut decoders = vec![json!({"type": "Replace", "pattern": {"String": "▁"}, "content": " "}), json!({"type": "ByteFallback"}), json!({"type": "Fuse"})];
    if add_space_prefix {
        decoders.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
    }
    json!({"type": "Sequence", "decoders": decoders})
}

/// Loads `tokenizer_json` with the `tokenizers` crate and checks that each
/// text encodes (special tokens added) to its ids; `file` names the
/// tokenizer in errors.
pub fn check_encoding(tokenizer_json: &[u8], file: &str, cases: &[(&str, &[u32])]) -> Result<()> {
    let tok = crate::formats::tokenizer::Tokenizer::from_bytes(file, tokenizer_json.to_vec())
        .map_err(|e| HfTokenizerError::Load { file: file.to_string(), message: e.to_string() })?;
    for (text, expected) in cases {
        let enc =
            tok.hf().encode(*text, true).map_err(|e| HfTokenizerError::Encode { file: file.to_string(), text: text.to_string(), message: e.to_string() })?;
        if enc.get_ids() != *expected {
            return Err(HfTokenizerError::Mismatch {
                file: file.to_string(),
                text: text.to_string(),
                expected: expected.to_vec(),
                actual: enc.get_ids().to_vec(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny SentencePiece vocabulary laid out like Gemma's: control tokens,
    /// user-defined whitespace, the 256 byte tokens, then normal pieces.
    struct Spec {
        tokens: Vec<String>,
        scores: Vec<f32>,
        types: Vec<i32>,
    }

    const BYTES_AT: u32 = 7;

    fn spec(pieces: &[(&str, f32)]) -> Spec {
        let head = [("<pad>", 3), ("<eos>", 3), ("<bos>", 3), ("<unk>", 2), ("<start_of_turn>", 3), ("\n", 4), ("  ", 4)];
        let mut s = Spec { tokens: vec![], scores: vec![], types: vec![] };
        for (t, ty) in head {
            s.tokens.push(t.into());
            s.scores.push(-1000.0);
            s.types.push(ty);
        }
        for b in 0..=255u8 {
            s.tokens.push(byte_token(b));
            s.scores.push(0.0);
            s.types.push(6);
        }
        for &(t, score) in pieces {
            s.tokens.push(t.into());
            s.scores.push(score);
            s.types.push(1);
        }
        s
    }

    fn tok(s: &Spec) -> GgufTokenizer<'_> {
        GgufTokenizer {
            model: "llama",
            pre: Some("default"),
            tokens: &s.tokens,
            scores: Some(&s.scores),
            token_types: Some(&s.types),
            merges: None,
            bos_token_id: Some(2),
            eos_token_id: Some(1),
            pad_token_id: Some(0),
            unk_token_id: Some(3),
            add_bos_token: Some(true),
            add_eos_token: Some(false),
            add_space_prefix: Some(false),
        }
    }

    const PIECES: &[(&str, f32)] = &[
        ("▁", -10.0),
        ("a", -11.0),
        ("b", -12.0),
        ("c", -13.0),
        ("bc", -1.0),
        ("ab", -2.0),
        ("abc", -3.0),
        ("▁a", -4.0),
        ("ca", -5.0),
        ("aa", -6.0),
        ("▁▁", -7.0),
    ];

    fn id(s: &Spec, token: &str) -> u32 {
        s.tokens.iter().position(|t| t == token).unwrap() as u32
    }

    fn names<'s>(s: &'s Spec, merges: &[(u32, u32)]) -> Vec<(&'s str, &'s str)> {
        merges.iter().map(|&(l, r)| (s.tokens[l as usize].as_str(), s.tokens[r as usize].as_str())).collect()
    }

    fn load(s: &Spec, t: &GgufTokenizer) -> tokenizers::Tokenizer {
        let _ = s;
        tokenizers::Tokenizer::from_bytes(to_tokenizer_json(t, "t.gguf").unwrap()).unwrap()
    }

    #[test]
    fn merges_rank_by_score_then_id_then_longer_left() {
        let s = spec(PIECES);
        let m = derive_merges(&tok(&s), "t.gguf").unwrap();
        let want = [("b", "c"), ("a", "b"), ("ab", "c"), ("a", "bc"), ("▁", "a"), ("c", "a"), ("a", "a"), ("▁", "▁")];
        assert_eq!(names(&s, &m), want);

        let keys: Vec<u32> = [-1e30f32, -1000.0, -1.5, -0.0, 0.0, 1e-40, 2.0].into_iter().map(score_key).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1] || (w[0] == w[1] && w[0] == score_key(0.0))), "{keys:?}");

        // Equal scores (and -0.0 == 0.0): the merged token's id decides.
        let s = spec(&[("a", -5.0), ("b", -6.0), ("ba", 0.0), ("ab", -0.0)]);
        let m = derive_merges(&tok(&s), "t.gguf").unwrap();
        assert_eq!(names(&s, &m), [("b", "a"), ("a", "b")]);
    }

    /// llama.cpp's `llm_tokenizer_spm` for one fragment, written the slow way:
    /// merge the best-scoring adjacent pair (leftmost on ties) until none is a
    /// token, then spell unknown characters as bytes.
    fn spm_reference(s: &Spec, fragment: &str) -> Vec<u32> {
        let ids: HashMap<&str, u32> = s.tokens.iter().enumerate().map(|(i, t)| (t.as_str(), i as u32)).collect();
        let mut syms: Vec<String> = fragment.replace(' ', "▁").chars().map(String::from).collect();
        loop {
            let mut best: Option<(usize, f32)> = None;
            for i in 1..syms.len() {
                if let Some(&t) = ids.get(format!("{}{}", syms[i - 1], syms[i]).as_str()) {
                    if best.is_none_or(|(_, b)| s.scores[t as usize] > b) {
                        best = Some((i - 1, s.scores[t as usize]));
                    }
                }
            }
            let Some((i, _)) = best else { break };
            let right = syms.remove(i + 1);
            syms[i].push_str(&right);
        }
        syms.iter().flat_map(|p| ids.get(p.as_str()).map(|&t| vec![t]).unwrap_or_else(|| p.bytes().map(|b| ids[byte_token(b).as_str()]).collect())).collect()
    }

    /// The partition step for this vocabulary (its added tokens never overlap,
    /// so leftmost-longest and llama.cpp's longest-first agree), then SPM.
    fn llama_reference(s: &Spec, text: &str) -> Vec<u32> {
        let added: Vec<(&str, u32)> = (0..s.tokens.len()).filter(|&i| matches!(s.types[i], 2..=4)).map(|i| (s.tokens[i].as_str(), i as u32)).collect();
        let (mut out, mut rest, mut fragment) = (vec![2], text, String::new());
        while let Some(c) = rest.chars().next() {
            let hit = added.iter().filter(|(t, _)| rest.starts_with(t)).max_by_key(|(t, _)| t.len());
            match hit {
                Some(&(t, i)) => {
                    out.extend(spm_reference(s, &std::mem::take(&mut fragment)));
                    out.push(i);
                    rest = &rest[t.len()..];
                }
                None => {
                    fragment.push(c);
                    rest = &rest[c.len_utf8()..];
                }
            }
        }
        out.extend(spm_reference(s, &fragment));
        out
    }

    #[test]
    fn encodes_like_llama_cpp_spm_on_random_texts() {
        let s = spec(PIECES);
        let hf = load(&s, &tok(&s));
        let alphabet = ["a", "b", "c", " ", "é", "\n", "<start_of_turn>", "ab", "▁"];
        let mut rng = crate::rng::Rng::new(0x2545_f491_4f6c_dd1d);
        for _ in 0..2000 {
            let mut text = String::new();
            for _ in 0..(rng.next_u64() >> 60) {
                text.push_str(alphabet[(rng.next_u64() >> 33) as usize % alphabet.len()]);
            }
            let got = hf.encode(text.as_str(), true).unwrap();
            assert_eq!(got.get_ids(), llama_reference(&s, &text), "{text:?}");
        }
    }

    #[test]
    fn byte_fallback_added_tokens_and_decoding() {
        let s = spec(PIECES);
        let hf = load(&s, &tok(&s));
        let (bos, sot, nl, two) = (2, 4, 5, 6);
        let cases: &[(&str, &[u32])] = &[
            ("", &[bos]),
            ("abc", &[bos, id(&s, "abc")]),
            ("é", &[bos, BYTES_AT + 0xC3, BYTES_AT + 0xA9]),
            ("<start_of_turn>a\n", &[bos, sot, id(&s, "a"), nl]),
            ("a   a", &[bos, id(&s, "a"), two, id(&s, "▁a")]),
            ("<bos><unk>", &[bos, bos, 3]),
        ];
        check_encoding(&to_tokenizer_json(&tok(&s), "t.gguf").unwrap(), "t.gguf", cases).unwrap();
        let ids = hf.encode("<start_of_turn>é a\n", true).unwrap().get_ids().to_vec();
        assert_eq!(hf.decode(&ids, false).unwrap(), "<bos><start_of_turn>é a\n");
        // Control tokens are special (hidden), user-defined ones are text.
        assert_eq!(hf.decode(&ids, true).unwrap(), "é a\n");

        let e = check_encoding(&to_tokenizer_json(&tok(&s), "t.gguf").unwrap(), "t.gguf", &[("ab", &[2, 9])]).unwrap_err();
        assert_eq!(e.to_string(), format!("t.gguf: \"ab\" encodes to [2, {}], expected [2, 9]", id(&s, "ab")));
    }

    #[test]
    fn space_prefix_bos_eos_and_llama_cpp_defaults() {
        let s = spec(PIECES);
        let mut t = tok(&s);
        t.add_space_prefix = Some(true);
        t.add_eos_token = Some(true);
        let hf = load(&s, &t);
        let ids = hf.encode("a<start_of_turn>a", true).unwrap().get_ids().to_vec();
        assert_eq!(ids, [2, id(&s, "▁a"), 4, id(&s, "▁a"), 1]);
        assert_eq!(hf.decode(&ids, true).unwrap(), "a a");
        // Absent keys: llama.cpp's defaults (BOS 1, EOS 2, unknown 0, BOS added, prefix space).
        let t = GgufTokenizer {
            bos_token_id: None,
            eos_token_id: None,
            unk_token_id: None,
            add_bos_token: None,
            add_eos_token: None,
            add_space_prefix: None,
            ..tok(&s)
        };
        let json: Value = serde_json::from_slice(&to_tokenizer_json(&t, "t.gguf").unwrap()).unwrap();
        assert_eq!(json["model"]["unk_token"], "<pad>");
        assert_eq!(json["post_processor"]["single"][0]["SpecialToken"]["id"], "<eos>");
        assert_eq!(json["normalizer"]["normalizers"][0]["type"], "Prepend");
    }

    #[test]
    fn output_is_deterministic_and_ordered() {
        let s = spec(PIECES);
        let a = to_tokenizer_json(&tok(&s), "t.gguf").unwrap();
        assert_eq!(a, to_tokenizer_json(&tok(&s), "t.gguf").unwrap());
        let json: Value = serde_json::from_slice(&a).unwrap();
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, ["version", "truncation", "padding", "added_tokens", "normalizer", "pre_tokenizer", "post_processor", "decoder", "model"]);
        let added: Vec<(u64, bool)> =
            json["added_tokens"].as_array().unwrap().iter().map(|a| (a["id"].as_u64().unwrap(), a["special"].as_bool().unwrap())).collect();
        assert_eq!(added, [(0, true), (1, true), (2, true), (3, true), (4, true), (5, false), (6, false)]);
        let vocab: Vec<u64> = json["model"]["vocab"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).collect();
        assert_eq!(vocab, (0..s.tokens.len() as u64).collect::<Vec<_>>());
        assert_eq!(json["model"]["merges"][0], json!(["b", "c"]));
    }

    #[test]
    fn refuses_what_it_cannot_express() {
        let s = spec(PIECES);
        let err = |t: &GgufTokenizer| to_tokenizer_json(t, "t.gguf").unwrap_err().to_string();
        assert_eq!(
            err(&GgufTokenizer { model: "gpt2", ..tok(&s) }),
            "t.gguf: tokenizer.ggml.model is 'gpt2'; only 'llama' (SentencePiece) can be converted to tokenizer.json"
        );
        assert!(err(&GgufTokenizer { scores: None, ..tok(&s) }).starts_with("t.gguf: tokenizer.ggml.scores is missing"));
        assert_eq!(
            err(&GgufTokenizer { scores: Some(&s.scores[1..]), ..tok(&s) }),
            format!("t.gguf: 'tokenizer.ggml.scores' has {} entries but tokenizer.ggml.tokens has {}", s.tokens.len() - 1, s.tokens.len())
        );
        assert_eq!(
            err(&GgufTokenizer { bos_token_id: Some(9999), ..tok(&s) }),
            "t.gguf: 'tokenizer.ggml.bos_token_id' = 9999 is outside the 274-token vocabulary"
        );

        let mut d = spec(PIECES);
        d.tokens[270] = "a".into();
        assert_eq!(err(&tok(&d)), "t.gguf: token \"a\" appears twice in tokenizer.ggml.tokens, at ids 264 and 270");
        let mut d = spec(PIECES);
        d.scores[264] = f32::NAN;
        assert_eq!(err(&tok(&d)), "t.gguf: token 264 (\"a\") has score NaN; scores must be finite");
        let mut d = spec(PIECES);
        d.types[264] = 0;
        assert!(err(&tok(&d)).starts_with("t.gguf: token 264 (\"a\") has token_type 0; expected 1..=6"));
        let mut d = spec(PIECES);
        d.tokens[BYTES_AT as usize + 0x41] = "A".into();
        assert_eq!(err(&tok(&d)), "t.gguf: byte token '<0x41>' is missing; SentencePiece byte fallback needs all 256");
        let mut d = spec(PIECES);
        d.tokens[270] = String::new();
        assert_eq!(err(&tok(&d)), "t.gguf: token 270 is the empty string");
    }

    #[test]
    fn hostile_vocabularies_are_refused_before_the_quadratic_merge_scan() {
        let err = |s: &Spec| to_tokenizer_json(&tok(s), "t.gguf").unwrap_err().to_string();
        // One megabyte-long token used to take over 30 s.
        let mut d = spec(PIECES);
        d.tokens[270] = "x".repeat(1 << 20);
        assert_eq!(err(&d), format!("t.gguf: token 270 is 1048576 bytes long, more than the {MAX_PIECE_BYTES} accepted for one piece"));
        // Many tokens at the piece limit: each is short enough, the sum is not.
        let mut d = spec(PIECES);
        let n = (MAX_MERGE_SCAN / (MAX_PIECE_BYTES as u64).pow(2)) as usize + 1;
        for i in 0..n {
            d.tokens.push(format!("{i:0>width$}", width = MAX_PIECE_BYTES));
            d.scores.push(-20.0);
            d.types.push(1);
        }
        assert!(err(&d).contains("deriving merges would scan"), "{}", err(&d));
        // Just under the budget it converts (the worst case that is accepted).
        for _ in 0..2 {
            d.tokens.pop();
            d.scores.pop();
            d.types.pop();
        }
        let t = std::time::Instant::now();
        derive_merges(&tok(&d), "t.gguf").unwrap();
        eprintln!("merge scan at the budget ({} tokens of {MAX_PIECE_BYTES} bytes): {:?}", d.tokens.len(), t.elapsed());
    }

    /// The Gemma 3 270M GGUF against ids recorded from llama.cpp (the
    /// reference) and transformers by `tests/oracles/gguf_tokenizer.py`.
    /// Opt-in: `AVAC_GEMMA_GGUF=/path/gemma3-270m.gguf cargo test -- --ignored`.
    #[test]
    #[ignore = "needs the Gemma 3 270M GGUF in AVAC_GEMMA_GGUF"]
    fn gemma3_matches_llama_cpp() {
        let path = std::env::var("AVAC_GEMMA_GGUF").expect("AVAC_GEMMA_GGUF");
        let g = super::super::GgufFile::read(std::path::Path::new(&path)).unwrap();
        let t = GgufTokenizer::from_gguf(&g).unwrap();
        let start = std::time::Instant::now();
        let json = to_tokenizer_json(&t, &path).unwrap();
        eprintln!("tokenizer.json: {} bytes in {:?}", json.len(), start.elapsed());
        check_encoding(&json, &path, &[("The capital of France is", &[2, 818, 5279, 529, 7001, 563])]).unwrap();

        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gemma3_tokenizer_cases.json");
        let doc: Value = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
        let hf = tokenizers::Tokenizer::from_bytes(&json).unwrap();
        let mut mismatches = vec![];
        for case in doc["cases"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            let expected: Vec<u32> = serde_json::from_value(case["llama_cpp"].clone()).unwrap();
            let got = hf.encode(text, true).unwrap().get_ids().to_vec();
            if got != expected {
                mismatches.push(format!("{text:?}: llama.cpp {expected:?}, ours {got:?}"));
            }
        }
        assert!(mismatches.is_empty(), "{} of {} texts differ:\n{}", mismatches.len(), doc["cases"].as_array().unwrap().len(), mismatches.join("\n"));
    }
}
