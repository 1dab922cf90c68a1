//! `avac diff`: where, and by how much, two model artifacts differ.
//!
//! An auditor holds two versions of a released artifact (a rebuild and the
//! release, or two releases) and asks whether they are the same bits and, if
//! not, what changed. [`diff_paths`] answers at two levels:
//!
//! - **bytes**, for every pair: size, sha256, first differing offset;
//! - **meaning**, for the formats avac writes or reads, detected from their
//!   content (magic bytes; the extension is only a hint for files too damaged
//!   to show their magic):
//!
//! | kind | what is compared |
//! | --- | --- |
//! | ONNX (`ModelProto`) | model fields, opset imports, `metadata_props`, graph inputs/outputs, nodes (by name, else by position among unnamed nodes), initializers (dtype, dims, values; int8/uint8 weights also after their `DequantizeLinear`, each in its own model's scale) |
//! | ustar package (`.tar`, `.tar.zst`) | entries (type, mode, uid/gid, mtime, size, sha256); `tensor-cache.json` records and their bytes (`q4bf16_1` weights as nibbles and after dequantization); `mlc-chat-config.json` keys |
//! | safetensors | `__metadata__`, tensors (dtype, shape, values) |
//! | GGUF | version, alignment, metadata keys, tensors (type, dims, values dequantized to f32) |
//! | anything else | bytes only |
//!
//! Two files of different kinds are compared as bytes, and the report says
//! so. A pair is [identical](Diff::identical) only when the bytes are; two
//! files that encode the same content differently differ at the byte level
//! with no semantic difference listed, which is itself an answer for a
//! reproducibility audit.
//!
//! # Values
//!
//! Element comparisons are bitwise (`-0.0` and `0.0` differ; a NaN equals a
//! NaN with the same bits). The largest absolute difference is taken over
//! the differing pairs where both values are finite; pairs with a NaN or an
//! infinity are counted apart. Tensors are read one at a time (GGUF in
//! row chunks), so memory follows the largest tensor, not the files.
//!
//! # Determinism
//!
//! The [`Diff`] is a function of the two files' bytes and the paths given:
//! sections and differences come in a fixed order (by name where there are
//! names), and the only floats are finite maxima, so its JSON is stable.
//!
//! # Hostile input
//!
//! Every file is parsed by the crate's strict readers (protobuf decoding,
//! [`crate::package::tar::list`], [`crate::formats::safetensors`],
//! [`crate::formats::gguf`]); lengths and offsets are checked before any
//! read. A truncated or corrupt file is a [`DiffError`] naming it.

mod bytes;
mod detect;
mod gguf;
mod onnx;
mod onnx_values;
mod render;
mod safetensors;
mod stats;
mod tar;
mod tensor_cache;
mod text;

#[cfg(test)]
mod tests;

use serde::Serialize;
use std::path::{Path, PathBuf};

pub use detect::Kind;
pub use render::MAX_LINES;

/// Why two files could not be compared; each names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// A file could not be opened or read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file taken for ONNX is not a protobuf `ModelProto`.
    #[error("{file}: not an ONNX model: {source}")]
    OnnxDecode {
        /// The file.
        file: PathBuf,
        /// The decoder's error.
        source: prost::DecodeError,
    },
    /// An ONNX model whose content is inconsistent (e.g. tensor data that
    /// does not match its dims).
    #[error("{file}: {what}")]
    OnnxContent {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A tar archive that the strict reader refuses (names the archive).
    #[error(transparent)]
    Tar(#[from] crate::package::tar::TarError),
    /// A `.tar.zst` that does not decompress, or whose tar is refused.
    #[error("{file}: {what}")]
    Compressed {
        /// The compressed file.
        file: PathBuf,
        /// What went wrong.
        what: String,
    },
    /// An entry of a package that is inconsistent (a `tensor-cache.json`
    /// that does not parse, a record outside its shard, a missing shard).
    #[error("{file}: {entry}: {what}")]
    Package {
        /// The archive.
        file: PathBuf,
        /// The entry inside it.
        entry: String,
        /// What is wrong.
        what: String,
    },
    /// A safetensors file the reader refuses (names the file).
    #[error(transparent)]
    Safetensors(#[from] crate::formats::safetensors::SafetensorsError),
    /// A GGUF file the reader refuses (names the file).
    #[error(transparent)]
    Gguf(#[from] crate::formats::gguf::GgufError),
}

fn io_err(file: &Path) -> impl FnOnce(std::io::Error) -> DiffError + '_ {
    move |source| DiffError::Io { file: file.to_path_buf(), source }
}

/// One side of the comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSummary {
    /// The path as given.
    pub path: String,
    /// The kind detected from its content.
    pub kind: Kind,
    /// Its length in bytes.
    pub bytes: u64,
    /// Hex sha256 of its bytes.
    pub sha256: String,
}

/// The result of comparing two files.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diff {
    /// The first file ("A", the reference).
    pub a: FileSummary,
    /// The second file ("B"); changes read A → B.
    pub b: FileSummary,
    /// Whether the two files are the same bytes (see [`Diff::identical`]).
    pub identical: bool,
    /// The differences, grouped; empty when the files are identical.
    pub sections: Vec<Section>,
}

/// Differences of one part of the files (`file`, `metadata_props`,
/// `initializers`, `entries`, `tensors`, …), in a fixed order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Section {
    /// The part of the files.
    pub name: String,
    /// What differs there.
    pub differences: Vec<Difference>,
}

