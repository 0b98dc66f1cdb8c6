//! Crash failpoints (`CAPSTAN_FAILPOINTS`, documented in `wal/src/failpoint.rs`).
//!
//! For every failpoint a single member reaches: a member armed with `NAME=N*crash` is driven
//! with sequential writes (plus compactions or defrags where the point needs them) until it
//! crashes there. It must exit with [`CRASH_EXIT_CODE`]; restarted without failpoints on the
//! same data directory it must hold every acknowledged put with its value (or, for the one put
//! that got no answer, possibly that put's value), never report a revision below the highest
//! acknowledged one, keep an acknowledged compaction, and take new writes. A case whose
//! failpoint is never reached fails. The raft snapshot points (`raftBeforeSaveSnap` ...) need a
//! leader sending a snapshot to a follower and are not exercised here.
mod common;
use common::*;

use capstan::failpoint::{CRASH_EXIT_CODE, FAILPOINTS_ENV_VAR, NAMES};
use etcd_client::{Client, GetOptions};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Upper bound for one client call (only to keep a broken case from hanging).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a member may keep running after the workload before the case fails as "never
/// reached" (asynchronous points, such as the page store's, fire a little after the ack).
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a restarted member may take to accept its first write.
const FIRST_WRITE_TIMEOUT: Duration = Duration::from_secs(15);
/// Bytes of filler in each value, so small WAL segments fill in a few dozen puts.
const VALUE_FILLER_BYTES: usize = 200;
/// Smallest WAL segment the WAL accepts (`SEGMENT_BYTES_MIN`): about 50 puts each.
const SMALL_SEGMENTS: &str = "--wal-segment-bytes=16384";

/// What the client saw before the crash.
#[derive(Debug, Default)]
struct History {
    /// Per key: the last acknowledged value and its revision.
    acked: BTreeMap<String, (String, i64)>,
    acked_puts: usize,
    /// The put that got no answer: it may or may not have happened.
    unanswered: Option<(String, String)>,
    /// Highest revision in any acknowledged response.
    revision_max: i64,
    /// Highest acknowledged compaction revision (0: none).
    compacted: i64,
}

impl History {
    /// One line for messages (the values are long).
    fn summary(&self) -> String {
        format!(
            "{} puts acknowledged up to revision {}, compacted at {}, unanswered put: {:?}",
            self.acked_puts,
            self.revision_max,
            self.compacted,
            self.unanswered.as_ref().map(|(key, _)| key)
        )
    }
}

/// An operation run after every `every` puts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extra {
    None,
    /// Compact at the last acknowledged revision.
    Compact,
    /// Maintenance.Defragment.
    Defrag,
}

#[derive(Debug, Clone, Copy)]
struct Workload {
    puts: usize,
    keys: usize,
    every: usize,
    extra: Extra,
}

/// Puts only, over 10 keys.
const PUTS: Workload = Workload {
    puts: 400,
    keys: 10,
    every: usize::MAX,
    extra: Extra::None,
};

async fn timed<T>(
    call: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("timed out".to_string()),
    }
}

fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.expect("response header").revision()
}

/// Runs `workload` until it is done or the first call fails (the member crashed).
async fn drive(endpoint: &str, workload: Workload) -> History {
    let mut client = connect(endpoint).await;
    let mut history = History::default();
    let filler = "x".repeat(VALUE_FILLER_BYTES);
    for put in 0..workload.puts {
        let key = format!("key-{:02}", put % workload.keys);
        let value = format!("value-{put:05}-{filler}");
        match timed(client.put(key.clone(), value.clone(), None)).await {
            Ok(response) => {
                let revision = revision_of(response.header());
                history.revision_max = history.revision_max.max(revision);
                history.acked.insert(key, (value, revision));
                history.acked_puts += 1;
            }
            Err(_) => {
                history.unanswered = Some((key, value));
                return history;
            }
        }
        if (put + 1) % workload.every != 0 {
            continue;
        }
        let extra = match workload.extra {
            Extra::None => Ok(()),
            Extra::Compact => {
                let revision = history.revision_max;
                timed(client.compact(revision, None)).await.map(|response| {
                    history.compacted = revision;
                    history.revision_max = history.revision_max.max(revision_of(response.header()));
                })
            }
            Extra::Defrag => timed(client.defragment()).await.map(|_| ()),
        };
        if extra.is_err() {
            return history;
        }
    }
    history
}

