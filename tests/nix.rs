//! The Nix rules (rules/*.nix) built by real Nix in its sandbox, through the
//! nixpkgs-free test flake (tests/nix/flake.nix): a static avac as every
//! builder, sources seeded by hash. The outputs must be golden/'s bytes, a
//! `--check` rebuild of every derivation must agree, a wrong seed must fail
//! with Nix's hash mismatch and the fix, a stale plan must fail at
//! evaluation with the command that regenerates it, and an unlocked target
//! must evaluate and fail only when built, with the `avac lock` command.
//!
//! Skipped (with a note) when `nix` is missing, unless `AVAC_REQUIRE_NIX=1`
//! (set by .ci/run), which turns a missing Nix into a failure. The static
//! avac is `AVAC_NIX_AVAC` if set, else built here with
//! `cargo build --release --target x86_64-unknown-linux-musl`.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SYSTEM: &str = "x86_64-linux";

/// Sandbox on; as root without a daemon, no build users (Debian's nix-bin
/// has no nixbld group); no binary cache (nothing here is in one, and the
/// machine may be offline).
const NIX_OPTIONS: &[&str] = &["--option", "sandbox", "true", "--option", "build-users-group", "", "--option", "substituters", ""];

/// Whether to run: Nix present, or required (then its absence fails).
fn nix_ready() -> bool {
    let ok = Command::new("nix").arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    let required = std::env::var("AVAC_REQUIRE_NIX").as_deref() == Ok("1");
    assert!(ok || !required, "AVAC_REQUIRE_NIX=1 but `nix` does not run (install Debian's nix-bin)");
    if !ok {
        eprintln!("skipped: `nix` is not installed (set AVAC_REQUIRE_NIX=1 to fail instead)");
    }
    ok
}

/// The statically linked avac the test flake uses as its builder.
fn static_avac() -> PathBuf {
    static BUILD: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);
    let mut guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = guard.as_ref() {
        return p.clone();
    }
    let p = match std::env::var_os("AVAC_NIX_AVAC") {
        Some(p) => PathBuf::from(p),
        None => {
            let target = "x86_64-unknown-linux-musl";
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let o = Command::new(cargo).current_dir(repo()).args(["build", "--release", "--bin", "avac", "--target", target]).output().expect("run cargo");
            assert!(o.status.success(), "building the static avac failed (needs `rustup target add {target}` and musl-tools):\n{}", stderr(&o));
            let dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join("target"));
            dir.join(target).join("release/avac")
        }
    };
    assert!(p.is_file(), "{} is not a file", p.display());
    *guard = Some(p.clone());
    p
}

/// Runs `nix` (flakes on, sandbox on, root without a daemon: no build users).
fn nix(args: &[&str]) -> Output {
    Command::new("nix").args(["--extra-experimental-features", "nix-command flakes"]).args(NIX_OPTIONS).args(args).output().expect("run nix")
}

/// Runs `nix-store` with the same options.
fn nix_store(args: &[&str]) -> Output {
    Command::new("nix-store").args(NIX_OPTIONS).args(args).output().expect("run nix-store")
}

/// Stages the test flake: flake.nix, rules/ (with `declaration` as
/// targets.toml if given), avac/bin/avac, seeds/<sha256>.
fn stage(declaration: Option<&str>) -> tempfile::TempDir {
    stage_with(declaration, &[])
}

