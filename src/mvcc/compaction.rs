//! Compaction: forgetting history no longer readable.

use bytes::Bytes;
use capstan_proto::etcdserverpb::{CompactionRequest, CompactionResponse};

use crate::mvcc::error::MvccError;
use crate::mvcc::store::KvStore;

impl KvStore {
    /// etcd's `store.compact`: `revision` must be newer than the previous
    /// compaction (else `Compacted`) and not in the future (else
    /// `FutureRevision`; compacting at the current revision is allowed).
    /// Afterwards reads at `revision` and later answer exactly as before and
    /// reads below it fail. No new revision is created; `physical` makes no
    /// difference in memory.
    pub(crate) fn compact(
        &mut self,
        request: &CompactionRequest,
    ) -> Result<CompactionResponse, MvccError> {
        let revision = request.revision;
        if revision <= self.last_compaction {
            return Err(MvccError::Compacted);
        }
        if revision > self.current_revision {
            return Err(MvccError::FutureRevision);
        }
        // Only touch keys that lose something, so snapshots sharing the
        // untouched parts of the map keep sharing them.
        let shrinking: Vec<Bytes> = self
            .keys
            .iter()
            .filter(|(_, history)| history.compaction_drops_something(revision))
            .map(|(key, _)| key.clone())
            .collect();
        for key in shrinking {
            let mut emptied = false;
            if let Some(history) = self.keys.get_mut(&key) {
                let released = history.compact(revision, key.len());
                self.approximate_bytes = self.approximate_bytes.saturating_sub(released);
                emptied = history.is_empty();
            }
            if emptied {
                self.keys.remove(&key);
            }
        }
        self.last_compaction = revision;
        Ok(CompactionResponse::default())
    }
}
