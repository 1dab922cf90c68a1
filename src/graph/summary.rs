//! A human-readable model summary (`avac summary`), stable enough for
//! snapshot tests: everything listed in sorted order, nothing measured.

use super::ir::{Dim, Model, ValueInfo};
use std::collections::BTreeMap;
use std::fmt::Write;

fn shape(v: &ValueInfo) -> String {
    match &v.shape {
        Some(d) => {
            let dims: Vec<String> = d
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => n.to_string(),
                    Dim::Sym(s) => s.clone(),
                })
                .collect();
            format!("{:?}[{}]", v.dtype, dims.join(", "))
        }
        None => format!("{:?}[?]", v.dtype),
    }
}

/// Renders the summary of `m`, whose serialised size is `file_bytes`.
pub fn summary(m: &Model, file_bytes: usize) -> String {
    let g = &m.graph;
    let mut s = String::new();
    let (nodes, inits, init_bytes) = g.counts();
    let _ = writeln!(s, "graph {}", g.name);
    let opsets: Vec<String> = m.opsets.iter().map(|(d, v)| format!("{}={v}", if d.is_empty() { "ai.onnx" } else { d })).collect();
    let _ = writeln!(s, "opsets: {}", opsets.join(", "));
    let _ = writeln!(s, "file: {file_bytes} bytes; initializers: {inits} ({init_bytes} bytes); nodes: {nodes}");
    for v in &g.inputs {
        let _ = writeln!(s, "input  {}: {}", v.name, shape(v));
    }
    for v in &g.outputs {
        let _ = writeln!(s, "output {}: {}", v.name, shape(v));
    }
    let mut ops: BTreeMap<String, usize> = BTreeMap::new();
    for n in &g.nodes {
        let key = if n.domain.is_empty() { n.op.clone() } else { format!("{}.{}", n.domain, n.op) };
        *ops.entry(key).or_default() += 1;
    }
    let _ = writeln!(s, "ops:");
    for (op, n) in ops {
        let _ = writeln!(s, "  {op:<28} {n}");
    }
    let _ = writeln!(s, "largest initializers:");
    let mut by_size: Vec<_> = g.initializers.iter().collect();
    by_size.sort_by(|a, b| b.1.data.len().cmp(&a.1.data.len()).then(a.0.cmp(b.0)));
    for (name, t) in by_size.iter().take(8) {
        let _ = writeln!(s, "  {name:<56} {:?}{:?} {} bytes", t.dtype, t.dims, t.data.len());
    }
    let _ = writeln!(s, "metadata:");
    for (k, v) in &m.metadata {
        // Long values (the build definition, label lists) shortened for reading.
        if v.chars().count() > 160 {
            let head: String = v.chars().take(120).collect();
            let _ = writeln!(s, "  {k} = {head}… ({} bytes)", v.len());
        } else {
            let _ = writeln!(s, "  {k} = {v}");
        }
    }
    s
}