/// As [`stage`], also seeding the fetched parts of the `extra` sources
/// (fetched into the test store first, e.g. the Gemma GGUF's four wheels).
fn stage_with(declaration: Option<&str>, extra: &[&str]) -> tempfile::TempDir {
    let d = tempfile::Builder::new().prefix("avac-nix-").tempdir().unwrap();
    let root = d.path();
    std::fs::copy(repo().join("tests/nix/flake.nix"), root.join("flake.nix")).unwrap();
    std::fs::create_dir_all(root.join("rules")).unwrap();
    for e in std::fs::read_dir(repo().join("rules")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), root.join("rules").join(e.file_name())).unwrap();
    }
    if let Some(text) = declaration {
        // Another declaration: the rules read its plan, which avac generates.
        std::fs::write(root.join("rules/targets.toml"), text).unwrap();
        let decl = root.join("rules/targets.toml");
        let o = avac(root, &["--targets", decl.to_str().unwrap(), "plan", "--all", "--out", root.join("rules/plan.json").to_str().unwrap()]);
        assert!(o.status.success(), "avac plan --all: {}", stderr(&o));
    }
    std::fs::create_dir_all(root.join("avac/bin")).unwrap();
    std::fs::copy(static_avac(), root.join("avac/bin/avac")).unwrap();
    // Seeds: the repository's files and the MiniLM wheel (from the test store).
    let seeds = root.join("seeds");
    std::fs::create_dir_all(&seeds).unwrap();
    let l = avac::declaration::Loaded::read(&repo().join("rules/targets.toml")).unwrap();
    for s in l.decl.sources.values() {
        if let avac::store::Source::File(f) = s {
            std::fs::copy(repo().join(&f.path), seeds.join(&f.sha256)).unwrap();
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    minilm_dir(tmp.path());
    let sha = l.decl.sources["minilm"].sha256().unwrap();
    std::fs::copy(store().join("sha256").join(sha), seeds.join(sha)).unwrap();
    for &name in extra {
        fetch_source(name);
        let parts = match &l.decl.sources[name] {
            avac::store::Source::Concat(c) => c.parts.clone(),
            _ => vec![name.to_string()],
        };
        for p in parts {
            let sha = l.decl.sources[&p].sha256().unwrap();
            std::fs::copy(store().join("sha256").join(sha), seeds.join(sha)).unwrap();
        }
    }
    d
}

fn flake(dir: &Path, attr: &str) -> String {
    format!("path:{}#{attr}", dir.display())
}

/// `sha256  name` lines of the golden outputs found in `out`.
fn digests_of(out: &Path, target: &str) -> String {
    golden(target)
        .lines()
        .map(|l| {
            let name = l.split_once("  ").unwrap().1;
            let path = out.join(name);
            let (d, _) = avac::store::hash_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            format!("{d}  {name}\n")
        })
        .collect()
}

#[test]
fn offline_targets_build_in_the_sandbox_with_golden_bytes_and_check() {
    if !nix_ready() {
        return;
    }
    let d = stage(None);
    for t in ["malbert-tiny-int8", "minilm-intent-int8"] {
        build_and_check(d.path(), t);
    }
}

#[test]
fn alc_target_builds_in_the_sandbox_with_golden_bytes_and_check() {
    if !nix_ready() {
        return;
    }
    let d = stage_with(None, &["gemma3-270m-gguf"]);
    build_and_check(d.path(), "gemma3-270m-q4bf16");
}

/// `nix build .#t` in the staged flake: the package holds exactly golden/'s
/// outputs and the provenance statement, and every derivation but validate
/// rebuilds to the same bytes under `--check`.
fn build_and_check(dir: &Path, t: &str) {
    let link = dir.join(format!("result-{t}"));
    let o = nix(&["build", "-L", &flake(dir, t), "--out-link", link.to_str().unwrap()]);
    assert!(o.status.success(), "nix build {t}:\n{}", stderr(&o));
    assert_eq!(digests_of(&link, t), golden(t), "nix build {t}: outputs differ from golden/{t}.sha256");
    let mut published: Vec<String> = std::fs::read_dir(&link).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    published.sort();
    let mut pinned: Vec<String> = golden(t).lines().map(|l| l.split_once("  ").unwrap().1.to_string()).collect();
    let artifact = pinned[0].clone();
    pinned.push(format!("{artifact}.provenance.json"));
    pinned.sort();
    assert_eq!(published, pinned, "the package holds exactly the golden outputs and the provenance statement");
    // The statement names the golden bytes and says Nix ran the steps.
    let st = read_json(&link.join(format!("{artifact}.provenance.json")));
    let subjects: String =
        st["subject"].as_array().unwrap().iter().map(|s| format!("{}  {}\n", s["digest"]["sha256"].as_str().unwrap(), s["name"].as_str().unwrap())).collect();
    assert_eq!(subjects, golden(t), "{st}");
    assert_eq!(st["predicate"]["runDetails"]["builder"]["id"], "urn:avac:builder:nix", "{st}");
    // Every derivation of the target (steps, params, sources) rebuilt and compared.
    let drv = nix(&["path-info", "--derivation", &flake(dir, t)]);
    assert!(drv.status.success(), "{}", stderr(&drv));
    let drv = stdout(&drv).trim().to_string();
    let closure = nix_store(&["--query", "--requisites", &drv]);
    assert!(closure.status.success(), "{}", stderr(&closure));
    // All but the validate step, whose report carries latency figures (as
    // in `avac build`, outside every digest; the package leaves it out).
    let drvs: Vec<String> = stdout(&closure).lines().filter(|l| l.ends_with(".drv") && !l.ends_with("-validate.drv")).map(String::from).collect();
    assert!(drvs.len() >= 8, "{drvs:?}");
    let mut args = vec!["--realise", "--check"];
    args.extend(drvs.iter().map(String::as_str));
    let c = nix_store(&args);
    assert!(c.status.success(), "nix-store --realise --check {t} (a step is not reproducible):\n{}", stderr(&c));
}

#[test]
fn wrong_seed_fails_with_the_hash_mismatch_and_the_fix() {
    if !nix_ready() {
        return;
    }
    // A pin no store path has yet (a realised fixed output would be reused
    // without looking at the seed), seeded with other bytes.
    let nonce = format!("{:?}{:?}", std::time::SystemTime::now(), std::thread::current().id());
    let pin = avac::store::hash_bytes(nonce.as_bytes());
    let decl = std::fs::read_to_string(repo().join("rules/targets.toml")).unwrap();
    let d = stage(Some(&format!("{decl}\n[sources.wrong-pin]\nkind = \"file\"\npath = \"data/wrong.json\"\nsha256 = \"{pin}\"\n")));
    std::fs::write(d.path().join("seeds").join(&pin), b"[\"not the pinned bytes\"]\n").unwrap();
    let o = nix(&["build", "-L", "--no-link", &flake(d.path(), &format!("legacyPackages.{SYSTEM}.sources.wrong-pin"))]);
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("hash mismatch in fixed-output derivation"), "{err}");
    assert!(err.contains("avac lock wrong-pin"), "{err}");
}

