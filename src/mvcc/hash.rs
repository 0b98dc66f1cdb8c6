//! `Maintenance.HashKV` and `Maintenance.Hash`: checksums that members with the same history
//! agree on.
//!
//! # HashKV(r)
//!
//! CRC-32C (Castagnoli, as etcd) over etcd's own record stream of its `key` bucket, so that a
//! Capstan member and an etcd member with the same history give the same number:
//!
//! 1. the bucket name `key`;
//! 2. then, in revision order `(main, sub)` across all keys, one record per retained version
//!    with main revision `<= r`: the revision as etcd's bucket key (8-byte big-endian main,
//!    `_`, 8-byte big-endian sub, and a `t` for a tombstone) followed by the protobuf
//!    `mvccpb.KeyValue` etcd stores as the value (all six fields for a put, only `key` for a
//!    tombstone).
//!
//! A version at or below the last compaction `c` counts only if a compaction at `r` would
//! keep it: it is its key's newest version at `r` and live (etcd's `kvindex.Keep(r)` filter).
//! So the tombstone Capstan keeps at exactly `c` (for watchers starting at `c`) never counts,
//! as etcd has already dropped it. `r <= 0` means the current revision; `r < c` fails with
//! `Compacted` (etcd 3.6; 3.4 also refused `r == c`) and `r` past the current revision with
//! `FutureRevision`. The answer carries `c` (-1 before the first compaction, as etcd) and the
//! revision hashed.
//!
//! Not reproduced from etcd: with no key live at `r`, etcd skips the keep filter and also
//! hashes whatever versions at or below `c` its file still holds (its "don't skip if there
//! isn't one"); Capstan always applies the filter.
//!
//! # Hash
//!
//! CRC-32C over the whole state, in a Capstan-defined layout (etcd hashes its bbolt file,
//! which has no equivalent here): the `key` stream above over every retained version, then
//! `lease` and each lease as big-endian (id, granted TTL) in id order, then `alarm` and each
//! raised alarm as big-endian (member id, alarm type) in (type, member) order, then `meta`
//! and the big-endian current and last-compaction revisions. Remaining lease TTLs are clock
//! state, not part of it.
//!
//! Both collect references to the versions and sort them by revision, on the calling shard:
//! O(n log n) in the number of retained versions.

use bytes::Bytes;
use capstan_proto::etcdserverpb::AlarmType;
use capstan_proto::mvccpb::KeyValue;
use prost::Message;

use crate::mvcc::crc32c::Crc32c;
use crate::mvcc::error::MvccError;
use crate::mvcc::key_history::StoredVersion;
use crate::mvcc::revision::Revision;
use crate::mvcc::store::KvStore;

/// The answer to HashKV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvHash {
    pub hash: u32,
    /// The last compaction revision, -1 if the store was never compacted.
    pub compact_revision: i64,
    /// The revision the hash covers.
    pub hash_revision: i64,
}

/// One version to hash.
type Record<'a> = (Revision, &'a Bytes, &'a StoredVersion);

impl KvStore {
    /// etcd's `HashByRev`; see the module doc.
    pub fn hash_kv(&self, revision: i64) -> Result<KvHash, MvccError> {
        let compact_revision = self.last_compaction;
        if revision > 0 && revision < compact_revision {
            return Err(MvccError::Compacted);
        }
        if revision > self.current_revision {
            return Err(MvccError::FutureRevision);
        }
        let hash_revision = if revision <= 0 {
            self.current_revision
        } else {
            revision
        };
        let mut records: Vec<Record<'_>> = Vec::new();
        for (key, history) in self.keys.iter() {
            let kept_at_hash_revision = history.live_at(hash_revision).map(|live| live.revision);
            for version in history.versions() {
                let at = version.revision();
                if at.main > hash_revision {
                    break;
                }
                if at.main > compact_revision || kept_at_hash_revision == Some(at) {
                    records.push((at, key, version));
                }
            }
        }
        let mut crc = Crc32c::default();
        hash_key_records(&mut crc, records);
        Ok(KvHash {
            hash: crc.finish(),
            compact_revision,
            hash_revision,
        })
    }

    /// A checksum of the whole state; see the module doc.
    pub fn hash_all(&self) -> u32 {
        let records: Vec<Record<'_>> = self
            .keys
            .iter()
            .flat_map(|(key, history)| {
                history
                    .versions()
                    .map(move |version| (version.revision(), key, version))
            })
            .collect();
        let mut crc = Crc32c::default();
        hash_key_records(&mut crc, records);
        crc.update(b"lease");
        for (id, lease) in self.leases.iter() {
            crc.update(&id.to_be_bytes());
            crc.update(&lease.granted_ttl.to_be_bytes());
        }
        crc.update(b"alarm");
        for alarm in self.alarms.list(AlarmType::None) {
            crc.update(&alarm.member_id.to_be_bytes());
            crc.update(&alarm.alarm.to_be_bytes());
        }
        crc.update(b"meta");
        crc.update(&self.current_revision.to_be_bytes());
        crc.update(&self.last_compaction.to_be_bytes());
        crc.finish()
    }
}

