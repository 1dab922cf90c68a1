//! Showing values as short text: long strings are cut, and two values that
//! differ are cut around their first difference so that the change shows.

use super::Difference;
use std::collections::BTreeMap;

/// Characters of a value shown.
pub(super) const WIDTH: usize = 60;
/// Characters shown before the first difference when a value is cut there.
const LEAD: usize = 20;

/// `s` cut to [`WIDTH`] characters (`…` marks what was left out).
pub(super) fn short(s: &str) -> String {
    cut(&s.chars().collect::<Vec<_>>(), 0)
}

/// `a` and `b` cut around their first differing character.
pub(super) fn excerpt(a: &str, b: &str) -> (String, String) {
    let (ca, cb): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let first = ca.iter().zip(&cb).position(|(x, y)| x != y).unwrap_or(ca.len().min(cb.len()));
    let start = if ca.len().max(cb.len()) <= WIDTH { 0 } else { first.saturating_sub(LEAD) };
    (cut(&ca, start), cut(&cb, start))
}

fn cut(chars: &[char], start: usize) -> String {
    let start = start.min(chars.len());
    let end = chars.len().min(start + WIDTH);
    let body: String = chars[start..end].iter().collect();
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    out.push_str(&body);
    if end < chars.len() {
        out.push_str(&format!("… ({} chars)", chars.len()));
    }
    out
}

/// The differences of two string maps, key by key, in key order; values
/// are quoted when `quote` (strings) and cut around their first difference.
pub(super) fn kv_diff(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>, quote: bool, out: &mut Vec<Difference>) {
    let show = |v: &str| if quote { format!("{v:?}") } else { v.to_string() };
    for (k, va) in a {
        match b.get(k) {
            None => out.push(Difference::Removed { item: k.clone(), detail: short(&show(va)) }),
            Some(vb) if vb != va => {
                let (qa, qb) = excerpt(&show(va), &show(vb));
                out.push(Difference::Changed { item: k.clone(), field: String::new(), a: qa, b: qb });
            }
            Some(_) => {}
        }
    }
    for (k, vb) in b {
        if !a.contains_key(k) {
            out.push(Difference::Added { item: k.clone(), detail: short(&show(vb)) });
        }
    }
}

/// A list of names, cut after a few.
pub(super) fn list(items: &[String]) -> String {
    const SHOWN: usize = 8;
    let mut out = items.iter().take(SHOWN).map(String::as_str).collect::<Vec<_>>().join(", ");
    if items.len() > SHOWN {
        out.push_str(&format!(", … ({} in all)", items.len()));
    }
    format!("[{out}]")
}

/// A shape as `[64, 128]`.
pub(super) fn dims<T: std::fmt::Display>(d: &[T]) -> String {
    format!("[{}]", d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", "))
}
