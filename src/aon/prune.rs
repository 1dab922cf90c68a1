//! Vocabulary pruning: shrink a tokenizer (and its embedding table) to the
//! pieces a corpus actually uses.
//!
//! An intent classifier only ever sees utterances like its training corpus;
//! most of a 30k-piece BERT vocabulary (and its embedding rows, the bulk of a
//! small encoder) is dead weight on device.
//!
//! # What is kept
//! - every added token (special or not), the unknown token, the padding id
//!   and every id the post-processor inserts;
//! - every piece of the encodings of the corpus texts;
//! - WordPiece: for a word that became `[UNK]`, the pieces greedy
//!   longest-match had matched before it failed. Without them the pruned
//!   vocabulary could offer a shorter first match and tokenize the word
//!   successfully, i.e. differently. (A word that tokenized keeps its path:
//!   every piece on it is kept and no longer match can appear in a subset.)
//! - Unigram: the piece with the lowest score, because the unknown-piece
//!   score of the Viterbi lattice is `min_score - 10` over the whole
//!   vocabulary. With it kept, the original best path is still present and
//!   still best; pieces dropped only remove competitors.
//!
//! New ids are the kept old ids in ascending order (`old_ids[new] = old`), so
//! special tokens keep their relative order.
//!
//! # What is rewritten in `tokenizer.json`
//! `model.vocab` (WordPiece: `{piece: id}` map, file order kept; Unigram:
//! `[[piece, score], ...]` list whose position is the id), `model.unk_id`
//! (Unigram), `added_tokens[].id`, the post-processor's ids
//! (`TemplateProcessing.special_tokens.*.ids`, `BertProcessing` /
//! `RobertaProcessing` `sep`/`cls` pairs, nested `Sequence`), and
//! `padding.pad_id`. Every other key keeps its value and position; output is
//! pretty-printed JSON plus a trailing newline, so the same input gives the
//! same bytes.
//!
//! # Verification (never skipped)
//! The new JSON is reloaded with the `tokenizers` crate and every corpus text
//! must give the same token strings as before, with ids that map back through
//! `old_ids` to the old ids. The pruned vocabulary must be dense
//! (`vocab_size == old_ids.len()`) and keep the same special tokens.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use tokenizers::models::ModelWrapper;
use tokenizers::{Model, OffsetReferential, OffsetType, PreTokenizer};

use crate::formats::tokenizer::{text_prefix, Tokenizer, TokenizerError};

/// Errors from pruning a vocabulary or remapping an embedding table.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// Only WordPiece and Unigram vocabularies can be pruned.
    #[error(
        "{file}: cannot prune a {model_type} vocabulary; supported models are WordPiece and \
         Unigram (BPE merges reference pieces by string and would need rewriting too)"
    )]
    UnsupportedModel {
        /// The tokenizer file.
        file: String,
        /// Its model type.
        model_type: String,
    },
    /// A post-processor whose ids this module does not know how to rewrite.
    #[error("{file}: cannot rewrite ids of post_processor type {kind:?}")]
    UnsupportedPostProcessor {
        /// The tokenizer file.
        file: String,
        /// The post-processor's `type`.
        kind: String,
    },
    /// A field the rewrite needs is missing or has the wrong shape.
    #[error("{file}: `{field}` {problem}")]
    Malformed {
        /// The tokenizer file.
        file: String,
        /// JSON path of the field.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// An id in the file refers to no kept token.
    #[error("{file}: `{field}` holds id {id}, which is not in the vocabulary")]
    DanglingId {
        /// The tokenizer file.
        file: String,
        /// JSON path of the field.
        field: String,
        /// The id.
        id: u64,
    },
    /// Loading the original or pruned tokenizer, or encoding with it, failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// The pruned tokenizer encodes a corpus text differently.
    #[error("{file}: pruning changes the tokenization of corpus text #{index} {prefix:?}: {diff}")]
    Mismatch {
        /// The original tokenizer file.
        file: String,
        /// Position of the text in the corpus.
        index: usize,
        /// Start of the text.
        prefix: String,
        /// The two encodings.
        diff: Box<TokenDiff>,
    },
    /// The pruned tokenizer breaks an invariant of the rewrite.
    #[error("{file}: pruned tokenizer is inconsistent: {problem}")]
    Inconsistent {
        /// The original tokenizer file.
        file: String,
        /// The broken invariant.
        problem: String,
    },
    /// Serialising the rewritten JSON failed.
    #[error("{file}: cannot serialise the pruned tokenizer.json: {source}")]
    Serialize {
        /// The original tokenizer file.
        file: String,
        /// The serde error.
        source: serde_json::Error,
    },
    /// `remap_rows` was given a table that is not whole rows of `width`.
    #[error("embedding table of {len} values is not a whole number of rows of width {width}")]
    TableShape {
        /// Values in the table.
        len: usize,
        /// Row width asked for.
        width: usize,
    },
    /// `remap_rows` was given an old id beyond the table.
    #[error("old_ids[{new_id}] = {old_id} but the embedding table has only {rows} rows")]
    RowOutOfRange {
        /// The new id (index into `old_ids`).
        new_id: usize,
        /// The old id asked for.
        old_id: u32,
        /// Rows in the table.
        rows: usize,
    },
}

