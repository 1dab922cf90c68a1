//! ONNX initializers: decoding `TensorProto` data of any storage field into
//! little-endian bytes, and comparing two initializers value by value,
//! int8/uint8 weights also after the `DequantizeLinear` that consumes them.
//!
//! ```text
//! data_type  storage accepted                         compared as
//! FLOAT      raw_data | float_data                    f32
//! DOUBLE     raw_data | double_data                   f64
//! FLOAT16, BFLOAT16, INT8/16, UINT8/16, BOOL
//!            raw_data | int32_data (one value each)   their own type
//! INT32      raw_data | int32_data                    i32
//! INT64      raw_data | int64_data                    i64
//! UINT32/64  raw_data | uint64_data                   their own type
//! COMPLEX64/128  raw_data | float_data/double_data    f32/f64 pairs
//! FLOAT8*, (U)INT4, FLOAT4E2M1  raw_data              bytes
//! STRING     string_data                              whole strings
//! external data                                       not read: its location is compared
//! ```
//!
//! Any other combination, or data whose length does not match the dims, is
//! a [`DiffError::OnnxContent`] naming the file and the tensor.

use super::stats::{compare_bytes, compare_raw, Acc, Num};
use super::{text, DiffError, Difference};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use tract_onnx::pb;

/// A tensor's element layout: a numeric type with how many of its values
/// make one element (2 for complex), or opaque bytes with bits per element.
#[derive(Clone, Copy)]
enum Layout {
    Num(Num, usize),
    Opaque(usize),
    Strings,
}

/// ONNX `TensorProto.DataType` names, lower-case as in the ONNX docs' tables.
pub(super) fn dtype_name(code: i32) -> String {
    match pb::tensor_proto::DataType::try_from(code) {
        Ok(pb::tensor_proto::DataType::Float) => "float32".into(),
        Ok(pb::tensor_proto::DataType::Double) => "float64".into(),
        Ok(t) => t.as_str_name().to_ascii_lowercase(),
        Err(_) => format!("type{code}"),
    }
}

fn layout(code: i32) -> Option<Layout> {
    use pb::tensor_proto::DataType as T;
    Some(match T::try_from(code).ok()? {
        T::Float => Layout::Num(Num::F32, 1),
        T::Double => Layout::Num(Num::F64, 1),
        T::Float16 => Layout::Num(Num::F16, 1),
        T::Bfloat16 => Layout::Num(Num::BF16, 1),
        T::Int8 => Layout::Num(Num::I8, 1),
        T::Int16 => Layout::Num(Num::I16, 1),
        T::Int32 => Layout::Num(Num::I32, 1),
        T::Int64 => Layout::Num(Num::I64, 1),
        T::Uint8 => Layout::Num(Num::U8, 1),
        T::Uint16 => Layout::Num(Num::U16, 1),
        T::Uint32 => Layout::Num(Num::U32, 1),
        T::Uint64 => Layout::Num(Num::U64, 1),
        T::Bool => Layout::Num(Num::Bool, 1),
        T::Complex64 => Layout::Num(Num::F32, 2),
        T::Complex128 => Layout::Num(Num::F64, 2),
        T::Float8e4m3fn | T::Float8e4m3fnuz | T::Float8e5m2 | T::Float8e5m2fnuz => Layout::Opaque(8),
        T::Uint4 | T::Int4 | T::Float4e2m1 => Layout::Opaque(4),
        T::String => Layout::Strings,
        T::Undefined => return None,
    })
}

/// A decoded tensor's data.
pub(super) enum Data<'m> {
    /// Numbers, little-endian.
    Num(Num, Cow<'m, [u8]>),
    /// Bytes of a type that is not interpreted.
    Opaque(&'m [u8]),
    /// One byte string per element.
    Strings(&'m [Vec<u8>]),
    /// Stored outside the model: the `external_data` entries.
    External(Vec<(String, String)>),
}

/// An initializer, validated.
pub(super) struct Tensor<'m> {
    pub code: i32,
    pub dims: &'m [i64],
    pub data: Data<'m>,
}

impl Tensor<'_> {
    /// `float32[64, 128]`.
    pub fn layout(&self) -> String {
        format!("{}{}", dtype_name(self.code), text::dims(self.dims))
    }
}

