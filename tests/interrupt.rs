//! Builds that are killed, interrupted, run side by side, or meet a hostile
//! store or output directory: every file in `--out` is whole (absent or the
//! bytes of a clean build), the next build gives the golden bytes, and
//! nothing is left over — no temporary in `--out`, the store's `tmp/` or
//! `$TMPDIR`, no lock file.
//!
//! Each test has its own store, `$TMPDIR` and `--out` so that what is left
//! over can be seen. The target is `malbert-tiny-int8` (a few seconds).

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

const TARGET: &str = "malbert-tiny-int8";

/// One test's private store, `$TMPDIR` and output directory.
struct Site {
    _dir: tempfile::TempDir,
    store: PathBuf,
    tmp: PathBuf,
    out: PathBuf,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let (store, tmp, out) = (dir.path().join("store"), dir.path().join("tmp"), dir.path().join("out"));
        std::fs::create_dir_all(&tmp).unwrap();
        Site { _dir: dir, store, tmp, out }
    }

    /// `avac build TARGET --out OUT` with this site's store and `$TMPDIR`.
    fn build(&self, out: &Path) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_avac"));
        c.current_dir(repo()).env("AVAC_STORE", &self.store).env("TMPDIR", &self.tmp).args(["--threads", "2", "build", TARGET, "--out"]).arg(out);
        c
    }

    fn run(&self, out: &Path) -> Output {
        self.build(out).output().unwrap()
    }

    fn spawn(&self) -> Child {
        self.build(&self.out).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
    }

    /// Everything this site holds that a finished build must not leave:
    /// temporaries anywhere, lock files, anything in the store's `tmp/` or
    /// in `$TMPDIR`.
    fn leftovers(&self) -> Vec<String> {
        let mut v: Vec<String> = walk(&self.out).into_iter().filter(|p| p.contains(".avac-tmp-")).map(|p| format!("out/{p}")).collect();
        v.extend(
            walk(&self.store)
                .into_iter()
                .filter(|p| (p.starts_with("tmp/") && p != "tmp/") || p.contains(".avac-tmp-") || p.ends_with(".lock"))
                .map(|p| format!("store/{p}")),
        );
        v.extend(walk(&self.tmp).into_iter().map(|p| format!("TMPDIR/{p}")));
        v
    }
}

/// Every entry under `dir` (files, symlinks and empty directories), relative, sorted.
fn walk(dir: &Path) -> Vec<String> {
    fn go(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        let mut any = false;
        for e in rd.flatten() {
            any = true;
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                go(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
        if !any && dir != root {
            out.push(format!("{}/", dir.strip_prefix(root).unwrap().display()));
        }
    }
    let mut out = Vec::new();
    go(dir, dir, &mut out);
    out.sort();
    out
}

/// The files of a directory by name, with their bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    walk(dir).into_iter().map(|n| (n.clone(), std::fs::read(dir.join(&n)).unwrap())).collect()
}

/// The published files of a clean build (the golden digests checked), once per test binary.
fn reference() -> &'static BTreeMap<String, Vec<u8>> {
    static R: std::sync::OnceLock<BTreeMap<String, Vec<u8>>> = std::sync::OnceLock::new();
    R.get_or_init(|| {
        let s = Site::new();
        let o = s.run(&s.out);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_golden(TARGET, &digests(&o));
        assert_eq!(s.leftovers(), Vec::<String>::new());
        files(&s.out)
    })
}

/// Whether `bytes` are a whole copy of the clean build's published file
/// `name`: the same bytes for the pinned outputs and the provenance; for a
/// report (it holds latencies), JSON with the same keys.
fn whole(name: &str, bytes: &[u8]) -> bool {
    let Some(want) = reference().get(name) else { return false };
    if !name.ends_with(".validation.json") {
        return bytes == want.as_slice();
    }
    let keys = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).ok().and_then(|v| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()));
    keys(bytes).is_some() && keys(bytes) == keys(want)
}

/// Every file in `dir` is a whole published file.
fn assert_whole(dir: &Path, when: &str) {
    for (name, bytes) in files(dir) {
        assert!(whole(&name, &bytes), "{when}: {name} ({} bytes) in --out is not a whole published file", bytes.len());
    }
}

/// `dir` holds exactly the published files, whole.
fn assert_published(dir: &Path, when: &str) {
    assert_whole(dir, when);
    let names: Vec<String> = files(dir).into_keys().collect();
    assert_eq!(names, reference().keys().cloned().collect::<Vec<_>>(), "{when}");
}

/// A rebuild succeeds with the golden bytes and leaves nothing over.
fn assert_rebuilds(s: &Site, when: &str) {
    let o = s.run(&s.out);
    assert!(o.status.success(), "{when}: rebuild failed: {}", stderr(&o));
    assert_eq!(digests(&o), golden(TARGET), "{when}: rebuild differs from golden");
    assert_published(&s.out, when);
    assert_eq!(s.leftovers(), Vec::<String>::new(), "{when}: left over after the rebuild");
}

