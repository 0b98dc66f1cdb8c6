//! Worked examples for transactions.

use bytes::Bytes;
use capstan_proto::etcdserverpb::compare::{CompareResult, CompareTarget};
use capstan_proto::etcdserverpb::{
    request_op::Request, response_op::Response, Compare, PutRequest, RequestOp,
};

use crate::mvcc::test_support::*;
use crate::mvcc::{KvStore, MvccError, WriteRequest};

use CompareResult::{Equal, Greater, Less, NotEqual};
use CompareTarget::{Create, Lease, Mod, Version};

fn succeeds(store: &KvStore, compare: Compare) -> bool {
    let mut scratch = store.clone();
    apply_txn(&mut scratch, txn(vec![compare], vec![], vec![])).succeeded
}

#[test]
fn compares_on_a_present_key() {
    let mut store = KvStore::new();
    put(&mut store, "k", "v1");
    put(&mut store, "k", "v2"); // create 2, mod 3, version 2
    assert!(succeeds(&store, compare_number("k", Version, Equal, 2)));
    assert!(succeeds(&store, compare_number("k", Version, Greater, 1)));
    assert!(!succeeds(&store, compare_number("k", Version, Less, 2)));
    assert!(succeeds(&store, compare_number("k", Create, Equal, 2)));
    assert!(succeeds(&store, compare_number("k", Mod, NotEqual, 2)));
    assert!(succeeds(&store, compare_number("k", Lease, Equal, 0)));
    assert!(succeeds(&store, compare_value("k", Equal, "v2")));
    assert!(succeeds(&store, compare_value("k", Greater, "v1")));
    assert!(!succeeds(&store, compare_value("k", Less, "v1")));
}

#[test]
fn compares_on_a_missing_key() {
    // etcd compares a missing key as an all-zero KeyValue, except that a
    // VALUE compare always fails.
    let store = KvStore::new();
    assert!(succeeds(&store, compare_number("nope", Version, Equal, 0)));
    assert!(succeeds(&store, compare_number("nope", Create, Equal, 0)));
    assert!(succeeds(&store, compare_number("nope", Mod, Less, 5)));
    assert!(!succeeds(&store, compare_value("nope", Equal, "")));
    assert!(!succeeds(&store, compare_value("nope", NotEqual, "x")));
}

#[test]
fn compare_with_mismatched_target_union_compares_against_zero() {
    let mut store = KvStore::new();
    put(&mut store, "k", "v");
    let mut compare = compare_number("k", Version, Greater, 0);
    compare.target = CompareTarget::Mod as i32; // union still says Version
    compare.result = CompareResult::Greater as i32;
    assert!(succeeds(&store, compare)); // mod 2 > 0
}

#[test]
fn range_compares_must_hold_for_every_key() {
    let mut store = KvStore::new();
    put(&mut store, "a1", "x");
    put(&mut store, "a2", "x");
    put(&mut store, "a2", "y");
    let mut all_version_one = compare_number("a", Version, Equal, 1);
    all_version_one.range_end = bytes("b");
    assert!(!succeeds(&store, all_version_one.clone()));
    let mut all_created = compare_number("a", Create, Greater, 0);
    all_created.range_end = bytes("b");
    assert!(succeeds(&store, all_created));
    // An empty range behaves like a missing key.
    all_version_one.key = bytes("z");
    all_version_one.range_end = Bytes::from_static(b"\0");
    all_version_one.target_union = compare_number("z", Version, Equal, 0).target_union;
    assert!(succeeds(&store, all_version_one));
}

#[test]
fn chosen_branch_runs_in_order_under_one_revision() {
    let mut store = KvStore::new();
    put(&mut store, "counter", "0");
    let request = txn(
        vec![compare_number("counter", Version, Equal, 1)],
        vec![
            put_op("a", "1"),
            range_op("a", ""),
            put_op("b", "2"),
            delete_op("counter", ""),
            range_op("\0", "\0"),
        ],
        vec![put_op("failed", "yes")],
    );
    let response = apply_txn(&mut store, request);
    assert!(response.succeeded);
    assert_eq!(response.responses.len(), 5);
    assert!(response.header.is_none());
    // The range after the put sees it.
    assert_eq!(
        pairs(nested_range(&response, 1)),
        owned_pairs(&[("a", "1")])
    );
    assert_eq!(
        pairs(nested_range(&response, 4)),
        owned_pairs(&[("a", "1"), ("b", "2")])
    );
    assert_eq!(store.current_revision(), 3);
    let all = store.range(&range_request("\0", "\0")).expect("range");
    assert!(all.kvs.iter().all(|kv| kv.mod_revision == 3));
    assert_eq!(store.key_count(), 2);
}

#[test]
fn failure_branch_runs_when_a_compare_fails() {
    let mut store = KvStore::new();
    let request = txn(
        vec![
            compare_number("x", Version, Equal, 0),
            compare_value("x", Equal, "anything"),
        ],
        vec![put_op("success", "1")],
        vec![put_op("failure", "1")],
    );
    let response = apply_txn(&mut store, request);
    assert!(!response.succeeded);
    let keys: Vec<_> = pairs(&store.range(&range_request("\0", "\0")).expect("range"))
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(keys, vec!["failure"]);
}

