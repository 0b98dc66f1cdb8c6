//! Raft's log, made durable in the WAL, with snapshots of the applied state.
//!
//! Record kinds written by this module (the WAL treats them as opaque bytes):
//!
//! | kind | payload                                                             |
//! |------|---------------------------------------------------------------------|
//! | 1    | one raft `Entry` (protobuf)                                         |
//! | 2    | raft `HardState` (protobuf)                                         |
//! | 3    | raft `ConfState` (protobuf)                                         |
//! | 4    | raft `SnapshotMetadata`: a snapshot from the leader was installed   |
//!
//! Start-up loads the newest intact snapshot file (`snapshot_file`), if any, then replays the
//! records in order: an entry at or below the snapshot's index is skipped (the snapshot holds
//! its effect); an entry whose index is at or below the last one replaces the tail from that
//! index (raft overwrote an uncommitted suffix); an entry that would leave a gap is corruption.
//! A kind-4 record voids every entry before it (the follower's log was replaced by the
//! leader's snapshot, whose file was made durable before the record was written). A fresh data
//! directory is bootstrapped the way etcd bootstraps a new cluster, identically on every
//! member: one conf-change entry per member (in id order) at indexes 1..=n, term 1, committed
//! up to n.
//!
//! # Compaction
//!
//! Every `--snapshot-count` applied entries the raft group writes a snapshot file of the
//! applied state at index S, then [`LogStore::compact`]: the in-memory log keeps the entries
//! after `S - catch-up entries` (for followers slightly behind), the current hard state and
//! conf state are written again and synced, and the WAL releases every sealed segment whose
//! entries are all at or below S (it tracks the largest entry index written to each segment).
//! A crash at any point leaves either the old snapshot with the old segments, or the new
//! snapshot with a superset of the segments it needs.
//!
//! The applied state itself is also checkpointed into the page store (`durable`), which records
//! its applied index A. Start-up prefers it when A is at least the snapshot's index: raft then
//! starts with `applied = A` and only entries after A are applied again
//! ([`LogStore::settle_applied`]). Segments are still released only below snapshots, so the
//! page store is never the only copy of anything.

use super::snapshot_file::{SnapshotDir, SnapshotFileError};
use super::storage::GroupStorage;
use capstan_wal::{Wal, WalConfig, WalError};
use protobuf::Message as ProtobufMessage;
use raft::eraftpb::{
    ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMetadata,
};
use raft::Storage;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

pub const RECORD_ENTRY: u8 = 1;
pub const RECORD_HARD_STATE: u8 = 2;
pub const RECORD_CONF_STATE: u8 = 3;
pub const RECORD_SNAPSHOT_INSTALLED: u8 = 4;

#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error("wal record {record} (kind {kind}) does not decode: {reason}")]
    Undecodable {
        record: usize,
        kind: u8,
        reason: String,
    },
    #[error("wal record {record}: entry index {index} leaves a gap after index {last_index}")]
    Gap {
        record: usize,
        index: u64,
        last_index: u64,
    },
    #[error("wal record {record}: unknown record kind {kind}")]
    UnknownKind { record: usize, kind: u8 },
    #[error(
        "wal record {record}: a snapshot at index {index} was installed, but no intact snapshot \
         file reaches it (newest usable: index {loaded_index})"
    )]
    MissingSnapshot {
        record: usize,
        index: u64,
        loaded_index: u64,
    },
    #[error(
        "the page store applied raft index {applied}, beyond the last entry in the WAL \
         ({last_index}): the WAL is missing entries this member acknowledged; refusing to start"
    )]
    StoreAhead { applied: u64, last_index: u64 },
    #[error(transparent)]
    SnapshotFile(#[from] SnapshotFileError),
    #[error("raft storage: {0}")]
    Raft(#[from] raft::Error),
}

/// What replay found, for the start-up log line.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplaySummary {
    pub records: usize,
    pub last_index: u64,
    pub commit_index: u64,
    pub bootstrapped: bool,
    pub torn_tail_offset: Option<u64>,
    /// Index of the snapshot the state starts from (0: none).
    pub snapshot_index: u64,
}

pub struct LogStore {
    wal: Wal,
    storage: GroupStorage,
    snapshots: Arc<SnapshotDir>,
    /// Largest entry index written to each WAL segment still kept (0: none), by segment seq.
    segment_max_index: BTreeMap<u64, u64>,
}

fn encode<M: ProtobufMessage>(message: &M) -> Vec<u8> {
    // rust-protobuf only fails to encode messages with missing required fields; raft's
    // messages are proto3 and have none.
    message
        .write_to_bytes()
        .unwrap_or_else(|error| unreachable!("raft message encodes: {error}"))
}

