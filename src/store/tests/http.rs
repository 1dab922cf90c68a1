//! Hugging Face and URL fetches against a loopback server.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use super::super::http::is_loopback_for_test;
use super::super::{fetch, lock, HfSource, Pin, Source, Store, StoreError, UrlSource};
use super::server::{Route, Server};
use super::{list_files, opts, payload, sha, TOKEN};

const REV: &str = "89abcdef0123456789abcdef0123456789abcdef";

fn hf(file: &str, body: &[u8]) -> Source {
    Source::Hf(HfSource { repo: "org/model".into(), revision: REV.into(), file: file.into(), sha256: sha(body), size: body.len() as u64, unpack: None })
}

fn route(file: &str) -> String {
    format!("/org/model/resolve/{REV}/{file}")
}

/// A scratch directory and a store inside it.
fn scratch() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path().join("store")).expect("store");
    (dir, store)
}

/// Collects error texts to prove the token never leaks.
#[derive(Default)]
struct Seen(Vec<String>);

impl Seen {
    fn err(&mut self, e: StoreError) -> StoreError {
        self.0.push(format!("{e} {e:?}"));
        e
    }
}

impl Drop for Seen {
    fn drop(&mut self) {
        for s in &self.0 {
            assert!(!s.contains(TOKEN), "token leaked: {s}");
        }
    }
}

#[test]
fn hf_good_file_sends_token_to_its_host_and_makes_a_read_only_blob() {
    let body = payload(300_000);
    let srv = Server::start("127.0.0.1", vec![(route("model.bin"), Route::Body(body.clone()))], 2);
    let (dir, store) = scratch();
    let src = hf("model.bin", &body);
    let blob = fetch(&store, "m", &src, &opts(dir.path(), &srv.base)).expect("fetch");
    assert_eq!(fs::read(&blob).expect("read"), body);
    assert_eq!(blob, store.blob_path(&sha(&body)).expect("path"));
    assert_eq!(fs::metadata(&blob).expect("meta").permissions().mode() & 0o777, 0o444);
    let log = srv.log();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].path, route("model.bin"));
    assert_eq!(log[0].headers.get("authorization").map(String::as_str), Some(&*format!("Bearer {TOKEN}")));
    assert_eq!(list_files(&store.root().join("tmp")), Vec::<String>::new());
    // Second fetch: served from the store, no request.
    fetch(&store, "m", &src, &opts(dir.path(), &srv.base)).expect("refetch");
    assert_eq!(srv.log().len(), 1);
}

#[test]
fn hf_wrong_hash_leaves_nothing_behind() {
    let body = payload(5000);
    let mut evil = body.clone();
    evil[17] ^= 1;
    let srv = Server::start("127.0.0.1", vec![(route("w.bin"), Route::Body(evil.clone()))], 2);
    let (dir, store) = scratch();
    let mut seen = Seen::default();
    let e = seen.err(fetch(&store, "w", &hf("w.bin", &body), &opts(dir.path(), &srv.base)).expect_err("mismatch"));
    match &e {
        StoreError::HashMismatch { name, expected, actual, .. } => {
            assert_eq!(name, "w");
            assert_eq!(expected, &sha(&body));
            assert_eq!(actual, &sha(&evil));
        }
        other => panic!("{other:?}"),
    }
    assert!(list_files(store.root()).is_empty(), "{:?}", list_files(store.root()));
}

#[test]
fn truncated_body_keeps_partial_and_resumes_with_range() {
    let body = payload(200_001);
    let srv = Server::start("127.0.0.1", vec![(route("t.bin"), Route::TruncateUnlessRange(body.clone()))], 3);
    let (dir, store) = scratch();
    let src = hf("t.bin", &body);
    let o = opts(dir.path(), &srv.base);
    let mut seen = Seen::default();
    let e = seen.err(fetch(&store, "t", &src, &o).expect_err("truncated"));
    let half = (body.len() / 2) as u64;
    match &e {
        StoreError::Interrupted { received, partial, .. } => {
            assert_eq!(*received, half);
            assert_eq!(fs::metadata(partial).expect("partial kept").len(), half);
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("resume"), "{e}");
    let blob = fetch(&store, "t", &src, &o).expect("resumed");
    assert_eq!(fs::read(blob).expect("read"), body);
    let log = srv.log();
    assert_eq!(log.len(), 2);
    assert_eq!(log[1].headers.get("range").map(String::as_str), Some(&*format!("bytes={half}-")));
    assert!(list_files(&store.root().join("tmp")).is_empty());
}

#[test]
fn range_request_resumes_an_existing_partial_download() {
    let body = payload(100_000);
    let srv = Server::start("127.0.0.1", vec![(route("r.bin"), Route::Body(body.clone()))], 2);
    let (dir, store) = scratch();
    fs::write(store.partial_path(&sha(&body)), &body[..40_000]).expect("seed partial");
    let blob = fetch(&store, "r", &hf("r.bin", &body), &opts(dir.path(), &srv.base)).expect("fetch");
    assert_eq!(fs::read(blob).expect("read"), body);
    let log = srv.log();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].headers.get("range").map(String::as_str), Some("bytes=40000-"));
}

