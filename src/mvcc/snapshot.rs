//! The whole store as the data of a raft snapshot, and back.
//!
//! A snapshot carries every retained version of every key, oldest first, every lease and
//! every raised alarm;
//! the counters and the lease attachments are derived again on restore (a key is attached to
//! the lease its newest version carries, when that version is live). Restoring checks what a
//! bad or hostile snapshot could break: per-key revision order, revisions not above the
//! store's, attachments to leases that exist.

use bytes::Bytes;
use capstan_proto::capstanpb::{KeySnapshot, LeaseSnapshot, VersionSnapshot};
use capstan_proto::etcdserverpb::{AlarmMember, AlarmType};
use imbl::{OrdMap, OrdSet};

use crate::mvcc::key_history::{KeyHistory, LiveVersion, StoredVersion};
use crate::mvcc::lease::{LeaseRecord, LEASE_OVERHEAD_BYTES};
use crate::mvcc::revision::Revision;
use crate::mvcc::store::KvStore;

/// Why a snapshot's data cannot become a store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("snapshot state is inconsistent: {0}")]
pub struct SnapshotError(pub String);

/// The store's contents in snapshot form.
pub struct StoreSnapshot {
    pub current_revision: i64,
    pub last_compaction: i64,
    pub keys: Vec<KeySnapshot>,
    pub leases: Vec<LeaseSnapshot>,
    pub alarms: Vec<AlarmMember>,
}

fn version_snapshot(version: &StoredVersion) -> VersionSnapshot {
    match version {
        StoredVersion::Live(live) => VersionSnapshot {
            main_revision: live.revision.main,
            sub_revision: live.revision.sub,
            tombstone: false,
            create_revision: live.create_revision,
            version: live.version,
            value: live.value.clone(),
            lease: live.lease,
        },
        StoredVersion::Tombstone(revision) => VersionSnapshot {
            main_revision: revision.main,
            sub_revision: revision.sub,
            tombstone: true,
            ..VersionSnapshot::default()
        },
    }
}

fn stored_version(version: VersionSnapshot) -> StoredVersion {
    let revision = Revision {
        main: version.main_revision,
        sub: version.sub_revision,
    };
    if version.tombstone {
        StoredVersion::Tombstone(revision)
    } else {
        StoredVersion::Live(LiveVersion {
            revision,
            create_revision: version.create_revision,
            version: version.version,
            value: version.value,
            lease: version.lease,
        })
    }
}

impl KvStore {
    /// Everything in this store, for a snapshot.
    pub fn to_snapshot(&self) -> StoreSnapshot {
        let mut snapshot = self.to_snapshot_without_keys();
        snapshot.keys = self
            .keys
            .iter()
            .map(|(key, history)| KeySnapshot {
                key: key.clone(),
                versions: history.versions().map(version_snapshot).collect(),
            })
            .collect();
        snapshot
    }

    /// The counters, leases and alarms without any key (`keys` empty): cheap, for the part of
    /// the state the page store keeps beside its per-version rows.
    pub fn to_snapshot_without_keys(&self) -> StoreSnapshot {
        StoreSnapshot {
            current_revision: self.current_revision,
            last_compaction: self.last_compaction,
            keys: Vec::new(),
            leases: self
                .leases
                .iter()
                .map(|(id, record)| LeaseSnapshot {
                    id: *id,
                    granted_ttl: record.granted_ttl,
                })
                .collect(),
            alarms: self.alarms.list(AlarmType::None),
        }
    }

