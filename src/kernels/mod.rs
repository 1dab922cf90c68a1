//! Deterministic math kernels.
//!
//! Every kernel here fixes the order of floating-point operations for each
//! output element, whatever the thread count or the CPU's vector width:
//! sums run sequentially over the reduction axis, vectorisation only ever
//! spans *independent* output elements, and no fused multiply-add is used
//! (Rust never contracts `a * b + c` on its own). Transcendentals come from
//! the pure-Rust `libm` crate, never the platform's C library. Together this
//! gives identical bits on x86-64 and aarch64.

pub mod activations;
pub mod cholesky;
pub mod gemm;
pub mod half;
pub mod norm;

pub use activations::{gelu_erf, gelu_tanh, softmax_in_place};
pub use gemm::{linear, PackedLinear};
pub use norm::layer_norm_in_place;
