//! How versions and the small state are written in the page store, and the changes the raft
//! group gathers between two checkpoints.

use crate::membership::MemberList;
use crate::mvcc::{Applied, KvStore, Revision};
use bytes::Bytes;
use capstan_proto::capstanpb::{KeySnapshot, StateSnapshot, VersionSnapshot};
use capstan_proto::mvccpb::event::EventType;
use prost::Message;

/// The page store's file name inside `member/`.
pub const STORE_FILE_NAME: &str = "pages.db";

pub const META_FORMAT: &str = "format";
pub const META_APPLIED_INDEX: &str = "applied_index";
pub const META_CURRENT_REVISION: &str = "current_revision";
pub const META_STATE: &str = "state";
pub const FORMAT_VERSION: u64 = 1;

const ROW_TAG: u8 = b'r';
pub const ROW_KEY_BYTES: usize = 17;

/// The data key of the version at `revision`.
pub fn row_key(revision: Revision) -> [u8; ROW_KEY_BYTES] {
    let mut key = [0u8; ROW_KEY_BYTES];
    key[0] = ROW_TAG;
    key[1..9].copy_from_slice(&(revision.main as u64).to_be_bytes());
    key[9..17].copy_from_slice(&(revision.sub as u64).to_be_bytes());
    key
}

/// The revision a data key names, if it is a row key.
pub fn parse_row_key(key: &[u8]) -> Option<Revision> {
    if key.len() != ROW_KEY_BYTES || key[0] != ROW_TAG {
        return None;
    }
    let main = u64::from_be_bytes(key[1..9].try_into().ok()?);
    let sub = u64::from_be_bytes(key[9..17].try_into().ok()?);
    Some(Revision {
        main: i64::try_from(main).ok()?,
        sub: i64::try_from(sub).ok()?,
    })
}

/// The first data key past every row (the end of a scan over all rows).
pub fn rows_end() -> [u8; 1] {
    [ROW_TAG + 1]
}

/// One row: the key and its single version.
pub fn encode_row(key: &Bytes, version: VersionSnapshot) -> Vec<u8> {
    KeySnapshot {
        key: key.clone(),
        versions: vec![version],
    }
    .encode_to_vec()
}

/// The counters, leases, alarms and members (no keys), for the `state` meta value.
pub fn encode_state_for(kv: &KvStore, members: &MemberList) -> Vec<u8> {
    let store = kv.to_snapshot_without_keys();
    StateSnapshot {
        current_revision: store.current_revision,
        last_compaction: store.last_compaction,
        keys: Vec::new(),
        leases: store.leases,
        members: members.members().to_vec(),
        alarms: store.alarms,
    }
    .encode_to_vec()
}

/// Changes applied since the last checkpoint was handed to the writer.
#[derive(Default)]
pub struct PendingCheckpoint {
    pub rows: Vec<(Revision, Vec<u8>)>,
    pub deletes: Vec<Revision>,
    /// Leases, alarms, members or the compaction revision changed.
    pub state_changed: bool,
    /// Applied index last handed to the writer.
    pub sent_index: u64,
}

impl PendingCheckpoint {
    /// Records the versions an applied write created (one per event, sub revision = position)
    /// and the ones its compaction dropped.
    pub fn record(&mut self, applied: &Applied) {
        for (position, event) in applied.events.iter().enumerate() {
            let Some(kv) = &event.kv else { continue };
            let revision = Revision {
                main: kv.mod_revision,
                sub: i64::try_from(position).unwrap_or(i64::MAX),
            };
            let version = if event.r#type == EventType::Delete as i32 {
                VersionSnapshot {
                    main_revision: revision.main,
                    sub_revision: revision.sub,
                    tombstone: true,
                    ..VersionSnapshot::default()
                }
            } else {
                VersionSnapshot {
                    main_revision: revision.main,
                    sub_revision: revision.sub,
                    tombstone: false,
                    create_revision: kv.create_revision,
                    version: kv.version,
                    value: kv.value.clone(),
                    lease: kv.lease,
                }
            };
            self.rows.push((revision, encode_row(&kv.key, version)));
        }
        if !applied.compacted.is_empty() {
            self.deletes.extend_from_slice(&applied.compacted);
            self.state_changed = true;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.deletes.is_empty() && !self.state_changed
    }

    /// Forgets everything gathered (a snapshot replaced the state).
    pub fn clear(&mut self) {
        self.rows.clear();
        self.deletes.clear();
        self.state_changed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_keys_sort_by_revision_and_parse_back() {
        let revisions = [
            Revision { main: 2, sub: 0 },
            Revision { main: 2, sub: 1 },
            Revision { main: 3, sub: 0 },
            Revision {
                main: 256,
                sub: 300,
            },
            Revision {
                main: i64::MAX,
                sub: 0,
            },
        ];
        let keys: Vec<[u8; ROW_KEY_BYTES]> = revisions.iter().map(|r| row_key(*r)).collect();
        assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
        for (key, revision) in keys.iter().zip(revisions) {
            assert_eq!(parse_row_key(key), Some(revision));
            assert!(key.as_slice() < rows_end().as_slice());
        }
        assert_eq!(parse_row_key(b"r123"), None);
        assert_eq!(parse_row_key(&[b'x'; ROW_KEY_BYTES]), None);
    }
}
