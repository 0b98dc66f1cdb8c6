//! Failpoints: named places on the durable paths where a test makes the process crash, slow
//! down, or (for the WAL only) see an injected I/O error. Compiled in always, inert unless set.
//!
//! # Crash and sleep failpoints (`CAPSTAN_FAILPOINTS`)
//!
//! The equivalents of etcd's gofail points. Code calls [`hit`] with a name from [`NAMES`]; the
//! environment variable `CAPSTAN_FAILPOINTS`, read once at the first [`hit`], says which names
//! are armed and what they do:
//!
//! ```text
//! CAPSTAN_FAILPOINTS="name=action;name2=action"
//!
//! action  crash                      crash at the first hit
//!         N*crash                    crash at the N-th hit (N >= 1)
//!         crash-lose-unsynced        like crash, but first drop the WAL bytes not yet fdatasynced
//!         N*crash-lose-unsynced      the same at the N-th hit
//!         sleep(MS)                  sleep MS milliseconds at every hit (blocks the thread)
//! ```
//!
//! Spaces around names and actions are ignored, as are empty items (`a=crash;`). An unknown
//! name, a malformed action or a name given twice is refused by [`validate_env`], which the
//! server calls at start-up (it then exits with status 2). With nothing armed, a hit costs one
//! relaxed atomic load (no lock, no allocation, no environment read).
//!
//! *Crash* writes the line `failpoint NAME: crash` (or `... : crash-lose-unsynced`) to stderr and
//! ends the process with `_exit(`[`CRASH_EXIT_CODE`]`)`: no destructor runs, no buffer is
//! flushed, other threads stop wherever they are, like `kill -9`. What the kernel already holds
//! (written but unsynced bytes included) survives, as it does after a process crash.
//!
//! *Crash, losing unsynced bytes* simulates a power loss for the WAL only (as LazyFS does for
//! etcd): before exiting, every open WAL's active segment is cut back (`ftruncate`) to the
//! offset its last successful `fdatasync` made durable, then extended again to its pre-allocated
//! size, so the bytes after that offset read as zeros, which is what the disk held there (a
//! segment is zero-filled and synced when it is created). Closed segments were synced before
//! the rotation. Only WAL bytes are dropped: the page store and the snapshot files are written
//! only with data that the WAL already made durable, and their own writes are not undone.
//!
//! ## Names, where each sits, and what a crash there leaves behind
//!
//! WAL (`wal/src/writer.rs`):
//! - `walBeforeSync` (`Wal::write_chunk`): records written, before their `fdatasync`. Leaves
//!   the batch in the page cache only (dropped by `crash-lose-unsynced`); never acknowledged.
//! - `walAfterSync` (same, after the `fdatasync`): the batch durable, not yet acknowledged.
//! - `walBeforeRotate` (`Wal::rotate`): the full segment synced, the next not yet created.
//! - `walAfterRotate` (end of `Wal::rotate`): the new segment created, renamed and the
//!   directory synced; it is empty.
//!
//! Raft persistence (`src/raft/log_store.rs`):
//! - `raftBeforeSave` (`LogStore::sync`): a Ready's entries and hard state appended, not synced
//!   (as `walBeforeSync`).
//! - `raftAfterSave` (same): them durable; the Ready's persisted messages not sent, raft not
//!   advanced, so its entries are not yet committed by this member.
//! - `raftAfterWALRelease` (`LogStore::release_through`): `release_before` deleted segments
//!   (only when it deleted some); the WAL starts after a durable snapshot.
//! - `raftBeforeSaveSnap`, `raftAfterSaveSnap`, `snapBeforeRename`, `snapBeforeRelease`,
//!   `raftBeforeApplySnap`, `raftAfterApplySnap`: raft snapshot files
//!   (`src/raft/snapshot_file.rs`, `src/raft/group/snapshots.rs`); see there.
//!
//! Page store commit protocol (`src/store/db.rs`, `Store::write_durably`; every commit, the
//! checkpoints', the defrag copy's and the rebuild's):
//! - `storeBeforeCommit`: data pages written, before their `fdatasync`. The new pages may be on
//!   disk, all free in the durable meta, which open takes.
//! - `storeBeforeMetaWrite`: pages durable, meta not written. Open takes the previous meta.
//! - `storeAfterCommit`: the meta durable; the commit is not yet published to readers.
//!
//! Durable checkpoints (`src/durable/writer.rs`):
//! - `checkpointBeforeCommit` / `checkpointAfterCommit` (`Writer::commit`): around a commit
//!   that carries an applied index. Before: the store is at the previous checkpoint (the WAL
//!   replays the rest); after: at this one.
//! - `compactBeforeCommitBatch` / `compactAfterCommitBatch` (same): around a commit that
//!   carries compaction deletes (at most 20,000). Deletes not committed are still owed and are
//!   redone at start-up.
//! - `replaceBeforeRename` (`Writer::rebuild`): the store rebuilt from a snapshot into a
//!   `.rebuild` file and synced, not renamed: the old file is in place (start-up rebuilds again
//!   when the snapshot is newer).
//! - `replaceAfterRename` (same): renamed and the directory synced: the rebuilt file.
//!
//! Defrag (`src/store/db.rs`, online through Maintenance.Defragment and offline through
//! `capstanutl`):
//! - `defragBeforeCopy` (`Store::defragment_from`): before the compact copy is written; the
//!   old file (and maybe a stale `.defrag`, removed by the next defrag).
//! - `defragBeforeRename` (`Store::switch_to`): the copy caught up and synced, not renamed;
//!   the old file and a complete `.defrag` copy.
//! - `defragAfterRename` (same): renamed and the directory synced; the defragmented file.
//!
//! # Injected I/O errors (`CAPSTAN_WAL_FAILPOINT`)
//!
//! For the WAL's own error-path tests: set one with [`set_failpoint`] or, for a whole process,
//! with the environment variable `CAPSTAN_WAL_FAILPOINT=name[,name...]` (each named point then
//! fails every time). Names: [`WAL_BEFORE_WRITE`], [`WAL_BEFORE_FDATASYNC`],
//! [`WAL_AFTER_FDATASYNC`]. The settings are process-global.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard, Once, OnceLock};