#[test]
fn write_events_carry_sub_revision_order() {
    let mut store = KvStore::new();
    put(&mut store, "b", "old");
    let applied = store
        .apply(&WriteRequest::Txn(txn(
            vec![],
            vec![put_op("c", "1"), delete_op("b", ""), put_op("a", "1")],
            vec![],
        )))
        .expect("txn");
    let keys: Vec<_> = applied
        .events
        .iter()
        .map(|event| event.kv.as_ref().map(pair).unwrap_or_default().0)
        .collect();
    assert_eq!(keys, vec!["c", "b", "a"]);
    assert!(applied
        .events
        .iter()
        .all(|event| event.kv.as_ref().map(|kv| kv.mod_revision) == Some(3)));
}

#[test]
fn read_only_txn_keeps_the_revision() {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    let response = apply_txn(
        &mut store,
        txn(
            vec![],
            vec![range_op("a", ""), delete_op("zzz", "")],
            vec![],
        ),
    );
    assert!(response.succeeded);
    assert_eq!(store.current_revision(), 2);
}

#[test]
fn an_error_inside_fails_the_whole_txn() {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    let ignore_value_on_missing = RequestOp {
        request: Some(Request::RequestPut(PutRequest {
            key: bytes("missing"),
            ignore_value: true,
            ..PutRequest::default()
        })),
    };
    let request = txn(
        vec![],
        vec![put_op("b", "2"), ignore_value_on_missing],
        vec![],
    );
    assert_eq!(
        store.apply(&WriteRequest::Txn(request)),
        Err(MvccError::KeyNotFound)
    );
    assert_eq!(store.current_revision(), 2);
    assert_eq!(store.key_count(), 1);
    assert!(store
        .range(&range_request("b", ""))
        .expect("range")
        .kvs
        .is_empty());
}

#[test]
fn nested_txns_share_the_revision_and_see_the_starting_state_in_compares() {
    let mut store = KvStore::new();
    let nested = txn(
        // etcd evaluates every compare on the path before running any op, so
        // this sees "a" as missing even though the outer txn puts it first.
        vec![compare_number("a", Version, Equal, 0)],
        vec![put_op("then", "1"), range_op("a", "")],
        vec![put_op("else", "1")],
    );
    let response = apply_txn(
        &mut store,
        txn(vec![], vec![put_op("a", "1"), txn_op(nested)], vec![]),
    );
    let Some(Response::ResponseTxn(nested_response)) = &response.responses[1].response else {
        panic!("expected nested txn response");
    };
    assert!(nested_response.succeeded);
    assert!(nested_response.header.is_none());
    // Ops of the nested txn do see the outer put.
    assert_eq!(
        pairs(nested_range(nested_response, 1)),
        owned_pairs(&[("a", "1")])
    );
    assert_eq!(store.current_revision(), 2);
    assert_eq!(store.key_count(), 2);
}

#[test]
fn range_revision_in_txn_is_checked_against_the_starting_revision() {
    // etcd's checkTxn rejects a range at the txn's own (not yet committed)
    // revision as a future revision.
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    let mut range_at_next = range_request("a", "");
    range_at_next.revision = 3;
    let request = txn(
        vec![],
        vec![
            put_op("a", "2"),
            RequestOp {
                request: Some(Request::RequestRange(range_at_next)),
            },
        ],
        vec![],
    );
    assert_eq!(
        store.apply(&WriteRequest::Txn(request)),
        Err(MvccError::FutureRevision)
    );
    assert_eq!(store.current_revision(), 2);
}

#[test]
fn negative_range_revision_in_txn_is_compacted_after_a_compaction() {
    // etcd's checkRange: any non-zero revision below the compaction floor.
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    let mut negative = range_request("a", "");
    negative.revision = -1;
    let request = txn(
        vec![],
        vec![RequestOp {
            request: Some(Request::RequestRange(negative)),
        }],
        vec![],
    );
    let response = apply_txn(&mut store.clone(), request.clone());
    assert_eq!(
        pairs(nested_range(&response, 0)),
        owned_pairs(&[("a", "1")])
    );
    store.apply(&compaction_request(1)).expect("compact");
    assert_eq!(
        store.apply(&WriteRequest::Txn(request)),
        Err(MvccError::Compacted)
    );
}

#[test]
fn txn_put_with_an_unknown_lease_fails() {
    let mut store = KvStore::new();
    let mut with_lease = put_request("a", "1");
    with_lease.lease = 5;
    let request = txn(
        vec![],
        vec![RequestOp {
            request: Some(Request::RequestPut(with_lease)),
        }],
        vec![],
    );
    assert_eq!(
        store.apply(&WriteRequest::Txn(request)),
        Err(MvccError::LeaseNotFound)
    );
}
