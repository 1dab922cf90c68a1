//! Package writers: the files an on-device runtime loads, written
//! deterministically and verifiable after the fact.
//!
//! - [`tensor_cache`]: MLC's `tensor-cache.json` + `params_shard_N.bin`.
//! - [`tar`]: the deterministic ustar archive (and its pinned `.tar.zst`).
//! - [`elf`]: ABI checks of native libraries before they are packaged.
//! - [`ar`]: the static archive reader (the model library's objects are checked one by one).

/// The file inside a package holding the build definition it was built
/// from (compact JSON; see `avac::provenance`).
pub const BUILD_DEFINITION_FILE: &str = "avac-build-definition.json";

pub mod ar;
pub mod elf;
pub mod tar;
pub mod tensor_cache;
