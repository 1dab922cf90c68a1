//! `Model` ⇄ `ModelProto` (ONNX protobuf, via tract-onnx's prost types).
//!
//! Writing is deterministic: prost encodes fields in tag order and repeated
//! fields in the order given; nodes keep their topological order and
//! initializers, value infos and metadata are written sorted by name.
//! Tensors are always stored as `raw_data`. Reading accepts `raw_data`,
//! `float_data` and `int64_data`, refuses external data, and caps sizes.

use super::ir::{Attr, DType, Dim, Graph, Model, Node, Tensor, ValueInfo};
use prost::Message;
use std::collections::BTreeMap;
use tract_onnx::pb;

/// ONNX IR version written (ONNX 1.13+, matches opset 17).
pub const IR_VERSION: i64 = 8;
/// Producer name written into models.
pub const PRODUCER: &str = "avac";

/// Failures decoding a model.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// Not a protobuf `ModelProto`.
    #[error("{file}: not an ONNX model: {source}")]
    Decode {
        /// The file.
        file: String,
        /// The decoder's error.
        source: prost::DecodeError,
    },
    /// A construct avac does not read.
    #[error("{file}: unsupported ONNX content: {what}")]
    Unsupported {
        /// The file.
        file: String,
        /// What was found.
        what: String,
    },
}

fn vi_to_proto(v: &ValueInfo) -> pb::ValueInfoProto {
    let shape = v.shape.as_ref().map(|dims| pb::TensorShapeProto {
        dim: dims
            .iter()
            .map(|d| pb::tensor_shape_proto::Dimension {
                denotation: String::new(),
                value: Some(match d {
                    Dim::Fixed(n) => pb::tensor_shape_proto::dimension::Value::DimValue(*n),
                    Dim::Sym(s) => pb::tensor_shape_proto::dimension::Value::DimParam(s.clone()),
                }),
            })
            .collect(),
    });
    pb::ValueInfoProto {
        name: v.name.clone(),
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor { elem_type: v.dtype.code(), shape })),
        }),
        doc_string: String::new(),
    }
}

fn tensor_to_proto(name: &str, t: &Tensor) -> pb::TensorProto {
    pb::TensorProto { name: name.to_string(), dims: t.dims.clone(), data_type: t.dtype.code(), raw_data: t.data.clone(), ..Default::default() }
}

fn attr_to_proto(name: &str, a: &Attr) -> pb::AttributeProto {
    use pb::attribute_proto::AttributeType as T;
    let mut p = pb::AttributeProto { name: name.to_string(), ..Default::default() };
    match a {
        Attr::Int(i) => {
            p.i = *i;
            p.r#type = T::Int as i32;
        }
        Attr::Float(f) => {
            p.f = *f;
            p.r#type = T::Float as i32;
        }
        Attr::Ints(v) => {
            p.ints = v.clone();
            p.r#type = T::Ints as i32;
        }
        Attr::String(s) => {
            p.s = s.as_bytes().to_vec();
            p.r#type = T::String as i32;
        }
        Attr::Tensor(t) => {
            p.t = Some(tensor_to_proto("", t));
            p.r#type = T::Tensor as i32;
        }
    }
    p
}

/// Converts a model to its protobuf form.
pub fn to_proto(m: &Model) -> pb::ModelProto {
    let g = &m.graph;
    let graph = pb::GraphProto {
        name: g.name.clone(),
        node: g
            .nodes
            .iter()
            .map(|n| pb::NodeProto {
                input: n.inputs.clone(),
                output: n.outputs.clone(),
                name: n.name.clone(),
                op_type: n.op.clone(),
                domain: n.domain.clone(),
                attribute: n.attrs.iter().map(|(k, v)| attr_to_proto(k, v)).collect(),
                doc_string: String::new(),
            })
            .collect(),
        initializer: g.initializers.iter().map(|(k, t)| tensor_to_proto(k, t)).collect(),
        input: g.inputs.iter().map(vi_to_proto).collect(),
        output: g.outputs.iter().map(vi_to_proto).collect(),
        value_info: g.value_info.values().map(vi_to_proto).collect(),
        ..Default::default()
    };
    pb::ModelProto {
        ir_version: IR_VERSION,
        opset_import: m.opsets.iter().map(|(d, v)| pb::OperatorSetIdProto { domain: d.clone(), version: *v }).collect(),
        producer_name: PRODUCER.into(),
        producer_version: crate::VERSION.into(),
        graph: Some(graph),
        metadata_props: m.metadata.iter().map(|(k, v)| pb::StringStringEntryProto { key: k.clone(), value: v.clone() }).collect(),
        ..Default::default()
    }
}

