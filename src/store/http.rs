//! The resumable, verifying HTTP downloader shared by `hf` and `url` sources.
//!
//! Bytes accumulate in `tmp/<key>.partial`; an interrupted transfer keeps
//! them and the next run asks for the rest with `Range: bytes=N-`. The file
//! only becomes a blob after its size and sha256 match the pin.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};
use ureq::config::RedirectAuthHeaders;
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::{Agent, Proxy};

use super::cas::{hash_into, Store};
use super::error::{io_err, Result, StoreError};
use super::fetch::HfToken;

/// One download: what to get and what it must turn out to be.
pub(crate) struct Request<'a> {
    /// Source name, for errors.
    pub name: &'a str,
    /// URL without credentials.
    pub url: String,
    /// Sent as `Authorization: Bearer`, only to the URL's own host.
    pub token: Option<&'a HfToken>,
    /// Pin to check; `None` when locking.
    pub sha256: Option<&'a str>,
    /// Size to check; `None` when locking.
    pub size: Option<u64>,
    /// What a 404 means, e.g. "file F of repo R at revision V".
    pub what: String,
    /// Never draw a progress bar.
    pub quiet: bool,
}

/// A verified download, now a blob.
#[derive(Debug)]
pub(crate) struct Downloaded {
    pub blob: PathBuf,
    pub sha256: String,
    pub size: u64,
}

/// Downloads `req` into the store, resuming a previous partial transfer.
pub(crate) fn download(store: &Store, req: &Request<'_>) -> Result<Downloaded> {
    let key = match req.sha256 {
        Some(d) => d.to_owned(),
        None => format!("url-{}", &hex::encode(Sha256::digest(req.url.as_bytes()))[..32]),
    };
    let partial = store.partial_path(&key);
    let agent = agent(&req.url);
    // A stale or foreign partial file gets one clean retry from byte 0.
    let mut restarted = false;
    loop {
        match attempt(&agent, store, req, &partial) {
            Err(Retry::FromScratch) if !restarted => {
                restarted = true;
                remove_if_exists(&partial)?;
            }
            Err(Retry::FromScratch) => {
                return Err(StoreError::Transport {
                    name: req.name.to_owned(),
                    url: req.url.clone(),
                    message: "server does not honour Range requests consistently".into(),
                })
            }
            Err(Retry::Fail(e)) => return Err(e),
            Ok(d) => return Ok(d),
        }
    }
}

enum Retry {
    FromScratch,
    Fail(StoreError),
}

impl From<StoreError> for Retry {
    fn from(e: StoreError) -> Self {
        Retry::Fail(e)
    }
}

fn attempt(agent: &Agent, store: &Store, req: &Request<'_>, partial: &Path) -> Result<Downloaded, Retry> {
    let mut have = fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
    if let Some(size) = req.size {
        if have > size {
            return Err(Retry::FromScratch);
        }
    }
    let complete = req.size.is_some_and(|s| s == have && have > 0);
    if !complete {
        let mut call = agent.get(&req.url);
        if let Some(t) = req.token {
            call = call.header("Authorization", format!("Bearer {}", t.expose()));
        }
        if have > 0 {
            call = call.header("Range", format!("bytes={have}-"));
        }
        let resp = call.call().map_err(|e| transport(req, &e))?;
        let status = resp.status().as_u16();
        let append = match status {
            200 => false,
            206 => {
                let start = resp.headers().get("content-range").and_then(|v| v.to_str().ok()).and_then(content_range_start);
                if start != Some(have) {
                    return Err(Retry::FromScratch);
                }
                true
            }
            416 if have > 0 => return Err(Retry::FromScratch),
            401 | 403 => return Err(Retry::Fail(StoreError::Unauthorized { name: req.name.to_owned(), url: req.url.clone(), status })),
            404 => return Err(Retry::Fail(StoreError::NotFound { name: req.name.to_owned(), what: req.what.clone(), url: req.url.clone() })),
            _ => return Err(Retry::Fail(StoreError::HttpStatus { name: req.name.to_owned(), url: req.url.clone(), status })),
        };
        if !append {
            have = 0;
        }
        let body_len = resp.body().content_length();
        let total = req.size.or(body_len.map(|n| n + have));
        let pb = progress_bar(req.quiet, total, have, req.name);
        let mut out = OpenOptions::new().create(true).write(true).append(append).truncate(!append).open(partial).map_err(io_err("open", partial))?;
        let mut body = resp.into_body().into_reader();
        let streamed = stream(&mut body, &mut out, partial, &pb);
        pb.finish_and_clear();
        out.sync_all().map_err(io_err("sync", partial))?;
        drop(out);
        if let Err(e) = streamed {
            let received = fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
            return Err(Retry::Fail(match e {
                StreamError::Read(e) => StoreError::Interrupted {
                    name: req.name.to_owned(),
                    url: req.url.clone(),
                    received,
                    partial: partial.to_owned(),
                    message: redact(&e.to_string(), req.token),
                },
                StreamError::Store(e) => e,
            }));
        }
    }
    finish(store, req, partial).map_err(Retry::Fail)
}

