//! ONNX models: model fields, `metadata_props`, graph inputs/outputs and
//! value infos, nodes and initializers.
//!
//! The protobuf is decoded with tract's prost types (as
//! [`crate::graph::onnx`] does) rather than into avac's IR, because the
//! diff must see what the IR drops (producer, doc strings, every data type)
//! and must read models avac did not write.
//!
//! Nodes are matched by name; nodes without a name (or a name used twice)
//! are matched by position among such nodes. A node's fields are its
//! `op_type` (with its domain), inputs, outputs and each attribute.

use super::onnx_values::{self, dtype_name, Side};
use super::{io_err, section, text, DiffError, Difference, Section};
use prost::Message;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use tract_onnx::pb;

/// The largest model read: protobuf's own limit on a message.
const MAX_MODEL_BYTES: u64 = 2 << 30;

/// Reads and decodes a model; a model without a graph is refused.
fn read(path: &Path) -> Result<pb::ModelProto, DiffError> {
    let len = std::fs::metadata(path).map_err(io_err(path))?.len();
    if len > MAX_MODEL_BYTES {
        return Err(DiffError::OnnxContent {
            file: path.to_path_buf(),
            what: format!("{len} bytes is past protobuf's {MAX_MODEL_BYTES}-byte limit: not an ONNX model"),
        });
    }
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let m = pb::ModelProto::decode(bytes.as_slice()).map_err(|source| DiffError::OnnxDecode { file: path.to_path_buf(), source })?;
    let Some(g) = &m.graph else {
        return Err(DiffError::OnnxContent { file: path.to_path_buf(), what: "not an ONNX model: no graph".into() });
    };
    // The comparison keys each of these by name: a repeated name would hide
    // every entry after the first, so two files that differ there would
    // diff as the same content. Runtimes refuse or disagree on them too.
    let domain = |d: &str| if d.is_empty() { "ai.onnx".to_string() } else { d.to_string() };
    let lists: [(&str, Vec<String>); 7] = [
        ("metadata_props key", m.metadata_props.iter().map(|e| e.key.clone()).collect()),
        ("opset_import domain", m.opset_import.iter().map(|o| domain(&o.domain)).collect()),
        ("initializer name", g.initializer.iter().map(|t| t.name.clone()).collect()),
        ("sparse_initializer name", g.sparse_initializer.iter().filter_map(|t| t.values.as_ref()).map(|t| t.name.clone()).collect()),
        ("graph input name", g.input.iter().map(|v| v.name.clone()).collect()),
        ("graph output name", g.output.iter().map(|v| v.name.clone()).collect()),
        ("value_info name", g.value_info.iter().map(|v| v.name.clone()).collect()),
    ];
    for (what, names) in lists {
        let mut seen = BTreeSet::new();
        if let Some(dup) = names.iter().find(|n| !seen.insert(n.as_str())) {
            return Err(DiffError::OnnxContent { file: path.to_path_buf(), what: format!("{what} {dup:?} appears more than once") });
        }
    }
    Ok(m)
}

/// Whether a file without the `.onnx` extension decodes as a model with a graph.
pub(super) fn looks_like_onnx(path: &Path) -> Result<bool, DiffError> {
    match read(path) {
        Ok(_) => Ok(true),
        Err(DiffError::Io { file, source }) => Err(DiffError::Io { file, source }),
        Err(_) => Ok(false),
    }
}

/// The sections of an ONNX comparison (empty when `same`: the models are
/// then only decoded and checked).
pub(super) fn diff(a: &Path, b: &Path, same: bool) -> Result<Vec<Section>, DiffError> {
    let (ma, mb) = (read(a)?, read(b)?);
    let empty = pb::GraphProto::default();
    let (ga, gb) = (ma.graph.as_ref().unwrap_or(&empty), mb.graph.as_ref().unwrap_or(&empty));
    let (sa, sb) = (side(ga, a)?, side(gb, b)?);
    if same {
        return Ok(Vec::new());
    }
    let mut meta = Vec::new();
    let props = |m: &pb::ModelProto| m.metadata_props.iter().map(|e| (e.key.clone(), e.value.clone())).collect::<BTreeMap<_, _>>();
    text::kv_diff(&props(&ma), &props(&mb), true, &mut meta);
    Ok(vec![
        section("model", model_fields(&ma, &mb)),
        section("metadata_props", meta),
        section("graph", graph_fields(ga, gb)),
        section("nodes", nodes(&ga.node, &gb.node)),
        section("initializers", onnx_values::diff(&sa, &sb)),
    ])
}