    /// The store a snapshot describes.
    pub fn from_snapshot(snapshot: StoreSnapshot) -> Result<KvStore, SnapshotError> {
        let bad = |reason: String| Err(SnapshotError(reason));
        if snapshot.current_revision < 1 || snapshot.last_compaction > snapshot.current_revision {
            return bad(format!(
                "revision {} with compaction at {}",
                snapshot.current_revision, snapshot.last_compaction
            ));
        }
        let mut store = KvStore::new();
        store.current_revision = snapshot.current_revision;
        store.last_compaction = snapshot.last_compaction.max(-1);
        let mut leases = OrdMap::new();
        for lease in snapshot.leases {
            if lease.id == 0 || leases.contains_key(&lease.id) {
                return bad(format!("lease id {} is zero or repeated", lease.id));
            }
            leases.insert(
                lease.id,
                LeaseRecord {
                    granted_ttl: lease.granted_ttl,
                    keys: OrdSet::new(),
                },
            );
            store.approximate_bytes += LEASE_OVERHEAD_BYTES;
        }
        let mut keys = OrdMap::new();
        let mut previous_key: Option<Bytes> = None;
        for key_snapshot in snapshot.keys {
            let key = key_snapshot.key;
            if key.is_empty()
                || previous_key
                    .as_ref()
                    .is_some_and(|previous| *previous >= key)
            {
                return bad("keys are empty, repeated or out of order".to_string());
            }
            let mut history = KeyHistory::default();
            let mut newest: Option<Revision> = None;
            for version in key_snapshot.versions {
                let version = stored_version(version);
                let revision = version.revision();
                if newest.is_some_and(|newest| newest >= revision)
                    || revision.main < 1
                    || revision.main > store.current_revision
                {
                    return bad(format!(
                        "a version of key {key:?} at revision {} is out of order or ahead",
                        revision.main
                    ));
                }
                newest = Some(revision);
                store.approximate_bytes += version.approximate_bytes(key.len());
                history.push(version);
            }
            if history.is_empty() {
                return bad(format!("key {key:?} has no versions"));
            }
            if let Some(live) = history.live_now() {
                store.live_key_count += 1;
                if live.lease != 0 {
                    match leases.get_mut(&live.lease) {
                        Some(record) => {
                            record.keys.insert(key.clone());
                        }
                        None => {
                            return bad(format!(
                                "key {key:?} is attached to lease {} which does not exist",
                                live.lease
                            ))
                        }
                    }
                }
            }
            previous_key = Some(key.clone());
            keys.insert(key, history);
        }
        store.keys = keys;
        store.leases = leases;
        for alarm in snapshot.alarms {
            if !store.alarms.restore(&alarm) {
                return bad(format!(
                    "alarm {} of member {:x} is not an alarm or is repeated",
                    alarm.alarm, alarm.member_id
                ));
            }
        }
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::test_support::*;
    use crate::mvcc::WriteRequest;
    use capstan_proto::etcdserverpb::alarm_request::AlarmAction;
    use capstan_proto::etcdserverpb::AlarmRequest;

    #[test]
    fn a_store_survives_its_snapshot() {
        let mut store = KvStore::new();
        grant(&mut store, 7, 60);
        put(&mut store, "a", "1");
        leased_put(&mut store, "b", "x", 7);
        put(&mut store, "a", "2");
        delete(&mut store, "a", "");
        put(&mut store, "c", "3");
        store.apply(&compaction_request(3)).expect("compact");
        put(&mut store, "a", "4");
        store
            .apply(&WriteRequest::Alarm(AlarmRequest {
                action: AlarmAction::Activate as i32,
                member_id: 9,
                alarm: AlarmType::Nospace as i32,
            }))
            .expect("alarm");
        let restored = KvStore::from_snapshot(store.to_snapshot()).expect("restore");
        assert_eq!(restored.current_revision(), store.current_revision());
        assert_eq!(restored.compact_revision(), store.compact_revision());
        assert_eq!(restored.key_count(), store.key_count());
        assert_eq!(restored.approximate_bytes(), store.approximate_bytes());
        assert_eq!(restored.lease(7), store.lease(7));
        assert_eq!(restored.keys, store.keys);
        assert_eq!(restored.alarms(), store.alarms());
        let everything = |s: &KvStore| {
            s.events_between(
                &Bytes::from_static(b"\0"),
                &Bytes::from_static(b"\0"),
                1,
                99,
            )
        };
        assert_eq!(everything(&restored), everything(&store));
    }

    #[test]
    fn a_fresh_store_survives_its_snapshot() {
        let store = KvStore::new();
        let restored = KvStore::from_snapshot(store.to_snapshot()).expect("restore");
        assert_eq!(restored.current_revision(), 1);
        assert_eq!(restored.compact_revision(), 0);
        assert_eq!(restored.key_count(), 0);
    }

    #[test]
    fn inconsistent_snapshots_are_refused() {
        let mut store = KvStore::new();
        grant(&mut store, 7, 60);
        leased_put(&mut store, "b", "x", 7);
        put(&mut store, "c", "1");
        put(&mut store, "c", "2");

        let mut no_lease = store.to_snapshot();
        no_lease.leases.clear();
        assert!(KvStore::from_snapshot(no_lease).is_err());

        let mut reordered = store.to_snapshot();
        reordered.keys[1].versions.reverse();
        assert!(KvStore::from_snapshot(reordered).is_err());

        let mut ahead = store.to_snapshot();
        ahead.current_revision = 2;
        assert!(KvStore::from_snapshot(ahead).is_err());

        let mut keys_out_of_order = store.to_snapshot();
        keys_out_of_order.keys.reverse();
        assert!(KvStore::from_snapshot(keys_out_of_order).is_err());

        let mut alarm_none = store.to_snapshot();
        alarm_none.alarms.push(AlarmMember {
            member_id: 1,
            alarm: AlarmType::None as i32,
        });
        assert!(KvStore::from_snapshot(alarm_none).is_err());
    }
}
