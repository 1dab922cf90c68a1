//! Limits a `tokenizer.json` must meet before the `tokenizers` crate sees
//! it. That crate trusts its input: a Unigram piece of 200 KB overflows its
//! stack, and some malformed sections panic. Every file avac loads is first
//! checked here, so neither is reachable from a hostile file.
//!
//! The limits sit far above real tokenizers: Gemma 3's 262,144 BPE pieces
//! are at most 48 bytes long with 514,847 merges, BERT's and ALBERT's
//! vocabularies are 30,000 short pieces, and the deepest section (a
//! `Sequence` of normalizers) nests five levels.

use serde_json::Value;

use super::TokenizerError;

/// Longest vocabulary piece, merge side or added token, in UTF-8 bytes.
pub const MAX_PIECE_BYTES: usize = 1024;
/// Most vocabulary pieces (and, separately, most added tokens).
pub const MAX_VOCAB: usize = 1 << 21;
/// Most BPE merges.
pub const MAX_MERGES: usize = 1 << 23;
/// Deepest nesting of arrays and objects.
pub const MAX_JSON_DEPTH: usize = 64;

/// The model types avac encodes with.
const MODEL_TYPES: [&str; 4] = ["WordPiece", "Unigram", "BPE", "WordLevel"];

/// Checks `json` (the parsed bytes of `file`) against the limits above.
pub fn check(file: &str, json: &Value) -> Result<(), TokenizerError> {
    let fault = |at: &str, fault: String| TokenizerError::Bounds { file: file.to_string(), at: at.to_string(), fault };
    if let Some(depth) = too_deep(json) {
        return Err(fault("", format!("nests deeper than {MAX_JSON_DEPTH} levels (at least {depth})")));
    }
    let Some(top) = json.as_object() else {
        return Err(fault("", format!("expected a JSON object, found {}", kind(json))));
    };
    let Some(model) = top.get("model").and_then(Value::as_object) else {
        return Err(fault("/model", "missing, or not an object".into()));
    };
    let ty = model.get("type").and_then(Value::as_str).unwrap_or("");
    if !MODEL_TYPES.contains(&ty) {
        return Err(fault("/model/type", format!("expected one of {MODEL_TYPES:?}, found {:?}", model.get("type"))));
    }
    match (ty, model.get("vocab")) {
        ("Unigram", Some(Value::Array(v))) => {
            count(v.len(), MAX_VOCAB, "pieces").map_err(|f| fault("/model/vocab", f))?;
            for (i, e) in v.iter().enumerate() {
                piece(e.get(0).unwrap_or(&Value::Null)).map_err(|f| fault(&format!("/model/vocab/{i}/0"), f))?;
            }
        }
        (_, Some(Value::Object(v))) if ty != "Unigram" => {
            count(v.len(), MAX_VOCAB, "pieces").map_err(|f| fault("/model/vocab", f))?;
            for (i, k) in v.keys().enumerate() {
                text(k, MAX_PIECE_BYTES).map_err(|f| fault(&format!("/model/vocab (key {i})"), f))?;
            }
        }
        (_, other) => {
            let expected = if ty == "Unigram" { "an array of [piece, score] pairs" } else { "an object of piece: id" };
            return Err(fault("/model/vocab", format!("expected {expected}, found {}", other.map_or("nothing", kind))));
        }
    }
    if let Some(merges) = model.get("merges").filter(|m| !m.is_null()) {
        let Some(merges) = merges.as_array() else {
            return Err(fault("/model/merges", format!("expected an array, found {}", kind(merges))));
        };
        count(merges.len(), MAX_MERGES, "merges").map_err(|f| fault("/model/merges", f))?;
        for (i, m) in merges.iter().enumerate() {
            let at = format!("/model/merges/{i}");
            match m {
                Value::String(_) => piece_max(m, 2 * MAX_PIECE_BYTES + 1).map_err(|f| fault(&at, f))?,
                Value::Array(pair) => pair.iter().try_for_each(piece).map_err(|f| fault(&at, f))?,
                other => return Err(fault(&at, format!("expected a string or a pair of strings, found {}", kind(other)))),
            }
        }
    }
    if let Some(added) = top.get("added_tokens").filter(|a| !a.is_null()) {
        let Some(added) = added.as_array() else {
            return Err(fault("/added_tokens", format!("expected an array, found {}", kind(added))));
        };
        count(added.len(), MAX_VOCAB, "tokens").map_err(|f| fault("/added_tokens", f))?;
        for (i, t) in added.iter().enumerate() {
            piece(t.get("content").unwrap_or(&Value::Null)).map_err(|f| fault(&format!("/added_tokens/{i}/content"), f))?;
        }
    }
    Ok(())
}

