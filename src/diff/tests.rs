//! Unit tests of `avac diff` on small files built here: ONNX protos through
//! prost, packages through the crate's tar and tensor-cache writers,
//! safetensors through its writer, GGUF byte by byte.

use super::*;
use crate::kernels::half::f32_to_bf16;
use crate::package::tar::{self as ptar, Input, Options, Source};
use crate::package::tensor_cache::{Dtype as CDtype, ShardWriter};
use prost::Message;
use std::collections::BTreeMap;
use tract_onnx::pb;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The section called `name`, with its lines rendered.
fn lines(d: &Diff, name: &str) -> Vec<String> {
    let r = d.render();
    let mut out = Vec::new();
    let mut inside = false;
    for l in r.lines().skip(1) {
        if !l.starts_with("  ") {
            inside = l == name;
        } else if inside {
            out.push(l.trim_start().to_string());
        }
    }
    out
}

fn values<'d>(d: &'d Diff, item: &str) -> &'d Values {
    d.sections
        .iter()
        .flat_map(|s| &s.differences)
        .find_map(|x| match x {
            Difference::Values { item: i, values, .. } if i == item => Some(values),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no values line for {item}:\n{}", d.render()))
}

// ------------------------------------------------------------------ ONNX

fn tensor(name: &str, dims: &[i64], data_type: i32, raw: Vec<u8>) -> pb::TensorProto {
    pb::TensorProto { name: name.into(), dims: dims.to_vec(), data_type, raw_data: raw, ..Default::default() }
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn vi(name: &str, elem_type: i32, dims: &[i64]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let dim = dims.iter().map(|&d| Dimension { denotation: String::new(), value: Some(Value::DimValue(d)) }).collect();
    let tt = pb::type_proto::Tensor { elem_type, shape: Some(pb::TensorShapeProto { dim }) };
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto { denotation: String::new(), value: Some(pb::type_proto::Value::TensorType(tt)) }),
        doc_string: String::new(),
    }
}

fn node(name: &str, op: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<pb::AttributeProto>) -> pb::NodeProto {
    pb::NodeProto {
        name: name.into(),
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

fn int_attr(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), i, r#type: pb::attribute_proto::AttributeType::Int as i32, ..Default::default() }
}

/// A small QDQ model: y = x · DequantizeLinear(w.q, w.scale, w.zp) + b.
fn model() -> pb::ModelProto {
    let q: Vec<u8> = [1i8, -2, 3, -4, 5, -6, 7, -8].iter().map(|&v| v as u8).collect();
    let graph = pb::GraphProto {
        name: "g".into(),
        node: vec![
            node("dq", "DequantizeLinear", &["w.q", "w.scale", "w.zp"], &["w"], vec![]),
            node("mm", "MatMul", &["x", "w"], &["xw"], vec![]),
            node("", "Add", &["xw", "b"], &["y0"], vec![]),
            node("", "Softmax", &["y0"], &["y"], vec![int_attr("axis", -1)]),
        ],
        initializer: vec![
            tensor("w.q", &[4, 2], 3, q),
            tensor("w.scale", &[], 1, f32s(&[0.5])),
            tensor("w.zp", &[], 3, vec![0]),
            tensor("b", &[2], 1, f32s(&[0.25, -1.0])),
            pb::TensorProto { name: "shape".into(), dims: vec![2], data_type: 7, int64_data: vec![1, 2], ..Default::default() },
        ],
        input: vec![vi("x", 1, &[1, 4])],
        output: vec![vi("y", 1, &[1, 2])],
        ..Default::default()
    };
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 17 }],
        producer_name: "avac".into(),
        producer_version: "0.1.0".into(),
        graph: Some(graph),
        metadata_props: vec![
            pb::StringStringEntryProto { key: "avac.target".into(), value: "malbert-tiny-int8".into() },
            pb::StringStringEntryProto { key: "avac.pins".into(), value: format!("{{\"a\":\"{}\",\"b\":\"{}\"}}", "1".repeat(64), "2".repeat(64)) },
        ],
        ..Default::default()
    }
}

