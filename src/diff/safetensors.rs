//! safetensors checkpoints: `__metadata__`, then tensors by name (dtype,
//! shape, values). Files are opened with [`SafeTensorsFile`], which
//! validates the header against the file's length and reads one tensor at a
//! time, so memory is one tensor per side.

use super::stats::{compare_raw, Acc, Num};
use super::{section, text, DiffError, Difference, Section};
use crate::formats::safetensors::{Dtype, SafeTensorsFile};
use std::path::Path;

fn num(d: Dtype) -> Num {
    match d {
        Dtype::F64 => Num::F64,
        Dtype::F32 => Num::F32,
        Dtype::F16 => Num::F16,
        Dtype::BF16 => Num::BF16,
        Dtype::I64 => Num::I64,
        Dtype::I32 => Num::I32,
        Dtype::I16 => Num::I16,
        Dtype::I8 => Num::I8,
        Dtype::U8 => Num::U8,
        Dtype::BOOL => Num::Bool,
    }
}

fn layout(d: Dtype, shape: &[usize]) -> String {
    format!("{d}{}", text::dims(shape))
}

/// The sections of a safetensors comparison (empty when `same`: the
/// headers are then only validated).
pub(super) fn diff(a: &Path, b: &Path, same: bool) -> Result<Vec<Section>, DiffError> {
    let (fa, fb) = (SafeTensorsFile::open(a)?, SafeTensorsFile::open(b)?);
    if same {
        return Ok(Vec::new());
    }
    let mut meta = Vec::new();
    text::kv_diff(fa.metadata(), fb.metadata(), true, &mut meta);
    let mut out = Vec::new();
    for name in fa.names() {
        let (da, sa) = fa.info(name)?;
        if !fb.contains(name) {
            out.push(Difference::Removed { item: name.into(), detail: layout(da, sa) });
            continue;
        }
        let (db, sb) = fb.info(name)?;
        if da != db {
            out.push(Difference::Changed { item: name.into(), field: "dtype".into(), a: da.to_string(), b: db.to_string() });
        }
        if sa != sb {
            out.push(Difference::Changed { item: name.into(), field: "shape".into(), a: text::dims(sa), b: text::dims(sb) });
        }
        if da != db || sa != sb {
            continue;
        }
        let (ta, tb) = (fa.read(name)?, fb.read(name)?);
        if ta.data != tb.data {
            let mut acc = Acc::default();
            compare_raw(num(da), &ta.data, &tb.data, &mut acc);
            out.push(Difference::Values { item: name.into(), layout: layout(da, sa), values: acc.values("elements", None) });
        }
    }
    for name in fb.names().into_iter().filter(|n| !fa.contains(n)) {
        let (db, sb) = fb.info(name)?;
        out.push(Difference::Added { item: name.into(), detail: layout(db, sb) });
    }
    Ok(vec![section("metadata", meta), section("tensors", out)])
}