/// Every crash/sleep failpoint name [`hit`] may be called with.
pub const NAMES: &[&str] = &[
    "walBeforeSync",
    "walAfterSync",
    "walBeforeRotate",
    "walAfterRotate",
    "raftBeforeSave",
    "raftAfterSave",
    "raftAfterWALRelease",
    "raftBeforeSaveSnap",
    "raftAfterSaveSnap",
    "snapBeforeRename",
    "snapBeforeRelease",
    "raftBeforeApplySnap",
    "raftAfterApplySnap",
    "storeBeforeCommit",
    "storeBeforeMetaWrite",
    "storeAfterCommit",
    "checkpointBeforeCommit",
    "checkpointAfterCommit",
    "compactBeforeCommitBatch",
    "compactAfterCommitBatch",
    "replaceBeforeRename",
    "replaceAfterRename",
    "defragBeforeCopy",
    "defragBeforeRename",
    "defragAfterRename",
];

/// Exit status of a failpoint crash, so a harness tells it from any other exit.
pub const CRASH_EXIT_CODE: i32 = 86;

/// The environment variable that arms crash and sleep failpoints.
pub const FAILPOINTS_ENV_VAR: &str = "CAPSTAN_FAILPOINTS";

/// What an armed failpoint does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// End the process at hit number `nth_hit` (counted from 1).
    Crash {
        nth_hit: u64,
        /// First cut every open WAL segment back to its last synced length.
        lose_unsynced: bool,
    },
    /// Sleep this long at every hit.
    Sleep { ms: u64 },
}