fn onnx_pair(edit: impl FnOnce(&mut pb::ModelProto)) -> (tempfile::TempDir, Diff) {
    let dir = tempfile::tempdir().unwrap();
    let a = model();
    let mut b = a.clone();
    edit(&mut b);
    let pa = write(dir.path(), "a.onnx", &a.encode_to_vec());
    let pb_ = write(dir.path(), "b.onnx", &b.encode_to_vec());
    let d = diff_paths(&pa, &pb_).unwrap();
    (dir, d)
}

fn init<'m>(m: &'m mut pb::ModelProto, name: &str) -> &'m mut pb::TensorProto {
    m.graph.as_mut().unwrap().initializer.iter_mut().find(|t| t.name == name).unwrap()
}

#[test]
fn identical_onnx_is_identical() {
    let (_d, d) = onnx_pair(|_| {});
    assert!(d.identical() && d.sections.is_empty(), "{d:?}");
    assert_eq!((d.a.kind, d.b.kind), (Kind::Onnx, Kind::Onnx));
    assert!(d.render().starts_with("onnx: ") && d.render().contains(": identical ("), "{}", d.render());
}

#[test]
fn onnx_initializer_value_counts_elements_and_max() {
    let (_d, d) = onnx_pair(|m| init(m, "b").raw_data = f32s(&[0.25, -0.75]));
    assert!(!d.identical());
    let v = values(&d, "b");
    assert_eq!((v.count, v.differing, v.first_differing, v.max_abs_diff), (2, 1, Some(1), Some(0.25)));
    assert_eq!(lines(&d, "initializers"), ["~ b: float32[2]: 1 of 2 elements differ (first at 1), max |Δ| 0.25"]);
    assert_eq!(d.sections.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["file", "initializers"]);
}

#[test]
fn onnx_int8_weights_are_also_compared_after_dequantization() {
    // One int8 value 3 → 6: 3 steps of the scale 0.5.
    let (_d, d) = onnx_pair(|m| init(m, "w.q").raw_data[2] = 6);
    let v = values(&d, "w.q");
    assert_eq!((v.differing, v.max_abs_diff), (1, Some(3.0)));
    let dq = v.dequantized.as_ref().unwrap();
    assert_eq!((dq.via.as_str(), dq.differing, dq.max_abs_diff), ("DequantizeLinear", 1, Some(1.5)));
    // The scale alone changes: the int8 values are equal, the weights are not.
    let (_d, d) = onnx_pair(|m| init(m, "w.scale").raw_data = f32s(&[0.25]));
    assert_eq!(values(&d, "w.scale").max_abs_diff, Some(0.25));
    let v = values(&d, "w.q");
    assert_eq!(v.differing, 0);
    let dq = v.dequantized.as_ref().unwrap();
    assert_eq!((dq.differing, dq.max_abs_diff), (8, Some(2.0)));
    assert!(
        lines(&d, "initializers").iter().any(|l| l.contains("w.q: int8[4, 2]: all 8 elements equal; after DequantizeLinear: 8 of 8 values differ, max |Δ| 2")),
        "{}",
        d.render()
    );
}

#[test]
fn onnx_metadata_model_and_graph_fields() {
    let (_d, d) = onnx_pair(|m| {
        m.metadata_props[0].value = "malbert-int8".into();
        m.metadata_props[1].value = m.metadata_props[1].value.replace("\"b\":\"2222", "\"b\":\"3222");
        m.metadata_props.push(pb::StringStringEntryProto { key: "new".into(), value: "x".into() });
        m.producer_version = "0.2.0".into();
        m.opset_import.push(pb::OperatorSetIdProto { domain: "com.microsoft".into(), version: 1 });
        m.graph.as_mut().unwrap().output[0] = vi("y", 1, &[1, 3]);
    });
    let meta = lines(&d, "metadata_props");
    assert_eq!(meta[1], "~ avac.target: \"malbert-tiny-int8\" → \"malbert-int8\"");
    assert_eq!(meta[2], "+ new: \"x\"");
    // A long value is cut around its first difference, so the change shows.
    assert!(meta[0].starts_with("~ avac.pins: …") && meta[0].contains("\\\"b\\\":\\\"2222") && meta[0].contains("\\\"b\\\":\\\"3222"), "{meta:?}");
    assert_eq!(lines(&d, "model"), ["+ opset com.microsoft: version 1", "~ model: producer_version \"0.1.0\" → \"0.2.0\""]);
    assert_eq!(lines(&d, "graph"), ["~ output y: type float32[1, 2] → float32[1, 3]"]);
}