/// A corpus text's encoding before and after pruning, ids in the old numbering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenDiff {
    /// Pieces with the original tokenizer.
    pub before: Vec<String>,
    /// Ids with the original tokenizer.
    pub before_ids: Vec<u32>,
    /// Pieces with the pruned tokenizer.
    pub after: Vec<String>,
    /// Ids with the pruned tokenizer mapped back through `old_ids`
    /// (`u32::MAX` for an id outside the pruned vocabulary).
    pub after_ids: Vec<u32>,
}

impl std::fmt::Display for TokenDiff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "before {:?} (ids {:?}), after {:?} (old ids {:?})", self.before, self.before_ids, self.after, self.after_ids)
    }
}

/// Vocabulary sizes before and after pruning (embedding rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneReport {
    /// Rows before.
    pub before: usize,
    /// Rows after.
    pub after: usize,
}

/// A pruned tokenizer and the id map that goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// The rewritten `tokenizer.json` bytes.
    pub tokenizer_json: Vec<u8>,
    /// `old_ids[new_id] = old_id`, strictly ascending.
    pub old_ids: Vec<u32>,
    /// Sizes.
    pub report: PruneReport,
}

/// Prunes `tok` to the pieces needed to encode `corpus` exactly as before.
pub fn prune(tok: &Tokenizer, corpus: &[String]) -> Result<Pruned, PruneError> {
    let file = tok.file();
    let model_type = tok.model_type();
    if !matches!(model_type, "WordPiece" | "Unigram") {
        return Err(PruneError::UnsupportedModel { file: file.to_owned(), model_type: model_type.to_owned() });
    }
    let before = tok.encode_batch(corpus)?;

    let mut keep: BTreeSet<u32> = before.iter().flat_map(|e| e.ids.iter().copied()).collect();
    keep.extend(tok.hf().get_added_tokens_decoder().keys());
    let mut json = tok.json().clone();
    for slot in fixed_id_slots(&mut json, file)? {
        keep.insert(slot_id(slot, file, "post_processor/padding")?);
    }
    match tok.hf().get_model() {
        ModelWrapper::WordPiece(wp) => {
            let unk = wp.token_to_id(&wp.unk_token).ok_or_else(|| PruneError::Malformed {
                file: file.to_owned(),
                field: "model.unk_token".into(),
                problem: format!("{:?} is not in model.vocab", wp.unk_token),
            })?;
            keep.insert(unk);
            for (text, enc) in corpus.iter().zip(&before) {
                if enc.ids.contains(&unk) {
                    wordpiece_attempts(tok, wp, text, &mut keep)?;
                }
            }
        }
        ModelWrapper::Unigram(_) => {
            if let Some(unk) = json.pointer("/model/unk_id").and_then(Value::as_u64) {
                keep.insert(to_u32(unk, file, "model.unk_id")?);
            }
            keep.insert(unigram_min_score_id(&json, file)?);
        }
        _ => unreachable!("model type checked above"),
    }

    let old_ids: Vec<u32> = keep.into_iter().collect();
    let new_of: BTreeMap<u32, u32> = old_ids.iter().enumerate().map(|(new, &old)| (old, new as u32)).collect();
    rewrite(&mut json, file, &new_of)?;
    let mut tokenizer_json = serde_json::to_vec_pretty(&json).map_err(|source| PruneError::Serialize { file: file.to_owned(), source })?;
    tokenizer_json.push(b'\n');

    verify(tok, corpus, &before, &tokenizer_json, &old_ids)?;
    Ok(Pruned { tokenizer_json, report: PruneReport { before: tok.vocab_size(), after: old_ids.len() }, old_ids })
}