/// Decodes and checks `t` of the model in `file`.
pub(super) fn decode<'m>(t: &'m pb::TensorProto, file: &Path) -> Result<Tensor<'m>, DiffError> {
    let bad = |what: String| DiffError::OnnxContent { file: file.to_path_buf(), what: format!("initializer {:?}: {what}", t.name) };
    let numel = t.dims.iter().try_fold(1usize, |n, &d| usize::try_from(d).ok().and_then(|d| n.checked_mul(d)));
    let numel = numel.ok_or_else(|| bad(format!("invalid dims {:?}", t.dims)))?;
    let lay = layout(t.data_type).ok_or_else(|| bad(format!("unknown data type {}", t.data_type)))?;
    let external = t.data_location == Some(pb::tensor_proto::DataLocation::External as i32) || !t.external_data.is_empty();
    let data = if external {
        Data::External(t.external_data.iter().map(|e| (e.key.clone(), e.value.clone())).collect())
    } else {
        match lay {
            Layout::Strings => {
                if t.string_data.len() != numel {
                    return Err(bad(format!("{} strings for dims {:?}", t.string_data.len(), t.dims)));
                }
                Data::Strings(&t.string_data)
            }
            Layout::Opaque(bits) => {
                let want = numel.checked_mul(bits).map(|b| b.div_ceil(8));
                if Some(t.raw_data.len()) != want {
                    return Err(bad(format!("{} data bytes for dims {:?}", t.raw_data.len(), t.dims)));
                }
                Data::Opaque(&t.raw_data)
            }
            Layout::Num(num, per) => {
                let values = numel.checked_mul(per).ok_or_else(|| bad(format!("invalid dims {:?}", t.dims)))?;
                let bytes = typed_bytes(t, num, values).map_err(bad)?;
                Data::Num(num, bytes)
            }
        }
    };
    Ok(Tensor { code: t.data_type, dims: &t.dims, data })
}

/// The data of a numeric tensor as little-endian bytes, from whichever field holds it.
fn typed_bytes(t: &pb::TensorProto, num: Num, values: usize) -> Result<Cow<'_, [u8]>, String> {
    let want = values.checked_mul(num.size()).ok_or_else(|| format!("invalid dims {:?}", t.dims))?;
    let count = |n: usize| if n == values { Ok(()) } else { Err(format!("{n} values for dims {:?} ({values} expected)", t.dims)) };
    let bytes: Cow<[u8]> = if !t.raw_data.is_empty() || values == 0 {
        if t.raw_data.len() != want {
            return Err(format!("{} data bytes for dims {:?} ({want} expected)", t.raw_data.len(), t.dims));
        }
        Cow::Borrowed(&t.raw_data)
    } else {
        match num {
            Num::F32 if !t.float_data.is_empty() => {
                count(t.float_data.len())?;
                Cow::Owned(t.float_data.iter().flat_map(|v| v.to_le_bytes()).collect())
            }
            Num::F64 if !t.double_data.is_empty() => {
                count(t.double_data.len())?;
                Cow::Owned(t.double_data.iter().flat_map(|v| v.to_le_bytes()).collect())
            }
            Num::I64 if !t.int64_data.is_empty() => {
                count(t.int64_data.len())?;
                Cow::Owned(t.int64_data.iter().flat_map(|v| v.to_le_bytes()).collect())
            }
            Num::U32 | Num::U64 if !t.uint64_data.is_empty() => {
                count(t.uint64_data.len())?;
                let size = num.size();
                Cow::Owned(t.uint64_data.iter().flat_map(|v| v.to_le_bytes()[..size].to_vec()).collect())
            }
            Num::I32 | Num::I16 | Num::U16 | Num::F16 | Num::BF16 | Num::I8 | Num::U8 | Num::Bool if !t.int32_data.is_empty() => {
                count(t.int32_data.len())?;
                let size = num.size();
                Cow::Owned(t.int32_data.iter().flat_map(|v| v.to_le_bytes()[..size].to_vec()).collect())
            }
            _ => return Err(format!("no data for dims {:?} in the fields a {:?} tensor may use", t.dims, num)),
        }
    };
    Ok(bytes)
}

