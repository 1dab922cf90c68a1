//! The byte level, for every pair: lengths, sha256 and the first differing
//! offset, from one streaming pass over both files.

use super::{io_err, section, DiffError, Difference, Section};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Bytes read from each file at a time.
const CHUNK: usize = 1 << 20;

/// One file's length and digest.
pub(super) struct Side {
    pub len: u64,
    pub sha256: String,
}

/// Both sides and where they first differ.
pub(super) struct FileCompare {
    pub a: Side,
    pub b: Side,
    /// The first offset where the bytes differ, or where the shorter file
    /// ends; `None` when the files are equal.
    pub first_difference: Option<u64>,
}

impl FileCompare {
    /// Whether the two files are the same bytes.
    pub fn same(&self) -> bool {
        self.first_difference.is_none()
    }

    /// The `file` section: what differs at the byte level.
    pub fn section(&self) -> Section {
        let mut d = Vec::new();
        if self.a.len != self.b.len {
            d.push(Difference::Changed { item: "size".into(), field: String::new(), a: self.a.len.to_string(), b: self.b.len.to_string() });
        }
        if self.a.sha256 != self.b.sha256 {
            d.push(Difference::Changed { item: "sha256".into(), field: String::new(), a: self.a.sha256.clone(), b: self.b.sha256.clone() });
        }
        if let Some(at) = self.first_difference {
            let what = if at == self.a.len.min(self.b.len) { "where the shorter file ends".to_string() } else { format!("at byte {at}") };
            d.push(Difference::Note { item: "first difference".into(), text: what });
        }
        section("file", d)
    }
}

/// Fills `buf` from `r` as far as the file goes; returns the bytes read.
fn fill(r: &mut impl Read, buf: &mut [u8], path: &Path) -> Result<usize, DiffError> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(path)(e)),
        }
    }
    Ok(n)
}

/// Streams both files once.
pub(super) fn compare(a: &Path, b: &Path) -> Result<FileCompare, DiffError> {
    let mut fa = File::open(a).map_err(io_err(a))?;
    let mut fb = File::open(b).map_err(io_err(b))?;
    let (mut ha, mut hb) = (Sha256::new(), Sha256::new());
    let (mut ba, mut bb) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let (mut la, mut lb) = (0u64, 0u64);
    let mut first = None;
    loop {
        let na = fill(&mut fa, &mut ba, a)?;
        let nb = fill(&mut fb, &mut bb, b)?;
        if first.is_none() {
            let common = na.min(nb);
            if let Some(i) = ba[..common].iter().zip(&bb[..common]).position(|(x, y)| x != y) {
                first = Some(la + i as u64);
            } else if na != nb {
                first = Some(la + common as u64);
            }
        }
        ha.update(&ba[..na]);
        hb.update(&bb[..nb]);
        la += na as u64;
        lb += nb as u64;
        if na < CHUNK && nb < CHUNK {
            break;
        }
        // One file ended: keep hashing the other alone.
        if na < CHUNK || nb < CHUNK {
            let (r, h, buf, len, path) = if na < CHUNK { (&mut fb, &mut hb, &mut bb, &mut lb, b) } else { (&mut fa, &mut ha, &mut ba, &mut la, a) };
            loop {
                let n = fill(r, buf, path)?;
                h.update(&buf[..n]);
                *len += n as u64;
                if n < CHUNK {
                    break;
                }
            }
            break;
        }
    }
    Ok(FileCompare {
        a: Side { len: la, sha256: hex::encode(ha.finalize()) },
        b: Side { len: lb, sha256: hex::encode(hb.finalize()) },
        first_difference: first,
    })
}
