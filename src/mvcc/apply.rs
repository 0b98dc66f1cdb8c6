//! Applying one committed write request.

use capstan_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, CompactionRequest, CompactionResponse, DeleteRangeRequest,
    DeleteRangeResponse, LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, PutRequest, PutResponse, TxnRequest, TxnResponse,
};
use capstan_proto::mvccpb::Event;

use crate::mvcc::error::MvccError;
use crate::mvcc::revision::Revision;
use crate::mvcc::store::KvStore;
use crate::mvcc::txn::execute_txn;
use crate::mvcc::write_txn::WriteTxn;

/// A request that changes the store, as replicated through raft.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteRequest {
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(TxnRequest),
    Compaction(CompactionRequest),
    /// `id` is non-zero and `ttl` already normalised by the proposer.
    LeaseGrant(LeaseGrantRequest),
    LeaseRevoke(LeaseRevokeRequest),
    /// Maintenance.Alarm ACTIVATE or DEACTIVATE (a GET changes nothing and is answered too).
    Alarm(AlarmRequest),
}

/// The answer to a [`WriteRequest`], headers left `None` (nested ones too).
#[derive(Debug, Clone, PartialEq)]
pub enum WriteResponse {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compaction(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    Alarm(AlarmResponse),
}

/// The outcome of applying a write.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub response: WriteResponse,
    /// One event per change, in revision order. Each carries `prev_kv` (the
    /// key's previous live version) whenever there was one; the watch layer
    /// must strip it for watchers that did not ask for it. A DELETE event's
    /// `kv` holds only the key and the deleting revision.
    pub events: Vec<Event>,
    /// Revisions of the versions a compaction dropped (empty for every other write): the
    /// page store deletes them.
    pub compacted: Vec<Revision>,
}

impl KvStore {
    /// Applies a committed write. On error the store is unchanged: the write
    /// runs against an O(1) clone that replaces `self` only on success. A
    /// write that changes nothing (deleting absent keys, a read-only txn, a
    /// lease grant, revoking a lease without keys, an alarm change) leaves the
    /// revision where it was. While an alarm is raised, the writes it forbids
    /// fail (see `alarm`).
    pub fn apply(&mut self, request: &WriteRequest) -> Result<Applied, MvccError> {
        if let Some(refusal) = self.alarms.refusal(request) {
            return Err(refusal);
        }
        let mut working = self.clone();
        let mut compacted = Vec::new();
        let (response, events) = match request {
            WriteRequest::Compaction(compaction) => {
                let (response, dropped) = working.compact(compaction)?;
                compacted = dropped;
                (WriteResponse::Compaction(response), Vec::new())
            }
            WriteRequest::Put(put) => {
                let mut write = WriteTxn::begin(&mut working);
                let response = WriteResponse::Put(write.put(put)?);
                (response, write.finish())
            }
            WriteRequest::DeleteRange(delete) => {
                let mut write = WriteTxn::begin(&mut working);
                let response = WriteResponse::DeleteRange(write.delete_range(delete)?);
                (response, write.finish())
            }
            WriteRequest::LeaseGrant(grant) => (
                WriteResponse::LeaseGrant(working.grant_lease(grant)?),
                Vec::new(),
            ),
            WriteRequest::LeaseRevoke(revoke) => {
                let mut write = WriteTxn::begin(&mut working);
                let response = WriteResponse::LeaseRevoke(write.lease_revoke(revoke)?);
                (response, write.finish())
            }
            WriteRequest::Alarm(alarm) => {
                (WriteResponse::Alarm(working.apply_alarm(alarm)), Vec::new())
            }
            WriteRequest::Txn(txn) => {
                let start = self.clone();
                let mut write = WriteTxn::begin(&mut working);
                let response = WriteResponse::Txn(execute_txn(&mut write, txn, &start)?);
                (response, write.finish())
            }
        };
        *self = working;
        Ok(Applied {
            response,
            events,
            compacted,
        })
    }
}
