//! The replicated state machine as a raft snapshot's data: the MVCC store (every retained
//! version, the leases and the raised alarms) and the member list, as one
//! `capstanpb.StateSnapshot`.
//!
//! Lease clocks are not part of it: whoever restores a snapshot starts each lease's clock
//! afresh at its granted TTL, as etcd does on restart.

use crate::membership::MemberList;
use crate::mvcc::{KvStore, SnapshotError, StoreSnapshot};
use bytes::Bytes;
use capstan_proto::capstanpb::StateSnapshot;
use prost::Message;

/// What a snapshot restores.
pub struct AppliedState {
    pub kv: KvStore,
    pub members: MemberList,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotStateError {
    #[error("snapshot data does not decode: {0}")]
    Undecodable(#[from] prost::DecodeError),
    #[error(transparent)]
    Inconsistent(#[from] SnapshotError),
}

pub fn encode(kv: &KvStore, members: &MemberList) -> Bytes {
    let store = kv.to_snapshot();
    let state = StateSnapshot {
        current_revision: store.current_revision,
        last_compaction: store.last_compaction,
        keys: store.keys,
        leases: store.leases,
        members: members.members().to_vec(),
        alarms: store.alarms,
    };
    Bytes::from(state.encode_to_vec())
}

/// A raft snapshot of `kv` and `members` with `metadata` (index, term, conf state).
pub fn raft_snapshot(
    kv: &KvStore,
    members: &MemberList,
    metadata: raft::eraftpb::SnapshotMetadata,
) -> raft::eraftpb::Snapshot {
    let mut snapshot = raft::eraftpb::Snapshot::default();
    snapshot.set_metadata(metadata);
    snapshot.data = encode(kv, members);
    snapshot
}

pub fn decode(data: &[u8]) -> Result<AppliedState, SnapshotStateError> {
    let state = StateSnapshot::decode(data)?;
    let kv = KvStore::from_snapshot(StoreSnapshot {
        current_revision: state.current_revision,
        last_compaction: state.last_compaction,
        keys: state.keys,
        leases: state.leases,
        alarms: state.alarms,
    })?;
    Ok(AppliedState {
        kv,
        members: MemberList::from_members(state.members),
    })
}