/// Serialises a model.
pub fn to_bytes(m: &Model) -> Vec<u8> {
    to_proto(m).encode_to_vec()
}

/// Parses a model written by avac or a peer (the subset of ONNX avac uses).
pub fn from_bytes(bytes: &[u8], file: &str) -> Result<Model, OnnxError> {
    let p = pb::ModelProto::decode(bytes).map_err(|source| OnnxError::Decode { file: file.into(), source })?;
    let unsupported = |what: String| OnnxError::Unsupported { file: file.into(), what };
    let g = p.graph.ok_or_else(|| unsupported("model has no graph".into()))?;
    let tensor = |t: &pb::TensorProto| -> Result<Tensor, OnnxError> {
        let dtype = DType::from_code(t.data_type).ok_or_else(|| unsupported(format!("tensor {} has data type {}", t.name, t.data_type)))?;
        if !t.external_data.is_empty() {
            return Err(unsupported(format!("tensor {} uses external data", t.name)));
        }
        let numel = t.dims.iter().try_fold(1usize, |a, &d| usize::try_from(d).ok().and_then(|d| a.checked_mul(d)));
        let numel = numel.ok_or_else(|| unsupported(format!("tensor {} has invalid dims {:?}", t.name, t.dims)))?;
        let data = if !t.raw_data.is_empty() {
            t.raw_data.clone()
        } else if !t.float_data.is_empty() {
            t.float_data.iter().flat_map(|v| v.to_le_bytes()).collect()
        } else if !t.int64_data.is_empty() {
            t.int64_data.iter().flat_map(|v| v.to_le_bytes()).collect()
        } else {
            Vec::new()
        };
        if Some(data.len()) != numel.checked_mul(dtype.size()) {
            return Err(unsupported(format!("tensor {}: {} data bytes for dims {:?}", t.name, data.len(), t.dims)));
        }
        Ok(Tensor { dtype, dims: t.dims.clone(), data })
    };
    let vi = |v: &pb::ValueInfoProto| -> Result<ValueInfo, OnnxError> {
        let Some(pb::TypeProto { value: Some(pb::type_proto::Value::TensorType(tt)), .. }) = &v.r#type else {
            return Err(unsupported(format!("value {} is not a tensor", v.name)));
        };
        let dtype = DType::from_code(tt.elem_type).ok_or_else(|| unsupported(format!("value {} has type {}", v.name, tt.elem_type)))?;
        let shape = tt.shape.as_ref().map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(pb::tensor_shape_proto::dimension::Value::DimValue(n)) => Dim::Fixed(*n),
                    Some(pb::tensor_shape_proto::dimension::Value::DimParam(s)) => Dim::Sym(s.clone()),
                    None => Dim::Sym("?".into()),
                })
                .collect()
        });
        Ok(ValueInfo { name: v.name.clone(), dtype, shape })
    };
    let mut nodes = Vec::with_capacity(g.node.len());
    for n in &g.node {
        let mut attrs = BTreeMap::new();
        for a in &n.attribute {
            use pb::attribute_proto::AttributeType as T;
            let v = match T::try_from(a.r#type).unwrap_or(T::Undefined) {
                T::Int => Attr::Int(a.i),
                T::Float => Attr::Float(a.f),
                T::Ints => Attr::Ints(a.ints.clone()),
                T::String => Attr::String(String::from_utf8_lossy(&a.s).into_owned()),
                T::Tensor => Attr::Tensor(tensor(a.t.as_ref().ok_or_else(|| unsupported(format!("attribute {} has no tensor", a.name)))?)?),
                other => return Err(unsupported(format!("node {} attribute {} of type {:?}", n.name, a.name, other))),
            };
            attrs.insert(a.name.clone(), v);
        }
        nodes.push(Node { name: n.name.clone(), op: n.op_type.clone(), domain: n.domain.clone(), inputs: n.input.clone(), outputs: n.output.clone(), attrs });
    }
    let graph = Graph {
        name: g.name.clone(),
        inputs: g.input.iter().map(vi).collect::<Result<_, _>>()?,
        outputs: g.output.iter().map(vi).collect::<Result<_, _>>()?,
        nodes,
        initializers: g.initializer.iter().map(|t| Ok((t.name.clone(), tensor(t)?))).collect::<Result<_, OnnxError>>()?,
        value_info: g.value_info.iter().map(|v| Ok((v.name.clone(), vi(v)?))).collect::<Result<_, OnnxError>>()?,
    };
    Ok(Model {
        graph,
        opsets: p.opset_import.iter().map(|o| (o.domain.clone(), o.version)).collect(),
        metadata: p.metadata_props.iter().map(|e| (e.key.clone(), e.value.clone())).collect(),
    })
}
