//! Worked examples for request checks.

use capstan_proto::etcdserverpb::compare::CompareResult;
use capstan_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};

use crate::mvcc::test_support::*;
use crate::mvcc::{check_delete_range, check_put, check_range, check_txn, MvccError};

const MAX_OPS: usize = 128;

#[test]
fn single_request_checks() {
    assert_eq!(
        check_range(&RangeRequest::default()),
        Err(MvccError::EmptyKey)
    );
    assert_eq!(check_range(&range_request("a", "")), Ok(()));
    assert_eq!(
        check_delete_range(&DeleteRangeRequest::default()),
        Err(MvccError::EmptyKey)
    );
    assert_eq!(check_put(&PutRequest::default()), Err(MvccError::EmptyKey));
    let mut put = put_request("k", "v");
    assert_eq!(check_put(&put), Ok(()));
    put.ignore_value = true;
    assert_eq!(check_put(&put), Err(MvccError::ValueProvided));
    put.value = bytes("");
    assert_eq!(check_put(&put), Ok(()));
    put.ignore_lease = true;
    put.lease = 3;
    assert_eq!(check_put(&put), Err(MvccError::LeaseProvided));
}

#[test]
fn txn_op_counts() {
    let ops = |count: usize| (0..count).map(|i| put_op(&format!("k{i}"), "v")).collect();
    assert_eq!(check_txn(&txn(vec![], ops(3), ops(3)), 3), Ok(()));
    assert_eq!(
        check_txn(&txn(vec![], ops(4), vec![]), 3),
        Err(MvccError::TooManyTxnOps)
    );
    let compares = vec![compare_value("a", CompareResult::Equal, "x"); 4];
    assert_eq!(
        check_txn(&txn(compares, vec![], vec![]), 3),
        Err(MvccError::TooManyTxnOps)
    );
    // A nested txn gets the budget its parent's largest list leaves over.
    let nested = txn_op(txn(vec![], ops(2), vec![]));
    assert_eq!(
        check_txn(
            &txn(vec![], vec![nested.clone(), range_op("a", "")], vec![]),
            4
        ),
        Ok(())
    );
    assert_eq!(
        check_txn(&txn(vec![], vec![nested, range_op("a", "")], vec![]), 3),
        Err(MvccError::TooManyTxnOps)
    );
}

#[test]
fn txn_nested_validity() {
    let empty_compare = Compare::default();
    assert_eq!(
        check_txn(&txn(vec![empty_compare], vec![], vec![]), MAX_OPS),
        Err(MvccError::EmptyKey)
    );
    let empty_op = RequestOp { request: None };
    assert_eq!(
        check_txn(&txn(vec![], vec![], vec![empty_op]), MAX_OPS),
        Err(MvccError::KeyNotFound)
    );
    let bad_nested = txn_op(txn(vec![], vec![range_op("", "")], vec![]));
    assert_eq!(
        check_txn(&txn(vec![], vec![bad_nested], vec![]), MAX_OPS),
        Err(MvccError::EmptyKey)
    );
}

fn overlap(success: Vec<RequestOp>) -> Result<(), MvccError> {
    check_txn(
        &TxnRequest {
            compare: vec![],
            success,
            failure: vec![],
        },
        MAX_OPS,
    )
}

#[test]
fn duplicate_puts_and_put_delete_overlaps() {
    assert_eq!(overlap(vec![put_op("a", "1"), put_op("b", "1")]), Ok(()));
    assert_eq!(
        overlap(vec![put_op("a", "1"), put_op("a", "2")]),
        Err(MvccError::DuplicateKey)
    );
    assert_eq!(
        overlap(vec![delete_op("a", ""), put_op("a", "2")]),
        Err(MvccError::DuplicateKey)
    );
    assert_eq!(
        overlap(vec![put_op("abc", "2"), delete_op("a", "b")]),
        Err(MvccError::DuplicateKey)
    );
    assert_eq!(overlap(vec![put_op("b", "2"), delete_op("a", "b")]), Ok(()));
    // Overlapping deletes are fine; so are reads of written keys.
    assert_eq!(
        overlap(vec![
            delete_op("a", "c"),
            delete_op("b", ""),
            range_op("b", "")
        ]),
        Ok(())
    );
    // etcd quirk: a "\0" range end is compared literally, so "delete
    // everything from a" does not conflict with a put.
    assert_eq!(
        overlap(vec![delete_op("a", "\0"), put_op("b", "1")]),
        Ok(())
    );
    // Success and failure are checked separately.
    assert_eq!(
        check_txn(
            &txn(vec![], vec![put_op("a", "1")], vec![put_op("a", "2")]),
            MAX_OPS
        ),
        Ok(())
    );
}

#[test]
fn overlaps_across_nested_txns() {
    let nested_put = |key: &str| txn_op(txn(vec![], vec![put_op(key, "n")], vec![]));
    assert_eq!(
        overlap(vec![put_op("a", "1"), nested_put("a")]),
        Err(MvccError::DuplicateKey)
    );
    assert_eq!(
        overlap(vec![delete_op("a", ""), nested_put("a")]),
        Err(MvccError::DuplicateKey)
    );
    assert_eq!(
        overlap(vec![nested_put("a"), nested_put("a")]),
        Err(MvccError::DuplicateKey)
    );
    let nested_delete = txn_op(txn(vec![], vec![], vec![delete_op("a", "z")]));
    assert_eq!(
        overlap(vec![nested_delete.clone(), put_op("m", "1")]),
        Err(MvccError::DuplicateKey)
    );
    assert_eq!(overlap(vec![nested_delete, put_op("z", "1")]), Ok(()));
    // The two branches of one nested txn may put the same key.
    let either = txn_op(txn(vec![], vec![put_op("a", "1")], vec![put_op("a", "2")]));
    assert_eq!(overlap(vec![either.clone()]), Ok(()));
    assert_eq!(
        overlap(vec![either, put_op("a", "3")]),
        Err(MvccError::DuplicateKey)
    );
    // Deeper nesting is collected too.
    let deep = txn_op(txn(vec![], vec![nested_put("deep")], vec![]));
    assert_eq!(
        overlap(vec![deep, put_op("deep", "1")]),
        Err(MvccError::DuplicateKey)
    );
}
