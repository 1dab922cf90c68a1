//! IR types.

use std::collections::BTreeMap;

/// Element types avac's graphs use (values are ONNX's `DataType` codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum DType {
    /// 32-bit float.
    F32 = 1,
    /// Unsigned byte.
    U8 = 2,
    /// Signed byte.
    I8 = 3,
    /// 32-bit integer.
    I32 = 6,
    /// 64-bit integer.
    I64 = 7,
}

impl DType {
    /// The ONNX `TensorProto.DataType` code.
    pub fn code(self) -> i32 {
        self as i32
    }
    /// From an ONNX code.
    pub fn from_code(code: i32) -> Option<Self> {
        Some(match code {
            1 => DType::F32,
            2 => DType::U8,
            3 => DType::I8,
            6 => DType::I32,
            7 => DType::I64,
            _ => return None,
        })
    }
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::U8 | DType::I8 => 1,
            DType::I64 => 8,
        }
    }
}

/// A constant tensor: little-endian raw bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub dims: Vec<i64>,
    /// Raw little-endian data, `product(dims) * dtype.size()` bytes.
    pub data: Vec<u8>,
}

impl Tensor {
    /// An f32 tensor.
    pub fn f32(dims: &[i64], values: &[f32]) -> Self {
        debug_assert_eq!(dims.iter().product::<i64>() as usize, values.len());
        Tensor { dtype: DType::F32, dims: dims.to_vec(), data: values.iter().flat_map(|v| v.to_le_bytes()).collect() }
    }
    /// An i64 tensor.
    pub fn i64(dims: &[i64], values: &[i64]) -> Self {
        Tensor { dtype: DType::I64, dims: dims.to_vec(), data: values.iter().flat_map(|v| v.to_le_bytes()).collect() }
    }
    /// A scalar f32.
    pub fn scalar_f32(v: f32) -> Self {
        Self::f32(&[], &[v])
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.dims.iter().map(|&d| d.max(0) as usize).product()
    }
    /// Values as f32 (only for F32 tensors).
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        (self.dtype == DType::F32).then(|| self.data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
    /// Values as i64 (only for I64 tensors).
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        (self.dtype == DType::I64).then(|| self.data.chunks_exact(8).map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect())
    }
}

/// A node attribute.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    /// Integer.
    Int(i64),
    /// Float.
    Float(f32),
    /// Integers.
    Ints(Vec<i64>),
    /// String.
    String(String),
    /// Tensor.
    Tensor(Tensor),
}

/// One operator application.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Unique node name.
    pub name: String,
    /// Operator type, e.g. `MatMul`.
    pub op: String,
    /// Operator domain (`""` is ai.onnx).
    pub domain: String,
    /// Input value names (`""` for an omitted optional input).
    pub inputs: Vec<String>,
    /// Output value names.
    pub outputs: Vec<String>,
    /// Attributes by name.
    pub attrs: BTreeMap<String, Attr>,
}

impl Node {
    /// An integer attribute.
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.attrs.get(name) {
            Some(Attr::Int(v)) => Some(*v),
            _ => None,
        }
    }
    /// An integer-list attribute.
    pub fn ints(&self, name: &str) -> Option<&[i64]> {
        match self.attrs.get(name) {
            Some(Attr::Ints(v)) => Some(v),
            _ => None,
        }
    }
}

/// A dimension: fixed or symbolic.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A known size.
    Fixed(i64),
    /// A named symbolic size (`batch`, `seq`).
    Sym(String),
}

/// Type and (optional) shape of a value.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueInfo {
    /// Value name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape, when known.
    pub shape: Option<Vec<Dim>>,
}

/// A computation graph.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    /// Graph name.
    pub name: String,
    /// Inputs, in order.
    pub inputs: Vec<ValueInfo>,
    /// Outputs, in order.
    pub outputs: Vec<ValueInfo>,
    /// Nodes in topological order.
    pub nodes: Vec<Node>,
    /// Constant tensors by name.
    pub initializers: BTreeMap<String, Tensor>,
    /// Inferred types and shapes of intermediate values.
    pub value_info: BTreeMap<String, ValueInfo>,
}

/// A model: a graph plus the opsets and metadata it is written with.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Model {
    /// The graph.
    pub graph: Graph,
    /// Opset version by domain (`""` is ai.onnx).
    pub opsets: BTreeMap<String, i64>,
    /// `metadata_props`.
    pub metadata: BTreeMap<String, String>,
}

impl Graph {
    /// Names consumed by any node or graph output.
    pub fn uses(&self) -> BTreeMap<&str, usize> {
        let mut uses = BTreeMap::new();
        for n in &self.nodes {
            for i in n.inputs.iter().filter(|i| !i.is_empty()) {
                *uses.entry(i.as_str()).or_insert(0) += 1;
            }
        }
        for o in &self.outputs {
            *uses.entry(o.name.as_str()).or_insert(0) += 1;
        }
        uses
    }

    /// Index of the node producing `value`.
    pub fn producer(&self, value: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.outputs.iter().any(|o| o == value))
    }

    /// Indices of nodes consuming `value`.
    pub fn consumers(&self, value: &str) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].inputs.iter().any(|x| x == value)).collect()
    }

    /// Renames every use of `from` (node inputs and graph outputs) to `to`.
    pub fn replace_uses(&mut self, from: &str, to: &str) {
        for n in &mut self.nodes {
            for i in n.inputs.iter_mut().filter(|i| *i == from) {
                *i = to.to_string();
            }
        }
        for o in self.outputs.iter_mut().filter(|o| o.name == from) {
            o.name = to.to_string();
        }
    }

    /// A scalar f32 initializer's value.
    pub fn const_scalar(&self, name: &str) -> Option<f32> {
        let t = self.initializers.get(name)?;
        (t.numel() == 1).then(|| t.to_f32()).flatten().map(|v| v[0])
    }

    /// Counts for summaries: nodes, initializers, initializer bytes.
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.nodes.len(), self.initializers.len(), self.initializers.values().map(|t| t.data.len()).sum())
    }
}

/// First index and length of an ONNX `Slice` over a dim of size `d`
/// (negative bounds count from the end; bounds are clamped as ONNX says).
/// Shared by shape inference and the evaluator so they cannot disagree.
pub fn slice_range(d: i64, start: i64, end: i64, step: i64) -> (i64, i64) {
    if d == 0 {
        return (0, 0);
    }
    let norm = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
    if step > 0 {
        let (b, e) = (norm(start).clamp(0, d), norm(end).clamp(0, d));
        (b, if e > b { (e - b + step - 1) / step } else { 0 })
    } else {
        let (b, e) = (norm(start).clamp(0, d - 1), norm(end).clamp(-1, d - 1));
        (b, if b > e { (b - e - step - 1) / -step } else { 0 })
    }
}