/// Where a `DequantizeLinear` finds the scale and zero point of a weight.
pub(super) struct DqNode {
    scale: String,
    zero_point: Option<String>,
    axis: i64,
    block_size: i64,
}

/// The first `DequantizeLinear` reading each tensor, by the tensor's name.
pub(super) fn dq_nodes(g: &pb::GraphProto) -> BTreeMap<String, DqNode> {
    let mut out = BTreeMap::new();
    for n in g.node.iter().filter(|n| n.op_type == "DequantizeLinear" && (n.domain.is_empty() || n.domain == "ai.onnx")) {
        let (Some(x), Some(scale)) = (n.input.first(), n.input.get(1)) else { continue };
        let attr = |name: &str, default: i64| n.attribute.iter().find(|a| a.name == name).map_or(default, |a| a.i);
        let zero_point = n.input.get(2).filter(|z| !z.is_empty()).cloned();
        out.entry(x.clone()).or_insert(DqNode { scale: scale.clone(), zero_point, axis: attr("axis", 1), block_size: attr("block_size", 0) });
    }
    out
}

/// Per-tensor or per-axis dequantization parameters, resolved to values.
struct Dq {
    scale: Vec<f32>,
    zero_point: Vec<i128>,
    /// Length of the quantized axis (1 for per-tensor).
    axis_len: usize,
    /// Elements per step along the axis.
    inner: usize,
}

impl Dq {
    fn value(&self, q: i128, i: usize) -> f32 {
        let c = if self.axis_len == 1 { 0 } else { (i / self.inner) % self.axis_len };
        (q - self.zero_point[c]) as f32 * self.scale[c]
    }
}

fn resolve_dq(node: &DqNode, dims: &[i64], inits: &BTreeMap<&str, Tensor>) -> Option<Dq> {
    if node.block_size != 0 {
        return None;
    }
    let Data::Num(snum, sbytes) = &inits.get(node.scale.as_str())?.data else { return None };
    if !snum.is_float() {
        return None;
    }
    let n = sbytes.len() / snum.size();
    let scale: Vec<f32> = (0..n).map(|i| snum.f64_at(sbytes, i) as f32).collect();
    let zero_point = match &node.zero_point {
        None => vec![0; n],
        Some(z) => {
            let Data::Num(znum, zbytes) = &inits.get(z.as_str())?.data else { return None };
            let zp: Option<Vec<i128>> = (0..zbytes.len() / znum.size()).map(|i| znum.int_at(zbytes, i)).collect();
            zp.filter(|z| z.len() == n)?
        }
    };
    let (axis_len, inner) = if n == 1 {
        (1, 1)
    } else {
        let rank = i64::try_from(dims.len()).ok()?;
        let axis = if node.axis < 0 { node.axis + rank } else { node.axis };
        let axis = usize::try_from(axis).ok().filter(|&a| a < dims.len())?;
        if usize::try_from(dims[axis]).ok()? != n {
            return None;
        }
        (n, dims[axis + 1..].iter().try_fold(1usize, |p, &d| p.checked_mul(usize::try_from(d).ok()?))?)
    };
    (n > 0).then_some(Dq { scale, zero_point, axis_len, inner })
}

/// Whether two tensors hold the same values (bitwise).
fn same_data(a: &Tensor, b: &Tensor) -> bool {
    a.code == b.code
        && a.dims == b.dims
        && match (&a.data, &b.data) {
            (Data::Num(_, x), Data::Num(_, y)) => x == y,
            (Data::Opaque(x), Data::Opaque(y)) => x == y,
            (Data::Strings(x), Data::Strings(y)) => x == y,
            (Data::External(x), Data::External(y)) => x == y,
            _ => false,
        }
}

/// One side of an initializer comparison: the model's initializers and its
/// `DequantizeLinear` consumers.
pub(super) struct Side<'m> {
    pub inits: BTreeMap<&'m str, Tensor<'m>>,
    pub dq: BTreeMap<String, DqNode>,
}

