//! Every stored version of one key, oldest first.

use bytes::Bytes;
use capstan_proto::mvccpb::KeyValue;
use imbl::Vector;

use crate::mvcc::revision::Revision;

/// Rough per-version bookkeeping cost (revision, counters, lease, node
/// overhead) added to key and value lengths for `approximate_bytes`.
const VERSION_OVERHEAD_BYTES: u64 = 48;

/// The key's state as of one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredVersion {
    /// The key was put.
    Live(LiveVersion),
    /// The key was deleted at this revision; it ends a generation.
    Tombstone(Revision),
}

/// The contents of a key written by a put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveVersion {
    pub revision: Revision,
    /// Main revision of the put that created this generation of the key.
    pub create_revision: i64,
    /// 1 for the creating put, +1 for every later put in the generation.
    pub version: i64,
    pub value: Bytes,
    /// Lease id the key is attached to, 0 for none.
    pub lease: i64,
}

impl LiveVersion {
    /// The client-facing form of this version of `key`.
    pub fn to_key_value(&self, key: &Bytes) -> KeyValue {
        KeyValue {
            key: key.clone(),
            create_revision: self.create_revision,
            mod_revision: self.revision.main,
            version: self.version,
            value: self.value.clone(),
            lease: self.lease,
        }
    }
}

impl StoredVersion {
    pub fn revision(&self) -> Revision {
        match self {
            StoredVersion::Live(live) => live.revision,
            StoredVersion::Tombstone(revision) => *revision,
        }
    }

    /// Approximate memory held by this version of a key of `key_len` bytes.
    pub fn approximate_bytes(&self, key_len: usize) -> u64 {
        let value_len = match self {
            StoredVersion::Live(live) => live.value.len(),
            StoredVersion::Tombstone(_) => 0,
        };
        VERSION_OVERHEAD_BYTES + key_len as u64 + value_len as u64
    }
}

/// All versions of one key still retained, in ascending revision order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyHistory {
    versions: Vector<StoredVersion>,
}

impl KeyHistory {
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// Appends a version; it must be newer than every retained one.
    pub fn push(&mut self, version: StoredVersion) {
        debug_assert!(self
            .versions
            .last()
            .is_none_or(|last| last.revision() < version.revision()));
        self.versions.push_back(version);
    }

    /// The key's contents as of main revision `revision`, if it was live then.
    pub fn live_at(&self, revision: i64) -> Option<&LiveVersion> {
        match self
            .newest_index_at(revision)
            .map(|index| &self.versions[index])
        {
            Some(StoredVersion::Live(live)) => Some(live),
            _ => None,
        }
    }

    /// The key's newest contents, if it is live now.
    pub fn live_now(&self) -> Option<&LiveVersion> {
        match self.versions.last() {
            Some(StoredVersion::Live(live)) => Some(live),
            _ => None,
        }
    }

    /// Drops every version no read at a revision `>= revision` can see: all
    /// versions older than the newest one `<= revision`, and that one too if
    /// it is a tombstone (etcd's `keyIndex.compact`). Returns the approximate
    /// bytes released.
    pub fn compact(&mut self, revision: i64, key_len: usize) -> u64 {
        let Some(newest_index) = self.newest_index_at(revision) else {
            return 0;
        };
        let keep_from = match self.versions[newest_index] {
            StoredVersion::Tombstone(_) => newest_index + 1,
            StoredVersion::Live(_) => newest_index,
        };
        let retained = self.versions.split_off(keep_from);
        let dropped = std::mem::replace(&mut self.versions, retained);
        dropped
            .iter()
            .map(|version| version.approximate_bytes(key_len))
            .sum()
    }

    /// Whether `compact(revision)` would drop any version.
    pub fn compaction_drops_something(&self, revision: i64) -> bool {
        match self.newest_index_at(revision) {
            Some(index) => index > 0 || matches!(self.versions[index], StoredVersion::Tombstone(_)),
            None => false,
        }
    }

    /// Index of the newest version whose main revision is `<= revision`.
    fn newest_index_at(&self, revision: i64) -> Option<usize> {
        // Versions are sorted by revision: binary search for the first one
        // newer than `revision`; the one before it is the answer.
        let (mut low, mut high) = (0, self.versions.len());
        while low < high {
            let middle = low + (high - low) / 2;
            if self.versions[middle].revision().main <= revision {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low.checked_sub(1)
    }

    #[cfg(test)]
    pub fn revisions(&self) -> Vec<i64> {
        self.versions
            .iter()
            .map(|version| version.revision().main)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(main: i64, create_revision: i64, version: i64) -> StoredVersion {
        StoredVersion::Live(LiveVersion {
            revision: Revision { main, sub: 0 },
            create_revision,
            version,
            value: Bytes::from(format!("v{main}")),
            lease: 0,
        })
    }

    fn tombstone(main: i64) -> StoredVersion {
        StoredVersion::Tombstone(Revision { main, sub: 0 })
    }

    /// put@2, put@4, delete@6, put@8 (a second generation).
    fn sample() -> KeyHistory {
        let mut history = KeyHistory::default();
        history.push(live(2, 2, 1));
        history.push(live(4, 2, 2));
        history.push(tombstone(6));
        history.push(live(8, 8, 1));
        history
    }

    #[test]
    fn reads_see_the_newest_version_at_or_before_the_revision() {
        let history = sample();
        assert_eq!(history.live_at(1), None);
        assert_eq!(history.live_at(2).map(|v| v.version), Some(1));
        assert_eq!(history.live_at(5).map(|v| v.version), Some(2));
        assert_eq!(history.live_at(6), None);
        assert_eq!(history.live_at(7), None);
        assert_eq!(history.live_at(8).map(|v| v.create_revision), Some(8));
        assert_eq!(history.live_at(100).map(|v| v.revision.main), Some(8));
    }

    #[test]
    fn compaction_keeps_the_newest_live_version_at_or_before_it() {
        let mut history = sample();
        assert!(history.compact(5, 1) > 0);
        assert_eq!(history.revisions(), vec![4, 6, 8]);
        assert_eq!(history.live_at(5).map(|v| v.version), Some(2));
    }

    #[test]
    fn compaction_drops_a_tombstone_that_ends_the_retained_history() {
        let mut history = sample();
        history.compact(7, 1);
        assert_eq!(history.revisions(), vec![8]);
        let mut deleted_for_good = KeyHistory::default();
        deleted_for_good.push(live(2, 2, 1));
        deleted_for_good.push(tombstone(3));
        deleted_for_good.compact(3, 1);
        assert!(deleted_for_good.is_empty());
    }

    #[test]
    fn compaction_before_the_first_version_keeps_everything() {
        let mut history = sample();
        assert_eq!(history.compact(1, 1), 0);
        assert_eq!(history.revisions(), vec![2, 4, 6, 8]);
    }
}