/// Parses a `CAPSTAN_FAILPOINTS` value into (name, action) pairs, in order.
pub fn parse(spec: &str) -> Result<Vec<(&'static str, Action)>, String> {
    let mut points: Vec<(&'static str, Action)> = Vec::new();
    for item in spec
        .split(';')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let Some((name, action)) = item.split_once('=') else {
            return Err(format!("`{item}`: expected NAME=ACTION"));
        };
        let name = name.trim();
        let Some(known) = NAMES.iter().copied().find(|known| *known == name) else {
            return Err(format!(
                "`{name}` is not a failpoint (known: {})",
                NAMES.join(", ")
            ));
        };
        if points.iter().any(|(seen, _)| *seen == known) {
            return Err(format!("`{name}` is given twice"));
        }
        let action = parse_action(action.trim()).map_err(|reason| format!("`{item}`: {reason}"))?;
        points.push((known, action));
    }
    Ok(points)
}

fn parse_action(action: &str) -> Result<Action, String> {
    const EXPECTED: &str = "expected crash, N*crash, crash-lose-unsynced, \
                            N*crash-lose-unsynced or sleep(MS)";
    if let Some(ms) = action
        .strip_prefix("sleep(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        let ms = ms
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("sleep needs a whole number of milliseconds; {EXPECTED}"))?;
        return Ok(Action::Sleep { ms });
    }
    let (nth_hit, kind) = match action.split_once('*') {
        Some((count, kind)) => {
            let count = count.trim().parse::<u64>().ok().filter(|count| *count >= 1);
            let Some(count) = count else {
                return Err(format!(
                    "N in N*crash must be a whole number >= 1; {EXPECTED}"
                ));
            };
            (count, kind.trim())
        }
        None => (1, action),
    };
    match kind {
        "crash" => Ok(Action::Crash {
            nth_hit,
            lose_unsynced: false,
        }),
        "crash-lose-unsynced" => Ok(Action::Crash {
            nth_hit,
            lose_unsynced: true,
        }),
        _ => Err(format!("unknown action `{action}`; {EXPECTED}")),
    }
}

/// Checks `CAPSTAN_FAILPOINTS` (unset or empty is fine). Call it at start-up, so a typo stops
/// the process there instead of leaving a test that never reaches its failpoint.
pub fn validate_env() -> Result<(), String> {
    match std::env::var(FAILPOINTS_ENV_VAR) {
        Ok(spec) => parse(&spec)
            .map(|_| ())
            .map_err(|reason| format!("{FAILPOINTS_ENV_VAR}: {reason}")),
        Err(std::env::VarError::NotPresent) => Ok(()),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(format!("{FAILPOINTS_ENV_VAR}: not valid UTF-8"))
        }
    }
}

/// One armed failpoint and how often it was reached.
struct Armed {
    name: &'static str,
    action: Action,
    hits: AtomicU64,
}

/// `STATE` before the environment was read.
const STATE_UNREAD: u8 = 0;
/// Nothing armed: [`hit`] returns at once.
const STATE_NONE: u8 = 1;
/// Some point armed, none losing unsynced bytes.
const STATE_ARMED: u8 = 2;
/// Some point armed to lose unsynced WAL bytes: the WAL keeps [`DURABLE_TAILS`] up to date.
const STATE_ARMED_LOSE_UNSYNCED: u8 = 3;

static STATE: AtomicU8 = AtomicU8::new(STATE_UNREAD);
static ARMED: OnceLock<Vec<Armed>> = OnceLock::new();

fn armed() -> &'static [Armed] {
    ARMED.get_or_init(|| {
        let spec = std::env::var(FAILPOINTS_ENV_VAR).unwrap_or_default();
        // The server validated the spec at start-up; anything else using failpoints must too.
        let points = parse(&spec).unwrap_or_else(|reason| panic!("{FAILPOINTS_ENV_VAR}: {reason}"));
        let lose_unsynced = points.iter().any(|(_, action)| {
            matches!(
                action,
                Action::Crash {
                    lose_unsynced: true,
                    ..
                }
            )
        });
        let state = match (points.is_empty(), lose_unsynced) {
            (true, _) => STATE_NONE,
            (false, false) => STATE_ARMED,
            (false, true) => STATE_ARMED_LOSE_UNSYNCED,
        };
        STATE.store(state, Ordering::Relaxed);
        points
            .into_iter()
            .map(|(name, action)| Armed {
                name,
                action,
                hits: AtomicU64::new(0),
            })
            .collect()
    })
}

