//! Backups: what Maintenance.Snapshot streams (`etcdctl snapshot save` writes it to a file) and
//! what `capstanutl snapshot status|restore` reads.
//!
//! ```text
//! a raft snapshot file's bytes (see `raft::snapshot_file`: header, crc32, eraftpb.Snapshot
//! whose data is the state machine, `raft::snapshot_state`)
//! zeros up to a multiple of 512 bytes (etcdctl 3.4 looks for the checksum after whole
//! 512-byte blocks, as a bolt file has)
//! sha256 of everything before it, 32 bytes (etcd also ends its snapshot stream with one)
//! ```
//!
//! Until the page store lands this is the serialized state, one consistent read view at one
//! revision; then it becomes a copy of the store file.

use crate::membership::MemberList;
use crate::mvcc::KvStore;
use crate::raft::snapshot_file::{self, SnapshotFileError};
use crate::raft::snapshot_state::{self, AppliedState, SnapshotStateError};
use raft::eraftpb::{ConfState, Snapshot, SnapshotMetadata};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

const SHA256_BYTES: usize = 32;
/// The backup before its checksum is padded to whole blocks of this size.
const BLOCK_BYTES: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: shorter than a snapshot")]
    Short { path: PathBuf },
    #[error("{path}: sha256 mismatch at offset {offset}: the snapshot is damaged or incomplete")]
    Checksum { path: PathBuf, offset: u64 },
    #[error(transparent)]
    File(#[from] SnapshotFileError),
    #[error("{path}: {source}")]
    State {
        path: PathBuf,
        source: SnapshotStateError,
    },
}

/// A backup of `kv` and `members` as of raft index `index` in `term`.
pub fn archive(kv: &KvStore, members: &MemberList, index: u64, term: u64) -> Vec<u8> {
    let metadata = SnapshotMetadata {
        index,
        term,
        ..SnapshotMetadata::default()
    };
    let snapshot = snapshot_state::raft_snapshot(kv, members, metadata);
    let mut bytes = snapshot_file::encode(&snapshot);
    bytes.resize(bytes.len().div_ceil(BLOCK_BYTES) * BLOCK_BYTES, 0);
    let digest = Sha256::digest(&bytes);
    bytes.extend_from_slice(&digest);
    bytes
}

/// What a backup holds.
pub struct Opened {
    pub snapshot: Snapshot,
    pub state: AppliedState,
    /// crc32 of the bytes before the sha256 trailer (what `snapshot status` prints as hash).
    pub hash: u32,
    pub total_bytes: u64,
}

/// Checks a backup's sha256 and decodes it.
pub fn open(path: &Path, bytes: &[u8]) -> Result<Opened, BackupError> {
    let Some(body_len) = bytes.len().checked_sub(SHA256_BYTES) else {
        return Err(BackupError::Short {
            path: path.to_path_buf(),
        });
    };
    let (body, trailer) = bytes.split_at(body_len);
    if Sha256::digest(body).as_slice() != trailer {
        return Err(BackupError::Checksum {
            path: path.to_path_buf(),
            offset: body_len as u64,
        });
    }
    let snapshot = snapshot_file::decode_padded(path, body)?;
    let state = snapshot_state::decode(&snapshot.data).map_err(|source| BackupError::State {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Opened {
        snapshot,
        state,
        hash: crc32fast::hash(body),
        total_bytes: bytes.len() as u64,
    })
}

/// Writes a new member's data directory from a backup: its raft snapshot names the new
/// cluster's members (`(id, name, peer url)`) as voters, and the state's member list is that
/// cluster's. Every member restored from the same backup with the same `--initial-cluster`
/// gets the same snapshot, so they agree from the start.
pub fn restore(
    opened: Opened,
    snap_dir: &Path,
    members: &[(u64, String, String)],
) -> Result<PathBuf, BackupError> {
    let Opened {
        mut snapshot,
        state,
        ..
    } = opened;
    let member_list = MemberList::from_initial_cluster(
        members
            .iter()
            .map(|(id, name, url)| (*id, name.clone(), vec![url.clone()])),
    );
    let metadata = snapshot.mut_metadata();
    metadata.index = metadata.index.max(1);
    metadata.term = metadata.term.max(1);
    metadata.set_conf_state(ConfState {
        voters: members.iter().map(|(id, _, _)| *id).collect(),
        ..ConfState::default()
    });
    snapshot.data = snapshot_state::encode(&state.kv, &member_list);
    Ok(snapshot_file::save(snap_dir, &snapshot)?)
}
