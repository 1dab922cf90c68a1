//! Which kind of file a path holds, from its first bytes.
//!
//! ```text
//! GGUF         "GGUF" at 0
//! ustar        "ustar" at 257 (a tar header's magic)
//! tar.zst      28 B5 2F FD at 0 (a zstd frame; its content must be a ustar archive)
//! safetensors  u64 LE n at 0 with n <= MAX_HEADER_LEN, then '{' at 8
//! ONNX         no magic: the extension .onnx, or a first byte 0x08 (field 1,
//!              ir_version, as every writer emits it) and a ModelProto that
//!              decodes with a graph
//! ```
//!
//! A file whose content shows no magic but whose extension names a kind
//! (`.gguf`, `.safetensors`, `.tar`, `.zst`) is given to that kind's reader,
//! so that a file too short to show its magic is reported as the damaged
//! file it is rather than compared as bytes.

use super::{io_err, DiffError};
use serde::Serialize;
use std::io::Read;
use std::path::Path;

/// The kind of a file, as detected from its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Kind {
    /// An ONNX `ModelProto`.
    #[serde(rename = "onnx")]
    Onnx,
    /// A POSIX ustar archive (an ALC package).
    #[serde(rename = "tar")]
    Tar,
    /// A zstd-compressed ustar archive.
    #[serde(rename = "tar.zst")]
    TarZst,
    /// A safetensors checkpoint.
    #[serde(rename = "safetensors")]
    Safetensors,
    /// A GGUF checkpoint.
    #[serde(rename = "gguf")]
    Gguf,
    /// Anything else: compared as bytes.
    #[serde(rename = "bytes")]
    Bytes,
}

impl Kind {
    /// The name used in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Onnx => "onnx",
            Kind::Tar => "tar",
            Kind::TarZst => "tar.zst",
            Kind::Safetensors => "safetensors",
            Kind::Gguf => "gguf",
            Kind::Bytes => "bytes",
        }
    }
}

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// The kind of the file at `path`.
pub(super) fn detect(path: &Path) -> Result<Kind, DiffError> {
    let mut head = Vec::with_capacity(512);
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    file.take(512).read_to_end(&mut head).map_err(io_err(path))?;
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    if head.starts_with(b"GGUF") {
        return Ok(Kind::Gguf);
    }
    if head.len() >= 262 && &head[257..262] == b"ustar" {
        return Ok(Kind::Tar);
    }
    if head.starts_with(&ZSTD_MAGIC) {
        return Ok(Kind::TarZst);
    }
    if head.len() > 8 && head[8] == b'{' {
        let mut n = [0u8; 8];
        n.copy_from_slice(&head[..8]);
        if u64::from_le_bytes(n) <= crate::formats::safetensors::MAX_HEADER_LEN {
            return Ok(Kind::Safetensors);
        }
    }
    if ext == "onnx" {
        return Ok(Kind::Onnx);
    }
    if head.first() == Some(&0x08) && super::onnx::looks_like_onnx(path)? {
        return Ok(Kind::Onnx);
    }
    Ok(match ext.as_str() {
        "gguf" => Kind::Gguf,
        "safetensors" => Kind::Safetensors,
        "tar" => Kind::Tar,
        "zst" => Kind::TarZst,
        _ => Kind::Bytes,
    })
}
