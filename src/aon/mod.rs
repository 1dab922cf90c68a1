//! The AON pipeline: an ALBERT or BERT-family encoder becomes an mALBERT
//! intent classifier, exported to ONNX, optimized and validated.
//!
//! Steps, each a pure function from files to files:
//! `convert` (checkpoint → classifier dir) → `export` (→ ONNX) →
//! `optimize` (→ ONNX) → `validate` (→ report, gate).

pub mod classifier;
pub mod convert;
pub mod export;
pub mod head;
pub mod intents;
pub mod prune;
pub mod quantize;
pub mod validate;
