//! Ctrl-C and SIGTERM: avac stops the step it is running, removes its live
//! temporaries and exits 130 (143 for SIGTERM), so an interrupted build
//! leaves nothing behind.
//!
//! What it removes is what this process registered: every temporary of
//! [`crate::atomic`] (outputs being written, scratch directories) is
//! tracked from before it is created until it is renamed or removed. A
//! process killed with SIGKILL cannot clean up; its temporaries carry its
//! pid and an OS lock, and the next run removes them
//! ([`crate::atomic::remove_stale`]). A step runs as a child that the
//! kernel kills when its parent dies (Linux `PR_SET_PDEATHSIG`), so no step
//! outlives a killed build and writes into a directory being cleaned.
//!
//! The signals are blocked in every thread and received by one thread
//! ([`install`]), which does the cleanup outside any signal handler.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// The process's live temporaries, and whether an interrupt is being handled.
struct Live {
    paths: BTreeSet<PathBuf>,
    stopping: bool,
}

static LIVE: Mutex<Live> = Mutex::new(Live { paths: BTreeSet::new(), stopping: false });
/// The step child being run, so that the signal thread can stop it.
static CHILD: Mutex<Option<Child>> = Mutex::new(None);

fn live() -> std::sync::MutexGuard<'static, Live> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registers a temporary before it is created. Once an interrupt is being
/// handled, the calling thread stops here until the process exits: nothing
/// new is created behind the cleanup.
pub(crate) fn track(path: &Path) {
    let mut l = live();
    if l.stopping {
        drop(l);
        halt();
    }
    l.paths.insert(path.to_path_buf());
}

/// Parks the calling thread for good: the signal thread is cleaning up
/// and will exit the process with the signal's code.
fn halt() -> ! {
    loop {
        std::thread::park();
    }
}

/// Forgets a temporary that was renamed into place or removed.
pub(crate) fn untrack(path: &Path) {
    live().paths.remove(path);
}

/// Blocks SIGINT and SIGTERM in this thread and every thread it starts
/// later, and starts the thread that handles them. Call it first in
/// `main`, before any other thread exists. (Child processes start with an
/// empty signal mask: the standard library resets it.)
pub fn install() {
    #[cfg(unix)]
    unix::install();
}

/// Runs `cmd` to completion with stdout discarded, returning its status
/// and stderr. An interrupt kills it (and waits for it) before removing the
/// temporaries, so the step cannot write into a directory being removed;
/// on Linux the kernel also kills it if this process dies.
pub fn run_child(cmd: &mut Command) -> std::io::Result<(ExitStatus, Vec<u8>)> {
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    #[cfg(target_os = "linux")]
    unix::die_with_parent(cmd);
    let mut child = cmd.spawn()?;
    let mut stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    *CHILD.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
    let status = loop {
        let mut slot = CHILD.lock().unwrap_or_else(|e| e.into_inner());
        let child = slot.as_mut().expect("held until it exits");
        if let Some(s) = child.try_wait()? {
            *slot = None;
            drop(slot);
            // Killed by the signal thread: it, not a step failure, ends the process.
            if live().stopping {
                halt();
            }
            break s;
        }
        drop(slot);
        std::thread::sleep(Duration::from_millis(5));
    };
    Ok((status, reader.join().unwrap_or_default()))
}

/// Stops the running child (if any), removes every registered temporary
/// and reports how many it removed. Nothing is registered after it starts.
fn clean_up() -> usize {
    live().stopping = true;
    if let Some(child) = CHILD.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        // `Child` knows whether it was reaped: a recycled pid is never signalled.
        let _ = child.kill();
        let _ = child.wait();
    }
    let paths = std::mem::take(&mut live().paths);
    paths.iter().filter(|p| remove(p)).count()
}

/// Removes a file or a directory tree (the one place below [`crate::atomic`]
/// that removes temporaries); whether something was removed.
pub(crate) fn remove(path: &Path) -> bool {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).is_ok(),
        Ok(_) => std::fs::remove_file(path).is_ok(),
        Err(_) => false,
    }
}

#[cfg(unix)]
mod unix {
    /// See [`super::install`].
    pub(super) fn install() {
        // SAFETY: plain libc calls on a local, initialised signal set.
        let set = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return;
            }
            set
        };
        let spawned = std::thread::Builder::new().name("avac-signals".into()).spawn(move || loop {
            let mut sig = 0;
            // SAFETY: `set` is initialised; `sig` is a valid out pointer.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                continue;
            }
            let removed = super::clean_up();
            let name = if sig == libc::SIGINT { "SIGINT" } else { "SIGTERM" };
            eprintln!("error: interrupted by {name}; removed {removed} temporary file(s), nothing was published half-written");
            std::process::exit(128 + sig);
        });
        if spawned.is_err() {
            // No thread to receive them: let the signals terminate the process as before.
            // SAFETY: as above.
            unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
        }
    }

    /// The child gets SIGKILL when the thread that started it dies, and
    /// exits at once if that already happened before the request was made.
    #[cfg(target_os = "linux")]
    pub(super) fn die_with_parent(cmd: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        // SAFETY: getpid is async-signal-safe.
        let parent = unsafe { libc::getpid() };
        // SAFETY: prctl and getppid are async-signal-safe and touch no memory of the parent.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    return Err(std::io::Error::other("the parent died before the step started"));
                }
                Ok(())
            });
        }
    }
}