/// A model's initializers, decoded and checked, and its `DequantizeLinear` consumers.
fn side<'m>(g: &'m pb::GraphProto, file: &Path) -> Result<Side<'m>, DiffError> {
    let mut inits = BTreeMap::new();
    for t in &g.initializer {
        // Names are unique ([`read`] refuses repeats).
        inits.insert(t.name.as_str(), onnx_values::decode(t, file)?);
    }
    Ok(Side { inits, dq: onnx_values::dq_nodes(g) })
}

fn changed(out: &mut Vec<Difference>, item: &str, field: &str, a: String, b: String) {
    if a != b {
        let (a, b) = text::excerpt(&a, &b);
        out.push(Difference::Changed { item: item.into(), field: field.into(), a, b });
    }
}

fn q(s: &str) -> String {
    format!("{s:?}")
}

fn model_fields(a: &pb::ModelProto, b: &pb::ModelProto) -> Vec<Difference> {
    let mut out = Vec::new();
    changed(&mut out, "model", "ir_version", a.ir_version.to_string(), b.ir_version.to_string());
    let opsets = |m: &pb::ModelProto| {
        m.opset_import
            .iter()
            .map(|o| (if o.domain.is_empty() { "ai.onnx".to_string() } else { o.domain.clone() }, o.version.to_string()))
            .collect::<BTreeMap<_, _>>()
    };
    let (oa, ob) = (opsets(a), opsets(b));
    for (d, v) in &oa {
        match ob.get(d) {
            None => out.push(Difference::Removed { item: format!("opset {d}"), detail: format!("version {v}") }),
            Some(w) => changed(&mut out, &format!("opset {d}"), "version", v.clone(), w.clone()),
        }
    }
    for (d, w) in ob.iter().filter(|(d, _)| !oa.contains_key(*d)) {
        out.push(Difference::Added { item: format!("opset {d}"), detail: format!("version {w}") });
    }
    changed(&mut out, "model", "producer_name", q(&a.producer_name), q(&b.producer_name));
    changed(&mut out, "model", "producer_version", q(&a.producer_version), q(&b.producer_version));
    changed(&mut out, "model", "domain", q(&a.domain), q(&b.domain));
    changed(&mut out, "model", "model_version", a.model_version.to_string(), b.model_version.to_string());
    changed(&mut out, "model", "doc_string", q(&a.doc_string), q(&b.doc_string));
    let encoded = |m: &pb::ModelProto| {
        (m.functions.iter().map(|f| f.encode_to_vec()).collect::<Vec<_>>(), m.training_info.iter().map(|t| t.encode_to_vec()).collect::<Vec<_>>())
    };
    let ((fa, ta), (fb, tb)) = (encoded(a), encoded(b));
    changed(&mut out, "model", "functions", format!("{} ({})", fa.len(), digest(&fa)), format!("{} ({})", fb.len(), digest(&fb)));
    changed(&mut out, "model", "training_info", format!("{} ({})", ta.len(), digest(&ta)), format!("{} ({})", tb.len(), digest(&tb)));
    out
}

/// A short digest of encoded messages, to show that they differ.
fn digest(parts: &[Vec<u8>]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    format!("sha256 {}", &hex::encode(h.finalize())[..12])
}

/// `int64[batch, 128]`, or what the type is when it is not a tensor.
fn value_type(v: &pb::ValueInfoProto) -> String {
    use pb::tensor_shape_proto::dimension::Value as D;
    match &v.r#type {
        Some(pb::TypeProto { value: Some(pb::type_proto::Value::TensorType(t)), .. }) => {
            let shape = match &t.shape {
                None => "[?]".to_string(),
                Some(s) => text::dims(
                    &s.dim
                        .iter()
                        .map(|d| match &d.value {
                            Some(D::DimValue(n)) => n.to_string(),
                            Some(D::DimParam(p)) => p.clone(),
                            None => "?".to_string(),
                        })
                        .collect::<Vec<_>>(),
                ),
            };
            format!("{}{shape}", dtype_name(t.elem_type))
        }
        Some(_) => "a non-tensor type".into(),
        None => "no type".into(),
    }
}

