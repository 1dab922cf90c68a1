//! The records of a `tensor-cache.json` inside two packages.
//!
//! Each record's bytes are found through its shard (`dataPath`, relative to
//! the JSON's directory in the archive) at `byteOffset`, `nbytes` long;
//! every record is checked to lie within its shard entry and to have the
//! size its shape, dtype and format imply before anything is read.
//! Records are compared by name: shape, dtype and format, then bytes. A
//! record whose shard entry has the same digest, offset and length on both
//! sides is equal without being read.
//!
//! Values: float32 (raw, or stored as bfloat16 under `f32-to-bf16`),
//! float16 and bfloat16 records as floats, integer records as integers.
//! A `q4bf16_1` weight `X.q_weight` (uint32, 8 nibbles per word) paired
//! with `X.q_scale` (bfloat16, or float16 for `q4f16_1`; one per group of
//! `in_features / q_scale columns` elements) is compared nibble by nibble
//! and after dequantization, `(q - 7) * scale`, each side with its own
//! scales; it is reported when either the weight or its scales differ.

use super::stats::{compare_bytes, compare_raw, Acc, Num};
use super::tar::Archive;
use super::{text, DiffError, Difference};
use crate::package::tensor_cache::{Dtype, Record, RecordFormat, TensorCache, MAX_JSON_BYTES};
use crate::quant::q4::{ELEMS_PER_WORD, ZERO_POINT};
use std::collections::BTreeMap;

/// A record and where its bytes are in the archive.
struct Located<'c> {
    rec: &'c Record,
    /// The shard's entry path in the archive.
    entry: String,
}

/// Reads, parses and locates every record of the cache at `json` in `x`.
fn load(x: &Archive, json: &str) -> Result<TensorCache, DiffError> {
    let size = x.entries.get(json).map_or(0, |e| e.size);
    if size > MAX_JSON_BYTES {
        return Err(x.fault(json, format!("{size} bytes, more than the {MAX_JSON_BYTES}-byte limit for a tensor cache index")));
    }
    TensorCache::from_json(&x.read(json, 0, size)?).map_err(|e| x.fault(json, e.to_string()))
}

fn locate<'c>(x: &Archive, json: &str, cache: &'c TensorCache) -> Result<BTreeMap<&'c str, Located<'c>>, DiffError> {
    let dir = json.rsplit_once('/').map(|(d, _)| format!("{d}/")).unwrap_or_default();
    let mut out = BTreeMap::new();
    for shard in &cache.records {
        let dp = &shard.data_path;
        if dp.is_empty() || dp == "." || dp == ".." || dp.contains(['/', '\\', '\0']) {
            return Err(x.fault(json, format!("shard dataPath {dp:?} is not a plain file name")));
        }
        let entry = format!("{dir}{dp}");
        let size = match x.entries.get(&entry) {
            Some(e) if e.kind == crate::package::tar::Kind::File => e.size,
            _ => return Err(x.fault(json, format!("shard {dp:?} is not a file in the archive"))),
        };
        for rec in &shard.records {
            let expected = Record::stored_nbytes(&rec.shape, rec.dtype, rec.format);
            if expected != Some(rec.nbytes) {
                return Err(x.fault(
                    json,
                    format!("record {:?}: nbytes {} but shape {:?} of {} ({}) needs {expected:?}", rec.name, rec.nbytes, rec.shape, rec.dtype, rec.format),
                ));
            }
            if rec.byte_offset.checked_add(rec.nbytes).is_none_or(|end| end > size) {
                return Err(x.fault(json, format!("record {:?} (bytes {}..+{}) lies outside {dp} ({size} bytes)", rec.name, rec.byte_offset, rec.nbytes)));
            }
            if out.insert(rec.name.as_str(), Located { rec, entry: entry.clone() }).is_some() {
                return Err(x.fault(json, format!("record {:?} appears twice", rec.name)));
            }
        }
    }
    Ok(out)
}

