//! A node with its input values, and the checked accessors every op rule
//! uses to read inputs and attributes and to build errors naming the node.

use super::{Array, Consts, EvalError, Value};
use crate::graph::{Attr, DType, Node};
use crate::kernels::PackedLinear;

/// One node with its input values, as the op rules see it.
pub(super) struct Args<'a> {
    pub node: &'a Node,
    pub vals: Vec<Option<&'a Value>>,
    /// The model's ai.onnx opset.
    pub opset: i64,
    pub consts: &'a Consts,
}

impl<'a> Args<'a> {
    pub fn input_name(&self, k: usize) -> String {
        self.node.inputs.get(k).cloned().unwrap_or_default()
    }
    /// Input `k`, if given.
    pub fn opt(&self, k: usize) -> Option<&'a Value> {
        self.vals.get(k).copied().flatten()
    }
    /// Input `k`, required.
    pub fn value(&self, k: usize) -> Result<&'a Value, EvalError> {
        self.opt(k).ok_or_else(|| EvalError::MissingInput { node: self.node.name.clone(), index: k })
    }
    pub fn wrong_dtype(&self, k: usize, expected: &str) -> EvalError {
        let got = self.opt(k).map_or(DType::F32, Value::dtype);
        EvalError::WrongDType { node: self.node.name.clone(), index: k, value: self.input_name(k), expected: expected.into(), got }
    }
    /// Input `k` as f32.
    pub fn f32(&self, k: usize) -> Result<&'a Array<f32>, EvalError> {
        self.value(k)?.as_f32().ok_or_else(|| self.wrong_dtype(k, "F32"))
    }
    /// Input `k` as integers (i64 or i32).
    pub fn ints(&self, k: usize) -> Result<Vec<i64>, EvalError> {
        match self.value(k)? {
            Value::I64(a) => Ok(a.data.clone()),
            Value::I32(a) => Ok(a.data.iter().map(|&v| v as i64).collect()),
            _ => Err(self.wrong_dtype(k, "I64 or I32")),
        }
    }
    /// The packed constant right operand at input `k` (`nk`: stored `[N, K]`).
    pub fn packed(&self, k: usize, nk: bool) -> Option<&'a PackedLinear> {
        let name = self.node.inputs.get(k)?;
        self.consts.packed.get(&(self.consts.canonical(name).to_string(), nk))
    }
    pub fn bad_attr(&self, attr: &str, reason: impl Into<String>) -> EvalError {
        EvalError::BadAttr { node: self.node.name.clone(), attr: attr.into(), reason: reason.into() }
    }
    pub fn bad_value(&self, k: usize, reason: impl Into<String>) -> EvalError {
        EvalError::BadValue { node: self.node.name.clone(), index: k, value: self.input_name(k), reason: reason.into() }
    }
    pub fn mismatch(&self, detail: impl Into<String>) -> EvalError {
        EvalError::ShapeMismatch { node: self.node.name.clone(), detail: detail.into() }
    }
    pub fn unsupported(&self, what: impl Into<String>) -> EvalError {
        EvalError::Unsupported { node: self.node.name.clone(), what: what.into() }
    }
    /// `` `name` [2, 3] `` for shape messages.
    pub fn shape_of(&self, k: usize) -> String {
        format!("`{}` {:?}", self.input_name(k), self.opt(k).map_or(&[][..], Value::dims))
    }
    pub fn int_attr(&self, name: &str, default: i64) -> Result<i64, EvalError> {
        match self.node.attrs.get(name) {
            None => Ok(default),
            Some(Attr::Int(v)) => Ok(*v),
            Some(_) => Err(self.bad_attr(name, "not an integer")),
        }
    }
    pub fn float_attr(&self, name: &str, default: f32) -> Result<f32, EvalError> {
        match self.node.attrs.get(name) {
            None => Ok(default),
            Some(Attr::Float(v)) => Ok(*v),
            Some(_) => Err(self.bad_attr(name, "not a float")),
        }
    }
    pub fn ints_attr(&self, name: &str) -> Result<Option<&'a [i64]>, EvalError> {
        match self.node.attrs.get(name) {
            None => Ok(None),
            Some(Attr::Ints(v)) => Ok(Some(v)),
            Some(_) => Err(self.bad_attr(name, "not a list of integers")),
        }
    }
    /// Axes from input `k` when given, else from attribute `axes`.
    pub fn axes(&self, k: usize) -> Result<Option<Vec<i64>>, EvalError> {
        match self.opt(k) {
            Some(_) => self.ints(k).map(Some),
            None => Ok(self.ints_attr("axes")?.map(<[i64]>::to_vec)),
        }
    }
    /// Normalizes axis `a` (from `what`) against `rank`.
    pub fn axis(&self, what: &str, a: i64, rank: usize) -> Result<usize, EvalError> {
        let k = if a < 0 { a + rank as i64 } else { a };
        usize::try_from(k).ok().filter(|&k| k < rank).ok_or_else(|| self.bad_attr(what, format!("axis {a} is out of range for rank {rank}")))
    }
    /// Normalized, sorted, distinct axes.
    pub fn axes_set(&self, what: &str, axes: &[i64], rank: usize) -> Result<Vec<usize>, EvalError> {
        let mut ax = axes.iter().map(|&a| self.axis(what, a, rank)).collect::<Result<Vec<_>, _>>()?;
        ax.sort_unstable();
        if ax.windows(2).any(|w| w[0] == w[1]) {
            return Err(self.bad_attr(what, format!("{axes:?} repeats an axis")));
        }
        Ok(ax)
    }
}