impl Side<'_> {
    /// Whether the scale and zero point of `name`'s `DequantizeLinear` are the same in both.
    fn same_dq_params(&self, other: &Side, name: &str) -> bool {
        fn get<'s>(s: &'s Side, t: &Option<String>) -> Option<Option<&'s Tensor<'s>>> {
            t.as_ref().map(|t| s.inits.get(t.as_str()))
        }
        match (self.dq.get(name), other.dq.get(name)) {
            (Some(x), Some(y)) => {
                let scales = match (self.inits.get(x.scale.as_str()), other.inits.get(y.scale.as_str())) {
                    (Some(p), Some(q)) => same_data(p, q),
                    _ => false,
                };
                let zps = match (get(self, &x.zero_point), get(other, &y.zero_point)) {
                    (None, None) => true,
                    (Some(Some(p)), Some(Some(q))) => same_data(p, q),
                    _ => false,
                };
                scales && zps && x.axis == y.axis && x.block_size == y.block_size
            }
            (None, None) => true,
            _ => false,
        }
    }
}

/// The differences of the initializers of two models, by name.
pub(super) fn diff(a: &Side, b: &Side) -> Vec<Difference> {
    let mut out = Vec::new();
    for (name, ta) in &a.inits {
        let Some(tb) = b.inits.get(name) else {
            out.push(Difference::Removed { item: name.to_string(), detail: ta.layout() });
            continue;
        };
        let item = || name.to_string();
        if ta.code != tb.code {
            out.push(Difference::Changed { item: item(), field: "dtype".into(), a: dtype_name(ta.code), b: dtype_name(tb.code) });
        }
        if ta.dims != tb.dims {
            out.push(Difference::Changed { item: item(), field: "dims".into(), a: text::dims(ta.dims), b: text::dims(tb.dims) });
        }
        if ta.code != tb.code || ta.dims != tb.dims || (same_data(ta, tb) && a.same_dq_params(b, name)) {
            continue;
        }
        out.extend(values(name, ta, tb, a, b));
    }
    for (name, tb) in &b.inits {
        if !a.inits.contains_key(name) {
            out.push(Difference::Added { item: name.to_string(), detail: tb.layout() });
        }
    }
    out
}

/// The value comparison of two initializers of the same dtype and dims.
fn values(name: &str, ta: &Tensor, tb: &Tensor, a: &Side, b: &Side) -> Option<Difference> {
    let mut acc = Acc::default();
    let (unit, basis) = match (&ta.data, &tb.data) {
        (Data::Num(num, x), Data::Num(_, y)) => {
            compare_raw(*num, x, y, &mut acc);
            ("elements", None)
        }
        (Data::Opaque(x), Data::Opaque(y)) => {
            compare_bytes(x, y, &mut acc);
            ("bytes", None)
        }
        (Data::Strings(x), Data::Strings(y)) => {
            x.iter().zip(y.iter()).for_each(|(p, q)| acc.opaque(p == q));
            ("elements", None)
        }
        (Data::External(x), Data::External(y)) => {
            let show = |v: &[(String, String)]| text::short(&v.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "));
            return (x != y).then(|| Difference::Changed { item: name.into(), field: "external data".into(), a: show(x), b: show(y) });
        }
        (Data::External(_), _) | (_, Data::External(_)) => {
            return Some(Difference::Note { item: name.into(), text: "stored as external data in one model only: values not compared".into() });
        }
        _ => return None,
    };
    let mut v = acc.values(unit, basis);
    if let (Data::Num(num, x), Data::Num(_, y)) = (&ta.data, &tb.data) {
        let dims = ta.dims;
        let params = (a.dq.get(name).and_then(|n| resolve_dq(n, dims, &a.inits)), b.dq.get(name).and_then(|n| resolve_dq(n, dims, &b.inits)));
        if let (Some(pa), Some(pb)) = params {
            if !num.is_float() {
                let mut d = Acc::default();
                for i in 0..x.len().min(y.len()) / num.size() {
                    if let (Some(qa), Some(qb)) = (num.int_at(x, i), num.int_at(y, i)) {
                        d.f32(pa.value(qa, i), pb.value(qb, i));
                    }
                }
                v.dequantized = Some(d.dequantized("DequantizeLinear"));
            }
        }
    }
    let dq_differs = v.dequantized.as_ref().is_some_and(|d| d.differing > 0);
    (v.differing > 0 || dq_differs).then(|| Difference::Values { item: name.into(), layout: ta.layout(), values: v })
}
