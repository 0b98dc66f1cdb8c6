//! Crash failpoints (`CAPSTAN_FAILPOINTS`) in a child process: this test binary runs itself
//! with [`CHILD_DIR_ENV`] set, the child syncs batch A, then batch B, and is armed to crash
//! during B's sync; the parent reopens the WAL and checks what a crash there leaves.

mod common;

use capstan_wal::failpoint::{CRASH_EXIT_CODE, FAILPOINTS_ENV_VAR};
use capstan_wal::{Record, Wal};
use common::*;
use std::path::Path;

/// Set in the child: the WAL directory it writes.
const CHILD_DIR_ENV: &str = "CAPSTAN_WAL_CRASH_CHILD_DIR";
const CHILD_TEST: &str = "crash_child";
const SEED: u64 = 86;

/// Batch A, then batch B: fixed records, so parent and child agree.
fn batches() -> (Vec<Record>, Vec<Record>) {
    let mut rng = Lcg::new(SEED);
    let a = (0..20).map(|_| rng.record(300)).collect();
    let b = (0..20).map(|_| rng.record(300)).collect();
    (a, b)
}

/// The child's work; a no-op when this binary runs as the parent.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    run(move || async move {
        let (a, b) = batches();
        let (mut wal, _) = Wal::open(config(Path::new(&dir))).await.unwrap();
        for batch in [a, b] {
            for record in &batch {
                wal.append(record.kind, &record.payload).unwrap();
            }
            wal.sync().await.unwrap();
        }
    });
    // Reaching here means the failpoint never fired; the parent sees exit status 0.
}

/// Runs the child armed with `spec`; returns what a reopen recovers.
fn crash_with(spec: &str) -> Vec<Record> {
    let tmp = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([CHILD_TEST, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD_DIR_ENV, tmp.path())
        .env(FAILPOINTS_ENV_VAR, spec)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(CRASH_EXIT_CODE),
        "{spec}: the child did not crash; stderr:\n{stderr}"
    );
    let name = spec.split('=').next().unwrap();
    assert!(
        stderr.contains(&format!("failpoint {name}: crash")),
        "{stderr}"
    );
    let dir = tmp.path().to_path_buf();
    let recovered = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let out = recovered.clone();
    run(move || async move {
        let (_wal, rec) = Wal::open(config(&dir)).await.unwrap();
        *out.lock().unwrap() = rec.records;
    });
    let records = recovered.lock().unwrap().clone();
    records
}

#[test]
fn a_process_crash_keeps_written_bytes_a_power_loss_drops_unsynced_ones() {
    let (a, b) = batches();
    let both: Vec<Record> = a.iter().chain(&b).cloned().collect();
    // The kernel still holds B's bytes after a process crash before their fdatasync.
    assert_eq!(crash_with("walBeforeSync=2*crash"), both);
    // A power loss there loses them (and only them).
    assert_eq!(crash_with("walBeforeSync=2*crash-lose-unsynced"), a);
    // After the fdatasync nothing is lost.
    assert_eq!(crash_with("walAfterSync=2*crash-lose-unsynced"), both);
}
