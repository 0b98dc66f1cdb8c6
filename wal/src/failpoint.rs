//! Failpoints for tests: compiled in always, inert unless set.
//!
//! Set one with [`set_failpoint`] or, for a whole process, with the
//! environment variable `CAPSTAN_WAL_FAILPOINT=name[,name...]` (each named
//! point then fails every time). Names: [`WAL_BEFORE_WRITE`],
//! [`WAL_BEFORE_FDATASYNC`], [`WAL_AFTER_FDATASYNC`]. The settings are
//! process-global.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};

/// Fires before each data write of `sync`.
pub const WAL_BEFORE_WRITE: &str = "wal_before_write";
/// Fires before each fdatasync of `sync`.
pub const WAL_BEFORE_FDATASYNC: &str = "wal_before_fdatasync";
/// Fires after each successful fdatasync of `sync`.
pub const WAL_AFTER_FDATASYNC: &str = "wal_after_fdatasync";

/// Name of the environment variable read once per process.
pub const FAILPOINT_ENV_VAR: &str = "CAPSTAN_WAL_FAILPOINT";

/// What a failpoint does when execution reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailAction {
    /// Nothing (removes the failpoint).
    Off,
    /// Returns an injected I/O error every time.
    IoError,
    /// Returns an injected I/O error once, then turns itself off.
    IoErrorOnce,
}

static ANY_SET: AtomicBool = AtomicBool::new(false);
static POINTS: Mutex<Vec<(String, FailAction)>> = Mutex::new(Vec::new());
static ENV_READ: Once = Once::new();

fn points() -> std::sync::MutexGuard<'static, Vec<(String, FailAction)>> {
    // A panic while holding this lock cannot leave the list inconsistent.
    POINTS.lock().unwrap_or_else(|e| e.into_inner())
}

fn read_env_once() {
    ENV_READ.call_once(|| {
        if let Ok(v) = std::env::var(FAILPOINT_ENV_VAR) {
            for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                set_failpoint(name, FailAction::IoError);
            }
        }
    });
}

/// Sets (or with [`FailAction::Off`] clears) the failpoint `name`.
pub fn set_failpoint(name: &str, action: FailAction) {
    let mut p = points();
    p.retain(|(n, _)| n != name);
    if action != FailAction::Off {
        p.push((name.to_string(), action));
    }
    ANY_SET.store(!p.is_empty(), Ordering::SeqCst);
}

/// Clears every failpoint.
pub fn clear_failpoints() {
    let mut p = points();
    p.clear();
    ANY_SET.store(false, Ordering::SeqCst);
}

/// Returns the injected error if the failpoint `name` is set.
pub(crate) fn check(name: &str) -> std::io::Result<()> {
    read_env_once();
    if !ANY_SET.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut p = points();
    let Some(i) = p.iter().position(|(n, _)| n == name) else {
        return Ok(());
    };
    if p[i].1 == FailAction::IoErrorOnce {
        p.remove(i);
        ANY_SET.store(!p.is_empty(), Ordering::SeqCst);
    }
    Err(std::io::Error::other(format!(
        "injected failure at failpoint {name}"
    )))
}