fn decode<M: ProtobufMessage>(record: usize, kind: u8, payload: &[u8]) -> Result<M, LogStoreError> {
    M::parse_from_bytes(payload).map_err(|error| LogStoreError::Undecodable {
        record,
        kind,
        reason: error.to_string(),
    })
}

impl LogStore {
    /// Opens the WAL in `dir` and the snapshots in `snap_dir`, replays them into raft's log,
    /// or bootstraps a new member.
    pub async fn open(
        dir: PathBuf,
        snap_dir: PathBuf,
        segment_bytes: u64,
        member_ids: &[u64],
    ) -> Result<(LogStore, ReplaySummary), LogStoreError> {
        let mut config = WalConfig::new(dir);
        config.segment_bytes = segment_bytes;
        let (mut wal, recovered) = Wal::open(config).await?;
        wal.set_fdatasync_observer(crate::metrics::observe_wal_fdatasync);
        let mut store = LogStore {
            wal,
            storage: GroupStorage::default(),
            snapshots: SnapshotDir::new(snap_dir),
            segment_max_index: BTreeMap::new(),
        };
        let mut summary = ReplaySummary {
            records: recovered.records.len(),
            torn_tail_offset: recovered.torn_tail.as_ref().map(|torn| torn.offset),
            ..ReplaySummary::default()
        };
        let snapshot = store.snapshots.load_newest()?;
        if let Some(snapshot) = snapshot {
            summary.snapshot_index = snapshot.get_metadata().index;
            store
                .storage
                .log()
                .wl()
                .apply_snapshot(metadata_only(&snapshot))?;
            store.serve_snapshot(&snapshot);
        }
        // Which segment each record came from.
        let mut seqs = Vec::with_capacity(recovered.records.len());
        for segment in &recovered.segments {
            store.segment_max_index.insert(segment.seq, 0);
            seqs.extend(std::iter::repeat_n(segment.seq, segment.records));
        }
        let fresh = recovered.records.is_empty() && summary.snapshot_index == 0;
        // No member ids: a member joining an existing cluster starts empty and gets its log
        // (conf changes included) from the leader.
        let records: Vec<(u8, Vec<u8>)> = if fresh && member_ids.is_empty() {
            Vec::new()
        } else if fresh {
            summary.bootstrapped = true;
            seqs = vec![store.wal.first_seq(); member_ids.len() + 2];
            store.bootstrap(member_ids).await?
        } else {
            recovered
                .records
                .into_iter()
                .map(|record| (record.kind, record.payload))
                .collect()
        };
        for (record, (kind, payload)) in records.iter().enumerate() {
            let seq = seqs.get(record).copied().unwrap_or(0);
            store.replay(record, seq, *kind, payload)?;
        }
        store.settle_commit_index()?;
        summary.last_index = store.storage.last_index()?;
        summary.commit_index = store.storage.initial_state()?.hard_state.commit;
        Ok((store, summary))
    }

    fn replay(
        &mut self,
        record: usize,
        seq: u64,
        kind: u8,
        payload: &[u8],
    ) -> Result<(), LogStoreError> {
        match kind {
            RECORD_ENTRY => {
                let entry: Entry = decode(record, kind, payload)?;
                self.note_entry_in_segment(seq, entry.index);
                if entry.index <= self.storage.snapshot_index() {
                    return Ok(());
                }
                let last_index = self.storage.last_index()?;
                if entry.index > last_index + 1 || entry.index < self.storage.first_index()? {
                    return Err(LogStoreError::Gap {
                        record,
                        index: entry.index,
                        last_index,
                    });
                }
                self.storage.log().wl().append(&[entry])?;
            }
            RECORD_HARD_STATE => self
                .storage
                .log()
                .wl()
                .set_hardstate(decode(record, kind, payload)?),
            RECORD_CONF_STATE => self
                .storage
                .log()
                .wl()
                .set_conf_state(decode::<ConfState>(record, kind, payload)?),
            RECORD_SNAPSHOT_INSTALLED => {
                let installed: SnapshotMetadata = decode(record, kind, payload)?;
                let loaded_index = self.storage.snapshot_index();
                if installed.index > loaded_index {
                    return Err(LogStoreError::MissingSnapshot {
                        record,
                        index: installed.index,
                        loaded_index,
                    });
                }
                // Everything before this record predates the leader's snapshot.
                let last_index = self.storage.last_index()?;
                self.storage.log().wl().compact(last_index + 1)?;
            }
            _ => return Err(LogStoreError::UnknownKind { record, kind }),
        }
        Ok(())
    }

