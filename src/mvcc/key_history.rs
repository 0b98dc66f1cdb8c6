//! Every stored version of one key, oldest first.

use bytes::Bytes;
use capstan_proto::mvccpb::event::EventType;
use capstan_proto::mvccpb::{Event, KeyValue};

use crate::mvcc::revision::Revision;
use crate::mvcc::version_list::VersionList;

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
    versions: VersionList,
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
    /// it is a tombstone older than `revision` (etcd's `keyIndex.compact`).
    /// A tombstone written exactly at `revision` stays until a later
    /// compaction, so a watcher starting at the compaction revision still
    /// gets that delete event (etcd issue 19179). Returns the approximate
    /// bytes released; the dropped versions' revisions are appended to `dropped`.
    pub fn compact(&mut self, revision: i64, key_len: usize, dropped: &mut Vec<Revision>) -> u64 {
        let Some(keep_from) = self.first_kept_index(revision) else {
            return 0;
        };
        let retained = self.versions.split_off(keep_from);
        let gone = std::mem::replace(&mut self.versions, retained);
        dropped.extend(gone.iter().map(StoredVersion::revision));
        gone.iter()
            .map(|version| version.approximate_bytes(key_len))
            .sum()
    }

    /// Whether `compact(revision)` would drop any version.
    pub fn compaction_drops_something(&self, revision: i64) -> bool {
        self.first_kept_index(revision)
            .is_some_and(|index| index > 0)
    }

    /// Index of the oldest version compaction at `revision` keeps.
    fn first_kept_index(&self, revision: i64) -> Option<usize> {
        let newest_index = self.newest_index_at(revision)?;
        Some(match self.versions[newest_index] {
            StoredVersion::Tombstone(tombstone) if tombstone.main < revision => newest_index + 1,
            _ => newest_index,
        })
    }

    /// Appends to `out` every change of this key with main revision in
    /// `from..=to`, as watch events; `prev_kv` is the previous version when
    /// it was live (a tombstone ends a generation, so a put after it has none).
    pub fn events_between(
        &self,
        key: &Bytes,
        from: i64,
        to: i64,
        out: &mut Vec<(Revision, Event)>,
    ) {
        let first = self.newest_index_at(from - 1).map_or(0, |index| index + 1);
        for index in first..self.versions.len() {
            let version = &self.versions[index];
            let revision = version.revision();
            if revision.main > to {
                break;
            }
            let prev_kv =
                index
                    .checked_sub(1)
                    .and_then(|previous| match &self.versions[previous] {
                        StoredVersion::Live(live) => Some(live.to_key_value(key)),
                        StoredVersion::Tombstone(_) => None,
                    });
            let (event_type, kv) = match version {
                StoredVersion::Live(live) => (EventType::Put, live.to_key_value(key)),
                StoredVersion::Tombstone(tombstone) => (
                    EventType::Delete,
                    KeyValue {
                        key: key.clone(),
                        mod_revision: tombstone.main,
                        ..KeyValue::default()
                    },
                ),
            };
            out.push((
                revision,
                Event {
                    r#type: event_type as i32,
                    kv: Some(kv),
                    prev_kv,
                },
            ));
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

    /// Every retained version, oldest first.
    pub fn versions(&self) -> impl Iterator<Item = &StoredVersion> + '_ {
        self.versions.iter()
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
        assert!(history.compact(5, 1, &mut Vec::new()) > 0);
        assert_eq!(history.revisions(), vec![4, 6, 8]);
        assert_eq!(history.live_at(5).map(|v| v.version), Some(2));
    }

    #[test]
    fn compaction_drops_a_tombstone_that_ends_the_retained_history() {
        let mut history = sample();
        history.compact(7, 1, &mut Vec::new());
        assert_eq!(history.revisions(), vec![8]);
        let mut deleted_for_good = KeyHistory::default();
        deleted_for_good.push(live(2, 2, 1));
        deleted_for_good.push(tombstone(3));
        deleted_for_good.compact(3, 1, &mut Vec::new());
        assert_eq!(
            deleted_for_good.revisions(),
            vec![3],
            "kept at the compaction revision"
        );
        deleted_for_good.compact(4, 1, &mut Vec::new());
        assert!(deleted_for_good.is_empty());
    }

    #[test]
    fn compaction_before_the_first_version_keeps_everything() {
        let mut history = sample();
        assert_eq!(history.compact(1, 1, &mut Vec::new()), 0);
        assert_eq!(history.revisions(), vec![2, 4, 6, 8]);
    }
}