/// How a record's stored elements are compared.
fn stored(rec: &Record) -> Option<Num> {
    Some(match (rec.dtype, rec.format) {
        (Dtype::F32, RecordFormat::F32ToBf16) => Num::BF16,
        (Dtype::F32, _) => Num::F32,
        (Dtype::F64, _) => Num::F64,
        (Dtype::F16, _) => Num::F16,
        (Dtype::BF16, _) => Num::BF16,
        (Dtype::I8, _) => Num::I8,
        (Dtype::I16, _) => Num::I16,
        (Dtype::I32, _) => Num::I32,
        (Dtype::I64, _) => Num::I64,
        (Dtype::U8, _) => Num::U8,
        (Dtype::U16, _) => Num::U16,
        (Dtype::U32, _) => Num::U32,
        (Dtype::U64, _) => Num::U64,
        (Dtype::Bool, _) => Num::Bool,
        (Dtype::F8E4M3FN | Dtype::F8E5M2, _) => return None,
    })
}

fn layout(rec: &Record) -> String {
    format!("{}{}", rec.dtype, text::dims(&rec.shape))
}

/// Whether the bytes of a record are the same on both sides.
fn same_bytes(xa: &Archive, la: &Located, xb: &Archive, lb: &Located) -> Result<bool, DiffError> {
    let (ea, eb) = (&xa.entries[&la.entry], &xb.entries[&lb.entry]);
    if ea.sha256 == eb.sha256 && la.rec.byte_offset == lb.rec.byte_offset && la.rec.nbytes == lb.rec.nbytes {
        return Ok(true);
    }
    Ok(xa.read(&la.entry, la.rec.byte_offset, la.rec.nbytes)? == xb.read(&lb.entry, lb.rec.byte_offset, lb.rec.nbytes)?)
}

fn bytes(x: &Archive, l: &Located) -> Result<Vec<u8>, DiffError> {
    x.read(&l.entry, l.rec.byte_offset, l.rec.nbytes)
}

/// The differences of the records of the caches at `json` in both archives.
pub(super) fn diff(xa: &Archive, xb: &Archive, json: &str) -> Result<Vec<Difference>, DiffError> {
    let (ca, cb) = (load(xa, json)?, load(xb, json)?);
    let (ra, rb) = (locate(xa, json, &ca)?, locate(xb, json, &cb)?);
    let mut out = Vec::new();
    // Which records present on both sides with equal layouts have other bytes.
    let mut differs: BTreeMap<&str, bool> = BTreeMap::new();
    for (name, la) in &ra {
        let Some(lb) = rb.get(name) else {
            out.push(Difference::Removed { item: name.to_string(), detail: layout(la.rec) });
            continue;
        };
        let (a, b) = (la.rec, lb.rec);
        let mut field = |f: &str, x: String, y: String| {
            if x != y {
                out.push(Difference::Changed { item: name.to_string(), field: f.into(), a: x, b: y });
            }
        };
        field("shape", text::dims(&a.shape), text::dims(&b.shape));
        field("dtype", a.dtype.to_string(), b.dtype.to_string());
        field("format", a.format.to_string(), b.format.to_string());
        if a.shape == b.shape && a.dtype == b.dtype && stored(a) == stored(b) {
            differs.insert(name, !same_bytes(xa, la, xb, lb)?);
        }
    }
    for (name, lb) in rb.iter().filter(|(n, _)| !ra.contains_key(*n)) {
        out.push(Difference::Added { item: name.to_string(), detail: layout(lb.rec) });
    }
    for (&name, &d) in &differs {
        let pair = name.strip_suffix(".q_weight").map(|x| format!("{x}.q_scale")).filter(|s| differs.contains_key(s.as_str()));
        if let Some(scale) = pair.filter(|s| q4_pair(&ra[name], &ra[s.as_str()]).is_some()) {
            if d || differs[scale.as_str()] {
                let v = q4(xa, xb, (&ra[name], &ra[scale.as_str()]), (&rb[name], &rb[scale.as_str()]))?;
                out.push(Difference::Values { item: name.to_string(), layout: layout(ra[name].rec), values: v });
            }
        } else if d {
            let (la, lb) = (&ra[name], &rb[name]);
            let (ba, bb) = (bytes(xa, la)?, bytes(xb, lb)?);
            let mut acc = Acc::default();
            let (unit, basis) = match stored(la.rec) {
                Some(num) => {
                    compare_raw(num, &ba, &bb, &mut acc);
                    let bf = la.rec.dtype == Dtype::F32 && num == Num::BF16;
                    ("elements", bf.then(|| "stored as bfloat16 (f32-to-bf16)".to_string()))
                }
                None => {
                    compare_bytes(&ba, &bb, &mut acc);
                    ("bytes", None)
                }
            };
            out.push(Difference::Values { item: name.to_string(), layout: layout(la.rec), values: acc.values(unit, basis) });
        }
    }
    // All lines of a record together, records in name order.
    out.sort_by(|x, y| x.item().cmp(y.item()));
    Ok(out)
}

