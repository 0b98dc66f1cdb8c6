//! Injected I/O failures. Failpoints are process-global, so this file has
//! a single test that runs its cases one after another.

mod common;

use capstan_wal::{
    clear_failpoints, set_failpoint, FailAction, Record, Wal, WalError, WAL_AFTER_FDATASYNC,
    WAL_BEFORE_FDATASYNC, WAL_BEFORE_WRITE,
};
use common::*;

/// Syncs `good`, then tries to sync `bad` with failpoint `name` set.
/// Returns what a reopen recovers.
async fn fail_case(name: &'static str, seed: u64) -> (Vec<Record>, Vec<Record>, Vec<Record>) {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Lcg::new(seed);
    let good: Vec<Record> = (0..120).map(|_| rng.record(600)).collect();
    let bad: Vec<Record> = (0..50).map(|_| rng.record(600)).collect();
    let (mut wal, _) = Wal::open(config(tmp.path())).await.unwrap();
    append_in_batches(&mut wal, &good, &mut rng, 10).await;
    for r in &bad {
        wal.append(r.kind, &r.payload).unwrap();
    }
    set_failpoint(name, FailAction::IoError);
    let err = wal.sync().await.expect_err("sync must fail");
    assert!(matches!(err, WalError::Io { .. }), "{err}");
    assert!(err.to_string().contains(name), "{err}");
    clear_failpoints();
    // Failed for good, even with the failpoint cleared.
    assert!(wal.is_failed());
    assert!(matches!(wal.append(1, b"x"), Err(WalError::Failed)));
    assert!(matches!(wal.sync().await, Err(WalError::Failed)));
    assert!(matches!(wal.sync().await, Err(WalError::Failed)));
    drop(wal);
    let (mut wal, rec) = Wal::open(config(tmp.path())).await.unwrap();
    // The reopened WAL works.
    wal.append(2, b"after").unwrap();
    wal.sync().await.unwrap();
    (good, bad, rec.records)
}

#[test]
fn injected_failures_leave_the_wal_failed() {
    run(|| async {
        // Nothing of the failed batch was written.
        let (good, _, got) = fail_case(WAL_BEFORE_WRITE, 1).await;
        assert_eq!(got, good);

        // Written but not fdatasynced: any prefix of the batch may be there.
        let (good, bad, got) = fail_case(WAL_BEFORE_FDATASYNC, 2).await;
        assert!(got.len() >= good.len() && got.len() <= good.len() + bad.len());
        assert_eq!(got[..good.len()], good[..]);
        assert_eq!(got[good.len()..], bad[..got.len() - good.len()]);

        // fdatasync succeeded for the first touched segment, then the error.
        let (good, _, got) = fail_case(WAL_AFTER_FDATASYNC, 3).await;
        assert!(got.len() > good.len());
        assert_eq!(got[..good.len()], good[..]);

        // A one-shot failpoint turns itself off, but the WAL it hit stays failed.
        let tmp = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(config(tmp.path())).await.unwrap();
        wal.append(1, b"a").unwrap();
        set_failpoint(WAL_BEFORE_FDATASYNC, FailAction::IoErrorOnce);
        assert!(wal.sync().await.is_err());
        assert!(matches!(wal.sync().await, Err(WalError::Failed)));
        drop(wal);
        let (mut wal, _) = Wal::open(config(tmp.path())).await.unwrap();
        wal.append(1, b"b").unwrap();
        wal.sync().await.unwrap();
    });
}