fn state() -> u8 {
    let state = STATE.load(Ordering::Relaxed);
    if state != STATE_UNREAD {
        return state;
    }
    armed();
    STATE.load(Ordering::Relaxed)
}

/// Failpoint `name` (one of [`NAMES`]) is reached: performs its action if it is armed.
pub fn hit(name: &'static str) {
    if state() == STATE_NONE {
        return;
    }
    debug_assert!(NAMES.contains(&name), "failpoint {name} is not in NAMES");
    let Some(point) = armed().iter().find(|point| point.name == name) else {
        return;
    };
    match point.action {
        Action::Sleep { ms } => std::thread::sleep(std::time::Duration::from_millis(ms)),
        Action::Crash {
            nth_hit,
            lose_unsynced,
        } => {
            let hit_number = point.hits.fetch_add(1, Ordering::SeqCst) + 1;
            if hit_number == nth_hit {
                crash(name, lose_unsynced);
            }
        }
    }
}

fn crash(name: &str, lose_unsynced: bool) -> ! {
    let action = if lose_unsynced {
        "crash-lose-unsynced"
    } else {
        "crash"
    };
    // Stderr is unbuffered: the line is out before the exit.
    let _ = writeln!(std::io::stderr(), "failpoint {name}: {action}");
    if lose_unsynced {
        // Held until the exit: no WAL can record a newer durable tail (and so acknowledge
        // anything) once its file was cut.
        let tails = durable_tails();
        for tail in tails.iter() {
            if let Err(error) = cut_to_durable(tail) {
                let _ = writeln!(
                    std::io::stderr(),
                    "failpoint {name}: cutting {} back to {} bytes failed: {error}",
                    tail.segment.display(),
                    tail.durable_bytes
                );
            }
        }
        exit_now();
    }
    exit_now()
}

fn exit_now() -> ! {
    // SAFETY: `_exit` ends the process without running anything more in it (no atexit
    // handlers, no destructors, no stdio flush); that abruptness is the point. It takes no
    // pointers and cannot fail.
    unsafe { libc::_exit(CRASH_EXIT_CODE) }
}

/// The synced length of one open WAL's active segment.
struct DurableTail {
    wal_dir: PathBuf,
    segment: PathBuf,
    durable_bytes: u64,
    segment_bytes: u64,
}

/// One entry per open WAL, kept only while a `crash-lose-unsynced` point is armed.
static DURABLE_TAILS: Mutex<Vec<DurableTail>> = Mutex::new(Vec::new());

fn durable_tails() -> MutexGuard<'static, Vec<DurableTail>> {
    // Entries are replaced whole: a panic while holding the lock leaves the list usable.
    DURABLE_TAILS.lock().unwrap_or_else(|e| e.into_inner())
}