/// Picks embedding rows: row `new` of the result is row `old_ids[new]` of
/// `table` (`rows x width`, row-major).
pub fn remap_rows(table: &[f32], width: usize, old_ids: &[u32]) -> Result<Vec<f32>, PruneError> {
    if width == 0 || !table.len().is_multiple_of(width) {
        return Err(PruneError::TableShape { len: table.len(), width });
    }
    let rows = table.len() / width;
    let mut out = Vec::with_capacity(old_ids.len().saturating_mul(width));
    for (new_id, &old_id) in old_ids.iter().enumerate() {
        let start = (old_id as usize).checked_mul(width).filter(|_| (old_id as usize) < rows);
        let Some(start) = start else {
            return Err(PruneError::RowOutOfRange { new_id, old_id, rows });
        };
        out.extend_from_slice(&table[start..start + width]);
    }
    Ok(out)
}

/// Keeps the pieces WordPiece matched in each word of `text` before a word
/// fell back to `[UNK]`, replaying the crate's greedy longest-match on the
/// same normalized, pre-tokenized words.
fn wordpiece_attempts(tok: &Tokenizer, wp: &tokenizers::models::wordpiece::WordPiece, text: &str, keep: &mut BTreeSet<u32>) -> Result<(), PruneError> {
    let hf = tok.hf();
    let mut pre = hf.get_added_vocabulary().extract_and_normalize(hf.get_normalizer(), text);
    if let Some(pt) = hf.get_pre_tokenizer() {
        pt.pre_tokenize(&mut pre).map_err(|e| TokenizerError::Encode {
            file: tok.file().to_owned(),
            index: None,
            prefix: text_prefix(text),
            message: e.to_string(),
        })?;
    }
    for (word, _, tokens) in pre.get_splits(OffsetReferential::Original, OffsetType::Byte) {
        if tokens.is_some() || word.chars().count() > wp.max_input_chars_per_word {
            continue; // an added token, or [UNK] without trying any piece
        }
        let mut start = 0;
        while start < word.len() {
            let mut end = word.len();
            let found = loop {
                if end <= start {
                    break None;
                }
                let sub = &word[start..end];
                let piece = if start > 0 { format!("{}{sub}", wp.continuing_subword_prefix) } else { sub.to_owned() };
                if let Some(id) = wp.token_to_id(&piece) {
                    break Some(id);
                }
                end -= sub.chars().last().map_or(1, char::len_utf8);
            };
            match found {
                Some(id) => {
                    keep.insert(id);
                    start = end;
                }
                None => break,
            }
        }
    }
    Ok(())
}

/// Id of the lowest-scoring Unigram piece (the first, on ties).
fn unigram_min_score_id(json: &Value, file: &str) -> Result<u32, PruneError> {
    let vocab = unigram_vocab(json, file)?;
    let mut best: Option<(usize, f64)> = None;
    for (i, entry) in vocab.iter().enumerate() {
        let score = entry.get(1).and_then(Value::as_f64).ok_or_else(|| PruneError::Malformed {
            file: file.to_owned(),
            field: format!("model.vocab[{i}]"),
            problem: "is not a [piece, score] pair".into(),
        })?;
        if best.is_none_or(|(_, s)| score < s) {
            best = Some((i, score));
        }
    }
    let (i, _) = best.ok_or_else(|| PruneError::Malformed { file: file.to_owned(), field: "model.vocab".into(), problem: "is empty".into() })?;
    to_u32(i as u64, file, "model.vocab")
}

fn unigram_vocab<'a>(json: &'a Value, file: &str) -> Result<&'a Vec<Value>, PruneError> {
    json.pointer("/model/vocab").and_then(Value::as_array).ok_or_else(|| PruneError::Malformed {
        file: file.to_owned(),
        field: "model.vocab".into(),
        problem: "is not a list of [piece, score] pairs".into(),
    })
}

fn to_u32(id: u64, file: &str, field: &str) -> Result<u32, PruneError> {
    u32::try_from(id).map_err(|_| PruneError::DanglingId { file: file.to_owned(), field: field.to_owned(), id })
}

