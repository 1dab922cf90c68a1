//! avac: a hermetic, bit-reproducible compiler for on-device models.
//!
//! Layers, lowest first; a layer only imports layers listed above it:
//!
//! - [`interrupt`]: Ctrl-C and SIGTERM stop the running step and remove this
//!   process's temporaries.
//! - [`atomic`]: outputs written whole or not at all (temp name, fsync, rename);
//!   temporaries of dead processes removed.
//! - [`rng`]: the one deterministic random number generator (fixtures and tests).
//! - [`kernels`]: deterministic math (matmul, norms, activations).
//! - [`formats`]: file formats (safetensors, HF config, tokenizer, wheels, JSON).
//! - [`store`]: pinned sources, fetchers and the content-addressed store.
//! - [`model`]: deterministic reference forwards (BERT, ALBERT).
//! - [`graph`]: the ONNX-level IR, its protobuf I/O and optimization passes.
//! - [`quant`]: quantizers (q4bf16_1) and INT8 calibration.
//! - [`package`]: runtime package writers (tensor cache, tar, ELF checks).
//! - [`fixtures`]: deterministic, architecture-true generated checkpoints.
//! - [`aon`]: the AON pipeline steps (convert, export, optimize, validate).
//! - [`alc`]: the ALC pipeline steps (quantize, package, validate, run).
//! - [`diff`]: where and how much two artifacts differ (ONNX, packages,
//!   safetensors, GGUF, bytes).
//! - [`declaration`]: `rules/targets.toml`, its schema and consistency checks.
//! - [`provenance`]: build definitions and in-toto/SLSA statements.
//! - [`engine`]: the plan of each target as data, `rules/plan.json`, the
//!   local runner and the step actions other engines run.
//! - [`audit`]: rebuild a released artifact from its pins and compare.
//! - [`cli`]: argument parsing, printing and exit codes.
#![deny(missing_docs)]

pub mod alc;
pub mod aon;
pub mod atomic;
pub mod audit;
pub mod cli;
pub mod declaration;
pub mod diff;
pub mod engine;
pub mod fixtures;
pub mod formats;
pub mod graph;
pub mod interrupt;
pub mod kernels;
pub mod model;
pub mod package;
pub mod provenance;
pub mod quant;
pub mod rng;
pub mod store;

/// The avac version recorded in artifacts and provenance.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