/// Asserts the member ended at failpoint `name` with the crash exit code.
fn assert_crashed_at(server: &mut Server, name: &str, history: &History) {
    let status = server.wait_exit(EXIT_TIMEOUT);
    let Some(status) = status else {
        panic!(
            "failpoint {name} was never reached: the member still runs {EXIT_TIMEOUT:?} after \
             the workload ({}); log:\n{}",
            history.summary(),
            server.log()
        );
    };
    assert_eq!(
        status.code(),
        Some(CRASH_EXIT_CODE),
        "the member did not exit at failpoint {name} ({status}); log:\n{}",
        server.log()
    );
    let line = format!("failpoint {name}: crash");
    assert!(
        server.log().contains(&line),
        "no `{line}` in the log:\n{}",
        server.log()
    );
}

/// The first write after a restart, retried while the member elects itself.
async fn first_write(client: &mut Client) -> i64 {
    let deadline = Instant::now() + FIRST_WRITE_TIMEOUT;
    loop {
        match timed(client.put("after-restart", "written", None)).await {
            Ok(response) => return revision_of(response.header()),
            Err(error) if Instant::now() > deadline => {
                panic!("the restarted member takes no writes: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Checks the restarted member against what was acknowledged before the crash.
async fn verify(endpoint: &str, history: &History) {
    let mut client = connect(endpoint).await;
    let written_at = first_write(&mut client).await;
    assert!(
        written_at > history.revision_max,
        "a new write got revision {written_at}, not above the acknowledged {}",
        history.revision_max
    );
    for (key, (value, revision)) in &history.acked {
        let response = timed(client.get(key.as_str(), None)).await.expect("get");
        let kv = response
            .kvs()
            .first()
            .unwrap_or_else(|| panic!("acknowledged key {key} (revision {revision}) is gone"));
        let got = String::from_utf8_lossy(kv.value()).into_owned();
        let unanswered = history.unanswered.as_ref();
        let from_unanswered = unanswered.is_some_and(|(k, v)| k == key && *v == got);
        assert!(
            got == *value || from_unanswered,
            "{key}: acknowledged {value:.12}... at revision {revision}, found {got:.12}..."
        );
        assert!(
            kv.mod_revision() >= *revision,
            "{key}: modified at {} below the acknowledged revision {revision}",
            kv.mod_revision()
        );
    }
    let response = timed(client.get("", Some(GetOptions::new().with_all_keys())))
        .await
        .expect("get all");
    let revision = revision_of(response.header());
    assert!(
        revision >= history.revision_max,
        "revision went back to {revision} below the acknowledged {}",
        history.revision_max
    );
    if history.compacted > 1 {
        let below = GetOptions::new().with_revision(history.compacted - 1);
        let error = timed(client.get("key-00", Some(below)))
            .await
            .expect_err("a read below the acknowledged compaction must fail");
        assert!(
            error.contains("compacted"),
            "read below compaction {}: {error}",
            history.compacted
        );
    }
}

fn spec(name: &str, action: &str) -> String {
    format!("{name}={action}")
}

/// One member crashing at `name` with `action` during `workload`, then restarted and checked.
fn crash_case(name: &str, action: &str, args: &[&str], workload: Workload) {
    let dir = tempfile::tempdir().expect("tempdir");
    let armed = spec(name, action);
    let env = [(FAILPOINTS_ENV_VAR, armed.as_str())];
    let mut server = Server::start_with_env(Flavor::Capstan, dir.path(), args, &env);
    let runtime = tokio_runtime();
    let history = runtime.block_on(drive(&server.endpoint(), workload));
    assert_crashed_at(&mut server, name, &history);
    eprintln!("{armed}: crashed after {}", history.summary());
    assert!(
        history.acked_puts > 0,
        "{armed} fired before any write was acknowledged: pick a later hit"
    );
    server.set_env(FAILPOINTS_ENV_VAR, None);
    server.restart();
    runtime.block_on(verify(&server.endpoint(), &history));
    server.kill9();
}

// ---------------------------------------------------------------------------------------------
// WAL
// ---------------------------------------------------------------------------------------------

#[test]
fn wal_before_sync() {
    crash_case("walBeforeSync", "40*crash", &[], PUTS);
}

#[test]
fn wal_after_sync() {
    crash_case("walAfterSync", "40*crash", &[], PUTS);
}

#[test]
fn wal_before_rotate() {
    crash_case("walBeforeRotate", "2*crash", &[SMALL_SEGMENTS], PUTS);
}

#[test]
fn wal_after_rotate() {
    crash_case("walAfterRotate", "2*crash", &[SMALL_SEGMENTS], PUTS);
}

/// A power loss just before an fdatasync: the unsynced WAL bytes are gone, and nothing
/// acknowledged was among them.
#[test]
fn wal_before_sync_losing_unsynced_bytes() {
    crash_case("walBeforeSync", "40*crash-lose-unsynced", &[], PUTS);
}

// ---------------------------------------------------------------------------------------------
// raft persistence
// ---------------------------------------------------------------------------------------------

#[test]
fn raft_before_save() {
    crash_case("raftBeforeSave", "40*crash", &[], PUTS);
}

#[test]
fn raft_after_save() {
    crash_case("raftAfterSave", "40*crash", &[], PUTS);
}

/// Small segments and frequent snapshots: segments below a snapshot are released.
#[test]
fn raft_after_wal_release() {
    let args = [SMALL_SEGMENTS, "--snapshot-count=40"];
    crash_case("raftAfterWALRelease", "crash", &args, PUTS);
}

// ---------------------------------------------------------------------------------------------
// page store commits
// ---------------------------------------------------------------------------------------------

#[test]
fn store_before_commit() {
    crash_case("storeBeforeCommit", "40*crash", &[], PUTS);
}

#[test]
fn store_before_meta_write() {
    crash_case("storeBeforeMetaWrite", "40*crash", &[], PUTS);
}

#[test]
fn store_after_commit() {
    crash_case("storeAfterCommit", "40*crash", &[], PUTS);
}

// ---------------------------------------------------------------------------------------------
// durable checkpoints and compaction deletes
// ---------------------------------------------------------------------------------------------

#[test]
fn checkpoint_before_commit() {
    crash_case("checkpointBeforeCommit", "30*crash", &[], PUTS);
}

#[test]
fn checkpoint_after_commit() {
    crash_case("checkpointAfterCommit", "30*crash", &[], PUTS);
}

/// Compacting every 30 puts over 10 keys drops 20 versions each time.
const COMPACTING: Workload = Workload {
    puts: 300,
    keys: 10,
    every: 30,
    extra: Extra::Compact,
};

#[test]
fn compact_before_commit_batch() {
    crash_case("compactBeforeCommitBatch", "2*crash", &[], COMPACTING);
}

#[test]
fn compact_after_commit_batch() {
    crash_case("compactAfterCommitBatch", "2*crash", &[], COMPACTING);
}

// ---------------------------------------------------------------------------------------------
// defrag
// ---------------------------------------------------------------------------------------------

const DEFRAGGING: Workload = Workload {
    puts: 200,
    keys: 10,
    every: 25,
    extra: Extra::Defrag,
};

#[test]
fn defrag_before_copy() {
    crash_case("defragBeforeCopy", "2*crash", &[], DEFRAGGING);
}

#[test]
fn defrag_before_rename() {
    crash_case("defragBeforeRename", "2*crash", &[], DEFRAGGING);
}

#[test]
fn defrag_after_rename() {
    crash_case("defragAfterRename", "2*crash", &[], DEFRAGGING);
}

// ---------------------------------------------------------------------------------------------
// rebuilding the page store from a snapshot (Replace)
// ---------------------------------------------------------------------------------------------

/// A member whose page store is behind its newest snapshot file rebuilds the store from it at
/// start-up. Run 1 holds the page store's first checkpoint back (a long sleep) while snapshots
/// are written, and crashes; run 2 starts armed with `name` and crashes in the rebuild; run 3
/// starts clean.
fn replace_case(name: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let held_back = "checkpointBeforeCommit=sleep(600000);raftAfterSave=120*crash";
    let args = ["--snapshot-count=40"];
    let env = [(FAILPOINTS_ENV_VAR, held_back)];
    let mut server = Server::start_with_env(Flavor::Capstan, dir.path(), &args, &env);
    let runtime = tokio_runtime();
    let history = runtime.block_on(drive(&server.endpoint(), PUTS));
    assert_crashed_at(&mut server, "raftAfterSave", &history);
    assert!(
        history.revision_max > 40,
        "no snapshot was due before the crash: {}",
        history.summary()
    );
    let armed = spec(name, "crash");
    server.set_env(FAILPOINTS_ENV_VAR, Some(&armed));
    let status = server.start_expecting_exit(READY_TIMEOUT);
    assert_eq!(
        status.and_then(|status| status.code()),
        Some(CRASH_EXIT_CODE),
        "the rebuild did not crash at {name}; log:\n{}",
        server.log()
    );
    assert!(server.log().contains(&format!("failpoint {name}: crash")));
    server.set_env(FAILPOINTS_ENV_VAR, None);
    server.restart();
    runtime.block_on(verify(&server.endpoint(), &history));
    server.kill9();
}

#[test]
fn replace_before_rename() {
    replace_case("replaceBeforeRename");
}

#[test]
fn replace_after_rename() {
    replace_case("replaceAfterRename");
}

// ---------------------------------------------------------------------------------------------
// the spec and the names
// ---------------------------------------------------------------------------------------------

/// A typo must stop the server at start-up, not leave a case that never reaches its point.
#[test]
fn a_bad_spec_is_refused_at_start_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (bad, needle) in [
        ("walBeforeSynk=crash", "`walBeforeSynk` is not a failpoint"),
        ("walBeforeSync=0*crash", ">= 1"),
        ("walBeforeSync=explode", "unknown action"),
    ] {
        let url = format!("http://127.0.0.1:{}", free_port());
        let output = std::process::Command::new(capstan_binary())
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={url}"))
            .arg(format!("--advertise-client-urls={url}"))
            .env(FAILPOINTS_ENV_VAR, bad)
            .output()
            .expect("run capstan");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{bad}: {stderr}");
        assert!(
            stderr.contains(FAILPOINTS_ENV_VAR) && stderr.contains(needle),
            "{bad}: {stderr}"
        );
    }
}

/// Every name placed in the code is in `NAMES`, and every name of `NAMES` is placed.
#[test]
fn every_failpoint_name_is_placed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut placed = Vec::new();
    for dir in [root.join("src"), root.join("wal/src")] {
        collect_hits(&dir, &mut placed);
    }
    for (name, file) in &placed {
        assert!(
            NAMES.contains(&name.as_str()),
            "{file}: unknown failpoint {name}"
        );
    }
    for name in NAMES {
        let is_placed = placed.iter().any(|(placed, _)| placed == name);
        assert!(is_placed, "failpoint {name} is in NAMES but never hit");
    }
}

/// Collects `failpoint::hit("NAME")` calls under `dir`.
fn collect_hits(dir: &Path, placed: &mut Vec<(String, String)>) {
    const CALL: &str = "failpoint::hit(\"";
    for entry in std::fs::read_dir(dir).expect("read source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            collect_hits(&path, placed);
            continue;
        }
        if path.extension().is_none_or(|extension| extension != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read source");
        for (at, _) in text.match_indices(CALL) {
            let rest = &text[at + CALL.len()..];
            let name = &rest[..rest.find('"').expect("closing quote")];
            placed.push((name.to_string(), path.display().to_string()));
        }
    }
}