fn slot_id(slot: &Value, file: &str, field: &str) -> Result<u32, PruneError> {
    let id = slot.as_u64().ok_or_else(|| PruneError::Malformed {
        file: file.to_owned(),
        field: field.to_owned(),
        problem: format!("holds {slot} where a token id was expected"),
    })?;
    to_u32(id, file, field)
}

/// Ids the file fixes outside the model and added tokens: the
/// post-processor's and `padding.pad_id`.
fn fixed_id_slots<'a>(json: &'a mut Value, file: &str) -> Result<Vec<&'a mut Value>, PruneError> {
    let obj =
        json.as_object_mut().ok_or_else(|| PruneError::Malformed { file: file.to_owned(), field: "(root)".into(), problem: "is not a JSON object".into() })?;
    let mut slots = Vec::new();
    for (key, value) in obj.iter_mut() {
        match key.as_str() {
            "post_processor" => post_processor_slots(value, file, &mut slots)?,
            "padding" => {
                if let Some(id) = value.get_mut("pad_id") {
                    slots.push(id);
                }
            }
            _ => {}
        }
    }
    Ok(slots)
}

fn post_processor_slots<'a>(pp: &'a mut Value, file: &str, slots: &mut Vec<&'a mut Value>) -> Result<(), PruneError> {
    if pp.is_null() {
        return Ok(());
    }
    let kind = pp.get("type").and_then(Value::as_str).unwrap_or("").to_owned();
    let malformed =
        |field: &str, problem: &str| PruneError::Malformed { file: file.to_owned(), field: format!("post_processor.{field}"), problem: problem.to_owned() };
    match kind.as_str() {
        "TemplateProcessing" => {
            let specials = pp.get_mut("special_tokens").and_then(Value::as_object_mut).ok_or_else(|| malformed("special_tokens", "is not an object"))?;
            for (name, special) in specials.iter_mut() {
                let ids =
                    special.get_mut("ids").and_then(Value::as_array_mut).ok_or_else(|| malformed(&format!("special_tokens.{name}.ids"), "is not a list"))?;
                slots.extend(ids.iter_mut());
            }
        }
        "BertProcessing" | "RobertaProcessing" => {
            for (key, value) in pp.as_object_mut().into_iter().flatten() {
                if key == "sep" || key == "cls" {
                    let pair = value.as_array_mut().filter(|a| a.len() == 2).ok_or_else(|| malformed(key, "is not a [token, id] pair"))?;
                    slots.push(&mut pair[1]);
                }
            }
        }
        "Sequence" => {
            let list = pp.get_mut("processors").and_then(Value::as_array_mut).ok_or_else(|| malformed("processors", "is not a list"))?;
            for inner in list.iter_mut() {
                post_processor_slots(inner, file, slots)?;
            }
        }
        "ByteLevel" => {}
        _ => return Err(PruneError::UnsupportedPostProcessor { file: file.to_owned(), kind }),
    }
    Ok(())
}

/// Rewrites every id in `json` through `new_of`, dropping unkept pieces.
fn rewrite(json: &mut Value, file: &str, new_of: &BTreeMap<u32, u32>) -> Result<(), PruneError> {
    let map = |id: u64, field: &str| -> Result<u32, PruneError> {
        u32::try_from(id).ok().and_then(|id| new_of.get(&id).copied()).ok_or_else(|| PruneError::DanglingId {
            file: file.to_owned(),
            field: field.to_owned(),
            id,
        })
    };
    for slot in fixed_id_slots(json, file)? {
        let id = slot_id(slot, file, "post_processor/padding")?;
        *slot = Value::from(map(id.into(), "post_processor/padding")?);
    }
    if let Some(added) = json.get_mut("added_tokens").and_then(Value::as_array_mut) {
        for (i, t) in added.iter_mut().enumerate() {
            let field = format!("added_tokens[{i}].id");
            let slot = t.get_mut("id").ok_or_else(|| PruneError::Malformed { file: file.to_owned(), field: field.clone(), problem: "is missing".into() })?;
            let id = slot_id(slot, file, &field)?;
            *slot = Value::from(map(id.into(), &field)?);
        }
    }
    let model = json.get_mut("model").ok_or_else(|| PruneError::Malformed { file: file.to_owned(), field: "model".into(), problem: "is missing".into() })?;
    match model.get_mut("vocab") {
        Some(Value::Object(vocab)) => {
            // WordPiece: {piece: id}; keep file order, drop unkept pieces.
            let old = std::mem::take(vocab);
            for (piece, id) in old {
                let field = format!("model.vocab[{piece:?}]");
                let id = slot_id(&id, file, &field)?;
                if let Some(&new) = new_of.get(&id) {
                    vocab.insert(piece, Value::from(new));
                }
            }
        }
        Some(Value::Array(vocab)) => {
            // Unigram: the position is the id.
            let old = std::mem::take(vocab);
            *vocab = old.into_iter().enumerate().filter(|(i, _)| u32::try_from(*i).is_ok_and(|i| new_of.contains_key(&i))).map(|(_, entry)| entry).collect();
            if let Some(slot) = model.get_mut("unk_id").filter(|v| !v.is_null()) {
                let id = slot_id(slot, file, "model.unk_id")?;
                *slot = Value::from(map(id.into(), "model.unk_id")?);
            }
        }
        _ => {
            return Err(PruneError::Malformed {
                file: file.to_owned(),
                field: "model.vocab".into(),
                problem: "is neither a {piece: id} map nor a [[piece, score]] list".into(),
            })
        }
    }
    Ok(())
}