#[test]
fn status_401_and_404_explain_what_to_do_without_leaking_the_token() {
    let srv = Server::start("127.0.0.1", vec![(route("gated.bin"), Route::Status(401)), (route("forbidden.bin"), Route::Status(403))], 4);
    let (dir, store) = scratch();
    let o = opts(dir.path(), &srv.base);
    let mut seen = Seen::default();
    for file in ["gated.bin", "forbidden.bin"] {
        let e = seen.err(fetch(&store, "g", &hf(file, b"x"), &o).expect_err("401"));
        assert!(matches!(e, StoreError::Unauthorized { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("HF_TOKEN") && msg.contains("licence"), "{msg}");
    }
    let e = seen.err(fetch(&store, "g", &hf("absent.bin", b"x"), &o).expect_err("404"));
    let msg = e.to_string();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e:?}");
    assert!(msg.contains("org/model") && msg.contains(REV) && msg.contains("absent.bin"), "{msg}");
    // Options themselves print redacted.
    seen.0.push(format!("{o:?}"));
    assert!(format!("{o:?}").contains("<redacted>"));
    // Nothing on disk mentions it either.
    for f in list_files(dir.path()) {
        let bytes = fs::read(dir.path().join(&f)).unwrap_or_default();
        assert!(!bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()), "{f}");
    }
}

#[test]
fn redirect_to_another_host_drops_the_token() {
    let body = payload(1234);
    let cdn = Server::start("127.0.0.2", vec![("/blob/x".into(), Route::Body(body.clone()))], 1);
    let hub = Server::start("127.0.0.1", vec![(route("x.bin"), Route::Redirect(format!("{}/blob/x", cdn.base)))], 1);
    let (dir, store) = scratch();
    let blob = fetch(&store, "x", &hf("x.bin", &body), &opts(dir.path(), &hub.base)).expect("fetch");
    assert_eq!(fs::read(blob).expect("read"), body);
    assert!(hub.log()[0].headers.contains_key("authorization"));
    let cdn_log = cdn.log();
    assert_eq!(cdn_log.len(), 1);
    assert!(!cdn_log[0].headers.contains_key("authorization"), "{:?}", cdn_log[0]);
}

#[test]
fn url_fetch_and_lock_report_the_real_pin() {
    let body = payload(777);
    let srv = Server::start("127.0.0.1", vec![("/files/w.bin".into(), Route::Body(body.clone()))], 2);
    let (dir, store) = scratch();
    let unlocked = Source::Url(UrlSource { url: format!("{}/files/w.bin", srv.base), sha256: String::new(), size: 0, unpack: None });
    let pin = lock(&store, "w", &unlocked, &opts(dir.path(), "http://unused.invalid")).expect("lock");
    assert_eq!(pin, Pin { sha256: sha(&body), size: 777 });
    assert!(store.contains(&pin.sha256));
    // The url kind never sends the HF token.
    assert!(!srv.log()[0].headers.contains_key("authorization"));
    // Fetch with the pin: already in the store.
    let locked = Source::Url(UrlSource { url: format!("{}/files/w.bin", srv.base), sha256: pin.sha256.clone(), size: pin.size, unpack: None });
    fetch(&store, "w", &locked, &opts(dir.path(), "http://unused.invalid")).expect("fetch");
    assert_eq!(srv.log().len(), 1);
}

#[test]
fn lock_hf_without_a_pin() {
    let body = payload(4096);
    let srv = Server::start("127.0.0.1", vec![(route("l.bin"), Route::Body(body.clone()))], 1);
    let (dir, store) = scratch();
    let mut src = hf("l.bin", &body);
    if let Source::Hf(h) = &mut src {
        h.sha256.clear();
        h.size = 0;
    }
    let pin = lock(&store, "l", &src, &opts(dir.path(), &srv.base)).expect("lock");
    assert_eq!(pin, Pin { sha256: sha(&body), size: 4096 });
}

#[test]
fn loopback_hosts_bypass_proxies() {
    assert!(is_loopback_for_test("http://127.0.0.1:8080/x"));
    assert!(is_loopback_for_test("http://localhost/x"));
    assert!(is_loopback_for_test("http://[::1]:80/x"));
    assert!(!is_loopback_for_test("https://huggingface.co/x"));
    assert!(!is_loopback_for_test("https://127.example.org/x"));
}

/// Two fetchers of one source at once (threads here; processes take the
/// same OS file lock): one downloads, the other waits on the entry's lock
/// and then finds the adopted blob — one request, one partial file at most.
#[test]
fn concurrent_fetches_of_one_source_download_once() {
    let body = payload(2_000_000);
    let srv = Server::start("127.0.0.1", vec![(route("big.bin"), Route::Body(body.clone()))], 4);
    let (dir, store) = scratch();
    let src = hf("big.bin", &body);
    let blobs: Vec<std::path::PathBuf> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3).map(|_| s.spawn(|| fetch(&store, "m", &src, &opts(dir.path(), &srv.base)).expect("fetch"))).collect();
        hs.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    assert!(blobs.iter().all(|b| fs::read(b).expect("read") == body));
    assert_eq!(srv.log().len(), 1, "the source was downloaded once");
    assert_eq!(list_files(&store.root().join("tmp")), Vec::<String>::new());
}

#[test]
fn an_entry_lock_excludes_other_holders_until_dropped_and_leaves_nothing() {
    let (_dir, store) = scratch();
    let key = sha(b"x");
    let held = store.lock_entry(&key).expect("lock");
    let path = store.root().join("tmp").join(format!("{key}.lock"));
    let other = fs::OpenOptions::new().write(true).open(&path).expect("open");
    assert!(matches!(other.try_lock(), Err(fs::TryLockError::WouldBlock)));
    let waiter = std::thread::spawn({
        let store = store.clone();
        move || drop(store.lock_entry(&key).expect("lock after the first holder"))
    });
    drop(held);
    waiter.join().expect("waiter");
    assert_eq!(list_files(store.root()), Vec::<String>::new());
}