fn cut_to_durable(tail: &DurableTail) -> std::io::Result<()> {
    let file = match std::fs::OpenOptions::new().write(true).open(&tail.segment) {
        Ok(file) => file,
        // Released or never renamed into place: nothing of it to lose.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    file.set_len(tail.durable_bytes)?;
    file.set_len(tail.segment_bytes)
}

/// The WAL in `wal_dir` made `segment` durable up to `durable_bytes` (of `segment_bytes`):
/// called after every successful `fdatasync` and whenever the active segment changes.
pub(crate) fn wal_durable(wal_dir: &Path, segment: &Path, durable_bytes: u64, segment_bytes: u64) {
    if state() != STATE_ARMED_LOSE_UNSYNCED {
        return;
    }
    let mut tails = durable_tails();
    let tail = DurableTail {
        wal_dir: wal_dir.to_path_buf(),
        segment: segment.to_path_buf(),
        durable_bytes,
        segment_bytes,
    };
    match tails.iter_mut().find(|known| known.wal_dir == wal_dir) {
        Some(known) => *known = tail,
        None => tails.push(tail),
    }
}

/// The WAL in `wal_dir` was closed.
pub(crate) fn wal_closed(wal_dir: &Path) {
    if state() != STATE_ARMED_LOSE_UNSYNCED {
        return;
    }
    durable_tails().retain(|known| known.wal_dir != wal_dir);
}

// ---------------------------------------------------------------------------------------------
// Injected I/O errors
// ---------------------------------------------------------------------------------------------

/// Fires before each data write of `sync`.
pub const WAL_BEFORE_WRITE: &str = "wal_before_write";
/// Fires before each fdatasync of `sync`.
pub const WAL_BEFORE_FDATASYNC: &str = "wal_before_fdatasync";
/// Fires after each successful fdatasync of `sync`.
pub const WAL_AFTER_FDATASYNC: &str = "wal_after_fdatasync";

/// Name of the environment variable read once per process.
pub const FAILPOINT_ENV_VAR: &str = "CAPSTAN_WAL_FAILPOINT";

/// What an I/O-error failpoint does when execution reaches it.
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

fn points() -> MutexGuard<'static, Vec<(String, FailAction)>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn crash_at(nth_hit: u64) -> Action {
        Action::Crash {
            nth_hit,
            lose_unsynced: false,
        }
    }

    #[test]
    fn empty_spec_arms_nothing() {
        assert_eq!(parse(""), Ok(vec![]));
        assert_eq!(parse("  ;; ; "), Ok(vec![]));
    }

    #[test]
    fn crash_counts_and_sleep() {
        assert_eq!(
            parse("walBeforeSync=crash; raftAfterSave = 7*crash ;storeAfterCommit=sleep(5);"),
            Ok(vec![
                ("walBeforeSync", crash_at(1)),
                ("raftAfterSave", crash_at(7)),
                ("storeAfterCommit", Action::Sleep { ms: 5 }),
            ])
        );
        assert_eq!(
            parse("walBeforeSync=3*crash-lose-unsynced;walAfterSync=crash-lose-unsynced"),
            Ok(vec![
                (
                    "walBeforeSync",
                    Action::Crash {
                        nth_hit: 3,
                        lose_unsynced: true
                    }
                ),
                (
                    "walAfterSync",
                    Action::Crash {
                        nth_hit: 1,
                        lose_unsynced: true
                    }
                ),
            ])
        );
    }

    #[test]
    fn unknown_names_and_bad_actions_are_refused() {
        let refused = |spec: &str, needle: &str| {
            let error = parse(spec).expect_err(spec);
            assert!(error.contains(needle), "{spec}: {error}");
        };
        refused("walBeforeSynk=crash", "`walBeforeSynk` is not a failpoint");
        refused("walBeforeSync", "expected NAME=ACTION");
        refused("walBeforeSync=panic", "unknown action `panic`");
        refused("walBeforeSync=0*crash", ">= 1");
        refused("walBeforeSync=x*crash", ">= 1");
        refused("walBeforeSync=2*sleep(5)", "unknown action");
        refused("walBeforeSync=sleep(5ms)", "milliseconds");
        refused("walBeforeSync=sleep(5", "unknown action");
        refused("walBeforeSync=crash;walBeforeSync=sleep(1)", "given twice");
    }

    #[test]
    fn every_name_parses_and_names_are_unique() {
        for (position, name) in NAMES.iter().enumerate() {
            assert!(!NAMES[..position].contains(name), "{name} listed twice");
            assert_eq!(
                parse(&format!("{name}=2*crash")),
                Ok(vec![(*name, crash_at(2))])
            );
        }
    }
}
