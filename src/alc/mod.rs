//! The ALC pipeline: a Gemma 3 checkpoint to a validated `q4bf16_1` package
//! for an MLC-style mobile runtime.
//!
//! ```text
//! checkpoint (GGUF | HF dir) ──quantize──▶ parameter dir ──package──▶ .tar [.tar.zst]
//!   checkpoint.rs, hf.rs       quantize.rs   chat_config.rs  package.rs
//!                                  └──compile (compile.rs: TVM) ─▶ model library ──▶ package
//!   calibration text ─────────▶ calibrate.rs (GPTQ, layer by layer)
//!                                                                 │
//!        source ─────────────────────validate (validate.rs)◀──────┘
//! ```
//!
//! Each step is an `avac alc <step>` process (see `src/cli/alc.rs`); the
//! runner chains them for `rule = "alc"` targets.

pub mod calibrate;
pub mod chat_config;
pub mod compile;
pub mod checkpoint;
pub mod hf;
pub mod package;
pub mod quantize;
pub mod validate;

use crate::formats::gguf::GgufFile;
use checkpoint::{Checkpoint, CheckpointError, GgufCheckpoint};
use std::path::Path;

/// Opens a checkpoint: a directory is a Hugging Face checkpoint, a file a
/// GGUF; calls `f` with it.
pub fn with_checkpoint<R, E: From<CheckpointError>>(path: &Path, f: impl FnOnce(&dyn Checkpoint) -> Result<R, E>) -> Result<R, E> {
    if path.is_dir() {
        let c = hf::HfCheckpoint::open(path).map_err(CheckpointError::from)?;
        f(&c)
    } else {
        let g = GgufFile::read(path).map_err(CheckpointError::from)?;
        let c = GgufCheckpoint::new(&g).map_err(|source| CheckpointError::GgufModel { file: path.display().to_string(), source })?;
        f(&c)
    }
}

#[cfg(test)]
mod tests;
