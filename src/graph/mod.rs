//! The ONNX-level IR avac exports, optimizes and writes.
//!
//! A [`Model`] is a plain, ordered value: nodes in topological order,
//! initializers and metadata in `BTreeMap`s, so serialising the same model
//! twice gives the same bytes. [`onnx`] converts it to and from
//! `ModelProto` (tract-onnx's prost types); [`passes`] rewrite it.

pub mod builder;
pub mod eval;
pub mod ir;
pub mod onnx;
pub mod passes;
pub mod summary;

pub use builder::Builder;
pub use ir::{Attr, DType, Dim, Graph, Model, Node, Tensor, ValueInfo};
