//! The versioned key space and its counters.

use bytes::Bytes;
use capstan_proto::etcdserverpb::{RangeRequest, RangeResponse};
use imbl::OrdMap;

use crate::mvcc::alarm::Alarms;
use crate::mvcc::error::MvccError;
use crate::mvcc::key_history::{KeyHistory, LiveVersion, StoredVersion};
use crate::mvcc::key_range::KeyRange;
use crate::mvcc::lease::LeaseRecord;
use crate::mvcc::range::execute_range;

/// The MVCC key-value state machine. Cloning is O(1) and shares structure,
/// so a clone is an immutable snapshot other threads may read from while
/// the original keeps applying writes.
#[derive(Debug, Clone)]
pub struct KvStore {
    /// Every key with at least one retained version, ordered bytewise.
    pub(in crate::mvcc) keys: OrdMap<Bytes, KeyHistory>,
    /// Main revision of the newest write; 1 for a fresh store.
    pub(in crate::mvcc) current_revision: i64,
    /// Revision of the newest compaction, -1 before the first one (etcd's
    /// `compactMainRev`, so compacting at revision 0 on a fresh store works).
    pub(in crate::mvcc) last_compaction: i64,
    /// Keys live at `current_revision`.
    pub(in crate::mvcc) live_key_count: usize,
    /// Rough size of all retained versions and leases.
    pub(in crate::mvcc) approximate_bytes: u64,
    /// Every granted, not yet revoked lease, with the keys attached to it.
    pub(in crate::mvcc) leases: OrdMap<i64, LeaseRecord>,
    /// The raised alarms (NOSPACE, CORRUPT) and who raised them.
    pub(in crate::mvcc) alarms: Alarms,
}

impl Default for KvStore {
    fn default() -> Self {
        Self::new()
    }
}

impl KvStore {
    /// An empty store at revision 1; its first write gets revision 2.
    pub fn new() -> Self {
        KvStore {
            keys: OrdMap::new(),
            current_revision: 1,
            last_compaction: -1,
            live_key_count: 0,
            approximate_bytes: 0,
            leases: OrdMap::new(),
            alarms: Alarms::default(),
        }
    }

    /// Main revision of the newest write.
    pub fn current_revision(&self) -> i64 {
        self.current_revision
    }

    /// Revision of the newest compaction, 0 if there has been none.
    pub fn compact_revision(&self) -> i64 {
        self.last_compaction.max(0)
    }

    /// Revision of the newest compaction, -1 if there has been none (what etcd reports as
    /// `HashKV.compact_revision`).
    pub fn compact_revision_or_unset(&self) -> i64 {
        self.last_compaction
    }

    /// Number of keys live at the current revision.
    pub fn key_count(&self) -> usize {
        self.live_key_count
    }

    /// Number of retained versions of all keys (tombstones included): what etcd's snapshot
    /// status calls total keys (one per revision in its key bucket).
    pub fn version_count(&self) -> usize {
        self.keys
            .values()
            .map(|history| history.versions().count())
            .sum()
    }

    /// Rough size in bytes of every retained version (keys, values and
    /// bookkeeping) and lease, for `Status.dbSize`.
    pub fn approximate_bytes(&self) -> u64 {
        self.approximate_bytes
    }

    /// Serves a range request against this snapshot. The response header is
    /// left `None` for the caller to fill.
    pub fn range(&self, request: &RangeRequest) -> Result<RangeResponse, MvccError> {
        crate::metrics::count(crate::metrics::Counter::MvccRange, 1);
        execute_range(self, request, self.current_revision)
    }

    /// The keys in `range` that were live at main revision `revision`, in
    /// ascending key order.
    pub(crate) fn live_at<'a>(
        &'a self,
        range: &'a KeyRange,
        revision: i64,
    ) -> impl Iterator<Item = (&'a Bytes, &'a LiveVersion)> + 'a {
        let entries = (!range.is_empty()).then(|| self.keys.range::<_, [u8]>(range.bounds()));
        entries
            .into_iter()
            .flatten()
            .filter_map(move |(key, history)| history.live_at(revision).map(|live| (key, live)))
    }

    /// The newest contents of `key`, if it is live now (including writes
    /// recorded by an unfinished write txn).
    pub(crate) fn live_now(&self, key: &[u8]) -> Option<&LiveVersion> {
        self.keys.get(key).and_then(KeyHistory::live_now)
    }

    /// Appends a new version of `key`, keeping the counters and the
    /// key's lease attachment in step (etcd's `Attach`/`Detach` in `put`
    /// and `delete`). A new live version's lease must exist.
    pub(crate) fn record_version(&mut self, key: Bytes, version: StoredVersion) {
        self.approximate_bytes += version.approximate_bytes(key.len());
        let new_lease = match &version {
            StoredVersion::Live(live) => Some(live.lease),
            StoredVersion::Tombstone(_) => None,
        };
        let history = self.keys.entry(key.clone()).or_default();
        let old_lease = history.live_now().map(|live| live.lease);
        history.push(version);
        match (old_lease.is_some(), new_lease.is_some()) {
            (false, true) => self.live_key_count += 1,
            (true, false) => self.live_key_count -= 1,
            _ => {}
        }
        self.reattach_key(&key, old_lease.unwrap_or(0), new_lease.unwrap_or(0));
    }
}