fn signal(child: &Child, sig: &str) {
    let st = Command::new("kill").args([&format!("-{sig}"), &child.id().to_string()]).status().unwrap();
    assert!(st.success() || sig == "KILL", "kill -{sig}");
}

/// Waits for `child` at most `limit`.
fn wait_at_most(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// The pid of a process that has exited.
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

/// Delays after the start of a build at which it is killed: from before
/// the first step to publishing (a build takes a few seconds here). Where
/// the signal lands varies; the invariants hold wherever it does.
const DELAYS_MS: [u64; 7] = [0, 150, 400, 900, 1600, 2600, 4000];

#[test]
fn kill_9_at_several_points_then_a_rebuild_is_golden_with_nothing_left() {
    reference();
    let s = Site::new();
    for ms in DELAYS_MS {
        let when = format!("kill -9 after {ms} ms");
        let mut c = s.spawn();
        std::thread::sleep(Duration::from_millis(ms));
        signal(&c, "KILL");
        c.wait().unwrap();
        // The step it was running dies with it (PR_SET_PDEATHSIG): give the kernel a moment.
        std::thread::sleep(Duration::from_millis(100));
        assert_whole(&s.out, &when);
        assert_rebuilds(&s, &when);
        // Start the next round from an empty --out, so that later kills can land before publishing.
        std::fs::remove_dir_all(&s.out).unwrap();
    }
}

#[test]
fn sigint_and_sigterm_stop_promptly_and_remove_their_temporaries() {
    reference();
    let s = Site::new();
    let term = [400, 2600].map(|ms| (ms, "TERM"));
    for (ms, sig) in DELAYS_MS.iter().map(|ms| (*ms, "INT")).chain(term) {
        let when = format!("SIG{sig} after {ms} ms");
        let mut c = s.spawn();
        std::thread::sleep(Duration::from_millis(ms));
        signal(&c, sig);
        let status = wait_at_most(&mut c, Duration::from_secs(5)).unwrap_or_else(|| panic!("{when}: still running 5 s later"));
        let err = c.stderr.take().map(|mut e| {
            let mut v = String::new();
            std::io::Read::read_to_string(&mut e, &mut v).unwrap();
            v
        });
        let code = if sig == "INT" { 130 } else { 143 };
        // A build that had finished before the signal exits 0; one signalled
        // before `main` installed the handling dies of the signal.
        use std::os::unix::process::ExitStatusExt;
        let early = status.signal() == Some(code - 128);
        assert!(status.success() || early || status.code() == Some(code), "{when}: {status:?} {err:?}");
        if status.code() == Some(code) {
            assert!(err.as_deref().unwrap_or("").contains(&format!("interrupted by SIG{sig}")), "{when}: {err:?}");
        }
        assert_whole(&s.out, &when);
        // Unlike kill -9, nothing is left even before the next run.
        assert_eq!(s.leftovers(), Vec::<String>::new(), "{when}: left over after the signal");
        assert_rebuilds(&s, &when);
        std::fs::remove_dir_all(&s.out).unwrap();
    }
}

#[test]
fn two_builds_at_once_share_the_store_and_the_output_directory() {
    reference();
    let s = Site::new();
    for round in 0..2 {
        let (a, b) = (s.spawn(), s.spawn());
        for c in [a, b] {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "round {round}: {}", stderr(&o));
            assert_eq!(digests(&o), golden(TARGET), "round {round}");
        }
        assert_published(&s.out, &format!("round {round}"));
        assert_eq!(s.leftovers(), Vec::<String>::new(), "round {round}");
    }
}

/// What dead builds left — a half-written output in `--out`, a scratch
/// directory in `$TMPDIR`, a store temporary and lock — is removed by the
/// next build; a live process's claimed temporary is not.
#[test]
fn leftovers_of_dead_builds_are_removed_and_live_ones_kept() {
    let s = Site::new();
    let dead = dead_pid();
    std::fs::create_dir_all(&s.out).unwrap();
    let half = s.out.join(format!(".malbert-tiny-intent-classifier-int8.onnx.avac-tmp-{dead}-0"));
    std::fs::write(&half, &reference()["malbert-tiny-intent-classifier-int8.onnx"][..1000]).unwrap();
    let scratch = s.tmp.join(format!(".avac-build.avac-tmp-{dead}-Ab12Cd"));
    std::fs::create_dir_all(scratch.join("work/convert")).unwrap();
    std::fs::write(scratch.join("work/convert/model.safetensors"), b"half").unwrap();
    std::fs::create_dir_all(s.store.join("tmp")).unwrap();
    std::fs::write(s.store.join(format!("tmp/.add.avac-tmp-{dead}-Zz9Yy8")), b"half").unwrap();
    std::fs::write(s.store.join("tmp/8a722e4b8a7704b0d91642f6d3c94ed662d193f15460a2d2be906568d69e7da3.lock"), b"").unwrap();
    // Another live process's output being written: claimed (locked) by it.
    let live = s.out.join(format!(".other.onnx.avac-tmp-{}-0", std::process::id()));
    std::fs::write(&live, b"being written").unwrap();
    let claim = std::fs::File::open(&live).unwrap();
    claim.lock().unwrap();
    let o = s.run(&s.out);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(live.exists(), "a live process's temporary was removed");
    drop(claim);
    std::fs::remove_file(&live).unwrap();
    assert_published(&s.out, "after leftovers");
    assert_eq!(s.leftovers(), Vec::<String>::new());
}