    /// raft-rs requires `snapshot index <= commit <= last index` at start.
    fn settle_commit_index(&mut self) -> Result<(), LogStoreError> {
        let snapshot_index = self.storage.snapshot_index();
        let last_index = self.storage.last_index()?;
        let mut core = self.storage.log().wl();
        let hard_state = core.mut_hard_state();
        let settled = hard_state.commit.clamp(snapshot_index, last_index);
        if settled != hard_state.commit {
            tracing::warn!(
                commit = hard_state.commit,
                settled,
                snapshot_index,
                last_index,
                "commit index outside the replayed log; settled"
            );
            hard_state.commit = settled;
        }
        Ok(())
    }

    /// Start-up from a page store that applied up to `applied`: every entry up to it was
    /// committed (only committed entries are applied), so a hard state whose commit index lags
    /// (the store's commit reached the disk before the WAL's next sync) is moved up to it.
    /// The entries must still be in the log.
    pub fn settle_applied(&mut self, applied: u64) -> Result<(), LogStoreError> {
        let last_index = self.storage.last_index()?;
        if applied > last_index {
            return Err(LogStoreError::StoreAhead {
                applied,
                last_index,
            });
        }
        let mut core = self.storage.log().wl();
        let hard_state = core.mut_hard_state();
        if hard_state.commit < applied {
            tracing::info!(
                commit = hard_state.commit,
                applied,
                "commit index raised to what the page store applied"
            );
            hard_state.commit = applied;
        }
        Ok(())
    }

    fn note_entry_in_segment(&mut self, seq: u64, index: u64) {
        let max = self.segment_max_index.entry(seq).or_insert(0);
        *max = (*max).max(index);
    }

    /// Writes (and syncs) the records that start a new single-member cluster, returning them so
    /// they are replayed exactly like recovered ones.
    async fn bootstrap(&mut self, member_ids: &[u64]) -> Result<Vec<(u8, Vec<u8>)>, LogStoreError> {
        let mut member_ids = member_ids.to_vec();
        member_ids.sort_unstable();
        let conf_state = ConfState {
            voters: member_ids.clone(),
            ..ConfState::default()
        };
        let mut records = vec![(RECORD_CONF_STATE, encode(&conf_state))];
        for (position, member_id) in member_ids.iter().enumerate() {
            let mut change = ConfChange::default();
            change.set_change_type(ConfChangeType::AddNode);
            change.node_id = *member_id;
            let mut entry = Entry::default();
            entry.set_entry_type(EntryType::EntryConfChange);
            entry.term = 1;
            entry.index = position as u64 + 1;
            entry.data = encode(&change).into();
            records.push((RECORD_ENTRY, encode(&entry)));
        }
        let hard_state = HardState {
            term: 1,
            commit: member_ids.len() as u64,
            ..HardState::default()
        };
        records.push((RECORD_HARD_STATE, encode(&hard_state)));
        for (kind, payload) in &records {
            self.wal.append(*kind, payload)?;
        }
        self.wal.sync().await?;
        Ok(records)
    }

    pub fn storage(&self) -> &GroupStorage {
        &self.storage
    }

    /// Buffers entries for the next sync and makes them visible to raft.
    pub fn append_entries(&mut self, entries: &[Entry]) -> Result<(), LogStoreError> {
        for entry in entries {
            self.wal.append(RECORD_ENTRY, &encode(entry))?;
            let seq = self.wal.append_seq();
            self.note_entry_in_segment(seq, entry.index);
        }
        self.storage.log().wl().append(entries)?;
        Ok(())
    }

    pub fn set_hard_state(&mut self, hard_state: HardState) -> Result<(), LogStoreError> {
        self.wal.append(RECORD_HARD_STATE, &encode(&hard_state))?;
        self.storage.log().wl().set_hardstate(hard_state);
        Ok(())
    }

    /// Records the configuration after an applied conf change (durable with the next sync).
    pub fn set_conf_state(&mut self, conf_state: ConfState) -> Result<(), LogStoreError> {
        self.wal.append(RECORD_CONF_STATE, &encode(&conf_state))?;
        self.storage.log().wl().set_conf_state(conf_state);
        Ok(())
    }

    /// The configuration as of the last applied conf change.
    pub fn conf_state(&self) -> ConfState {
        self.storage
            .log()
            .initial_state()
            .map(|state| state.conf_state)
            .unwrap_or_default()
    }

    /// Term of the entry at `index` (which must still be in the log or be the snapshot's).
    pub fn term(&self, index: u64) -> Result<u64, LogStoreError> {
        Ok(self.storage.term(index)?)
    }