#[test]
fn onnx_nodes_by_name_then_by_position() {
    let (_d, d) = onnx_pair(|m| {
        let g = m.graph.as_mut().unwrap();
        g.node[1].op_type = "Gemm".into();
        g.node[3].attribute[0].i = 1;
        g.node[2].input[1] = "c".into();
        g.node.push(node("extra", "Identity", &["y"], &["z"], vec![]));
    });
    assert_eq!(
        lines(&d, "nodes"),
        ["~ mm: op_type MatMul → Gemm", "~ #2 (Add): inputs [xw, b] → [xw, c]", "~ #3 (Softmax): attribute axis -1 → 1", "+ extra: Identity(y) -> (z)",]
    );
}

#[test]
fn onnx_dtype_dims_added_removed() {
    let (_d, d) = onnx_pair(|m| {
        let g = m.graph.as_mut().unwrap();
        g.initializer.retain(|t| t.name != "shape");
        g.initializer.push(tensor("new", &[1], 1, f32s(&[1.0])));
        *init(m, "b") = tensor("b", &[1, 2], 1, f32s(&[0.25, -1.0]));
        *init(m, "w.zp") = tensor("w.zp", &[], 2, vec![0]);
    });
    assert_eq!(lines(&d, "initializers"), ["~ b: dims [2] → [1, 2]", "- shape: int64[2]", "~ w.zp: dtype int8 → uint8", "+ new: float32[1]"]);
}

#[test]
fn onnx_same_values_stored_differently_differ_only_as_bytes() {
    let (_d, d) = onnx_pair(|m| {
        let t = init(m, "b");
        t.float_data = vec![0.25, -1.0];
        t.raw_data.clear();
    });
    assert!(!d.identical());
    assert_eq!(d.sections.len(), 1, "{}", d.render());
    assert!(lines(&d, "file").last().unwrap().contains("no difference found in the content"), "{}", d.render());
}

#[test]
fn onnx_corrupt_or_inconsistent_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = model().encode_to_vec();
    let a = write(dir.path(), "a.onnx", &good);
    let cut = write(dir.path(), "cut.onnx", &good[..good.len() / 2]);
    let e = diff_paths(&a, &cut).unwrap_err();
    assert!(matches!(e, DiffError::OnnxDecode { .. }) && e.to_string().contains("cut.onnx"), "{e}");
    let mut m = model();
    init(&mut m, "b").raw_data.pop();
    let bad = write(dir.path(), "bad.onnx", &m.encode_to_vec());
    let e = diff_paths(&bad, &a).unwrap_err().to_string();
    assert!(e.contains("bad.onnx") && e.contains("initializer \"b\"") && e.contains("7 data bytes"), "{e}");
    // Even against itself: a damaged file is not "identical".
    assert!(diff_paths(&bad, &bad).is_err());
    let e = diff_paths(&a, &dir.path().join("missing.onnx")).unwrap_err().to_string();
    assert!(e.contains("missing.onnx"), "{e}");
}

#[test]
fn onnx_repeated_names_are_errors_not_hidden_differences() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.onnx", &model().encode_to_vec());
    let cases: [(&str, fn(&mut pb::ModelProto), &str); 3] = [
        // The second copy differs: keyed by name, it used to be dropped and
        // the pair diffed as "the same content encoded differently".
        (
            "init.onnx",
            |m| {
                let mut t = init(m, "b").clone();
                t.raw_data[0] ^= 1;
                m.graph.as_mut().unwrap().initializer.push(t);
            },
            "initializer name \"b\" appears more than once",
        ),
        (
            "meta.onnx",
            |m| m.metadata_props.push(pb::StringStringEntryProto { key: "avac.target".into(), value: "other".into() }),
            "metadata_props key \"avac.target\"",
        ),
        (
            "input.onnx",
            |m| {
                let g = m.graph.as_mut().unwrap();
                g.output.push(g.output[0].clone());
            },
            "graph output name",
        ),
    ];
    for (name, edit, why) in cases {
        let mut m = model();
        edit(&mut m);
        let bad = write(dir.path(), name, &m.encode_to_vec());
        for (x, y) in [(&a, &bad), (&bad, &a), (&bad, &bad)] {
            let e = diff_paths(x, y).unwrap_err().to_string();
            assert!(e.contains(name) && e.contains(why), "{e}");
        }
    }
}