/// A piece must be a string of at most [`MAX_PIECE_BYTES`].
fn piece(v: &Value) -> Result<(), String> {
    piece_max(v, MAX_PIECE_BYTES)
}

fn piece_max(v: &Value, max: usize) -> Result<(), String> {
    match v {
        Value::String(s) => text(s, max),
        other => Err(format!("expected a string, found {}", kind(other))),
    }
}

fn text(s: &str, max: usize) -> Result<(), String> {
    if s.len() > max {
        return Err(format!("a piece of {} bytes, more than the {max} accepted (starts {:?})", s.len(), super::text_prefix(s)));
    }
    Ok(())
}

fn count(n: usize, max: usize, what: &str) -> Result<(), String> {
    if n > max {
        return Err(format!("{n} {what}, more than the {max} accepted"));
    }
    Ok(())
}

/// The depth reached, when it exceeds [`MAX_JSON_DEPTH`] (no recursion: the
/// walk itself must not be the stack overflow it guards against).
fn too_deep(v: &Value) -> Option<usize> {
    let mut stack = vec![(v, 1usize)];
    while let Some((v, depth)) = stack.pop() {
        if matches!(v, Value::Array(_) | Value::Object(_)) && depth > MAX_JSON_DEPTH {
            return Some(depth);
        }
        match v {
            Value::Array(a) => stack.extend(a.iter().map(|c| (c, depth + 1))),
            Value::Object(o) => stack.extend(o.values().map(|c| (c, depth + 1))),
            _ => {}
        }
    }
    None
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{unigram_json, wordpiece_json};
    use super::super::{Tokenizer, TokenizerError};
    use super::*;
    use serde_json::json;

    fn refused(v: &Value) -> (String, String) {
        match Tokenizer::from_bytes("hostile/tokenizer.json", serde_json::to_vec(v).unwrap()) {
            Err(TokenizerError::Bounds { file, at, fault }) => {
                assert_eq!(file, "hostile/tokenizer.json");
                (at, fault)
            }
            other => panic!("expected a bounds error, got {other:?}"),
        }
    }

    #[test]
    fn a_200_kb_unigram_piece_is_refused_before_the_tokenizers_crate_overflows_its_stack() {
        let mut v = unigram_json();
        let n = v["model"]["vocab"].as_array().unwrap().len();
        v["model"]["vocab"].as_array_mut().unwrap().push(json!(["x".repeat(200_000), -20.0]));
        let (at, fault) = refused(&v);
        assert_eq!(at, format!("/model/vocab/{n}/0"));
        assert!(fault.contains("200000 bytes") && fault.contains("1024"), "{fault}");
    }

    #[test]
    fn long_wordpiece_keys_merges_and_added_tokens_are_refused_naming_where() {
        let long = "y".repeat(MAX_PIECE_BYTES + 1);
        let mut v = wordpiece_json();
        v["model"]["vocab"][&long] = json!(99);
        assert!(refused(&v).0.starts_with("/model/vocab (key "));
        let mut v = wordpiece_json();
        v["added_tokens"][1]["content"] = json!(long);
        assert_eq!(refused(&v).0, "/added_tokens/1/content");
        let mut v = wordpiece_json();
        v["model"] = json!({"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b", [long, "b"]]});
        assert_eq!(refused(&v).0, "/model/merges/1");
    }

    #[test]
    fn the_limits_hold_the_real_sizes_exactly_at_the_edge() {
        let mut v = unigram_json();
        v["model"]["vocab"].as_array_mut().unwrap().push(json!(["z".repeat(MAX_PIECE_BYTES), -20.0]));
        Tokenizer::from_bytes("edge.json", serde_json::to_vec(&v).unwrap()).unwrap();
    }

    #[test]
    fn deep_nesting_a_wrong_shape_and_an_unknown_model_are_refused() {
        let mut deep = json!(0);
        for _ in 0..100 {
            deep = json!([deep]);
        }
        let mut v = wordpiece_json();
        v["normalizer"]["extra"] = deep;
        assert!(refused(&v).1.contains("deeper than 64"));
        assert!(refused(&json!([1, 2])).1.contains("expected a JSON object, found an array"));
        assert_eq!(refused(&json!({"model": 3})).0, "/model");
        assert_eq!(refused(&json!({"model": {"type": "Pickle"}})).0, "/model/type");
        assert!(refused(&json!({"model": {"type": "Unigram", "vocab": {"a": 0}}})).1.contains("[piece, score] pairs"));
        assert!(refused(&json!({"model": {"type": "Unigram", "vocab": [[7, 0.0]]}})).1.contains("expected a string, found a number"));
    }
}
