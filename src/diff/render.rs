//! The human form of a [`Diff`]:
//!
//! ```text
//! <kind>: <A> vs <B>: identical (<bytes> bytes, sha256 <12 hex>…)
//! <kind>: <A> vs <B>: differ (<N> differences)
//! <section>
//!   + <item>: <detail>                      only in B
//!   - <item>: <detail>                      only in A
//!   ~ <item>: [<field>] <A's> → <B's>       changed
//!   ~ <item>: <layout>: <values summary>    values differ
//!   · <item>: <text>                        a note
//!   … and <M> more                          past MAX_LINES lines
//! ```

use super::{Diff, Difference, Values};
use std::fmt::Write;

/// Lines shown per section before `… and N more`.
pub const MAX_LINES: usize = 20;

pub(super) fn render(d: &Diff) -> String {
    let mut out = String::new();
    let (a, b) = (&d.a, &d.b);
    if a.kind != b.kind {
        let _ = writeln!(out, "{} ({}) vs {} ({}): differ: different kinds, compared as bytes", a.path, a.kind.name(), b.path, b.kind.name());
    } else if d.identical {
        let _ = writeln!(out, "{}: {} vs {}: identical ({} bytes, sha256 {})", a.kind.name(), a.path, b.path, a.bytes, short_hex(&a.sha256));
    } else {
        let n = d.count();
        let _ = writeln!(out, "{}: {} vs {}: differ ({n} difference{})", a.kind.name(), a.path, b.path, if n == 1 { "" } else { "s" });
    }
    for s in &d.sections {
        let _ = writeln!(out, "{}", s.name);
        for x in s.differences.iter().take(MAX_LINES) {
            let _ = writeln!(out, "  {}", line(x));
        }
        if s.differences.len() > MAX_LINES {
            let _ = writeln!(out, "  … and {} more", s.differences.len() - MAX_LINES);
        }
    }
    out
}

fn short_hex(h: &str) -> String {
    if h.len() > 16 && h.bytes().all(|c| c.is_ascii_hexdigit()) {
        format!("{}…", &h[..12])
    } else {
        h.to_string()
    }
}

fn line(d: &Difference) -> String {
    match d {
        Difference::Added { item, detail } => format!("+ {item}: {detail}"),
        Difference::Removed { item, detail } => format!("- {item}: {detail}"),
        Difference::Changed { item, field, a, b } => {
            let (a, b) = if field == "sha256" || item == "sha256" { (short_hex(a), short_hex(b)) } else { (a.clone(), b.clone()) };
            let field = if field.is_empty() { String::new() } else { format!("{field} ") };
            format!("~ {item}: {field}{a} → {b}")
        }
        Difference::Values { item, layout, values } => format!("~ {item}: {layout}: {}", summary(values)),
        Difference::Note { item, text } => format!("· {item}: {text}"),
    }
}

/// A number for people: 5 significant digits, positional from 1e-4 to
/// 1e6 (`0.25`, `1.5`, `12`), else with an exponent (`1.2346e-7`).
fn num(x: f64) -> String {
    let sci = format!("{x:.4e}");
    match sci.parse::<f64>() {
        Ok(r) if r == 0.0 || (1e-4..1e6).contains(&r.abs()) => format!("{r}"),
        _ => sci,
    }
}

fn counted(differing: u64, count: u64, unit: &str, first: Option<u64>, max: Option<f64>, nonfinite: u64) -> String {
    let mut s = if differing == 0 { format!("all {count} {unit} equal") } else { format!("{differing} of {count} {unit} differ") };
    if let Some(i) = first {
        let _ = write!(s, " (first at {i})");
    }
    if let Some(m) = max {
        let _ = write!(s, ", max |Δ| {}", num(m));
    }
    if nonfinite > 0 {
        let _ = write!(s, ", {nonfinite} with NaN or infinity");
    }
    s
}

fn summary(v: &Values) -> String {
    let mut s = counted(v.differing, v.count, v.unit, v.first_differing, v.max_abs_diff, v.nonfinite_differing);
    if let Some(b) = &v.basis {
        let _ = write!(s, " [{b}]");
    }
    if let Some(d) = &v.dequantized {
        let _ = write!(s, "; after {}: {}", d.via, counted(d.differing, d.count, "values", None, d.max_abs_diff, d.nonfinite_differing));
    }
    s
}