#[test]
fn json_is_stable_and_has_no_nan() {
    let (_d, d) = onnx_pair(|m| init(m, "b").raw_data = f32s(&[f32::NAN, -1.0]));
    let v = values(&d, "b");
    assert_eq!((v.differing, v.max_abs_diff, v.nonfinite_differing), (1, None, 1));
    let j = serde_json::to_string_pretty(&d).unwrap();
    assert!(!j.contains("NaN") && j.contains("\"max_abs_diff\": null") && j.contains("\"change\": \"values\""), "{j}");
    let (_d2, d2) = onnx_pair(|m| init(m, "b").raw_data = f32s(&[f32::NAN, -1.0]));
    // Same inputs (other directory): same JSON but for the paths.
    let strip = |d: &Diff| serde_json::to_string(&d.sections).unwrap();
    assert_eq!(strip(&d), strip(&d2));
}

// ------------------------------------------------------------------ packages

fn bf16s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|&x| f32_to_bf16(x).to_le_bytes()).collect()
}

/// q_weight words of one row of 16 nibbles (2 words).
fn words(q: &[u32]) -> Vec<u8> {
    q.chunks(8).flat_map(|c| c.iter().enumerate().fold(0u32, |w, (r, &n)| w | (n << (4 * r))).to_le_bytes()).collect()
}

struct Pkg {
    q: Vec<u32>,
    scale: Vec<f32>,
    norm: Vec<f32>,
    config: &'static str,
    exec: bool,
}

fn pkg() -> Pkg {
    Pkg {
        q: (0..32).map(|i| i % 15).collect(),
        scale: vec![0.5, 0.25],
        norm: vec![1.0, 2.0, 3.0, 4.0],
        config: r#"{"model_type": "gemma3_text", "stop": [1, 106]}"#,
        exec: false,
    }
}

/// A package with a tensor cache: `w.q_weight` [2, 2] (2 rows of 16
/// nibbles), `w.q_scale` [2, 1] bfloat16 (group 16), `norm` float32 [4].
fn write_pkg(dir: &Path, name: &str, p: &Pkg) -> PathBuf {
    let params = dir.join(format!("{name}.params"));
    let mut w = ShardWriter::new(&params, 1 << 20).unwrap();
    w.add("norm", &[4], CDtype::F32, &f32s(&p.norm)).unwrap();
    w.add("w.q_weight", &[2, 2], CDtype::U32, &words(&p.q)).unwrap();
    w.add("w.q_scale", &[2, 1], CDtype::BF16, &bf16s(&p.scale)).unwrap();
    w.finish(64).unwrap();
    let mut inputs: Vec<Input> = std::fs::read_dir(&params)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            Input { path: e.file_name().to_string_lossy().into_owned(), source: Source::File(e.path()), executable: false }
        })
        .collect();
    inputs.push(Input { path: "mlc-chat-config.json".into(), source: Source::Bytes(p.config.as_bytes().to_vec()), executable: false });
    inputs.push(Input { path: "lib/arm64-v8a/libx.so".into(), source: Source::Bytes(b"\x7fELF".to_vec()), executable: p.exec });
    let out = dir.join(format!("{name}.tar"));
    ptar::write(&out, inputs, &Options::default()).unwrap();
    out
}

fn pkg_pair(edit: impl FnOnce(&mut Pkg)) -> (tempfile::TempDir, Diff) {
    let dir = tempfile::tempdir().unwrap();
    let mut p = pkg();
    let a = write_pkg(dir.path(), "a", &p);
    edit(&mut p);
    let b = write_pkg(dir.path(), "b", &p);
    let d = diff_paths(&a, &b).unwrap();
    (dir, d)
}

#[test]
fn identical_packages() {
    let (_d, d) = pkg_pair(|_| {});
    assert!(d.identical() && d.sections.is_empty());
    assert_eq!(d.a.kind, Kind::Tar);
}