    /// After this member's own snapshot at `snapshot`'s index was saved: keeps at most
    /// `catch_up_entries` entries at or below it in memory, makes the hard state and conf state
    /// durable again, and releases the WAL segments holding only entries the snapshot covers.
    /// Returns how many segments were released.
    pub async fn compact(
        &mut self,
        snapshot: Snapshot,
        catch_up_entries: u64,
    ) -> Result<usize, LogStoreError> {
        let index = snapshot.get_metadata().index;
        if index <= self.storage.snapshot_index() {
            return Ok(0);
        }
        self.serve_snapshot(&snapshot);
        let keep_from = (index + 1).saturating_sub(catch_up_entries);
        if keep_from > self.storage.first_index()? {
            self.storage.log().wl().compact(keep_from)?;
        }
        self.release_through(index).await
    }

    /// Installs a snapshot received from the leader (its file already saved): the log restarts
    /// after it. Durable with the next sync, like the hard state that comes with it.
    pub fn install_snapshot(&mut self, snapshot: Snapshot) -> Result<(), LogStoreError> {
        let metadata = snapshot.get_metadata().clone();
        self.wal
            .append(RECORD_SNAPSHOT_INSTALLED, &encode(&metadata))?;
        self.wal
            .append(RECORD_CONF_STATE, &encode(metadata.get_conf_state()))?;
        self.storage
            .log()
            .wl()
            .apply_snapshot(metadata_only(&snapshot))?;
        self.serve_snapshot(&snapshot);
        Ok(())
    }

    /// Writes the hard state and conf state again (so no older segment is needed for them),
    /// syncs, then releases the sealed segments whose entries are all at or below `index`.
    async fn release_through(&mut self, index: u64) -> Result<usize, LogStoreError> {
        let state = self.storage.log().initial_state()?;
        let (hard_state, conf_state) = (state.hard_state, state.conf_state);
        self.wal.append(RECORD_HARD_STATE, &encode(&hard_state))?;
        self.wal.append(RECORD_CONF_STATE, &encode(&conf_state))?;
        self.wal.sync().await?;
        let keep_from_seq = self
            .segment_max_index
            .iter()
            .find(|(_, max_index)| **max_index > index)
            .map_or(self.wal.append_seq(), |(seq, _)| *seq);
        let released = self.wal.release_before(keep_from_seq).await?;
        if released > 0 {
            crate::failpoint::hit("raftAfterWALRelease");
        }
        let first_seq = self.wal.first_seq();
        self.segment_max_index.retain(|seq, _| *seq >= first_seq);
        Ok(released)
    }

    /// Records a newer commit index (made durable with the next sync).
    pub fn set_commit(&mut self, commit_index: u64) -> Result<(), LogStoreError> {
        let mut hard_state = self.storage.log().rl().hard_state().clone();
        if hard_state.commit >= commit_index {
            return Ok(());
        }
        hard_state.commit = commit_index;
        self.set_hard_state(hard_state)
    }

    pub fn has_unsynced(&self) -> bool {
        self.wal.pending_bytes() > 0
    }

    /// One group commit: everything appended since the last sync becomes durable.
    pub async fn sync(&mut self) -> Result<(), LogStoreError> {
        crate::failpoint::hit("raftBeforeSave");
        let synced = self.wal.sync().await?;
        crate::failpoint::hit("raftAfterSave");
        crate::metrics::with(|metrics| {
            use crate::metrics::{Counter, Histogram};
            metrics
                .counter(Counter::WalWriteBytes)
                .add(synced.bytes_written);
            let records = synced.records as f64;
            let bytes = synced.bytes_written as f64;
            let histogram = metrics.histogram(Histogram::WalSyncRecords);
            histogram.record(
                Histogram::WalSyncRecords.buckets().index_of(records),
                records,
            );
            let histogram = metrics.histogram(Histogram::WalSyncBytes);
            histogram.record(Histogram::WalSyncBytes.buckets().index_of(bytes), bytes);
        });
        Ok(())
    }

    pub fn wal_bytes(&self) -> u64 {
        self.wal.total_bytes()
    }

    pub fn wal_segments(&self) -> usize {
        self.wal.segment_count()
    }

    /// `snapshot` (already saved) becomes the one raft hands to lagging followers; its file is
    /// kept until another one is served.
    fn serve_snapshot(&self, snapshot: &Snapshot) {
        let file = self.snapshots.path_of(snapshot);
        self.snapshots.serve(file.clone());
        self.storage.set_snapshot(snapshot, file);
    }

    /// The member's snapshot directory, shared with whoever saves snapshots.
    pub fn snapshots(&self) -> &Arc<SnapshotDir> {
        &self.snapshots
    }
}

/// `snapshot` without its data: what raft-rs's in-memory log keeps.
fn metadata_only(snapshot: &Snapshot) -> Snapshot {
    let mut metadata_only = Snapshot::default();
    metadata_only.set_metadata(snapshot.get_metadata().clone());
    metadata_only
}
