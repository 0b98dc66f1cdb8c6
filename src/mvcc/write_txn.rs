//! One atomic write: the changes of a Put, a DeleteRange, a whole Txn or a
//! LeaseRevoke.
//!
//! All changes share main revision `begin + 1` and get consecutive sub
//! revisions. They are recorded in the store immediately, so later reads in
//! the same txn see them (etcd 3.6 updates its index inside `put`/`delete`).
//! The caller applies into a clone of the committed store and keeps the
//! clone only if everything succeeded.

use bytes::Bytes;
use capstan_proto::etcdserverpb::{
    DeleteRangeRequest, DeleteRangeResponse, LeaseRevokeRequest, LeaseRevokeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse,
};
use capstan_proto::mvccpb::{event::EventType, Event, KeyValue};

use crate::mvcc::error::MvccError;
use crate::mvcc::key_history::{LiveVersion, StoredVersion};
use crate::mvcc::key_range::KeyRange;
use crate::mvcc::range::execute_range;
use crate::mvcc::revision::Revision;
use crate::mvcc::store::KvStore;

/// An unfinished write against a working copy of the store.
pub(crate) struct WriteTxn<'store> {
    store: &'store mut KvStore,
    /// The store's revision when the write began.
    begin_revision: i64,
    /// One event per change so far, in sub-revision order.
    events: Vec<Event>,
    /// Ranges, puts and delete ranges run, for `etcd_mvcc_*_total` (counted as etcd's
    /// `metricsTxnWrite` counts them: each op, and the txn itself when it ran more than one).
    ranges: std::cell::Cell<u64>,
    puts: u64,
    deletes: u64,
}

impl<'store> WriteTxn<'store> {
    pub fn begin(store: &'store mut KvStore) -> Self {
        let begin_revision = store.current_revision;
        WriteTxn {
            store,
            begin_revision,
            events: Vec::new(),
            ranges: std::cell::Cell::new(0),
            puts: 0,
            deletes: 0,
        }
    }

    /// The newest revision reads inside this write may see: the write's own
    /// revision once it changed something, the starting one before.
    pub fn visible_revision(&self) -> i64 {
        if self.events.is_empty() {
            self.begin_revision
        } else {
            self.begin_revision + 1
        }
    }

    /// A range that sees this write's earlier changes.
    pub fn range(&self, request: &RangeRequest) -> Result<RangeResponse, MvccError> {
        self.ranges.set(self.ranges.get() + 1);
        execute_range(self.store, request, self.visible_revision())
    }

    /// etcd's `put`: a new version of the key, continuing its generation if
    /// it is live, starting a new one (version 1) otherwise. The lease is
    /// checked first, as etcd's `checkLease` runs before `checkAndGetPrevKV`;
    /// `ignore_lease` keeps the previous version's lease.
    pub fn put(&mut self, request: &PutRequest) -> Result<PutResponse, MvccError> {
        self.puts += 1;
        self.store.check_lease_exists(request.lease)?;
        let previous = self.store.live_now(&request.key).cloned();
        if (request.ignore_value || request.ignore_lease) && previous.is_none() {
            return Err(MvccError::KeyNotFound);
        }
        let value = match &previous {
            Some(previous) if request.ignore_value => previous.value.clone(),
            _ => request.value.clone(),
        };
        let lease = match &previous {
            Some(previous) if request.ignore_lease => previous.lease,
            _ => request.lease,
        };
        let revision = self.next_revision();
        let (create_revision, version) = match &previous {
            Some(previous) => (previous.create_revision, previous.version + 1),
            None => (revision.main, 1),
        };
        let written = LiveVersion {
            revision,
            create_revision,
            version,
            value,
            lease,
        };
        let key = request.key.clone();
        let previous_kv = previous.map(|previous| previous.to_key_value(&key));
        self.events.push(Event {
            r#type: EventType::Put as i32,
            kv: Some(written.to_key_value(&key)),
            prev_kv: previous_kv.clone(),
        });
        self.store.record_version(key, StoredVersion::Live(written));
        Ok(PutResponse {
            header: None,
            prev_kv: previous_kv.filter(|_| request.prev_kv),
        })
    }

    /// etcd's `deleteRange`: a tombstone for every live key in the range.
    /// Deleting nothing changes nothing (no revision is used).
    pub fn delete_range(
        &mut self,
        request: &DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, MvccError> {
        self.deletes += 1;
        let range = KeyRange::new(&request.key, &request.range_end);
        let doomed: Vec<(Bytes, KeyValue)> = self
            .store
            .live_at(&range, self.visible_revision())
            .map(|(key, live)| (key.clone(), live.to_key_value(key)))
            .collect();
        let mut prev_kvs = Vec::new();
        for (key, previous_kv) in &doomed {
            self.delete_key(key, previous_kv);
            if request.prev_kv {
                prev_kvs.push(previous_kv.clone());
            }
        }
        Ok(DeleteRangeResponse {
            header: None,
            deleted: i64::try_from(doomed.len()).unwrap_or(i64::MAX),
            prev_kvs,
        })
    }

    /// etcd's `lessor.Revoke`: deletes every live key attached to the lease,
    /// in key order, as one write, then forgets the lease. With nothing to
    /// delete no revision is used.
    pub fn lease_revoke(
        &mut self,
        request: &LeaseRevokeRequest,
    ) -> Result<LeaseRevokeResponse, MvccError> {
        let keys = self
            .store
            .lease_keys(request.id)
            .ok_or(MvccError::LeaseNotFound)?;
        for key in &keys {
            let previous = self.store.live_now(key).map(|live| live.to_key_value(key));
            if let Some(previous_kv) = previous {
                self.delete_key(key, &previous_kv);
            }
        }
        self.store.remove_lease(request.id);
        Ok(LeaseRevokeResponse { header: None })
    }

    /// A tombstone for `key`, whose live version is `previous_kv`.
    fn delete_key(&mut self, key: &Bytes, previous_kv: &KeyValue) {
        let revision = self.next_revision();
        self.events.push(Event {
            r#type: EventType::Delete as i32,
            kv: Some(KeyValue {
                key: key.clone(),
                mod_revision: revision.main,
                ..KeyValue::default()
            }),
            prev_kv: Some(previous_kv.clone()),
        });
        self.store
            .record_version(key.clone(), StoredVersion::Tombstone(revision));
    }

    /// Ends the write: moves the store to the write's revision if anything
    /// changed and returns the changes as events, in revision order.
    pub fn finish(self) -> Vec<Event> {
        self.count_operations();
        if !self.events.is_empty() {
            self.store.current_revision = self.begin_revision + 1;
        }
        self.events
    }

    fn count_operations(&self) {
        use crate::metrics::Counter;
        let ranges = self.ranges.get();
        crate::metrics::with(|metrics| {
            metrics.counter(Counter::MvccRange).add(ranges);
            metrics.counter(Counter::MvccPut).add(self.puts);
            metrics.counter(Counter::MvccDelete).add(self.deletes);
            if ranges + self.puts + self.deletes > 1 {
                metrics.counter(Counter::MvccTxn).add(1);
            }
        });
    }

    fn next_revision(&self) -> Revision {
        Revision {
            main: self.begin_revision + 1,
            sub: i64::try_from(self.events.len()).unwrap_or(i64::MAX),
        }
    }
}
