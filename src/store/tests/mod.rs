//! The store's tests: declarations, the store itself, HTTP fetches against a
//! loopback server, pip's command line, and archive extraction.

mod concat;
mod decl;
mod http;
mod local;
mod server;
mod unpack;
mod zips;

use std::path::Path;

use sha2::{Digest, Sha256};

use super::{FetchOptions, HfToken};

/// A token that must never show up in any output.
pub(crate) const TOKEN: &str = "hf_tEsTsEcReT0123456789";

pub(crate) fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Deterministic test payload.
pub(crate) fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

pub(crate) fn opts(repo_root: &Path, endpoint: &str) -> FetchOptions {
    FetchOptions { offline: false, from: None, repo_root: repo_root.to_owned(), hf_endpoint: endpoint.to_owned(), quiet: true, hf_token: HfToken::new(TOKEN) }
}

/// Every regular file under `dir`, relative, sorted.
pub(crate) fn list_files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if let Ok(rel) = p.strip_prefix(root) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}