fn value_infos(out: &mut Vec<Difference>, what: &str, a: &[pb::ValueInfoProto], b: &[pb::ValueInfoProto], ordered: bool) {
    let map = |v: &[pb::ValueInfoProto]| v.iter().map(|v| (v.name.clone(), value_type(v))).collect::<BTreeMap<_, _>>();
    let (ma, mb) = (map(a), map(b));
    for (n, t) in &ma {
        match mb.get(n) {
            None => out.push(Difference::Removed { item: format!("{what} {n}"), detail: t.clone() }),
            Some(u) => changed(out, &format!("{what} {n}"), "type", t.clone(), u.clone()),
        }
    }
    for (n, u) in mb.iter().filter(|(n, _)| !ma.contains_key(*n)) {
        out.push(Difference::Added { item: format!("{what} {n}"), detail: u.clone() });
    }
    let names = |v: &[pb::ValueInfoProto]| v.iter().map(|v| v.name.clone()).collect::<Vec<_>>();
    if ordered && ma.keys().eq(mb.keys()) && names(a) != names(b) {
        out.push(Difference::Changed { item: format!("{what}s"), field: "order".into(), a: text::list(&names(a)), b: text::list(&names(b)) });
    }
}

fn graph_fields(a: &pb::GraphProto, b: &pb::GraphProto) -> Vec<Difference> {
    let mut out = Vec::new();
    changed(&mut out, "graph", "name", q(&a.name), q(&b.name));
    changed(&mut out, "graph", "doc_string", q(&a.doc_string), q(&b.doc_string));
    value_infos(&mut out, "input", &a.input, &b.input, true);
    value_infos(&mut out, "output", &a.output, &b.output, true);
    value_infos(&mut out, "value_info", &a.value_info, &b.value_info, false);
    let sparse = |g: &pb::GraphProto| g.sparse_initializer.iter().map(|t| t.encode_to_vec()).collect::<Vec<_>>();
    let (sa, sb) = (sparse(a), sparse(b));
    changed(&mut out, "graph", "sparse_initializer", format!("{} ({})", sa.len(), digest(&sa)), format!("{} ({})", sb.len(), digest(&sb)));
    out
}

/// A node's label: its name, or its position and op when it has none.
fn label(n: &pb::NodeProto, i: usize, named: bool) -> String {
    if named {
        n.name.clone()
    } else {
        format!("#{i} ({})", op(n))
    }
}

fn op(n: &pb::NodeProto) -> String {
    if n.domain.is_empty() || n.domain == "ai.onnx" {
        n.op_type.clone()
    } else {
        format!("{}.{}", n.domain, n.op_type)
    }
}

/// Indices of nodes matched by name, and of the others in order.
fn keyed(nodes: &[pb::NodeProto]) -> (BTreeMap<&str, usize>, Vec<usize>, BTreeSet<usize>) {
    let mut seen = BTreeSet::new();
    let mut dup = BTreeSet::new();
    for n in nodes.iter().filter(|n| !n.name.is_empty()) {
        if !seen.insert(n.name.as_str()) {
            dup.insert(n.name.as_str());
        }
    }
    let mut named = BTreeMap::new();
    let mut rest = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        if n.name.is_empty() || dup.contains(n.name.as_str()) {
            rest.push(i);
        } else {
            named.insert(n.name.as_str(), i);
        }
    }
    let unnamed = rest.iter().copied().collect();
    (named, rest, unnamed)
}

fn nodes(a: &[pb::NodeProto], b: &[pb::NodeProto]) -> Vec<Difference> {
    let ((na, ra, ua), (nb, rb, ub)) = (keyed(a), keyed(b));
    // A's index -> (B's index, whether matched by name).
    let mut pairs: BTreeMap<usize, (usize, bool)> = BTreeMap::new();
    for (name, &i) in &na {
        if let Some(&j) = nb.get(name) {
            pairs.insert(i, (j, true));
        }
    }
    for (&i, &j) in ra.iter().zip(&rb) {
        pairs.insert(i, (j, false));
    }
    let matched_b: BTreeSet<usize> = pairs.values().map(|&(j, _)| j).collect();
    let mut out = Vec::new();
    for (i, n) in a.iter().enumerate() {
        let named = !ua.contains(&i);
        match pairs.get(&i) {
            None => out.push(Difference::Removed { item: label(n, i, named), detail: signature(n) }),
            Some(&(j, by_name)) => node_fields(&mut out, &label(n, i, by_name), n, &b[j]),
        }
    }
    for (j, n) in b.iter().enumerate().filter(|(j, _)| !matched_b.contains(j)) {
        out.push(Difference::Added { item: label(n, j, !ub.contains(&j)), detail: signature(n) });
    }
    // Matched nodes in another order (A's order, then B's).
    let order: Vec<usize> = pairs.values().map(|&(j, _)| j).collect();
    if let Some(k) = order.windows(2).position(|w| w[0] > w[1]) {
        let (&i, _) = pairs.iter().nth(k + 1).unwrap_or((&0, &(0, false)));
        out.push(Difference::Note {
            item: "order".into(),
            text: format!("matched nodes run in another order, first at {} (#{i} in A)", label(&a[i], i, !ua.contains(&i))),
        });
    }
    out
}

