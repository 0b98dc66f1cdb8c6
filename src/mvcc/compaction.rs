//! Compaction: forgetting history no longer readable.

use bytes::Bytes;
use capstan_proto::etcdserverpb::{CompactionRequest, CompactionResponse};

use crate::mvcc::error::MvccError;
use crate::mvcc::revision::Revision;
use crate::mvcc::store::KvStore;

impl KvStore {
    /// etcd's `store.compact`: `revision` must be newer than the previous
    /// compaction (else `Compacted`) and not in the future (else
    /// `FutureRevision`; compacting at the current revision is allowed).
    /// Afterwards reads at `revision` and later answer exactly as before and
    /// reads below it fail. No new revision is created. Returns the response and the
    /// revisions of the versions dropped (what the page store must delete); `physical`
    /// makes no difference here.
    pub(crate) fn compact(
        &mut self,
        request: &CompactionRequest,
    ) -> Result<(CompactionResponse, Vec<Revision>), MvccError> {
        let revision = request.revision;
        if revision <= self.last_compaction {
            return Err(MvccError::Compacted);
        }
        if revision > self.current_revision {
            return Err(MvccError::FutureRevision);
        }
        let dropped = self.drop_versions_below(revision);
        self.last_compaction = revision;
        Ok((CompactionResponse::default(), dropped))
    }

    /// Compacts again at the last compaction revision: a store loaded from disk may still
    /// hold versions whose deletion from the page store had not been committed yet. Returns
    /// their revisions.
    pub fn redo_compaction(&mut self) -> Vec<Revision> {
        if self.last_compaction < 1 {
            return Vec::new();
        }
        self.drop_versions_below(self.last_compaction)
    }

    fn drop_versions_below(&mut self, revision: i64) -> Vec<Revision> {
        // Only touch keys that lose something, so snapshots sharing the
        // untouched parts of the map keep sharing them.
        let shrinking: Vec<Bytes> = self
            .keys
            .iter()
            .filter(|(_, history)| history.compaction_drops_something(revision))
            .map(|(key, _)| key.clone())
            .collect();
        let mut dropped = Vec::new();
        for key in shrinking {
            let mut emptied = false;
            if let Some(history) = self.keys.get_mut(&key) {
                let released = history.compact(revision, key.len(), &mut dropped);
                self.approximate_bytes = self.approximate_bytes.saturating_sub(released);
                emptied = history.is_empty();
            }
            if emptied {
                self.keys.remove(&key);
            }
        }
        dropped
    }
}
