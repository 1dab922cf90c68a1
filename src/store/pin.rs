//! Rewriting a pin inside `rules/targets.toml` without disturbing the rest
//! of the file: comments, ordering and formatting are preserved.

use toml_edit::{DocumentMut, Item, Value};

use super::error::{Result, StoreError};
use super::fetch::Pin;

/// Sets `sha256` (and `size` for kinds that declare one: hf, url, concat) of
/// `[sources.NAME]` in `text`, keeping each value's comments.
pub fn update_pin_in_toml(text: &str, name: &str, pin: &Pin) -> Result<String> {
    let fail = |reason: String| StoreError::PinUpdate { name: name.to_owned(), reason };
    let mut doc: DocumentMut = text.parse().map_err(|e| fail(format!("not valid TOML: {e}")))?;
    let sources = doc.get_mut("sources").and_then(Item::as_table_like_mut).ok_or_else(|| fail("the file has no [sources] table".into()))?;
    let table = sources.get_mut(name).and_then(Item::as_table_like_mut).ok_or_else(|| fail(format!("there is no [sources.{name}] table")))?;
    let kind = table.get("kind").and_then(Item::as_str).unwrap_or("").to_owned();
    // `generated` pins (the fixture tree's digest) are written the same way.
    if !matches!(kind.as_str(), "hf" | "url" | "pypi" | "file" | "generated" | "concat") {
        return Err(fail(format!("unknown kind `{kind}`")));
    }
    set_keeping_decor(table, "sha256", Value::from(pin.sha256.as_str()));
    if matches!(kind.as_str(), "hf" | "url" | "concat") {
        let size = i64::try_from(pin.size).map_err(|_| fail(format!("size {} does not fit TOML", pin.size)))?;
        set_keeping_decor(table, "size", Value::from(size));
    }
    Ok(doc.to_string())
}

/// Replaces (or appends) `key`, carrying over the old value's surrounding
/// whitespace and trailing comment.
fn set_keeping_decor(table: &mut dyn toml_edit::TableLike, key: &str, mut value: Value) {
    match table.get_mut(key) {
        Some(Item::Value(old)) => {
            *value.decor_mut() = old.decor().clone();
            *old = value;
        }
        Some(item) => *item = Item::Value(value),
        None => {
            table.insert(key, Item::Value(value));
        }
    }
}