/// The geometry of a `q_weight` / `q_scale` pair: (rows, words per row,
/// scales per row, scale type), or `None` when they do not pair.
fn q4_pair(w: &Located, s: &Located) -> Option<(usize, usize, usize, Num)> {
    let (w, s) = (w.rec, s.rec);
    let scale = match s.dtype {
        Dtype::BF16 => Num::BF16,
        Dtype::F16 => Num::F16,
        _ => return None,
    };
    if w.dtype != Dtype::U32 || w.shape.len() < 2 || s.shape.len() != w.shape.len() {
        return None;
    }
    let n = w.shape.len();
    if w.shape[..n - 1] != s.shape[..n - 1] {
        return None;
    }
    let rows = usize::try_from(Record::numel(&w.shape[..n - 1])?).ok()?;
    let (words, scales) = (usize::try_from(w.shape[n - 1]).ok()?, usize::try_from(s.shape[n - 1]).ok()?);
    let inp = words.checked_mul(ELEMS_PER_WORD)?;
    (scales > 0 && inp % scales == 0).then_some((rows, words, scales, scale))
}

/// Nibble-level and dequantized comparison of a `q4bf16_1` weight.
fn q4(xa: &Archive, xb: &Archive, a: (&Located, &Located), b: (&Located, &Located)) -> Result<super::Values, DiffError> {
    let (rows, words, scales, snum) = q4_pair(a.0, a.1).unwrap_or((0, 0, 1, Num::BF16));
    let (wa, sa, wb, sb) = (bytes(xa, a.0)?, bytes(xa, a.1)?, bytes(xb, b.0)?, bytes(xb, b.1)?);
    let group = words * ELEMS_PER_WORD / scales;
    let (mut nib, mut deq) = (Acc::default(), Acc::default());
    let word = |w: &[u8], i: usize| u32::from_le_bytes([w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3]]);
    for r in 0..rows {
        for j in 0..words {
            let (x, y) = (word(&wa, r * words + j), word(&wb, r * words + j));
            for k in 0..ELEMS_PER_WORD {
                let (qa, qb) = ((x >> (4 * k)) & 0xF, (y >> (4 * k)) & 0xF);
                nib.int(i128::from(qa), i128::from(qb));
                let g = r * scales + (j * ELEMS_PER_WORD + k) / group;
                let (ka, kb) = (snum.f64_at(&sa, g) as f32, snum.f64_at(&sb, g) as f32);
                deq.f32((qa as f32 - ZERO_POINT as f32) * ka, (qb as f32 - ZERO_POINT as f32) * kb);
            }
        }
    }
    let mut v = nib.values("nibbles", None);
    v.dequantized = Some(deq.dequantized(if snum == Num::BF16 { "q4bf16_1" } else { "q4f16_1" }));
    Ok(v)
}