#[test]
fn package_entry_mode_and_content() {
    let (_d, d) = pkg_pair(|p| p.exec = true);
    assert_eq!(lines(&d, "entries"), ["~ lib/arm64-v8a/libx.so: mode 0644 → 0755"]);
    // A header edited in place (mode bit, checksum resealed) is read the same way.
    let dir = tempfile::tempdir().unwrap();
    let a = write_pkg(dir.path(), "a", &pkg());
    let mut bytes = std::fs::read(&a).unwrap();
    let (i, _) = ptar::list(&a).unwrap().into_iter().enumerate().find(|(_, e)| e.path == "mlc-chat-config.json").unwrap();
    let at = ptar::list(&a).unwrap()[i].data_offset as usize - 512;
    assert_eq!(&bytes[at + 100..at + 108], b"0000644\0");
    bytes[at + 104] = b'4';
    bytes[at + 148..at + 156].copy_from_slice(b"        ");
    let sum: u64 = bytes[at..at + 512].iter().map(|&b| u64::from(b)).sum();
    bytes[at + 148..at + 156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let b = write(dir.path(), "b.tar", &bytes);
    let d = diff_paths(&a, &b).unwrap();
    assert_eq!(lines(&d, "entries"), ["~ mlc-chat-config.json: mode 0644 → 0444"]);
}

#[test]
fn package_tensor_records_floats_and_json_keys() {
    let (_d, d) = pkg_pair(|p| {
        p.norm[2] = 3.5;
        p.config = r#"{"model_type": "gemma3_text", "stop": [1, 107], "new": true}"#;
    });
    let cache = lines(&d, "tensor-cache.json");
    assert_eq!(cache, ["~ norm: float32[4]: 1 of 4 elements differ (first at 2), max |Δ| 0.5"]);
    assert_eq!(lines(&d, "mlc-chat-config.json"), ["~ stop[1]: 106 → 107", "+ new: true"]);
    let entries = lines(&d, "entries");
    assert!(entries.iter().any(|l| l.starts_with("~ params_shard_0.bin: sha256 ")), "{entries:?}");
}

#[test]
fn package_q4_weights_as_nibbles_and_dequantized() {
    // Nibble 20 (row 1, scale 0.25) goes 5 → 9: 4 steps of 0.25.
    let (_d, d) = pkg_pair(|p| p.q[20] = 9);
    let v = values(&d, "w.q_weight");
    assert_eq!((v.unit, v.count, v.differing, v.first_differing, v.max_abs_diff), ("nibbles", 32, 1, Some(20), Some(4.0)));
    let dq = v.dequantized.as_ref().unwrap();
    assert_eq!((dq.via.as_str(), dq.count, dq.differing, dq.max_abs_diff), ("q4bf16_1", 32, 1, Some(1.0)));
    // Only a scale changes: the nibbles are equal, the weights are not.
    let (_d, d) = pkg_pair(|p| p.scale[0] = 1.0);
    assert_eq!(values(&d, "w.q_scale").max_abs_diff, Some(0.5));
    let v = values(&d, "w.q_weight");
    let dq = v.dequantized.as_ref().unwrap();
    // Row 0 holds q = 0..=14, 0: |q - 7| is at most 7, times the 0.5 change.
    assert_eq!((v.differing, dq.differing, dq.max_abs_diff), (0, 15, Some(3.5)));
}

#[test]
fn compressed_packages_are_compared_as_their_tar() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = pkg();
    let a = write_pkg(dir.path(), "a", &p);
    p.norm[0] = 0.0;
    let b = write_pkg(dir.path(), "b", &p);
    let (za, zb) = (dir.path().join("a.tar.zst"), dir.path().join("b.tar.zst"));
    ptar::compress(&a, &za).unwrap();
    ptar::compress(&b, &zb).unwrap();
    let d = diff_paths(&za, &zb).unwrap();
    assert_eq!(d.a.kind, Kind::TarZst);
    assert_eq!(lines(&d, "tensor-cache.json"), ["~ norm: float32[4]: 1 of 4 elements differ (first at 0), max |Δ| 1"]);
    assert!(diff_paths(&za, &za).unwrap().identical());
}

#[test]
fn truncated_package_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_pkg(dir.path(), "a", &pkg());
    let bytes = std::fs::read(&a).unwrap();
    for cut in [bytes.len() / 2, 100] {
        let b = write(dir.path(), "cut.tar", &bytes[..cut]);
        let e = diff_paths(&a, &b).unwrap_err().to_string();
        assert!(e.contains("cut.tar") && e.contains("truncated"), "{e}");
    }
}

// ------------------------------------------------------------------ safetensors