/// What evaluation refuses and what it lets through: a target whose
/// sources are not pinned yet evaluates (so `nix flake show`/`check` can
/// list it) and fails only when built, naming the source and the `avac
/// lock` command; a plan generated from another declaration is refused at
/// evaluation, with the command that regenerates it.
#[test]
fn unlocked_targets_evaluate_and_a_stale_plan_is_refused() {
    if !nix_ready() {
        return;
    }
    let d = stage(None);
    let drv = |t: &str| nix(&["eval", "--raw", &flake(d.path(), &format!("packages.{SYSTEM}.{t}.drvPath"))]);
    let o = drv("malbert-int8");
    assert!(o.status.success(), "evaluating an unlocked target: {}", stderr(&o));
    let o = nix(&["build", "-L", "--no-link", &flake(d.path(), &format!("legacyPackages.{SYSTEM}.sources.albert-base-v2-weights"))]);
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("source albert-base-v2-weights is not locked") && err.contains("avac lock albert-base-v2-weights"), "{err}");

    let decl = std::fs::read_to_string(d.path().join("rules/targets.toml")).unwrap();
    std::fs::write(d.path().join("rules/targets.toml"), format!("{decl}\n# edited after planning\n")).unwrap();
    let o = drv("malbert-tiny-int8");
    let err = stderr(&o);
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(err.contains("was not planned from") && err.contains("avac plan --all --out rules/plan.json"), "{err}");
}

