//! GGUF checkpoints: version and alignment, metadata keys, then tensors by
//! name (ggml type, dims, values).
//!
//! Tensor data stays on disk ([`GgufFile::read`] keeps only the header):
//! a tensor is first compared as stored, in row-aligned chunks of at most
//! [`CHUNK_BYTES`]; only a tensor whose bytes differ is dequantized to f32,
//! [`CHUNK_ELEMS`] values at a time, with the reader's own dequantizers. Two
//! tensors of the same dims but different types (a requantization) are
//! compared after dequantization too. A type the reader cannot dequantize
//! is compared as bytes.

use super::stats::{compare_bytes, Acc};
use super::{io_err, section, text, DiffError, Difference, Section};
use crate::formats::gguf::{dequant, GgufFile, MetadataArray, MetadataValue, TensorInfo};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Bytes of stored tensor data compared at a time.
const CHUNK_BYTES: usize = 8 << 20;
/// Dequantized values compared at a time, per side.
const CHUNK_ELEMS: usize = 1 << 20;

/// The sections of a GGUF comparison (empty when `same`: the headers are
/// then only validated).
pub(super) fn diff(a: &Path, b: &Path, same: bool) -> Result<Vec<Section>, DiffError> {
    let (ga, gb) = (GgufFile::read(a)?, GgufFile::read(b)?);
    if same {
        return Ok(Vec::new());
    }
    let mut header = Vec::new();
    let mut field = |f: &str, x: String, y: String| {
        if x != y {
            header.push(Difference::Changed { item: "header".into(), field: f.into(), a: x, b: y });
        }
    };
    field("version", ga.version().to_string(), gb.version().to_string());
    field("alignment", ga.alignment().to_string(), gb.alignment().to_string());
    field("tensor count", ga.tensors().len().to_string(), gb.tensors().len().to_string());
    let order = |g: &GgufFile| g.tensors().iter().map(|t| t.name().to_string()).collect::<Vec<_>>();
    let (oa, ob) = (order(&ga), order(&gb));
    if oa != ob && sorted(&oa) == sorted(&ob) {
        header.push(Difference::Changed { item: "header".into(), field: "tensor order".into(), a: text::list(&oa), b: text::list(&ob) });
    }
    Ok(vec![section("header", header), section("metadata", metadata(&ga, &gb)), section("tensors", tensors(a, &ga, b, &gb)?)])
}

fn sorted(v: &[String]) -> Vec<&String> {
    let mut s: Vec<&String> = v.iter().collect();
    s.sort();
    s
}

/// A metadata value as short text: scalars as they are, strings quoted,
/// arrays by type and length.
fn value(v: &MetadataValue) -> String {
    match v {
        MetadataValue::U8(x) => x.to_string(),
        MetadataValue::I8(x) => x.to_string(),
        MetadataValue::U16(x) => x.to_string(),
        MetadataValue::I16(x) => x.to_string(),
        MetadataValue::U32(x) => x.to_string(),
        MetadataValue::I32(x) => x.to_string(),
        MetadataValue::U64(x) => x.to_string(),
        MetadataValue::I64(x) => x.to_string(),
        MetadataValue::F32(x) => x.to_string(),
        MetadataValue::F64(x) => x.to_string(),
        MetadataValue::Bool(x) => x.to_string(),
        MetadataValue::String(s) => format!("{s:?}"),
        MetadataValue::Array(a) => a.describe(),
    }
}

/// Element `i` of an array as text.
fn element(a: &MetadataArray, i: usize) -> Option<String> {
    Some(match a {
        MetadataArray::U8(v) => v.get(i)?.to_string(),
        MetadataArray::I8(v) => v.get(i)?.to_string(),
        MetadataArray::U16(v) => v.get(i)?.to_string(),
        MetadataArray::I16(v) => v.get(i)?.to_string(),
        MetadataArray::U32(v) => v.get(i)?.to_string(),
        MetadataArray::I32(v) => v.get(i)?.to_string(),
        MetadataArray::U64(v) => v.get(i)?.to_string(),
        MetadataArray::I64(v) => v.get(i)?.to_string(),
        MetadataArray::F32(v) => v.get(i)?.to_string(),
        MetadataArray::F64(v) => v.get(i)?.to_string(),
        MetadataArray::Bool(v) => v.get(i)?.to_string(),
        MetadataArray::String(v) => format!("{:?}", v.get(i)?),
        MetadataArray::Array(v) => v.get(i)?.describe(),
    })
}