/// Checks size and digest of a complete partial file and adopts it.
fn finish(store: &Store, req: &Request<'_>, partial: &Path) -> Result<Downloaded> {
    let mut f = File::open(partial).map_err(io_err("open", partial))?;
    let mut h = Sha256::new();
    let size = hash_into(&mut f, &mut h).map_err(io_err("read", partial))?;
    drop(f);
    let sha256 = hex::encode(h.finalize());
    if let Some(expected) = req.size {
        if size < expected {
            return Err(StoreError::Interrupted {
                name: req.name.to_owned(),
                url: req.url.clone(),
                received: size,
                partial: partial.to_owned(),
                message: "body ended early".into(),
            });
        }
        if size > expected {
            remove_if_exists(partial)?;
            return Err(StoreError::SizeMismatch { name: req.name.to_owned(), file: req.url.clone(), expected, actual: size });
        }
    }
    if let Some(expected) = req.sha256 {
        if expected != sha256 {
            // Resuming cannot repair wrong bytes: start over next time.
            remove_if_exists(partial)?;
            return Err(StoreError::HashMismatch { name: req.name.to_owned(), file: req.url.clone(), expected: expected.to_owned(), actual: sha256 });
        }
    }
    let blob = store.blob_path(&sha256)?;
    store.adopt(partial, &blob)?;
    Ok(Downloaded { blob, sha256, size })
}

enum StreamError {
    Read(io::Error),
    Store(StoreError),
}

fn stream(r: &mut impl Read, w: &mut File, path: &Path, pb: &ProgressBar) -> Result<(), StreamError> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(StreamError::Read(e)),
        };
        w.write_all(&buf[..k]).map_err(|e| StreamError::Store(io_err("write", path)(e)))?;
        pb.inc(k as u64);
    }
}

/// `bytes START-END/TOTAL` → START.
fn content_range_start(v: &str) -> Option<u64> {
    let rest = v.trim().strip_prefix("bytes ")?;
    rest.split('-').next()?.trim().parse().ok()
}

fn transport(req: &Request<'_>, e: &ureq::Error) -> Retry {
    Retry::Fail(StoreError::Transport { name: req.name.to_owned(), url: req.url.clone(), message: redact(&e.to_string(), req.token) })
}

/// Belt and braces: no error text ever carries the token, even if a
/// transport library were to echo a header back.
pub(crate) fn redact(msg: &str, token: Option<&HfToken>) -> String {
    match token {
        Some(t) if !t.expose().is_empty() => msg.replace(t.expose(), "<redacted>"),
        _ => msg.to_owned(),
    }
}

fn remove_if_exists(p: &Path) -> Result<()> {
    match fs::remove_file(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", p)(e)),
        _ => Ok(()),
    }
}

/// An agent with the system's trust roots (honouring `SSL_CERT_FILE` /
/// `SSL_CERT_DIR`), the environment's proxy (not for loopback), status codes
/// as values, and redirects that keep the token only on the same host.
fn agent(url: &str) -> Agent {
    let native = rustls_native_certs::load_native_certs();
    let certs: Vec<Certificate<'static>> = native.certs.iter().map(|c| Certificate::from_der(c.as_ref()).to_owned()).collect();
    let tls = if certs.is_empty() { TlsConfig::builder().build() } else { TlsConfig::builder().root_certs(RootCerts::new_with_certs(&certs)).build() };
    let proxy = if is_loopback(url) { None } else { Proxy::try_from_env() };
    let config = Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(10)
        .redirect_auth_headers(RedirectAuthHeaders::SameHost)
        .tls_config(tls)
        .proxy(proxy)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(120)))
        .timeout_per_read(Some(Duration::from_secs(120)))
        .user_agent(concat!("avac/", env!("CARGO_PKG_VERSION")))
        .build();
    Agent::new_with_config(config)
}

fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map(|(h, _)| h).unwrap_or(authority),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn progress_bar(quiet: bool, total: Option<u64>, start: u64, name: &str) -> ProgressBar {
    if quiet || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    let style =
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}").unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style.progress_chars("=> "));
    pb.set_message(name.to_owned());
    pb.set_position(start);
    pb
}

/// Percent-encodes one path segment (RFC 3986 unreserved characters pass).
pub(crate) fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
pub(crate) fn is_loopback_for_test(url: &str) -> bool {
    is_loopback(url)
}
