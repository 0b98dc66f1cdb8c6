//! Raft's log, made durable in the WAL.
//!
//! Record kinds written by this module (the WAL treats them as opaque bytes):
//!
//! | kind | payload                          |
//! |------|----------------------------------|
//! | 1    | one raft `Entry` (protobuf)      |
//! | 2    | raft `HardState` (protobuf)      |
//! | 3    | raft `ConfState` (protobuf)      |
//!
//! Replay applies records in order: an entry whose index is at or below the last one replaces
//! the tail from that index (raft overwrote an uncommitted suffix); an entry that would leave a
//! gap is corruption. A fresh data directory is bootstrapped the way etcd bootstraps a new
//! cluster, identically on every member: one conf-change entry per member (in id order) at
//! indexes 1..=n, term 1, committed up to n.

use capstan_wal::{Wal, WalConfig, WalError};
use protobuf::Message as ProtobufMessage;
use raft::eraftpb::{ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState};
use raft::storage::MemStorage;
use raft::Storage;
use std::path::PathBuf;

pub const RECORD_ENTRY: u8 = 1;
pub const RECORD_HARD_STATE: u8 = 2;
pub const RECORD_CONF_STATE: u8 = 3;

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
}

pub struct LogStore {
    wal: Wal,
    storage: MemStorage,
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
    /// Opens the WAL in `dir`, replays it into raft's log, or bootstraps a new member.
    pub async fn open(
        dir: PathBuf,
        segment_bytes: u64,
        member_ids: &[u64],
    ) -> Result<(LogStore, ReplaySummary), LogStoreError> {
        let mut config = WalConfig::new(dir);
        config.segment_bytes = segment_bytes;
        let (wal, recovered) = Wal::open(config).await?;
        let mut store = LogStore {
            wal,
            storage: MemStorage::new(),
        };
        let mut summary = ReplaySummary {
            records: recovered.records.len(),
            torn_tail_offset: recovered.torn_tail.as_ref().map(|torn| torn.offset),
            ..ReplaySummary::default()
        };
        // No member ids: a member joining an existing cluster starts empty and gets its log
        // (conf changes included) from the leader.
        let records: Vec<(u8, Vec<u8>)> = if recovered.records.is_empty() && member_ids.is_empty() {
            Vec::new()
        } else if recovered.records.is_empty() {
            summary.bootstrapped = true;
            store.bootstrap(member_ids).await?
        } else {
            recovered
                .records
                .into_iter()
                .map(|record| (record.kind, record.payload))
                .collect()
        };
        for (record, (kind, payload)) in records.iter().enumerate() {
            store.replay(record, *kind, payload)?;
        }
        summary.last_index = store.storage.last_index()?;
        summary.commit_index = store.storage.initial_state()?.hard_state.commit;
        Ok((store, summary))
    }

    fn replay(&mut self, record: usize, kind: u8, payload: &[u8]) -> Result<(), LogStoreError> {
        match kind {
            RECORD_ENTRY => {
                let entry: Entry = decode(record, kind, payload)?;
                let last_index = self.storage.last_index()?;
                if entry.index > last_index + 1 || entry.index < self.storage.first_index()? {
                    return Err(LogStoreError::Gap {
                        record,
                        index: entry.index,
                        last_index,
                    });
                }
                self.storage.wl().append(&[entry])?;
            }
            RECORD_HARD_STATE => self
                .storage
                .wl()
                .set_hardstate(decode(record, kind, payload)?),
            RECORD_CONF_STATE => self
                .storage
                .wl()
                .set_conf_state(decode::<ConfState>(record, kind, payload)?),
            _ => return Err(LogStoreError::UnknownKind { record, kind }),
        }
        Ok(())
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

    pub fn storage(&self) -> &MemStorage {
        &self.storage
    }

    /// Buffers entries for the next sync and makes them visible to raft.
    pub fn append_entries(&mut self, entries: &[Entry]) -> Result<(), LogStoreError> {
        for entry in entries {
            self.wal.append(RECORD_ENTRY, &encode(entry))?;
        }
        self.storage.wl().append(entries)?;
        Ok(())
    }

    pub fn set_hard_state(&mut self, hard_state: HardState) -> Result<(), LogStoreError> {
        self.wal.append(RECORD_HARD_STATE, &encode(&hard_state))?;
        self.storage.wl().set_hardstate(hard_state);
        Ok(())
    }

    /// Records the configuration after an applied conf change (durable with the next sync).
    pub fn set_conf_state(&mut self, conf_state: ConfState) -> Result<(), LogStoreError> {
        self.wal.append(RECORD_CONF_STATE, &encode(&conf_state))?;
        self.storage.wl().set_conf_state(conf_state);
        Ok(())
    }

    /// Records a newer commit index (made durable with the next sync).
    pub fn set_commit(&mut self, commit_index: u64) -> Result<(), LogStoreError> {
        let mut hard_state = self.storage.rl().hard_state().clone();
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
        self.wal.sync().await?;
        Ok(())
    }

    pub fn wal_bytes(&self) -> u64 {
        self.wal.total_bytes()
    }
}