/// The bucket name, then every record in revision order.
fn hash_key_records(crc: &mut Crc32c, mut records: Vec<Record<'_>>) {
    records.sort_unstable_by_key(|(revision, _, _)| *revision);
    crc.update(b"key");
    let mut value = Vec::new();
    for (revision, key, version) in records {
        let tombstone = matches!(version, StoredVersion::Tombstone(_));
        crc.update(&etcd_revision_key(revision, tombstone));
        let kv = match version {
            StoredVersion::Live(live) => live.to_key_value(key),
            StoredVersion::Tombstone(_) => KeyValue {
                key: key.clone(),
                ..KeyValue::default()
            },
        };
        value.clear();
        kv.encode_raw(&mut value);
        crc.update(&value);
    }
}

/// etcd's bucket key for a revision: `main` and `sub` big-endian around `_`, then `t` for a
/// tombstone (`revToBytes`, `appendMarkTombstone`).
fn etcd_revision_key(revision: Revision, tombstone: bool) -> Vec<u8> {
    let mut key = Vec::with_capacity(18);
    key.extend_from_slice(&revision.main.to_be_bytes());
    key.push(b'_');
    key.extend_from_slice(&revision.sub.to_be_bytes());
    if tombstone {
        key.push(b't');
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::test_support::{compaction_request, delete, put};

    /// Numbers measured on etcd 3.4.23 (`etcdctl endpoint hashkv -w json`) for the same
    /// history: a fresh store, `put a 1`, `put a 2`, `compaction 2`.
    #[test]
    fn equals_etcd_for_the_same_history() {
        let mut store = KvStore::new();
        let fresh = store.hash_kv(0).expect("hash");
        assert_eq!((fresh.hash, fresh.compact_revision), (1_084_519_789, -1));
        put(&mut store, "a", "1");
        put(&mut store, "a", "2");
        assert_eq!(store.hash_kv(0).expect("hash").hash, 535_221_974);
        assert_eq!(store.hash_kv(2).expect("hash").hash, 2_587_454_935);
        store.apply(&compaction_request(2)).expect("compact");
        let compacted = store.hash_kv(3).expect("hash");
        assert_eq!(compacted.hash, 1_483_641_527);
        assert_eq!(compacted.compact_revision, 2);
        assert_eq!(compacted.hash_revision, 3);
    }

    #[test]
    fn revision_bounds() {
        let mut store = KvStore::new();
        for value in ["1", "2", "3", "4"] {
            put(&mut store, "k", value);
        }
        store.apply(&compaction_request(3)).expect("compact");
        assert_eq!(store.hash_kv(2), Err(MvccError::Compacted));
        assert!(store.hash_kv(3).is_ok());
        assert_eq!(store.hash_kv(6), Err(MvccError::FutureRevision));
        assert_eq!(store.hash_kv(0), store.hash_kv(5));
        assert_eq!(store.hash_kv(-1), store.hash_kv(5));
    }

    #[test]
    fn later_writes_do_not_change_an_earlier_hash() {
        let mut store = KvStore::new();
        put(&mut store, "a", "1");
        put(&mut store, "b", "1");
        let before = store.hash_kv(3).expect("hash");
        put(&mut store, "a", "2");
        delete(&mut store, "b", "");
        assert_eq!(store.hash_kv(3).expect("hash"), before);
        assert_ne!(store.hash_kv(0).expect("hash").hash, before.hash);
    }

    #[test]
    fn the_tombstone_kept_at_the_compaction_revision_does_not_count() {
        // put a@2, put b@3, delete a@4, compact at 4: etcd keeps only b@3 at or below 4.
        let mut store = KvStore::new();
        put(&mut store, "a", "1");
        put(&mut store, "b", "1");
        delete(&mut store, "a", "");
        store.apply(&compaction_request(4)).expect("compact");
        let mut expected = Crc32c::default();
        expected.update(b"key");
        expected.update(&etcd_revision_key(Revision { main: 3, sub: 0 }, false));
        let b = KeyValue {
            key: Bytes::from_static(b"b"),
            create_revision: 3,
            mod_revision: 3,
            version: 1,
            value: Bytes::from_static(b"1"),
            lease: 0,
        };
        expected.update(&b.encode_to_vec());
        assert_eq!(store.hash_kv(4).expect("hash").hash, expected.finish());
    }

    #[test]
    fn hash_all_covers_leases_and_alarms() {
        let mut store = KvStore::new();
        put(&mut store, "a", "1");
        let before = store.hash_all();
        assert_eq!(before, store.clone().hash_all());
        crate::mvcc::test_support::grant(&mut store, 7, 60);
        assert_ne!(store.hash_all(), before);
    }
}
