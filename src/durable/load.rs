//! The applied state in the page store, read back at start-up.

use super::rows::{
    parse_row_key, rows_end, FORMAT_VERSION, META_APPLIED_INDEX, META_CURRENT_REVISION,
    META_FORMAT, META_STATE,
};
use crate::membership::MemberList;
use crate::mvcc::{KvStore, Revision, StoreSnapshot};
use crate::store::{ReadTxn, StoreError};
use bytes::Bytes;
use capstan_proto::capstanpb::{KeySnapshot, StateSnapshot, VersionSnapshot};
use prost::Message;
use std::collections::HashMap;

/// What the page store holds.
pub struct LoadedState {
    /// Raft index the state reflects (0: the store is empty).
    pub applied_index: u64,
    pub kv: KvStore,
    pub members: MemberList,
    /// Versions a compaction dropped whose rows were not deleted yet.
    pub owed_deletes: Vec<Revision>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("page store {0}")]
    Invalid(String),
}

fn invalid(reason: impl Into<String>) -> LoadError {
    LoadError::Invalid(reason.into())
}

/// Reads the state committed in `read`; `None` for a store nothing was checkpointed to.
pub fn load(read: &ReadTxn) -> Result<Option<LoadedState>, LoadError> {
    let Some(applied_index) = read.meta_u64(META_APPLIED_INDEX)? else {
        return Ok(None);
    };
    match read.meta_u64(META_FORMAT)? {
        Some(FORMAT_VERSION) => {}
        other => return Err(invalid(format!("has format {other:?}, expected 1"))),
    }
    let current_revision = read
        .meta_u64(META_CURRENT_REVISION)?
        .and_then(|revision| i64::try_from(revision).ok())
        .ok_or_else(|| invalid("has no current revision"))?;
    let state_bytes = read
        .meta(META_STATE)?
        .ok_or_else(|| invalid("has no state"))?;
    let state = StateSnapshot::decode(state_bytes)
        .map_err(|error| invalid(format!("state does not decode: {error}")))?;

    // Rows come in revision order, so each key's versions arrive oldest first.
    let mut versions_by_key: HashMap<Bytes, Vec<VersionSnapshot>> = HashMap::new();
    for entry in read.iter(&[], Some(&rows_end()))? {
        let (row_key, row) = entry?;
        let revision =
            parse_row_key(row_key).ok_or_else(|| invalid(format!("row key {row_key:?}")))?;
        let mut snapshot = KeySnapshot::decode(row).map_err(|error| {
            invalid(format!(
                "row {}.{} does not decode: {error}",
                revision.main, revision.sub
            ))
        })?;
        let version = match snapshot.versions.pop() {
            Some(version)
                if snapshot.versions.is_empty()
                    && version.main_revision == revision.main
                    && version.sub_revision == revision.sub =>
            {
                version
            }
            _ => {
                return Err(invalid(format!(
                    "row {}.{} does not hold exactly its own version",
                    revision.main, revision.sub
                )))
            }
        };
        versions_by_key
            .entry(snapshot.key)
            .or_default()
            .push(version);
    }
    let mut keys: Vec<KeySnapshot> = versions_by_key
        .into_iter()
        .map(|(key, versions)| KeySnapshot { key, versions })
        .collect();
    keys.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    let mut kv = KvStore::from_snapshot(StoreSnapshot {
        current_revision,
        last_compaction: state.last_compaction,
        keys,
        leases: state.leases,
        alarms: state.alarms,
    })
    .map_err(|error| invalid(error.to_string()))?;
    let owed_deletes = kv.redo_compaction();
    Ok(Some(LoadedState {
        applied_index,
        kv,
        members: MemberList::from_members(state.members),
        owed_deletes,
    }))
}
