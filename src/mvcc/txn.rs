//! Applying a `TxnRequest` (etcd's `Txn`: `compareToPath`, `checkTxn`,
//! `executeTxn`).
//!
//! 1. Every compare on the chosen path, nested txns included, is evaluated
//!    against the state as it was when the txn began, not after earlier ops
//!    (etcd computes the whole path up front).
//! 2. The chosen ops are checked against that starting state before anything
//!    runs: a range's revision must not be in the future or compacted (a
//!    non-zero revision below the compaction floor is compacted, so a
//!    negative revision inside a txn fails once anything was compacted), and
//!    a put's lease must exist (leases cannot change inside a txn) and
//!    `ignore_*` needs the key.
//! 3. The ops run in order, each seeing the earlier ones' writes; all writes
//!    share one main revision. Any error fails the whole txn (the caller
//!    discards its working copy; etcd would panic here instead).

use capstan_proto::etcdserverpb::{
    request_op::Request, response_op::Response, RequestOp, ResponseOp, TxnRequest, TxnResponse,
};

use crate::mvcc::compare::compares_hold;
use crate::mvcc::error::MvccError;
use crate::mvcc::store::KvStore;
use crate::mvcc::write_txn::WriteTxn;

/// Runs `request` inside `write`, where `start` is the store as it was when
/// the txn began.
pub(crate) fn execute_txn(
    write: &mut WriteTxn<'_>,
    request: &TxnRequest,
    start: &KvStore,
) -> Result<TxnResponse, MvccError> {
    check_chosen_ops(start, request)?;
    run_chosen_ops(write, request, start)
}

/// The branch the compares pick, and whether it is the success branch.
fn chosen_ops<'r>(start: &KvStore, request: &'r TxnRequest) -> (bool, &'r [RequestOp]) {
    if compares_hold(start, &request.compare) {
        (true, &request.success)
    } else {
        (false, &request.failure)
    }
}

/// etcd's `checkTxn`: validates the chosen ops against the starting state.
fn check_chosen_ops(start: &KvStore, request: &TxnRequest) -> Result<(), MvccError> {
    let (_, ops) = chosen_ops(start, request);
    for op in ops {
        match &op.request {
            Some(Request::RequestRange(range)) => {
                if range.revision != 0 {
                    if range.revision > start.current_revision {
                        return Err(MvccError::FutureRevision);
                    }
                    if range.revision < start.last_compaction {
                        return Err(MvccError::Compacted);
                    }
                }
            }
            Some(Request::RequestPut(put)) => {
                // etcd's `checkPut`: the lease first, then `ignore_*`.
                start.check_lease_exists(put.lease)?;
                if (put.ignore_value || put.ignore_lease) && start.live_now(&put.key).is_none() {
                    return Err(MvccError::KeyNotFound);
                }
            }
            Some(Request::RequestTxn(nested)) => check_chosen_ops(start, nested)?,
            Some(Request::RequestDeleteRange(_)) | None => {}
        }
    }
    Ok(())
}

/// etcd's `executeTxn`: runs the chosen ops in order.
fn run_chosen_ops(
    write: &mut WriteTxn<'_>,
    request: &TxnRequest,
    start: &KvStore,
) -> Result<TxnResponse, MvccError> {
    let (succeeded, ops) = chosen_ops(start, request);
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        let response = match &op.request {
            Some(Request::RequestRange(range)) => {
                Some(Response::ResponseRange(write.range(range)?))
            }
            Some(Request::RequestPut(put)) => Some(Response::ResponsePut(write.put(put)?)),
            Some(Request::RequestDeleteRange(delete)) => {
                Some(Response::ResponseDeleteRange(write.delete_range(delete)?))
            }
            Some(Request::RequestTxn(nested)) => {
                Some(Response::ResponseTxn(run_chosen_ops(write, nested, start)?))
            }
            None => None,
        };
        responses.push(ResponseOp { response });
    }
    Ok(TxnResponse {
        header: None,
        succeeded,
        responses,
    })
}