/// One difference. `item` names what differs (a key, a node, a tensor, an
/// entry); values are shown as text, long ones cut around their first
/// difference.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Difference {
    /// Only B has the item.
    Added {
        /// The item.
        item: String,
        /// A short description of it in B.
        detail: String,
    },
    /// Only A has the item.
    Removed {
        /// The item.
        item: String,
        /// A short description of it in A.
        detail: String,
    },
    /// A field of the item differs.
    Changed {
        /// The item.
        item: String,
        /// The field; empty when the item is a value itself (a metadata
        /// key, the file's size or digest).
        field: String,
        /// Its value in A.
        a: String,
        /// Its value in B.
        b: String,
    },
    /// The item's values differ (or its dequantized values do).
    Values {
        /// The item.
        item: String,
        /// Its type and shape, as in `float32[64, 128]`.
        layout: String,
        /// The element-wise comparison.
        values: Values,
    },
    /// Something worth knowing that is not a field change (e.g. what could
    /// not be compared, and why).
    Note {
        /// The item.
        item: String,
        /// The remark.
        text: String,
    },
}

/// An element-wise comparison of two equally shaped tensors.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Values {
    /// What is counted: `elements`, `nibbles` (q4 weights) or `bytes`
    /// (types that are compared as raw bytes).
    pub unit: &'static str,
    /// How the values were obtained when not read as stored, e.g.
    /// `dequantized from Q4_K`.
    pub basis: Option<String>,
    /// How many were compared.
    pub count: u64,
    /// How many differ (bitwise).
    pub differing: u64,
    /// Index of the first that differs.
    pub first_differing: Option<u64>,
    /// The largest |A − B| over differing pairs that are both finite.
    pub max_abs_diff: Option<f64>,
    /// Differing pairs where a side is NaN or infinite.
    pub nonfinite_differing: u64,
    /// The same comparison after dequantization (int8 weights of a
    /// `DequantizeLinear`, `q4bf16_1` weights), each side with its own scale.
    pub dequantized: Option<Dequantized>,
}

/// Values compared after dequantization.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dequantized {
    /// The dequantization, e.g. `DequantizeLinear` or `q4bf16_1`.
    pub via: String,
    /// How many dequantized values were compared.
    pub count: u64,
    /// How many differ (bitwise, as f32).
    pub differing: u64,
    /// The largest |A − B| over differing pairs that are both finite.
    pub max_abs_diff: Option<f64>,
    /// Differing pairs where a side is NaN or infinite.
    pub nonfinite_differing: u64,
}

impl Difference {
    /// What the difference is about.
    pub fn item(&self) -> &str {
        match self {
            Difference::Added { item, .. }
            | Difference::Removed { item, .. }
            | Difference::Changed { item, .. }
            | Difference::Values { item, .. }
            | Difference::Note { item, .. } => item,
        }
    }
}

impl Diff {
    /// Whether the two files are the same bytes. A pair whose bytes differ
    /// is never identical, even when no semantic difference is found (the
    /// `file` section then says so); this is the answer `avac diff`'s exit
    /// code gives.
    pub fn identical(&self) -> bool {
        self.identical
    }

    /// The report for people: a header line naming the kind and the
    /// verdict, then each section with one line per difference (`+` only
    /// in B, `-` only in A, `~` changed, `·` a note), at most
    /// [`MAX_LINES`] lines per section followed by `… and N more`.
    pub fn render(&self) -> String {
        render::render(self)
    }

    /// The number of differences listed, over all sections.
    pub fn count(&self) -> usize {
        self.sections.iter().map(|s| s.differences.len()).sum()
    }
}

/// Compares the files at `a` and `b`. The kinds are detected from their
/// content; files of different kinds are compared as bytes. Errors name the
/// file that could not be read or parsed.
pub fn diff_paths(a: &Path, b: &Path) -> Result<Diff, DiffError> {
    let kind_a = detect::detect(a)?;
    let kind_b = detect::detect(b)?;
    let file = bytes::compare(a, b)?;
    let summary = |p: &Path, kind: Kind, side: &bytes::Side| FileSummary { path: p.display().to_string(), kind, bytes: side.len, sha256: side.sha256.clone() };
    let (sa, sb) = (summary(a, kind_a, &file.a), summary(b, kind_b, &file.b));
    let mut sections = Vec::new();
    if kind_a != kind_b {
        let mut s = file.section();
        s.differences
            .insert(0, Difference::Changed { item: "kind".into(), field: "detected from content".into(), a: kind_a.name().into(), b: kind_b.name().into() });
        sections.push(s);
    } else {
        // Parsed even when the bytes are equal, so a damaged file is
        // reported as such rather than as "identical"; values are then not
        // read again.
        let same = file.same();
        let detail = match kind_a {
            Kind::Onnx => onnx::diff(a, b, same)?,
            Kind::Tar => tar::diff(a, b, same)?,
            Kind::TarZst => tar::diff_zst(a, b, same)?,
            Kind::Safetensors => safetensors::diff(a, b, same)?,
            Kind::Gguf => gguf::diff(a, b, same)?,
            Kind::Bytes => Vec::new(),
        };
        if !file.same() {
            let mut s = file.section();
            if detail.iter().all(|s| s.differences.is_empty()) && kind_a != Kind::Bytes {
                s.differences.push(Difference::Note {
                    item: kind_a.name().into(),
                    text: "no difference found in the content: the same content is encoded differently".into(),
                });
            }
            sections.push(s);
        }
        sections.extend(detail.into_iter().filter(|s| !s.differences.is_empty()));
    }
    Ok(Diff { identical: file.same(), a: sa, b: sb, sections })
}

/// A section builder that keeps the differences of one part in order.
fn section(name: &str, differences: Vec<Difference>) -> Section {
    Section { name: name.to_string(), differences }
}