/// Reloads the pruned JSON and checks it encodes the corpus as before.
fn verify(tok: &Tokenizer, corpus: &[String], before: &[crate::formats::tokenizer::Encoding], bytes: &[u8], old_ids: &[u32]) -> Result<(), PruneError> {
    let file = tok.file();
    let pruned = Tokenizer::from_bytes(format!("{file} (pruned)"), bytes.to_vec())?;
    let inconsistent = |problem: String| PruneError::Inconsistent { file: file.to_owned(), problem };
    if pruned.vocab_size() != old_ids.len() {
        return Err(inconsistent(format!("vocab_size {} but {} ids kept", pruned.vocab_size(), old_ids.len())));
    }
    let back = |ids: &[u32]| -> Vec<u32> { ids.iter().map(|&n| old_ids.get(n as usize).copied().unwrap_or(u32::MAX)).collect() };
    if back(&pruned.special_ids()) != tok.special_ids() {
        return Err(inconsistent(format!(
            "special ids {:?} map back to {:?}, expected {:?}",
            pruned.special_ids(),
            back(&pruned.special_ids()),
            tok.special_ids()
        )));
    }
    if pruned.pad_id().map(|p| back(&[p])[0]) != tok.pad_id() {
        return Err(inconsistent(format!("pad id {:?}, expected {:?}", pruned.pad_id(), tok.pad_id())));
    }
    for (index, (text, old)) in corpus.iter().zip(before).enumerate() {
        let new = pruned.encode(text)?;
        let after_ids = back(&new.ids);
        if new.tokens != old.tokens || after_ids != old.ids {
            return Err(PruneError::Mismatch {
                file: file.to_owned(),
                index,
                prefix: text_prefix(text),
                diff: Box::new(TokenDiff { before: old.tokens.clone(), before_ids: old.ids.clone(), after: new.tokens, after_ids }),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::tokenizer::tests::{clinc150, from_json, minilm, unigram_json, wordpiece_json};
    use serde_json::json;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn check_roundtrip(tok: &Tokenizer, corpus: &[String], p: &Pruned) {
        let new = Tokenizer::from_bytes("pruned", p.tokenizer_json.clone()).unwrap();
        assert!(p.old_ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(new.vocab_size(), p.old_ids.len());
        for t in corpus {
            let (a, b) = (tok.encode(t).unwrap(), new.encode(t).unwrap());
            assert_eq!(a.tokens, b.tokens);
            let back: Vec<u32> = b.ids.iter().map(|&i| p.old_ids[i as usize]).collect();
            assert_eq!(a.ids, back);
        }
        for id in tok.special_ids() {
            assert!(p.old_ids.contains(&id), "special {id} dropped");
        }
    }

    #[test]
    fn wordpiece_fixture() {
        let tok = from_json("wp.json", &wordpiece_json());
        let corpus = strings(&["Book a flight to Paris!", "books"]);
        let p = prune(&tok, &corpus).unwrap();
        check_roundtrip(&tok, &corpus, &p);
        // specials 0..=4, book a flight to paris ! and ##s
        assert_eq!(p.old_ids, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17]);
        assert_eq!(p.report, PruneReport { before: 28, after: 12 });
        let v: Value = serde_json::from_slice(&p.tokenizer_json).unwrap();
        assert_eq!(v["post_processor"]["sep"], json!(["[SEP]", 3]));
        assert_eq!(v["padding"]["pad_id"], 0);
        assert_eq!(v["padding"]["strategy"]["Fixed"], 8, "other keys untouched");
        assert_eq!(v["model"]["vocab"]["!"], 11);
        assert_eq!(*p.tokenizer_json.last().unwrap(), b'\n');
        // Key order of the original file survives.
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        let orig: Vec<&String> = tok.json().as_object().unwrap().keys().collect();
        assert_eq!(keys, orig);
    }

    /// "xyz" is [UNK]: greedy takes "xy", then finds no "##z". Its pieces
    /// "x" and "##yz" are kept through other words, so a vocabulary without
    /// "xy" would spell it "x ##yz": the attempted "xy" must be kept.
    #[test]
    fn wordpiece_unk_words_keep_their_attempted_pieces() {
        let tok = from_json("wp.json", &wordpiece_json());
        let corpus = strings(&["xyz", "x", "qyz"]);
        let before = tok.encode_batch(&corpus).unwrap();
        assert_eq!(before[0].tokens, ["[CLS]", "[UNK]", "[SEP]"]);
        assert_eq!(before[2].tokens, ["[CLS]", "q", "##yz", "[SEP]"]);
        let p = prune(&tok, &corpus).unwrap();
        let xy = tok.token_to_id("xy").unwrap();
        assert_eq!(p.old_ids.last(), Some(&xy), "{:?}", p.old_ids);
        check_roundtrip(&tok, &corpus, &p);

        // Without "xy" (the last new id) the check catches the change.
        let mut v: Value = serde_json::from_slice(&p.tokenizer_json).unwrap();
        v["model"]["vocab"].as_object_mut().unwrap().shift_remove("xy").unwrap();
        let bytes = serde_json::to_vec(&v).unwrap();
        let n = p.old_ids.len() - 1;
        match verify(&tok, &corpus, &before, &bytes, &p.old_ids[..n]) {
            Err(PruneError::Mismatch { index: 0, diff, .. }) => {
                assert_eq!(diff.after, ["[CLS]", "x", "##yz", "[SEP]"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unigram_fixture() {
        let tok = from_json("uni.json", &unigram_json());
        let corpus = strings(&["Book a flight to Paris", "what is the weather?", "booking flights"]);
        let p = prune(&tok, &corpus).unwrap();
        check_roundtrip(&tok, &corpus, &p);
        assert_eq!(&p.old_ids[..5], [0, 1, 2, 3, 4]);
        let v: Value = serde_json::from_slice(&p.tokenizer_json).unwrap();
        assert_eq!(v["model"]["unk_id"], 1);
        assert_eq!(v["post_processor"]["special_tokens"]["[SEP]"]["ids"], json!([3]));
        let pieces: Vec<&str> = v["model"]["vocab"].as_array().unwrap().iter().map(|e| e[0].as_str().unwrap()).collect();
        assert!(pieces.contains(&"▁zz"), "min-score piece kept: {pieces:?}");
        assert!(!pieces.contains(&"▁unused") && !pieces.contains(&"▁rare"));
        assert_eq!(p.report.before, tok.vocab_size());
    }

    #[test]
    fn unigram_remaps_ids_after_gaps() {
        // Specials after the pieces, as in vocabularies extended with tokens.
        let mut j = unigram_json();
        let vocab = j["model"]["vocab"].as_array_mut().unwrap();
        let n = vocab.len();
        vocab.push(json!(["[EXTRA]", 0.0]));
        j["added_tokens"].as_array_mut().unwrap().push(json!({"id": n, "content": "[EXTRA]",
            "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}));
        let tok = from_json("uni.json", &j);
        let corpus = strings(&["the [EXTRA] music"]);
        let p = prune(&tok, &corpus).unwrap();
        check_roundtrip(&tok, &corpus, &p);
        let v: Value = serde_json::from_slice(&p.tokenizer_json).unwrap();
        let extra = v["added_tokens"].as_array().unwrap().last().unwrap()["id"].as_u64().unwrap();
        assert_eq!(extra as usize, p.old_ids.len() - 1);
    }

    #[test]
    fn deterministic_bytes() {
        let tok = from_json("wp.json", &wordpiece_json());
        let corpus = strings(&["book a flight", "unaffable"]);
        assert_eq!(prune(&tok, &corpus).unwrap(), prune(&tok, &corpus).unwrap());
        let tok = from_json("uni.json", &unigram_json());
        let a = prune(&tok, &corpus).unwrap();
        let b = prune(&tok, &corpus).unwrap();
        assert_eq!(a.tokenizer_json, b.tokenizer_json);
        // Pruning the pruned tokenizer again to the same corpus changes nothing.
        let again = Tokenizer::from_bytes("a", a.tokenizer_json.clone()).unwrap();
        let c = prune(&again, &corpus).unwrap();
        assert_eq!(c.tokenizer_json, a.tokenizer_json);
        assert_eq!(c.old_ids, (0..a.old_ids.len() as u32).collect::<Vec<_>>());
    }

    #[test]
    fn unknown_model_type_is_an_error() {
        let bpe = json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
            "decoder": null,
            "model": {"type": "BPE", "dropout": null, "unk_token": null,
                      "continuing_subword_prefix": null, "end_of_word_suffix": null,
                      "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                      "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]]}
        });
        let tok = from_json("bpe/tokenizer.json", &bpe);
        let err = prune(&tok, &strings(&["ab"])).unwrap_err();
        assert!(matches!(err, PruneError::UnsupportedModel { .. }));
        let msg = err.to_string();
        assert!(msg.contains("bpe/tokenizer.json") && msg.contains("BPE"), "{msg}");
    }

    #[test]
    fn unknown_post_processor_is_an_error() {
        let mut j = wordpiece_json();
        j["post_processor"] = json!({"type": "Novel", "ids": [3]});
        // The tokenizers crate itself rejects unknown types at load; check the
        // rewrite on its own.
        let err = fixed_id_slots(&mut j, "x.json").unwrap_err();
        assert!(matches!(err, PruneError::UnsupportedPostProcessor { .. }), "{err}");
    }

    #[test]
    fn remap_rows_checks_bounds() {
        let table: Vec<f32> = (0..12).map(|x| x as f32).collect(); // 4 rows x 3
        assert_eq!(remap_rows(&table, 3, &[0, 2, 3]).unwrap(), [0., 1., 2., 6., 7., 8., 9., 10., 11.]);
        assert_eq!(remap_rows(&table, 3, &[]).unwrap(), Vec::<f32>::new());
        assert!(matches!(remap_rows(&table, 3, &[0, 4]), Err(PruneError::RowOutOfRange { new_id: 1, old_id: 4, rows: 4 })));
        assert!(matches!(remap_rows(&table, 5, &[0]), Err(PruneError::TableShape { .. })));
        assert!(matches!(remap_rows(&table, 0, &[0]), Err(PruneError::TableShape { .. })));
        assert!(remap_rows(&table, 3, &[u32::MAX]).is_err());
    }

    fn minilm_on(splits: &[&str], twice: bool) {
        let Some(tok) = minilm() else { return };
        let Some(corpus) = clinc150(splits) else {
            return;
        };
        let p = prune(&tok, &corpus).unwrap();
        eprintln!("MiniLM pruned to CLINC150 {splits:?} ({} texts): vocab {} -> {}", corpus.len(), p.report.before, p.report.after);
        assert_eq!(p.report.before, 30522);
        assert_eq!(&p.old_ids[..5], [0, 100, 101, 102, 103]);
        let new = Tokenizer::from_bytes("pruned", p.tokenizer_json.clone()).unwrap();
        assert_eq!(new.special_ids(), [0, 1, 2, 3, 4]);
        assert_eq!(new.pad_id(), Some(0));
        let v: Value = serde_json::from_slice(&p.tokenizer_json).unwrap();
        assert_eq!(v["post_processor"]["special_tokens"]["[CLS]"]["ids"], json!([2]));
        assert_eq!(v["post_processor"]["special_tokens"]["[SEP]"]["ids"], json!([3]));
        if twice {
            assert_eq!(prune(&tok, &corpus).unwrap().tokenizer_json, p.tokenizer_json);
        }
    }

    #[test]
    fn minilm_clinc150_train() {
        minilm_on(&["train"], true);
    }

    #[test]
    fn minilm_clinc150_train_and_test() {
        minilm_on(&["train", "test"], false);
    }
}
