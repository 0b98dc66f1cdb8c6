//! The page store gives back exactly the state whose changes were checkpointed into it.

use super::rows::{encode_state_for, PendingCheckpoint};
use super::{load, spawn_writer, CheckpointBatch, Command, LoadedState};
use crate::membership::MemberList;
use crate::mvcc::test_support::*;
use crate::mvcc::{KvStore, WriteRequest};
use crate::store::{Store, StoreOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;

fn members() -> MemberList {
    MemberList::from_members(Vec::new())
}

/// Runs a writer over the store at `path` with `commands`, then lets it finish.
fn run_writer(path: &Path, commands: Vec<Command>) {
    let store = Store::open(path, StoreOptions::default()).expect("open");
    let (handle, thread) = spawn_writer(store, Vec::new()).expect("spawn");
    for command in commands {
        handle.send(command);
    }
    drop(handle);
    thread.join().expect("writer thread");
}

fn reload(path: &Path) -> LoadedState {
    let store = Store::open(path, StoreOptions::default()).expect("reopen");
    load(&store.read())
        .expect("load")
        .expect("something checkpointed")
}

fn assert_same_store(loaded: &KvStore, expected: &KvStore) {
    let (loaded, expected) = (loaded.to_snapshot(), expected.to_snapshot());
    assert_eq!(loaded.current_revision, expected.current_revision);
    assert_eq!(loaded.last_compaction, expected.last_compaction);
    assert_eq!(loaded.leases, expected.leases);
    assert_eq!(loaded.alarms, expected.alarms);
    assert_eq!(loaded.keys.len(), expected.keys.len());
    assert!(loaded.keys == expected.keys, "keys differ");
}

fn batch(kv: &KvStore, pending: &mut PendingCheckpoint, applied_index: u64) -> Command {
    let state = pending
        .state_changed
        .then(|| encode_state_for(kv, &members()));
    pending.state_changed = false;
    Command::Checkpoint(CheckpointBatch {
        applied_index,
        current_revision: kv.current_revision(),
        rows: std::mem::take(&mut pending.rows),
        deletes: std::mem::take(&mut pending.deletes),
        state,
    })
}

/// One random write; compactions now and then.
fn random_write(rng: &mut StdRng, kv: &KvStore) -> WriteRequest {
    let key = format!("k{:02}", rng.gen_range(0..30));
    match rng.gen_range(0..100) {
        0..=54 => WriteRequest::Put(put_request(&key, &"v".repeat(rng.gen_range(0..300)))),
        55..=69 => WriteRequest::Put(leased_put_request(&key, "leased", 7)),
        70..=89 => WriteRequest::DeleteRange(delete_request(&key, "")),
        90..=93 => WriteRequest::Txn(txn(
            Vec::new(),
            vec![
                put_op(&key, "t1"),
                delete_op("k0", "k1"),
                put_op("k05", "t2"),
            ],
            Vec::new(),
        )),
        _ => {
            let low = kv.compact_revision() + 1;
            let high = kv.current_revision();
            compaction_request(if low >= high {
                high
            } else {
                rng.gen_range(low..=high)
            })
        }
    }
}

#[test]
fn checkpoints_load_back_as_the_same_store() {
    for seed in 0..6 {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pages.db");
        let mut rng = StdRng::seed_from_u64(seed);
        let mut kv = KvStore::new();
        let mut pending = PendingCheckpoint {
            state_changed: true,
            ..PendingCheckpoint::default()
        };
        grant(&mut kv, 7, 60);
        let mut commands = Vec::new();
        let mut index = 0;
        for _ in 0..600 {
            index += 1;
            let write = random_write(&mut rng, &kv);
            if let Ok(applied) = kv.apply(&write) {
                pending.record(&applied);
            }
            if rng.gen_range(0..8) == 0 {
                commands.push(batch(&kv, &mut pending, index));
            }
        }
        commands.push(batch(&kv, &mut pending, index));
        run_writer(&path, commands);
        let loaded = reload(&path);
        assert_eq!(loaded.applied_index, index, "seed {seed}");
        assert!(loaded.owed_deletes.is_empty(), "seed {seed}");
        assert_same_store(&loaded.kv, &kv);
    }
}

#[test]
fn versions_a_compaction_still_owed_are_dropped_again_at_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pages.db");
    let mut kv = KvStore::new();
    let mut pending = PendingCheckpoint {
        state_changed: true,
        ..PendingCheckpoint::default()
    };
    for round in 0..5 {
        for key in ["a", "b", "c"] {
            pending.record(&put(&mut kv, key, &format!("{key}{round}")));
        }
    }
    let compact_at = kv.current_revision() - 1;
    let applied = kv.apply(&compaction_request(compact_at)).expect("compact");
    pending.record(&applied);
    assert!(!pending.deletes.is_empty());
    // As if the process died before any of the deletes reached the file.
    pending.deletes.clear();
    let command = batch(&kv, &mut pending, 16);
    run_writer(&path, vec![command]);
    let loaded = reload(&path);
    assert_eq!(loaded.owed_deletes.len(), applied.compacted.len());
    assert_same_store(&loaded.kv, &kv);
    assert_eq!(loaded.kv.compact_revision(), compact_at);
}

#[test]
fn a_replace_rebuilds_the_file_from_a_whole_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pages.db");
    let mut old = KvStore::new();
    let mut pending = PendingCheckpoint {
        state_changed: true,
        ..PendingCheckpoint::default()
    };
    pending.record(&put(&mut old, "old", "1"));
    let first = batch(&old, &mut pending, 3);

    let mut new = KvStore::new();
    grant(&mut new, 9, 30);
    for i in 0..200 {
        leased_put(&mut new, &format!("n{i:03}"), "x", 9);
    }
    delete(&mut new, "n000", "n010");
    new.apply(&compaction_request(150)).expect("compact");
    let replace = Command::Replace {
        applied_index: 500,
        kv: new.clone(),
        members: members(),
    };
    run_writer(&path, vec![first, replace]);
    let loaded = reload(&path);
    assert_eq!(loaded.applied_index, 500);
    assert_same_store(&loaded.kv, &new);
    assert!(!path.with_extension("rebuild").exists());
}
