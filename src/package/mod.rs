//! Package writers: the files an on-device runtime loads, written
//! deterministically and verifiable after the fact.

pub mod tensor_cache;