#[test]
fn safetensors_metadata_and_tensors() {
    use crate::formats::safetensors::{self as st, OwnedTensor};
    let dir = tempfile::tempdir().unwrap();
    let mut t = BTreeMap::new();
    t.insert("a".to_string(), OwnedTensor::from_f32(vec![2, 2], &[1.0, 2.0, 3.0, 4.0]));
    t.insert("gone".to_string(), OwnedTensor::from_f32(vec![1], &[0.0]));
    t.insert("ids".to_string(), OwnedTensor { dtype: st::Dtype::I64, shape: vec![2], data: [5i64, 6].iter().flat_map(|v| v.to_le_bytes()).collect() });
    let meta: BTreeMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    let a = dir.path().join("a.safetensors");
    st::write(&a, &t, &meta).unwrap();
    t.insert("a".to_string(), OwnedTensor::from_f32(vec![2, 2], &[1.0, 2.0, 3.0, 4.125]));
    t.remove("gone");
    t.insert("ids".to_string(), OwnedTensor { dtype: st::Dtype::I64, shape: vec![2], data: [5i64, -6].iter().flat_map(|v| v.to_le_bytes()).collect() });
    let meta: BTreeMap<String, String> = [("format".to_string(), "np".to_string())].into();
    let b = dir.path().join("b.safetensors");
    st::write(&b, &t, &meta).unwrap();
    let d = diff_paths(&a, &b).unwrap();
    assert_eq!(d.a.kind, Kind::Safetensors);
    assert_eq!(lines(&d, "metadata"), ["~ format: \"pt\" → \"np\""]);
    assert_eq!(
        lines(&d, "tensors"),
        [
            "~ a: F32[2, 2]: 1 of 4 elements differ (first at 3), max |Δ| 0.125",
            "- gone: F32[1]",
            "~ ids: I64[2]: 1 of 2 elements differ (first at 1), max |Δ| 12"
        ]
    );
    let bytes = std::fs::read(&b).unwrap();
    let cut = write(dir.path(), "cut.safetensors", &bytes[..bytes.len() - 3]);
    let e = diff_paths(&a, &cut).unwrap_err().to_string();
    assert!(e.contains("cut.safetensors"), "{e}");
}

// ------------------------------------------------------------------ GGUF

/// A GGUF v3 file: string and u32 keys, tensors placed at 32-byte alignment.
struct Gguf {
    kvs: Vec<u8>,
    n_kv: u64,
    infos: Vec<u8>,
    n_tensors: u64,
    data: Vec<u8>,
}