/// Flipped bytes in a store blob, and a symlink in place of another (to a
/// file with other bytes), are found when the build uses them: removed
/// with a warning naming them, fetched again, and the build is golden. The
/// symlink's target is never written.
#[test]
fn a_corrupt_or_symlinked_store_entry_is_fetched_again() {
    let s = Site::new();
    assert_rebuilds(&s, "first build");
    let intents = s.store.join("sha256/8a722e4b8a7704b0d91642f6d3c94ed662d193f15460a2d2be906568d69e7da3");
    let calibration = s.store.join("sha256/8588e23c0dff9a86e87f785142eba3853f067958105fd3df21dc2043fdbe7846");
    let mut bytes = std::fs::read(&intents).unwrap();
    bytes[10] ^= 0x20;
    std::fs::remove_file(&intents).unwrap();
    std::fs::write(&intents, &bytes).unwrap();
    let decoy = s.tmp.join("../decoy.json");
    std::fs::write(&decoy, b"{\"not\": \"the calibration text\"}").unwrap();
    std::fs::remove_file(&calibration).unwrap();
    std::os::unix::fs::symlink(&decoy, &calibration).unwrap();
    std::fs::remove_dir_all(&s.out).unwrap();
    let o = s.run(&s.out);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(&format!("store entry `{}` is corrupt", intents.display())), "{err}");
    assert!(err.contains(&format!("store entry `{}` is a symlink", calibration.display())), "{err}");
    assert_eq!(digests(&o), golden(TARGET));
    for blob in [&intents, &calibration] {
        assert!(std::fs::symlink_metadata(blob).unwrap().is_file(), "{} is not a regular file again", blob.display());
    }
    assert_eq!(std::fs::read(&decoy).unwrap(), b"{\"not\": \"the calibration text\"}");
    assert_eq!(s.leftovers(), Vec::<String>::new());
}

/// Mounts a tmpfs with `opts` at `dir`; `None` (with the reason printed)
/// where that is not allowed, as the test then cannot run.
fn mount_tmpfs(dir: &Path, opts: &str) -> Option<Unmount> {
    std::fs::create_dir_all(dir).unwrap();
    match Command::new("mount").args(["-t", "tmpfs", "-o", opts, "tmpfs"]).arg(dir).output() {
        Ok(o) if o.status.success() => Some(Unmount(dir.to_path_buf())),
        Ok(o) => {
            eprintln!("skipped: mount -t tmpfs -o {opts} failed: {}", String::from_utf8_lossy(&o.stderr).trim());
            None
        }
        Err(e) => {
            eprintln!("skipped: cannot run mount: {e}");
            None
        }
    }
}

struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A full disk: a 64 KiB `--out` cannot hold the outputs. The build says
/// so, naming the directory, before it writes anything.
#[test]
fn a_full_output_disk_is_a_clear_error_and_nothing_is_written() {
    let s = Site::new();
    let Some(_m) = mount_tmpfs(&s.out, "size=64k") else { return };
    let o = s.run(&s.out);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("no space left on device for the outputs in `{}`", s.out.display())), "{err}");
    assert_eq!(walk(&s.out), Vec::<String>::new());
    assert_eq!(s.leftovers(), Vec::<String>::new());
}

/// A read-only `--out` is refused before anything is built, naming it.
#[test]
fn a_read_only_output_directory_is_refused_before_building() {
    let s = Site::new();
    let Some(_m) = mount_tmpfs(&s.out, "ro,size=1m") else { return };
    let t = Instant::now();
    let o = s.run(&s.out);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("output directory `{}`: Read-only file system", s.out.display())), "{err}");
    assert!(t.elapsed() < Duration::from_secs(3), "it built first: {:?}", t.elapsed());
    assert_eq!(s.leftovers(), Vec::<String>::new());
}

/// `--out` a symlink to a directory: followed (the user named it), the
/// symlink stays. A dangling symlink or a regular file: refused, named.
#[test]
fn symlinked_or_non_directory_out_is_followed_or_refused() {
    let s = Site::new();
    let real = s.out.with_file_name("real-out");
    std::fs::create_dir_all(&real).unwrap();
    let link = s.out.with_file_name("link-out");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let o = s.run(&link);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_published(&real, "through a symlink");

    let dangling = s.out.with_file_name("dangling-out");
    std::os::unix::fs::symlink(s.out.with_file_name("nowhere"), &dangling).unwrap();
    let o = s.run(&dangling);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("output directory `{}`: is a symlink to", dangling.display())) && err.contains("which does not exist"), "{err}");

    let file = s.out.with_file_name("file-out");
    std::fs::write(&file, b"a file").unwrap();
    let o = s.run(&file);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("output directory `{}`: exists and is not a directory", file.display())), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"a file");
    assert!(!s.out.with_file_name("nowhere").exists());
    assert_eq!(s.leftovers(), Vec::<String>::new());
}
