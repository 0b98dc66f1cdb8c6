//! Request checks done before proposing, like etcd's v3rpc `key.go`
//! (`checkRangeRequest`, `checkPutRequest`, `checkDeleteRequest`,
//! `checkTxnRequest`, `checkIntervals`). Pure functions of the request.

use std::collections::HashSet;

use bytes::Bytes;
use capstan_proto::etcdserverpb::{
    request_op::Request, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};

use crate::mvcc::error::MvccError;

/// A range needs a key.
pub fn check_range(request: &RangeRequest) -> Result<(), MvccError> {
    require_key(&request.key)
}

/// A put needs a key; `ignore_value` forbids a value and `ignore_lease` a lease.
pub fn check_put(request: &PutRequest) -> Result<(), MvccError> {
    require_key(&request.key)?;
    if request.ignore_value && !request.value.is_empty() {
        return Err(MvccError::ValueProvided);
    }
    if request.ignore_lease && request.lease != 0 {
        return Err(MvccError::LeaseProvided);
    }
    Ok(())
}

/// A delete needs a key.
pub fn check_delete_range(request: &DeleteRangeRequest) -> Result<(), MvccError> {
    require_key(&request.key)
}

/// etcd's txn checks: at most `max_txn_ops` compares, success ops and
/// failure ops (each counted separately); every compare has a key; every op
/// is valid (an empty op is `KeyNotFound`, as in etcd); nested txns get the
/// budget left after their parent's largest list; and no key is written
/// twice on one path (see `check_write_overlaps`).
pub fn check_txn(request: &TxnRequest, max_txn_ops: usize) -> Result<(), MvccError> {
    check_txn_shape(request, max_txn_ops)?;
    check_write_overlaps(&request.success)?;
    check_write_overlaps(&request.failure)?;
    Ok(())
}

fn require_key(key: &Bytes) -> Result<(), MvccError> {
    if key.is_empty() {
        Err(MvccError::EmptyKey)
    } else {
        Ok(())
    }
}

/// etcd's `checkTxnRequest`.
fn check_txn_shape(request: &TxnRequest, max_txn_ops: usize) -> Result<(), MvccError> {
    let largest_list = request
        .compare
        .len()
        .max(request.success.len())
        .max(request.failure.len());
    if largest_list > max_txn_ops {
        return Err(MvccError::TooManyTxnOps);
    }
    if request.compare.iter().any(|compare| compare.key.is_empty()) {
        return Err(MvccError::EmptyKey);
    }
    let nested_budget = max_txn_ops - largest_list;
    for op in request.success.iter().chain(&request.failure) {
        check_request_op(op, nested_budget)?;
    }
    Ok(())
}

fn check_request_op(op: &RequestOp, max_txn_ops: usize) -> Result<(), MvccError> {
    match &op.request {
        Some(Request::RequestRange(range)) => check_range(range),
        Some(Request::RequestPut(put)) => check_put(put),
        Some(Request::RequestDeleteRange(delete)) => check_delete_range(delete),
        Some(Request::RequestTxn(nested)) => check_txn_shape(nested, max_txn_ops),
        None => Err(MvccError::KeyNotFound),
    }
}

/// A deleted interval `[start, end)`; an empty `end` is unbounded. A
/// single-key delete is `[key, key + "\0")`. A delete with `range_end ==
/// "\0"` becomes `[key, "\0")`, which contains no key: etcd's
/// `checkIntervals` compares `"\0"` literally, so "delete everything from
/// `key`" never conflicts with a put. We keep that quirk for compatibility.
struct DeletedInterval {
    start: Bytes,
    end: Bytes,
}

impl DeletedInterval {
    fn new(key: &Bytes, range_end: &Bytes) -> Self {
        let end = if range_end.is_empty() {
            let mut point_end = key.to_vec();
            point_end.push(0);
            Bytes::from(point_end)
        } else {
            range_end.clone()
        };
        DeletedInterval {
            start: key.clone(),
            end,
        }
    }

    fn contains(&self, key: &[u8]) -> bool {
        // etcd's "affine" string order: the empty string is above all others.
        let start_reached = !self.start.is_empty() && self.start.as_ref() <= key;
        let before_end = self.end.is_empty() || key < self.end.as_ref();
        start_reached && before_end
    }
}

/// Keys put and intervals deleted somewhere on a list of ops, nested txns
/// included.
#[derive(Default)]
struct WrittenKeys {
    puts: HashSet<Bytes>,
    deletes: Vec<DeletedInterval>,
}

impl WrittenKeys {
    fn is_deleted(&self, key: &[u8]) -> bool {
        self.deletes.iter().any(|deleted| deleted.contains(key))
    }
}

/// etcd's `checkIntervals`: on one list of ops (and, recursively, the lists
/// of nested txns) a key may not be put twice, nor put and deleted. The
/// success and failure lists of one nested txn may put the same key, since
/// only one of them runs. Deletes may overlap each other.
///
/// Order of checks, as in etcd: this level's deletes are collected first;
/// then each nested txn's puts are checked against the puts and deletes
/// gathered so far (including earlier nested txns' deletes); then this
/// level's puts are checked against everything.
fn check_write_overlaps(ops: &[RequestOp]) -> Result<(), MvccError> {
    collect_written_keys(ops).map(|_| ())
}

fn collect_written_keys(ops: &[RequestOp]) -> Result<WrittenKeys, MvccError> {
    let mut written = WrittenKeys::default();
    for op in ops {
        if let Some(Request::RequestDeleteRange(delete)) = &op.request {
            written
                .deletes
                .push(DeletedInterval::new(&delete.key, &delete.range_end));
        }
    }
    for op in ops {
        let Some(Request::RequestTxn(nested)) = &op.request else {
            continue;
        };
        let on_success = collect_written_keys(&nested.success)?;
        let on_failure = collect_written_keys(&nested.failure)?;
        for key in &on_success.puts {
            if written.puts.contains(key) || written.is_deleted(key) {
                return Err(MvccError::DuplicateKey);
            }
        }
        written.puts.extend(on_success.puts.iter().cloned());
        for key in &on_failure.puts {
            let put_elsewhere = written.puts.contains(key) && !on_success.puts.contains(key);
            if put_elsewhere || written.is_deleted(key) {
                return Err(MvccError::DuplicateKey);
            }
        }
        written.puts.extend(on_failure.puts);
        written.deletes.extend(on_success.deletes);
        written.deletes.extend(on_failure.deletes);
    }
    for op in ops {
        let Some(Request::RequestPut(put)) = &op.request else {
            continue;
        };
        if written.puts.contains(&put.key) || written.is_deleted(&put.key) {
            return Err(MvccError::DuplicateKey);
        }
        written.puts.insert(put.key.clone());
    }
    Ok(written)
}