fn gstr(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

impl Gguf {
    fn new() -> Gguf {
        Gguf { kvs: vec![], n_kv: 0, infos: vec![], n_tensors: 0, data: vec![] }
    }
    fn kv_str(mut self, k: &str, v: &str) -> Gguf {
        gstr(&mut self.kvs, k);
        self.kvs.extend(8u32.to_le_bytes());
        gstr(&mut self.kvs, v);
        self.n_kv += 1;
        self
    }
    fn kv_u32(mut self, k: &str, v: u32) -> Gguf {
        gstr(&mut self.kvs, k);
        self.kvs.extend(4u32.to_le_bytes());
        self.kvs.extend(v.to_le_bytes());
        self.n_kv += 1;
        self
    }
    fn tensor(mut self, name: &str, ne: &[u64], ty: u32, bytes: &[u8]) -> Gguf {
        while !self.data.len().is_multiple_of(32) {
            self.data.push(0);
        }
        gstr(&mut self.infos, name);
        self.infos.extend((ne.len() as u32).to_le_bytes());
        ne.iter().for_each(|d| self.infos.extend(d.to_le_bytes()));
        self.infos.extend(ty.to_le_bytes());
        self.infos.extend((self.data.len() as u64).to_le_bytes());
        self.data.extend(bytes);
        self.n_tensors += 1;
        self
    }
    fn build(self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend(self.n_tensors.to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend(self.kvs);
        out.extend(self.infos);
        while !out.len().is_multiple_of(32) {
            out.push(0);
        }
        out.extend(self.data);
        out
    }
}

/// Two Q8_0 blocks (d = 0.5) of values `q`.
fn q8_0(q: &[i8; 64]) -> Vec<u8> {
    q.chunks(32).flat_map(|c| [0x00u8, 0x38].into_iter().chain(c.iter().map(|&v| v as u8))).collect()
}

fn gguf(name: &str, norm: &[f32], q: &[i8; 64], norm_type: u32) -> Gguf {
    let norm_bytes = if norm_type == 0 { f32s(norm) } else { q8_0(&[0; 64]) };
    Gguf::new()
        .kv_str("general.architecture", "gemma3")
        .kv_str("general.name", name)
        .kv_u32("gemma3.block_count", 18)
        .tensor("norm", &[norm.len() as u64], norm_type, &norm_bytes)
        .tensor("w", &[32, 2], 8, &q8_0(q))
}

#[test]
fn gguf_metadata_and_dequantized_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let q: [i8; 64] = std::array::from_fn(|i| i as i8 - 32);
    let mut q2 = q;
    q2[40] += 3;
    let norm: Vec<f32> = (0..64).map(|i| i as f32).collect();
    let mut norm2 = norm.clone();
    norm2[5] = -5.0;
    let a = write(dir.path(), "a.gguf", &gguf("a", &norm, &q, 0).build());
    let b = write(dir.path(), "b.gguf", &gguf("b", &norm2, &q2, 0).build());
    let d = diff_paths(&a, &b).unwrap();
    assert_eq!(d.a.kind, Kind::Gguf);
    assert_eq!(lines(&d, "metadata"), ["~ general.name: \"a\" → \"b\""]);
    assert_eq!(
        lines(&d, "tensors"),
        [
            "~ norm: F32[64]: 1 of 64 elements differ (first at 5), max |Δ| 10",
            "~ w: Q8_0[32, 2]: 1 of 64 elements differ (first at 40), max |Δ| 1.5 [dequantized from Q8_0]"
        ]
    );
    // A requantized tensor (F32 → Q8_0 of zeros) is compared after dequantization.
    let c = write(dir.path(), "c.gguf", &gguf("a", &norm, &q, 8).build());
    let d = diff_paths(&a, &c).unwrap();
    let t = lines(&d, "tensors");
    assert_eq!(t[0], "~ norm: type F32 → Q8_0");
    assert!(t[1].starts_with("~ norm: F32[64]: 63 of 64 elements differ (first at 1), max |Δ| 63 [dequantized from F32 and Q8_0]"), "{t:?}");
    assert!(diff_paths(&a, &a).unwrap().identical());
    let bytes = std::fs::read(&b).unwrap();
    let cut = write(dir.path(), "cut.gguf", &bytes[..bytes.len() - 40]);
    let e = diff_paths(&a, &cut).unwrap_err().to_string();
    assert!(e.contains("cut.gguf"), "{e}");
}

// ------------------------------------------------------------------ kinds and bytes

#[test]
fn other_files_and_mixed_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.txt", b"hello world\n");
    let b = write(dir.path(), "b.txt", b"hello World\n!");
    let d = diff_paths(&a, &b).unwrap();
    assert_eq!(d.a.kind, Kind::Bytes);
    assert_eq!(lines(&d, "file")[0], "~ size: 12 → 13");
    assert_eq!(lines(&d, "file")[2], "· first difference: at byte 6");
    let o = write(dir.path(), "m.onnx", &model().encode_to_vec());
    let d = diff_paths(&o, &a).unwrap();
    assert!(!d.identical());
    assert!(d.render().starts_with(&format!("{} (onnx) vs {} (bytes): differ: different kinds", o.display(), a.display())), "{}", d.render());
    // An ONNX model without the extension is still recognised.
    let o2 = write(dir.path(), "model.bin", &model().encode_to_vec());
    assert_eq!(diff_paths(&o, &o2).unwrap().b.kind, Kind::Onnx);
}

#[test]
fn long_sections_are_capped_in_text_but_complete_in_data() {
    let (_d, d) = onnx_pair(|m| {
        for i in 0..30 {
            m.metadata_props.push(pb::StringStringEntryProto { key: format!("k{i:02}"), value: "v".into() });
        }
    });
    let meta = lines(&d, "metadata_props");
    assert_eq!(meta.len(), MAX_LINES + 1);
    assert_eq!(meta[MAX_LINES], "… and 10 more");
    assert_eq!(d.sections.iter().find(|s| s.name == "metadata_props").unwrap().differences.len(), 30);
}