/// Differing elements of two arrays of one type and length: how many, and the first.
fn array_diff(a: &MetadataArray, b: &MetadataArray) -> (usize, Option<usize>) {
    fn eq<T: PartialEq>(p: &T, q: &T) -> bool {
        p == q
    }
    fn count<T>(x: &[T], y: &[T], bits: impl Fn(&T, &T) -> bool) -> (usize, Option<usize>) {
        let mut first = None;
        let mut n = 0;
        for (i, (p, q)) in x.iter().zip(y).enumerate() {
            if !bits(p, q) {
                n += 1;
                first.get_or_insert(i);
            }
        }
        (n, first)
    }
    match (a, b) {
        (MetadataArray::U8(x), MetadataArray::U8(y)) => count(x, y, eq),
        (MetadataArray::I8(x), MetadataArray::I8(y)) => count(x, y, eq),
        (MetadataArray::U16(x), MetadataArray::U16(y)) => count(x, y, eq),
        (MetadataArray::I16(x), MetadataArray::I16(y)) => count(x, y, eq),
        (MetadataArray::U32(x), MetadataArray::U32(y)) => count(x, y, eq),
        (MetadataArray::I32(x), MetadataArray::I32(y)) => count(x, y, eq),
        (MetadataArray::U64(x), MetadataArray::U64(y)) => count(x, y, eq),
        (MetadataArray::I64(x), MetadataArray::I64(y)) => count(x, y, eq),
        (MetadataArray::F32(x), MetadataArray::F32(y)) => count(x, y, |p, q| p.to_bits() == q.to_bits()),
        (MetadataArray::F64(x), MetadataArray::F64(y)) => count(x, y, |p, q| p.to_bits() == q.to_bits()),
        (MetadataArray::Bool(x), MetadataArray::Bool(y)) => count(x, y, eq),
        (MetadataArray::String(x), MetadataArray::String(y)) => count(x, y, eq),
        (MetadataArray::Array(x), MetadataArray::Array(y)) => count(x, y, eq),
        _ => (0, None),
    }
}

/// Whether two values are the same bits (a NaN equals itself).
fn same_value(a: &MetadataValue, b: &MetadataValue) -> bool {
    match (a, b) {
        (MetadataValue::F32(x), MetadataValue::F32(y)) => x.to_bits() == y.to_bits(),
        (MetadataValue::F64(x), MetadataValue::F64(y)) => x.to_bits() == y.to_bits(),
        (MetadataValue::Array(x), MetadataValue::Array(y)) => x.elem_type() == y.elem_type() && x.len() == y.len() && array_diff(x, y).0 == 0,
        _ => a == b,
    }
}

fn metadata(ga: &GgufFile, gb: &GgufFile) -> Vec<Difference> {
    let mut out = Vec::new();
    for (k, va) in ga.metadata() {
        let Some(vb) = gb.metadata().get(k) else {
            out.push(Difference::Removed { item: k.clone(), detail: text::short(&value(va)) });
            continue;
        };
        if same_value(va, vb) {
            continue;
        }
        match (va, vb) {
            (MetadataValue::Array(x), MetadataValue::Array(y)) if x.elem_type() == y.elem_type() && x.len() == y.len() => {
                let (n, first) = array_diff(x, y);
                let i = first.unwrap_or(0);
                let (ea, eb) = text::excerpt(&element(x, i).unwrap_or_default(), &element(y, i).unwrap_or_default());
                out.push(Difference::Changed { item: k.clone(), field: format!("{} of {} elements differ; first [{i}]", n, x.len()), a: ea, b: eb });
            }
            _ => {
                let (ea, eb) = text::excerpt(&value(va), &value(vb));
                let (ta, tb) = (va.describe(), vb.describe());
                let field = if ta == tb { String::new() } else { format!("type {ta} → {tb}, value") };
                out.push(Difference::Changed { item: k.clone(), field, a: ea, b: eb });
            }
        }
    }
    for (k, vb) in gb.metadata().iter().filter(|(k, _)| !ga.metadata().contains_key(*k)) {
        out.push(Difference::Added { item: k.clone(), detail: text::short(&value(vb)) });
    }
    out
}

fn layout(t: &TensorInfo) -> String {
    format!("{}{}", t.ggml_type().name(), text::dims(t.dims()))
}

