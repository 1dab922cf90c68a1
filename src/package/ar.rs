//! Reading static archives (`.a`): the model library a package carries is
//! one, and every member is checked before it is packaged.
//!
//! # Grammar (GNU/System V `ar`, what `ar rcsD` and `tvm/gemma3/archive.py` write)
//!
//! ```text
//! archive = "!<arch>\n" member*
//! member  = header(60 bytes) data[size] ["\n" if size is odd]
//! header  = name[16] mtime[12] uid[6] gid[6] mode[8] size[10](decimal, space-padded) "`\n"
//! name    = "/"        the symbol index (skipped)
//!         | "//"       the long-name table: names ending "/\n"
//!         | "/" DIGITS offset of the member's name in the long-name table
//!         | NAME "/"   a short name
//! ```
//!
//! Untrusted input: every size is checked against what is left of the file,
//! a member's name must be a plain file name, and a name appears once.

use std::path::{Path, PathBuf};

/// One member: its name and its bytes' range in the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The member's file name.
    pub name: String,
    /// Offset of its data.
    pub offset: usize,
    /// Size of its data.
    pub size: usize,
}

/// Why an archive cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{}: not a static archive: {why}", file.display())]
pub struct ArError {
    /// The archive.
    pub file: PathBuf,
    /// What is wrong, and where.
    pub why: String,
}

const MAGIC: &[u8] = b"!<arch>\n";
const HEADER: usize = 60;

/// The members of the archive `bytes` (named `file` in errors), in order,
/// without the symbol index and long-name table.
pub fn members(bytes: &[u8], file: &Path) -> Result<Vec<Member>, ArError> {
    let bad = |why: String| ArError { file: file.to_path_buf(), why };
    if !bytes.starts_with(MAGIC) {
        return Err(bad("it does not start with \"!<arch>\\n\"".into()));
    }
    let mut at = MAGIC.len();
    let mut long_names: &[u8] = &[];
    let mut out: Vec<Member> = Vec::new();
    while at < bytes.len() {
        let h = bytes.get(at..at + HEADER).ok_or_else(|| bad(format!("truncated member header at byte {at}")))?;
        if &h[58..60] != b"`\n" {
            return Err(bad(format!("member header at byte {at} does not end with \"`\\n\"")));
        }
        let size_field = std::str::from_utf8(&h[48..58]).map_err(|_| bad(format!("member size at byte {at} is not text")))?.trim_end();
        let size: usize = size_field.parse().map_err(|_| bad(format!("member size {size_field:?} at byte {at} is not a decimal number")))?;
        let data = at + HEADER;
        let end = data.checked_add(size).filter(|&e| e <= bytes.len()).ok_or_else(|| bad(format!("member at byte {at} claims {size} bytes past the end")))?;
        let raw = std::str::from_utf8(&h[..16]).map_err(|_| bad(format!("member name at byte {at} is not text")))?.trim_end();
        let name = match raw {
            "/" | "/SYM64/" => None,
            "//" => {
                long_names = &bytes[data..end];
                None
            }
            _ if raw.starts_with('/') => {
                let off: usize = raw[1..].parse().map_err(|_| bad(format!("member name {raw:?} at byte {at}")))?;
                let rest = long_names.get(off..).ok_or_else(|| bad(format!("long name offset {off} at byte {at} is outside the name table")))?;
                let stop = rest.windows(2).position(|w| w == b"/\n").ok_or_else(|| bad(format!("long name at offset {off} is not terminated")))?;
                Some(String::from_utf8(rest[..stop].to_vec()).map_err(|_| bad(format!("long name at offset {off} is not UTF-8")))?)
            }
            _ => Some(raw.strip_suffix('/').ok_or_else(|| bad(format!("member name {raw:?} at byte {at} does not end with '/'")))?.to_string()),
        };
        if let Some(name) = name {
            if name.is_empty() || name.contains(['/', '\\', '\0']) || name == "." || name == ".." {
                return Err(bad(format!("member name {name:?} is not a plain file name")));
            }
            if out.iter().any(|m| m.name == name) {
                return Err(bad(format!("member {name:?} appears twice")));
            }
            out.push(Member { name, offset: data, size });
        }
        at = end + (size & 1);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, size: usize) -> Vec<u8> {
        format!("{name:<16}{:<12}{:<6}{:<6}{:<8}{size:<10}`\n", 0, 0, 0, 644).into_bytes()
    }

    #[test]
    fn reads_short_and_long_names_and_refuses_damage() {
        let long = "gemma3_text_q4bf16_1_lib0.o";
        let table = format!("{long}/\n");
        let mut a = MAGIC.to_vec();
        a.extend(header("/", 4));
        a.extend([0, 0, 0, 0]);
        a.extend(header("//", table.len()));
        a.extend(table.as_bytes());
        if table.len() % 2 == 1 {
            a.push(b'\n'); // members start at even offsets
        }
        a.extend(header("x.o/", 3));
        a.extend(b"abc\n");
        a.extend(header("/0", 2));
        a.extend(b"de");
        let m = members(&a, Path::new("m.a")).unwrap();
        assert_eq!(m.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["x.o", long]);
        assert_eq!(&a[m[1].offset..m[1].offset + m[1].size], b"de");
        for cut in [a.len() - 1, MAGIC.len() + 30] {
            let e = members(&a[..cut], Path::new("m.a")).unwrap_err().to_string();
            assert!(e.starts_with("m.a: not a static archive:"), "{e}");
        }
        assert!(members(b"\x7fELF", Path::new("m.a")).unwrap_err().to_string().contains("!<arch>"));
    }
}
