//! The AON pipeline: an ALBERT or BERT-family encoder becomes an mALBERT
//! intent classifier, exported to ONNX, optimized and validated.

pub mod prune;
