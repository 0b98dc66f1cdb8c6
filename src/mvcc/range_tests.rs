//! Worked examples for range semantics.

use capstan_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use capstan_proto::etcdserverpb::RangeRequest;

use crate::mvcc::test_support::*;
use crate::mvcc::{KvStore, MvccError};

/// a=1@2, b=2@3, c=3@4, a=4@5 (a has version 2, create 2).
fn abc() -> KvStore {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    put(&mut store, "b", "2");
    put(&mut store, "c", "3");
    put(&mut store, "a", "4");
    store
}

fn keys(store: &KvStore, request: &RangeRequest) -> Vec<String> {
    let response = store.range(request).expect("range");
    pairs(&response).into_iter().map(|(key, _)| key).collect()
}

#[test]
fn fresh_store_is_at_revision_one_and_first_put_gets_two() {
    let mut store = KvStore::new();
    assert_eq!(store.current_revision(), 1);
    assert_eq!(store.compact_revision(), 0);
    assert_eq!(store.key_count(), 0);
    put(&mut store, "a", "1");
    assert_eq!(store.current_revision(), 2);
    let response = store.range(&range_request("a", "")).expect("range");
    assert_eq!(response.kvs[0].mod_revision, 2);
    assert_eq!(response.kvs[0].create_revision, 2);
    assert_eq!(response.kvs[0].version, 1);
    assert!(response.header.is_none());
}

#[test]
fn key_selection_rules() {
    let store = abc();
    assert_eq!(keys(&store, &range_request("a", "")), vec!["a"]);
    assert_eq!(keys(&store, &range_request("a", "c")), vec!["a", "b"]);
    assert_eq!(keys(&store, &range_request("b", "\0")), vec!["b", "c"]);
    assert_eq!(
        keys(&store, &range_request("\0", "\0")),
        vec!["a", "b", "c"]
    );
    assert!(keys(&store, &range_request("c", "a")).is_empty());
    assert!(keys(&store, &range_request("zz", "")).is_empty());
}

#[test]
fn limit_more_and_count() {
    let store = abc();
    let mut request = range_request("a", "\0");
    request.limit = 2;
    let response = store.range(&request).expect("range");
    assert_eq!(pairs(&response), owned_pairs(&[("a", "4"), ("b", "2")]));
    assert!(response.more);
    assert_eq!(response.count, 3);

    request.limit = 3;
    let response = store.range(&request).expect("range");
    assert!(!response.more);
    assert_eq!(response.count, 3);

    request.limit = -1; // negative is no limit, as in etcd
    assert_eq!(store.range(&request).expect("range").kvs.len(), 3);
}

#[test]
fn count_ignores_revision_filters_but_more_respects_them() {
    // etcd counts keys in the index before pruning by min/max revisions and
    // never corrects the count (server/etcdserver/txn: executeRange).
    let store = abc();
    let mut request = range_request("a", "\0");
    request.min_mod_revision = 4; // c@4 and a@5
    request.limit = 1;
    let response = store.range(&request).expect("range");
    assert_eq!(response.count, 3);
    assert_eq!(pairs(&response), owned_pairs(&[("a", "4")]));
    assert!(response.more);

    request.limit = 0;
    request.min_mod_revision = 0;
    request.max_create_revision = 2; // only a was created at or before 2
    let response = store.range(&request).expect("range");
    assert_eq!(pairs(&response), owned_pairs(&[("a", "4")]));
    assert_eq!(response.count, 3);

    request.max_create_revision = 0;
    request.min_create_revision = 3;
    request.max_mod_revision = 3;
    assert_eq!(keys(&store, &request), vec!["b"]);
}

#[test]
fn count_only_and_keys_only() {
    let store = abc();
    let mut request = range_request("a", "\0");
    request.count_only = true;
    request.limit = 1;
    let response = store.range(&request).expect("range");
    assert!(response.kvs.is_empty());
    assert_eq!(response.count, 3);
    assert!(!response.more);

    let mut request = range_request("a", "c");
    request.keys_only = true;
    let response = store.range(&request).expect("range");
    assert_eq!(pairs(&response), owned_pairs(&[("a", ""), ("b", "")]));
    assert_eq!(response.kvs[0].version, 2);
}

