//! Digests in the forms pins are written in: lowercase hex sha256, SRI
//! (`sha256-` + base64), and Nix's NAR hash in Nix's base-32.
//!
//! # NAR (Nix ARchive), as `nix hash path` serialises a file or tree
//!
//! ```text
//! nar      = str("nix-archive-1") node
//! node     = str("(") str("type") body str(")")
//! body     = str("regular") [str("executable") str("")] str("contents") str(<bytes>)
//!          | str("symlink") str("target") str(<target>)
//!          | str("directory") { str("entry") str("(") str("name") str(<name>) str("node") node str(")") }
//! str(s)   = u64 little-endian length, the bytes, zeros to a multiple of 8
//! ```
//!
//! Directory entries are sorted by name, bytewise; a file is executable
//! when any execute bit is set; nothing else (mtime, owner, other mode
//! bits) is recorded. The NAR hash is the sha256 of that byte stream, which
//! is streamed, never held whole.
//!
//! # Nix base-32
//!
//! Alphabet `0123456789abcdfghijklmnpqrsvwxyz` (no e, o, u, t); for a digest
//! of `n` bytes, `ceil(8n / 5)` characters, character `k` (from the left)
//! holding the 5 bits starting at bit `5 (len - 1 - k)` of the digest read
//! as a little-endian bit string.

use sha2::{Digest, Sha256};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const NIX32: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Nix's base-32 rendering of `bytes`.
pub fn nix_base32(bytes: &[u8]) -> String {
    let len = (bytes.len() * 8).div_ceil(5);
    (0..len)
        .rev()
        .map(|n| {
            let (i, j) = (n * 5 / 8, n * 5 % 8);
            let lo = u16::from(bytes[i]) >> j;
            let hi = if i + 1 < bytes.len() { u16::from(bytes[i + 1]) << (8 - j) } else { 0 };
            NIX32[usize::from((lo | hi) & 0x1f)] as char
        })
        .collect()
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            out.push(if k <= c.len() { A[((n >> (18 - 6 * k)) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

/// `sha256-<base64>`, the Subresource Integrity form Nix and npm accept.
pub fn sri(digest: &[u8]) -> String {
    format!("sha256-{}", base64(digest))
}

fn put_str(h: &mut Sha256, s: &[u8]) {
    h.update((s.len() as u64).to_le_bytes());
    h.update(s);
    h.update(&[0u8; 8][..(8 - s.len() % 8) % 8]);
}

fn put_node(h: &mut Sha256, path: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    put_str(h, b"(");
    put_str(h, b"type");
    if meta.file_type().is_symlink() {
        put_str(h, b"symlink");
        put_str(h, b"target");
        put_str(h, std::os::unix::ffi::OsStrExt::as_bytes(std::fs::read_link(path)?.as_os_str()));
    } else if meta.is_dir() {
        put_str(h, b"directory");
        let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(path)?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>()?;
        names.sort_by(|a, b| std::os::unix::ffi::OsStrExt::as_bytes(a.as_os_str()).cmp(std::os::unix::ffi::OsStrExt::as_bytes(b.as_os_str())));
        for name in names {
            put_str(h, b"entry");
            put_str(h, b"(");
            put_str(h, b"name");
            put_str(h, std::os::unix::ffi::OsStrExt::as_bytes(name.as_os_str()));
            put_str(h, b"node");
            put_node(h, &path.join(&name))?;
            put_str(h, b")");
        }
    } else {
        put_str(h, b"regular");
        if meta.permissions().mode() & 0o111 != 0 {
            put_str(h, b"executable");
            put_str(h, b"");
        }
        put_str(h, b"contents");
        let len = meta.len();
        h.update(len.to_le_bytes());
        let mut f = std::fs::File::open(path)?;
        let mut buf = vec![0u8; 1 << 16];
        let mut seen = 0u64;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            seen += n as u64;
            h.update(&buf[..n]);
        }
        if seen != len {
            return Err(std::io::Error::other(format!("{} changed size while being hashed", path.display())));
        }
        h.update(&[0u8; 8][..((8 - len % 8) % 8) as usize]);
    }
    put_str(h, b")");
    Ok(())
}

/// sha256 of the NAR serialisation of `path` (a file, directory or symlink).
pub fn nar_sha256(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut h = Sha256::new();
    put_str(&mut h, b"nix-archive-1");
    put_node(&mut h, path)?;
    Ok(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_nix32_of_known_digests() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        // sha256 of the empty string, as Nix prints it.
        let empty: [u8; 32] = Sha256::digest(b"").into();
        assert_eq!(sri(&empty), "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
        assert_eq!(nix_base32(&empty), "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73");
        assert_eq!(nix_base32(&[0xff]), "7z");
    }

    #[test]
    fn nar_of_a_tree_ignores_mtime_and_orders_entries() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        for root in [&a, &b] {
            std::fs::create_dir_all(root.join("sub")).unwrap();
            std::fs::write(root.join("sub/x.txt"), b"hello").unwrap();
            std::fs::write(root.join("z"), b"0123456789").unwrap();
        }
        std::fs::set_permissions(b.join("z"), std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(nar_sha256(&a).unwrap(), nar_sha256(&b).unwrap(), "mode bits other than x do not count");
        std::fs::set_permissions(b.join("z"), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_ne!(nar_sha256(&a).unwrap(), nar_sha256(&b).unwrap(), "the executable bit counts");
    }
}