/// `Op(in, …) -> (out, …)`.
fn signature(n: &pb::NodeProto) -> String {
    text::short(&format!("{}({}) -> ({})", op(n), n.input.join(", "), n.output.join(", ")))
}

fn node_fields(out: &mut Vec<Difference>, item: &str, a: &pb::NodeProto, b: &pb::NodeProto) {
    changed(out, item, "op_type", op(a), op(b));
    changed(out, item, "inputs", text::list(&a.input), text::list(&b.input));
    changed(out, item, "outputs", text::list(&a.output), text::list(&b.output));
    fn attrs(n: &pb::NodeProto) -> BTreeMap<&str, &pb::AttributeProto> {
        let mut m = BTreeMap::new();
        for at in &n.attribute {
            m.entry(at.name.as_str()).or_insert(at);
        }
        m
    }
    let (aa, ab) = (attrs(a), attrs(b));
    let names: BTreeSet<&str> = aa.keys().chain(ab.keys()).copied().collect();
    for name in names {
        let field = format!("attribute {name}");
        match (aa.get(name), ab.get(name)) {
            (Some(x), Some(y)) => {
                if strip(x) != strip(y) {
                    let (fx, fy) = (attribute(x), attribute(y));
                    let (fx, fy) = if fx == fy { (format!("{fx} (encoded differently)"), fy) } else { text::excerpt(&fx, &fy) };
                    out.push(Difference::Changed { item: item.into(), field, a: fx, b: fy });
                }
            }
            (Some(x), None) => out.push(Difference::Changed { item: item.into(), field, a: text::short(&attribute(x)), b: "(absent)".into() }),
            (None, Some(y)) => out.push(Difference::Changed { item: item.into(), field, a: "(absent)".into(), b: text::short(&attribute(y)) }),
            (None, None) => {}
        }
    }
}

/// An attribute's encoding without its documentation.
fn strip(a: &pb::AttributeProto) -> Vec<u8> {
    let mut a = a.clone();
    a.doc_string.clear();
    a.encode_to_vec()
}

/// An attribute's value as text; tensors and graphs by a digest.
fn attribute(a: &pb::AttributeProto) -> String {
    use pb::attribute_proto::AttributeType as T;
    let join = |v: Vec<String>| format!("[{}]", v.join(", "));
    match T::try_from(a.r#type).unwrap_or(T::Undefined) {
        T::Float => a.f.to_string(),
        T::Int => a.i.to_string(),
        T::String => format!("{:?}", String::from_utf8_lossy(&a.s)),
        T::Floats => join(a.floats.iter().map(f32::to_string).collect()),
        T::Ints => join(a.ints.iter().map(i64::to_string).collect()),
        T::Strings => join(a.strings.iter().map(|s| format!("{:?}", String::from_utf8_lossy(s))).collect()),
        T::Tensor => match &a.t {
            Some(t) => format!("tensor {}{} ({})", dtype_name(t.data_type), text::dims(&t.dims), digest(&[t.encode_to_vec()])),
            None => "tensor (missing)".into(),
        },
        T::Graph => match &a.g {
            Some(g) => format!("graph {:?} of {} nodes ({})", g.name, g.node.len(), digest(&[g.encode_to_vec()])),
            None => "graph (missing)".into(),
        },
        T::Tensors => format!("{} tensors ({})", a.tensors.len(), digest(&a.tensors.iter().map(|t| t.encode_to_vec()).collect::<Vec<_>>())),
        T::Graphs => format!("{} graphs ({})", a.graphs.len(), digest(&a.graphs.iter().map(|g| g.encode_to_vec()).collect::<Vec<_>>())),
        other => format!("{} ({})", other.as_str_name().to_ascii_lowercase(), digest(&[strip(a)])),
    }
}