/// Whether the stored bytes of `ta` and `tb` are equal; when `acc` is
/// given, every byte is also counted into it.
fn stored_equal(
    fa: &std::fs::File,
    a: (&Path, &GgufFile, &TensorInfo),
    fb: &std::fs::File,
    b: (&Path, &GgufFile, &TensorInfo),
    mut acc: Option<&mut Acc>,
) -> Result<bool, DiffError> {
    let (ta, tb) = (a.2, b.2);
    if ta.n_bytes() != tb.n_bytes() {
        return Ok(false);
    }
    let row_bytes = (ta.n_bytes() / ta.n_rows().max(1)).max(1);
    let step = (CHUNK_BYTES / row_bytes).max(1) * row_bytes;
    let (oa, ob) = ((a.1.data_start() + ta.offset()) as u64, (b.1.data_start() + tb.offset()) as u64);
    let (mut xa, mut xb) = (vec![0u8; step.min(ta.n_bytes())], vec![0u8; step.min(ta.n_bytes())]);
    let mut equal = true;
    let mut done = 0usize;
    while done < ta.n_bytes() {
        let n = step.min(ta.n_bytes() - done);
        fa.read_exact_at(&mut xa[..n], oa + done as u64).map_err(io_err(a.0))?;
        fb.read_exact_at(&mut xb[..n], ob + done as u64).map_err(io_err(b.0))?;
        if xa[..n] != xb[..n] {
            equal = false;
            if acc.is_none() {
                return Ok(false);
            }
        }
        if let Some(acc) = acc.as_deref_mut() {
            compare_bytes(&xa[..n], &xb[..n], acc);
        }
        done += n;
    }
    Ok(equal)
}

fn tensors(pa: &Path, ga: &GgufFile, pb: &Path, gb: &GgufFile) -> Result<Vec<Difference>, DiffError> {
    let fa = std::fs::File::open(pa).map_err(io_err(pa))?;
    let fb = std::fs::File::open(pb).map_err(io_err(pb))?;
    let mut by_name: Vec<&TensorInfo> = ga.tensors().iter().collect();
    by_name.sort_by(|x, y| x.name().cmp(y.name()));
    let mut out = Vec::new();
    for ta in by_name {
        let name = ta.name();
        let Ok(tb) = gb.tensor(name) else {
            out.push(Difference::Removed { item: name.into(), detail: layout(ta) });
            continue;
        };
        let (ya, yb) = (ta.ggml_type(), tb.ggml_type());
        if ya != yb {
            out.push(Difference::Changed { item: name.into(), field: "type".into(), a: ya.name().into(), b: yb.name().into() });
        }
        if ta.dims() != tb.dims() {
            out.push(Difference::Changed { item: name.into(), field: "dims".into(), a: text::dims(ta.dims()), b: text::dims(tb.dims()) });
            continue;
        }
        if ya == yb && stored_equal(&fa, (pa, ga, ta), &fb, (pb, gb, tb), None)? {
            continue;
        }
        let values = if dequant::SUPPORTED.contains(&ya) && dequant::SUPPORTED.contains(&yb) {
            let mut acc = Acc::default();
            let rows = ta.n_rows();
            let per = (CHUNK_ELEMS / ta.row_len().max(1)).max(1);
            let mut start = 0;
            while start < rows {
                let end = rows.min(start + per);
                let n = (end - start) * ta.row_len();
                let (mut xa, mut xb) = (vec![0f32; n], vec![0f32; n]);
                ga.dequantize_rows(name, start..end, &mut xa)?;
                gb.dequantize_rows(name, start..end, &mut xb)?;
                xa.iter().zip(&xb).for_each(|(p, q)| acc.f32(*p, *q));
                start = end;
            }
            let basis = match (ya == yb, ya.name()) {
                (true, "F32") => None,
                (true, t) => Some(format!("dequantized from {t}")),
                (false, t) => Some(format!("dequantized from {t} and {}", yb.name())),
            };
            acc.values("elements", basis)
        } else if ya == yb {
            let mut acc = Acc::default();
            stored_equal(&fa, (pa, ga, ta), &fb, (pb, gb, tb), Some(&mut acc))?;
            acc.values("bytes", Some(format!("{} is not dequantized here", ya.name())))
        } else {
            out.push(Difference::Note { item: name.into(), text: format!("{} and {} cannot both be dequantized: values not compared", ya.name(), yb.name()) });
            continue;
        };
        out.push(Difference::Values { item: name.into(), layout: layout(ta), values });
    }
    let mut added: Vec<&TensorInfo> = gb.tensors().iter().filter(|t| ga.tensor(t.name()).is_err()).collect();
    added.sort_by(|x, y| x.name().cmp(y.name()));
    for tb in added {
        out.push(Difference::Added { item: tb.name().into(), detail: layout(tb) });
    }
    Ok(out)
}
