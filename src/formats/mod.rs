//! File formats avac reads and writes. Every reader treats its input as
//! hostile: sizes are capped, arithmetic is checked, and errors name the file.

pub mod gguf;
pub mod hf_config;
pub mod safetensors;
pub mod tokenizer;
