//! raft-rs's view of the log ([`raft::Storage`]): the entries kept in memory (raft-rs's
//! `MemStorage`, filled from the WAL) plus the latest snapshot of the applied state, which is
//! what a follower that fell behind the compacted log receives.
//!
//! `MemStorage` alone cannot serve snapshots: its `snapshot()` builds metadata from the commit
//! index and carries no data.
//!
//! Only the latest snapshot's metadata and file name stay in memory; its data (a copy of the
//! whole state) is read back from the file when a follower needs it.
//!
//! A snapshot is only handed out to a member its conf state includes: raft-rs (like etcd's
//! raft) refuses to restore a snapshot that does not name the receiving member, which is the
//! case for a member added after the latest snapshot. Then the answer is "temporarily
//! unavailable" and the group is asked for a fresh snapshot; raft asks again later.

use super::snapshot_file::{self, SnapshotFileError};
use raft::eraftpb::{Entry, Snapshot};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, RaftState, Storage, StorageError};
use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;

/// Cheap to clone; clones share the log and the snapshot.
#[derive(Clone, Default)]
pub struct GroupStorage {
    entries: MemStorage,
    /// The latest snapshot without its data, and the file holding it whole.
    latest_snapshot: Rc<RefCell<Option<(Snapshot, PathBuf)>>>,
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
            .map_or(0, |(snapshot, _)| snapshot.get_metadata().index)
    }

    /// Whether a fresh snapshot was asked for since the last call (clears the request).
    pub fn take_fresh_snapshot_wanted(&self) -> bool {
        self.fresh_snapshot_wanted.replace(false)
    }

    /// The latest snapshot, with its data read back from its file.
    pub fn latest_snapshot(&self) -> Result<Option<Snapshot>, SnapshotFileError> {
        let latest = self.latest_snapshot.borrow();
        let Some((_, path)) = latest.as_ref() else {
            return Ok(None);
        };
        snapshot_file::load(path).map(Some)
    }

    /// Remembers `snapshot` (saved whole in `file`) as the one to send to lagging followers.
    pub fn set_snapshot(&self, snapshot: &Snapshot, file: PathBuf) {
        let mut metadata_only = Snapshot::default();
        metadata_only.set_metadata(snapshot.get_metadata().clone());
        *self.latest_snapshot.borrow_mut() = Some((metadata_only, file));
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
        let usable = latest.as_ref().filter(|(snapshot, _)| {
            let metadata = snapshot.get_metadata();
            let conf = metadata.get_conf_state();
            metadata.index >= request_index
                && (conf.voters.contains(&to) || conf.learners.contains(&to))
        });
        let loaded = usable.map(|(_, path)| snapshot_file::load(path));
        match loaded {
            Some(Ok(snapshot)) => Ok(snapshot),
            Some(Err(error)) => {
                tracing::error!(%error, "latest snapshot file unreadable; a fresh one is wanted");
                self.fresh_snapshot_wanted.set(true);
                Err(raft::Error::Store(
                    StorageError::SnapshotTemporarilyUnavailable,
                ))
            }
            None => {
                self.fresh_snapshot_wanted.set(true);
                Err(raft::Error::Store(
                    StorageError::SnapshotTemporarilyUnavailable,
                ))
            }
        }
    }
}
