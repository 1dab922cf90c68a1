//! Quantizers. Each submodule is one scheme or one step of one: its layout,
//! its arithmetic, and the reference it was checked against.
//!
//! - [`q4`]: MLC-LLM's `q4bf16_1` 4-bit group quantization (ALC).
//! - [`calibrate`]: activation range calibration and int8 weight
//!   quantization for static INT8 (AON).

pub mod calibrate;
pub mod q4;
