//! raft-rs's view of the log ([`raft::Storage`]): the entries kept in memory (raft-rs's
//! `MemStorage`, filled from the WAL) plus the latest snapshot of the applied state, which is
//! what a follower that fell behind the compacted log receives.
//!
//! `MemStorage` alone cannot serve snapshots: its `snapshot()` builds metadata from the commit
//! index and carries no data.
//!
//! A snapshot is only handed out to a member its conf state includes: raft-rs (like etcd's
//! raft) refuses to restore a snapshot that does not name the receiving member, which is the
//! case for a member added after the latest snapshot. Then the answer is "temporarily
//! unavailable" and the group is asked for a fresh snapshot; raft asks again later.

use raft::eraftpb::{Entry, Snapshot};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, RaftState, Storage, StorageError};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// Cheap to clone; clones share the log and the snapshot.
#[derive(Clone, Default)]
pub struct GroupStorage {
    entries: MemStorage,
    latest_snapshot: Rc<RefCell<Option<Snapshot>>>,
    /// Raft asked for a snapshot the latest one cannot serve.
    fresh_snapshot_wanted: Rc<Cell<bool>>,
}

impl GroupStorage {
    /// The in-memory log (hard state, conf state, entries).
    pub fn log(&self) -> &MemStorage {
        &self.entries
    }

    /// The latest snapshot's metadata index, 0 when there is none.
    pub fn snapshot_index(&self) -> u64 {
        self.latest_snapshot
            .borrow()
            .as_ref()
            .map_or(0, |snapshot| snapshot.get_metadata().index)
    }

    /// Whether a fresh snapshot was asked for since the last call (clears the request).
    pub fn take_fresh_snapshot_wanted(&self) -> bool {
        self.fresh_snapshot_wanted.replace(false)
    }

    /// The latest snapshot, with its data.
    pub fn latest_snapshot(&self) -> Option<Snapshot> {
        self.latest_snapshot.borrow().clone()
    }

    /// Remembers `snapshot` (with its data) as the one to send to lagging followers.
    pub fn set_snapshot(&self, snapshot: Snapshot) {
        *self.latest_snapshot.borrow_mut() = Some(snapshot);
    }
}

impl Storage for GroupStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.entries.initial_state()
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.entries.entries(low, high, max_size, context)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        self.entries.term(index)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.entries.first_index()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.entries.last_index()
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let latest = self.latest_snapshot.borrow();
        let usable = latest.as_ref().filter(|snapshot| {
            let metadata = snapshot.get_metadata();
            let conf = metadata.get_conf_state();
            metadata.index >= request_index
                && (conf.voters.contains(&to) || conf.learners.contains(&to))
        });
        match usable {
            Some(snapshot) => Ok(snapshot.clone()),
            None => {
                self.fresh_snapshot_wanted.set(true);
                Err(raft::Error::Store(
                    StorageError::SnapshotTemporarilyUnavailable,
                ))
            }
        }
    }
}
