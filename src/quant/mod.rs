//! Weight quantizers. Each submodule is one scheme: its layout, its
//! arithmetic, and the reference it was checked against.

pub mod q4;
