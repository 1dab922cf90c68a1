//! Deterministic reference forwards. They fit heads, calibrate quantizers
//! and judge exported graphs, so their bits must not depend on the thread
//! count or CPU (see [`crate::kernels`]).

pub mod encoder;
pub mod gemma3;
pub mod weights;

pub use encoder::{Encoder, Pooling};
pub use weights::{ModelError, Weights};