#[test]
fn reads_at_past_revisions() {
    let store = abc();
    let mut request = range_request("a", "\0");
    request.revision = 2;
    let response = store.range(&request).expect("range");
    assert_eq!(pairs(&response), owned_pairs(&[("a", "1")]));
    request.revision = 4;
    assert_eq!(
        pairs(&store.range(&request).expect("range")),
        owned_pairs(&[("a", "1"), ("b", "2"), ("c", "3")])
    );
    request.revision = 1;
    assert!(store.range(&request).expect("range").kvs.is_empty());
    request.revision = -7; // <= 0 is the latest revision
    assert_eq!(keys(&store, &request), vec!["a", "b", "c"]);
    request.revision = 6;
    assert_eq!(store.range(&request), Err(MvccError::FutureRevision));
}

#[test]
fn compacted_revisions() {
    let mut store = abc();
    store.apply(&compaction_request(3)).expect("compact");
    let mut request = range_request("a", "\0");
    request.revision = 2;
    assert_eq!(store.range(&request), Err(MvccError::Compacted));
    request.revision = 3; // the compaction revision itself is readable
    assert_eq!(
        pairs(&store.range(&request).expect("range")),
        owned_pairs(&[("a", "1"), ("b", "2")])
    );
    request.revision = 0;
    assert_eq!(keys(&store, &request), vec!["a", "b", "c"]);
}

fn sorted(store: &KvStore, target: SortTarget, order: SortOrder, limit: i64) -> Vec<String> {
    let mut request = range_request("a", "\0");
    request.sort_target = target as i32;
    request.sort_order = order as i32;
    request.limit = limit;
    keys(store, &request)
}

#[test]
fn sorting_rules() {
    let store = abc();
    // KEY with NONE is ascending (the natural order).
    assert_eq!(
        sorted(&store, SortTarget::Key, SortOrder::None, 0),
        ["a", "b", "c"]
    );
    assert_eq!(
        sorted(&store, SortTarget::Key, SortOrder::Descend, 0),
        ["c", "b", "a"]
    );
    // Another target with NONE sorts ascending by that target.
    assert_eq!(
        sorted(&store, SortTarget::Mod, SortOrder::None, 0),
        ["b", "c", "a"]
    );
    assert_eq!(
        sorted(&store, SortTarget::Mod, SortOrder::Descend, 0),
        ["a", "c", "b"]
    );
    assert_eq!(
        sorted(&store, SortTarget::Create, SortOrder::Descend, 0),
        ["c", "b", "a"]
    );
    assert_eq!(
        sorted(&store, SortTarget::Value, SortOrder::Descend, 0),
        ["a", "c", "b"]
    );
    // Version ties keep ascending key order.
    assert_eq!(
        sorted(&store, SortTarget::Version, SortOrder::Descend, 0),
        ["a", "b", "c"]
    );
    assert_eq!(
        sorted(&store, SortTarget::Version, SortOrder::Ascend, 0),
        ["b", "c", "a"]
    );
}

#[test]
fn sorting_happens_before_the_limit() {
    // etcd fetches the whole range when a sort is requested, sorts, then
    // truncates, so the limit picks from the sorted whole.
    let store = abc();
    assert_eq!(
        sorted(&store, SortTarget::Mod, SortOrder::Descend, 1),
        ["a"]
    );
    assert_eq!(
        sorted(&store, SortTarget::Key, SortOrder::Descend, 2),
        ["c", "b"]
    );
    let mut request = range_request("a", "\0");
    request.sort_target = SortTarget::Value as i32;
    request.sort_order = SortOrder::Descend as i32;
    request.limit = 2;
    let response = store.range(&request).expect("range");
    assert!(response.more);
    assert_eq!(response.count, 3);
}

#[test]
fn unknown_sort_values_do_not_fail() {
    let store = abc();
    let mut request = range_request("a", "\0");
    request.sort_order = 9;
    request.sort_target = SortTarget::Mod as i32;
    assert_eq!(keys(&store, &request), vec!["a", "b", "c"]);
    request.sort_order = SortOrder::Descend as i32;
    request.sort_target = 42;
    assert_eq!(keys(&store, &request), vec!["a", "b", "c"]);
}