/// `nix flake show` lists one package per declared target (the Hugging Face
/// ones included, though unlocked: listing evaluates names, not pins).
#[test]
fn flake_show_lists_every_target() {
    if !nix_ready() {
        return;
    }
    let d = stage(None);
    let o = nix(&["flake", "show", "--json", &format!("path:{}", d.path().display())]);
    assert!(o.status.success(), "nix flake show:\n{}", stderr(&o));
    let shown: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let packages = shown["packages"][SYSTEM].as_object().unwrap_or_else(|| panic!("no packages.{SYSTEM}: {shown}"));
    let mut listed: Vec<&str> = packages.keys().map(String::as_str).collect();
    listed.sort();
    let l = avac::declaration::Loaded::read(&repo().join("rules/targets.toml")).unwrap();
    let mut declared: Vec<&str> = l.decl.targets.keys().map(String::as_str).collect();
    declared.sort();
    assert_eq!(listed, declared, "{shown}");
    for (name, p) in packages {
        assert_eq!(p["type"], "derivation", "{name}: {p}");
    }
}

/// What of the root flake runs without nixpkgs: every `.nix` file of the
/// repository parses; `flake.lock` matches `flake.nix`'s inputs (metadata
/// resolves offline without touching the lock) and pins each by revision
/// and narHash; `toolchains/runtime-libs.nix` evaluates against the
/// declaration.
#[test]
fn root_flake_parses_and_its_lock_matches_its_inputs() {
    if !nix_ready() {
        return;
    }
    let mut files = vec![repo().join("flake.nix"), repo().join("tests/nix/flake.nix")];
    for dir in ["rules", "toolchains", "tests/nix/stub-nixpkgs", "tests/nix/stub-rust-overlay"] {
        for e in std::fs::read_dir(repo().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "nix") {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 18, "{files:?}");
    for f in &files {
        let o = Command::new("nix-instantiate").args(NIX_OPTIONS).arg("--parse").arg(f).output().expect("run nix-instantiate");
        assert!(o.status.success(), "{}: {}", f.display(), stderr(&o));
    }
    // The flake and its lock alone (metadata evaluates no output).
    let d = tempfile::tempdir().unwrap();
    for f in ["flake.nix", "flake.lock"] {
        std::fs::copy(repo().join(f), d.path().join(f)).unwrap();
    }
    let o = nix(&["flake", "metadata", "--json", "--offline", "--no-update-lock-file", &format!("path:{}", d.path().display())]);
    assert!(o.status.success(), "nix flake metadata (is flake.lock in step with flake.nix's inputs?):\n{}", stderr(&o));
    let meta: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let lock = read_json(&repo().join("flake.lock"));
    for input in ["nixpkgs", "rust-overlay"] {
        let node = &meta["locks"]["nodes"][input]["locked"];
        let rev = node["rev"].as_str().unwrap_or_else(|| panic!("{input}: no locked rev: {meta}"));
        assert_eq!(rev.len(), 40, "{input}: {node}");
        assert!(node["narHash"].as_str().is_some_and(|h| h.starts_with("sha256-")), "{input}: {node}");
        assert_eq!(node, &lock["nodes"][input]["locked"], "{input}");
    }
    assert_eq!(meta["locks"]["nodes"]["rust-overlay"]["inputs"]["nixpkgs"], serde_json::json!(["nixpkgs"]), "rust-overlay follows nixpkgs");
    // The runtime libraries named by the declaration's packages (none today).
    let o = Command::new("nix-instantiate")
        .args(NIX_OPTIONS)
        .args(["--eval", "--strict", "--json", "-E"])
        .arg(format!("import {}/toolchains/runtime-libs.nix {{ }}", repo().display()))
        .output()
        .expect("run nix-instantiate");
    assert!(o.status.success(), "{}", stderr(&o));
    let libs: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let l = avac::declaration::Loaded::read(&repo().join("rules/targets.toml")).unwrap();
    let declared: usize = l.decl.targets.values().map(|t| if let avac::declaration::Target::Alc(a) = t { a.package.libs.len() } else { 0 }).sum();
    assert_eq!(libs.as_object().unwrap().len(), declared, "{libs}");
}

/// Copies the repository's tracked top-level inputs of the root flake to `to`.
fn copy_repo(to: &Path) {
    fn copy(from: &Path, to: &Path) {
        if from.is_dir() {
            std::fs::create_dir_all(to).unwrap();
            for e in std::fs::read_dir(from).unwrap() {
                let e = e.unwrap();
                copy(&e.path(), &to.join(e.file_name()));
            }
        } else {
            std::fs::copy(from, to).unwrap();
        }
    }
    for f in ["flake.nix", "flake.lock", "Cargo.toml", "Cargo.lock", "rust-toolchain.toml", "src", "rules", "data", "benches", "tests", "toolchains", "golden"]
    {
        copy(&repo().join(f), &to.join(f));
    }
}

/// The root flake evaluated whole, in pure mode, by the Nix under test
/// (Debian's 2.8 in CI), with test doubles in place of nixpkgs and
/// rust-overlay (tests/nix/stub-*: nixpkgs cannot be fetched here):
/// `nix flake check --no-build` evaluates every package — the unlocked
/// Hugging Face targets included, which must evaluate and fail only when
/// built — every check, app, dev shell and the formatter.
#[test]
fn root_flake_checks_in_pure_mode_with_unlocked_targets() {
    if !nix_ready() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    copy_repo(d.path());
    let stub = |n: &str| format!("path:{}", repo().join("tests/nix").join(n).display());
    let (nixpkgs, overlay) = (stub("stub-nixpkgs"), stub("stub-rust-overlay"));
    let over = ["--offline", "--no-write-lock-file", "--override-input", "nixpkgs", &nixpkgs, "--override-input", "rust-overlay", &overlay];
    let root = format!("path:{}", d.path().display());
    let mut args = vec!["flake", "check", "--no-build"];
    args.extend(over);
    args.push(&root);
    let o = nix(&args);
    assert!(o.status.success(), "nix flake check --no-build on the root flake:\n{}", stderr(&o));
    // An unlocked target's derivation evaluates.
    let attr = format!("{root}#packages.{SYSTEM}.malbert-int8.drvPath");
    let mut args = vec!["eval", "--raw"];
    args.extend(over);
    args.push(&attr);
    let o = nix(&args);
    assert!(o.status.success() && stdout(&o).ends_with(".drv"), "{}", stderr(&o));
}

/// `avac hash` against Nix's own `nix hash path` / `nix hash file` on a tree
/// with a subdirectory, an executable, a symlink and a non-ASCII name.
#[test]
fn avac_hash_equals_nix_hash() {
    if !nix_ready() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let t = d.path().join("tree");
    std::fs::create_dir_all(t.join("sub/deeper")).unwrap();
    std::fs::write(t.join("sub/a.txt"), "hello\n").unwrap();
    std::fs::write(t.join("sub/deeper/ünïcode"), vec![7u8; 100_003]).unwrap();
    std::fs::write(t.join("run.sh"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(t.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("sub/a.txt", t.join("link")).unwrap();
    std::fs::write(t.join("empty"), "").unwrap();
    let field = |o: &Output, key: &str| -> String {
        stdout(o).lines().find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string())).unwrap_or_else(|| panic!("{key} missing: {}", stdout(o)))
    };
    let nix_out = |args: &[&str]| -> String {
        let o = Command::new("nix").args(["--extra-experimental-features", "nix-command", "hash"]).args(args).output().expect("nix");
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o).trim().to_string()
    };
    for p in [t.clone(), t.join("run.sh"), t.join("sub/deeper/ünïcode"), t.join("empty")] {
        let ps = p.to_str().unwrap();
        let o = avac(d.path(), &["hash", ps]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(field(&o, "nar-sha256"), nix_out(&["path", "--base32", ps]), "{ps}");
        assert_eq!(field(&o, "nar-sri"), nix_out(&["path", ps]), "{ps}");
        if p.is_file() {
            assert_eq!(field(&o, "sha256 "), nix_out(&["file", "--base16", ps]), "{ps}");
            assert_eq!(field(&o, "sri "), nix_out(&["file", ps]), "{ps}");
        }
    }
    let o = avac(d.path(), &["hash", "missing"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("missing"), "{}", stderr(&o));
}
