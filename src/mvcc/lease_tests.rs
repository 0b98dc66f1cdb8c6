//! Worked examples for leases.

use capstan_proto::etcdserverpb::compare::{CompareResult, CompareTarget};
use capstan_proto::etcdserverpb::{
    request_op::Request, LeaseGrantResponse, LeaseRevokeResponse, PutRequest, RequestOp,
};
use capstan_proto::mvccpb::{event::EventType, KeyValue};

use crate::mvcc::test_support::*;
use crate::mvcc::{KvStore, LeaseInfo, MvccError, WriteRequest, WriteResponse};

fn get(store: &KvStore, key: &str) -> Option<KeyValue> {
    store
        .range(&range_request(key, ""))
        .expect("range")
        .kvs
        .into_iter()
        .next()
}

fn keys(names: &[&str]) -> Option<Vec<String>> {
    Some(names.iter().map(|name| name.to_string()).collect())
}

fn leased_put_op(key: &str, value: &str, lease: i64) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestPut(leased_put_request(key, value, lease))),
    }
}

#[test]
fn grant_records_the_lease_without_a_revision() {
    let mut store = KvStore::new();
    let bytes_before = store.approximate_bytes();
    let applied = store.apply(&grant_request(7, 30)).expect("grant");
    assert_eq!(
        applied.response,
        WriteResponse::LeaseGrant(LeaseGrantResponse {
            header: None,
            id: 7,
            ttl: 30,
            error: String::new(),
        })
    );
    assert!(applied.events.is_empty());
    assert_eq!(store.current_revision(), 1);
    assert!(store.approximate_bytes() > bytes_before);
    assert_eq!(
        store.lease(7),
        Some(LeaseInfo {
            id: 7,
            granted_ttl: 30,
            keys: Vec::new(),
        })
    );
    assert_eq!(store.lease(8), None);
    grant(&mut store, 3, 10);
    assert_eq!(store.lease_ids(), vec![3, 7]);
}

#[test]
fn granting_an_existing_lease_fails_and_changes_nothing() {
    let mut store = KvStore::new();
    grant(&mut store, 7, 30);
    assert_eq!(
        store.apply(&grant_request(7, 60)),
        Err(MvccError::LeaseExists)
    );
    assert_eq!(store.lease(7).map(|lease| lease.granted_ttl), Some(30));
    assert_eq!(
        store.apply(&grant_request(0, 60)),
        Err(MvccError::LeaseNotFound)
    );
    assert_eq!(store.lease_ids(), vec![7]);
}

#[test]
fn put_with_a_lease_attaches_the_key() {
    let mut store = KvStore::new();
    grant(&mut store, 7, 30);
    let applied = leased_put(&mut store, "k", "v", 7);
    assert_eq!(applied.events[0].kv.as_ref().map(|kv| kv.lease), Some(7));
    assert_eq!(get(&store, "k").map(|kv| kv.lease), Some(7));
    assert_eq!(lease_keys(&store, 7), keys(&["k"]));
    leased_put(&mut store, "a", "v", 7);
    assert_eq!(lease_keys(&store, 7), keys(&["a", "k"]));
}

#[test]
fn a_put_moves_the_key_between_leases() {
    let mut store = KvStore::new();
    grant(&mut store, 1, 30);
    grant(&mut store, 2, 30);
    leased_put(&mut store, "k", "v1", 1);
    leased_put(&mut store, "k", "v2", 2);
    assert_eq!(lease_keys(&store, 1), keys(&[]));
    assert_eq!(lease_keys(&store, 2), keys(&["k"]));
    // Without a lease the key is detached.
    put(&mut store, "k", "v3");
    assert_eq!(lease_keys(&store, 2), keys(&[]));
    assert_eq!(get(&store, "k").map(|kv| kv.lease), Some(0));
}

#[test]
fn ignore_lease_keeps_the_previous_lease() {
    let mut store = KvStore::new();
    grant(&mut store, 7, 30);
    leased_put(&mut store, "k", "v1", 7);
    let keep_lease = PutRequest {
        ignore_lease: true,
        ..put_request("k", "v2")
    };
    store.apply(&WriteRequest::Put(keep_lease)).expect("put");
    let kv = get(&store, "k").expect("k is live");
    assert_eq!((kv.value.as_ref(), kv.lease), (b"v2".as_ref(), 7));
    assert_eq!(lease_keys(&store, 7), keys(&["k"]));
}

#[test]
fn deletes_detach_keys() {
    let mut store = KvStore::new();
    grant(&mut store, 7, 30);
    leased_put(&mut store, "a", "1", 7);
    leased_put(&mut store, "b", "1", 7);
    leased_put(&mut store, "c", "1", 7);
    delete(&mut store, "a", "");
    assert_eq!(lease_keys(&store, 7), keys(&["b", "c"]));
    apply_txn(&mut store, txn(vec![], vec![delete_op("b", "")], vec![]));
    assert_eq!(lease_keys(&store, 7), keys(&["c"]));
    // Put again without the lease: stays detached.
    put(&mut store, "a", "2");
    assert_eq!(lease_keys(&store, 7), keys(&["c"]));
}

#[test]
fn revoke_deletes_every_attached_key_in_one_revision() {
    let mut store = KvStore::new();
    grant(&mut store, 7, 30);
    leased_put(&mut store, "b", "b1", 7); // 2
    leased_put(&mut store, "a", "a1", 7); // 3
    put(&mut store, "c", "c1"); // 4, no lease
    leased_put(&mut store, "b", "b2", 7); // 5
    let applied = store.apply(&revoke_request(7)).expect("revoke");
    assert_eq!(
        applied.response,
        WriteResponse::LeaseRevoke(LeaseRevokeResponse { header: None })
    );
    assert_eq!(store.current_revision(), 6);
    let summary: Vec<(i32, String, i64, String, i64)> = applied
        .events
        .iter()
        .map(|event| {
            let kv = event.kv.clone().unwrap_or_default();
            let prev = event.prev_kv.clone().unwrap_or_default();
            (
                event.r#type,
                String::from_utf8_lossy(&kv.key).into_owned(),
                kv.mod_revision,
                String::from_utf8_lossy(&prev.value).into_owned(),
                prev.mod_revision,
            )
        })
        .collect();
    let delete = EventType::Delete as i32;
    assert_eq!(
        summary,
        vec![
            (delete, "a".into(), 6, "a1".into(), 3),
            (delete, "b".into(), 6, "b2".into(), 5),
        ]
    );
    assert_eq!(applied.events[0].kv.as_ref().map(|kv| kv.lease), Some(0));
    assert_eq!(
        applied.events[1].prev_kv.as_ref().map(|kv| kv.lease),
        Some(7)
    );
    assert_eq!(
        pairs(&store.range(&range_request("a", "z")).expect("range")),
        owned_pairs(&[("c", "c1")])
    );
    assert_eq!(store.key_count(), 1);
    // The lease is gone.
    assert_eq!(store.lease(7), None);
    assert!(store.lease_ids().is_empty());
    assert_eq!(
        store.apply(&revoke_request(7)),
        Err(MvccError::LeaseNotFound)
    );
    assert_eq!(
        store.apply(&WriteRequest::Put(leased_put_request("x", "1", 7))),
        Err(MvccError::LeaseNotFound)
    );
    assert_eq!(store.current_revision(), 6);
}

#[test]
fn revoking_a_lease_without_live_keys_uses_no_revision() {
    let mut store = KvStore::new();
    grant(&mut store, 7, 30);
    leased_put(&mut store, "a", "1", 7); // 2
    delete(&mut store, "a", ""); // 3
    let applied = store.apply(&revoke_request(7)).expect("revoke");
    assert!(applied.events.is_empty());
    assert_eq!(store.current_revision(), 3);
    assert_eq!(store.lease(7), None);
    grant(&mut store, 8, 30);
    store.apply(&revoke_request(8)).expect("revoke unused");
    assert_eq!(store.current_revision(), 3);
}

#[test]
fn revoke_leaves_other_leases_alone() {
    let mut store = KvStore::new();
    grant(&mut store, 1, 30);
    grant(&mut store, 2, 30);
    leased_put(&mut store, "a", "1", 1);
    leased_put(&mut store, "b", "1", 2);
    store.apply(&revoke_request(1)).expect("revoke");
    assert_eq!(lease_keys(&store, 2), keys(&["b"]));
    assert_eq!(get(&store, "b").map(|kv| kv.lease), Some(2));
}

#[test]
fn txn_put_with_an_existing_lease() {
    let mut store = KvStore::new();
    grant(&mut store, 7, 30);
    put(&mut store, "x", "0");
    let response = apply_txn(
        &mut store,
        txn(
            vec![],
            vec![leased_put_op("a", "1", 7), leased_put_op("b", "1", 7)],
            vec![],
        ),
    );
    assert!(response.succeeded);
    assert_eq!(store.current_revision(), 3);
    assert_eq!(lease_keys(&store, 7), keys(&["a", "b"]));
    // A txn that moves one key off the lease and deletes the other.
    apply_txn(
        &mut store,
        txn(vec![], vec![put_op("a", "2"), delete_op("b", "")], vec![]),
    );
    assert_eq!(lease_keys(&store, 7), keys(&[]));
    // An unknown lease on the chosen branch fails the whole txn.
    let request = txn(
        vec![],
        vec![put_op("c", "1"), leased_put_op("d", "1", 9)],
        vec![],
    );
    assert_eq!(
        store.apply(&WriteRequest::Txn(request)),
        Err(MvccError::LeaseNotFound)
    );
    assert_eq!(get(&store, "c"), None);
}

#[test]
fn txn_compares_on_the_lease() {
    let mut store = KvStore::new();
    grant(&mut store, 7, 30);
    leased_put(&mut store, "k", "v", 7);
    let holds = |store: &KvStore, result: CompareResult, lease: i64| {
        let mut scratch = store.clone();
        let compare = compare_number("k", CompareTarget::Lease, result, lease);
        apply_txn(&mut scratch, txn(vec![compare], vec![], vec![])).succeeded
    };
    assert!(holds(&store, CompareResult::Equal, 7));
    assert!(!holds(&store, CompareResult::Equal, 0));
    assert!(holds(&store, CompareResult::Greater, 6));
    assert!(holds(&store, CompareResult::Less, 8));
    store.apply(&revoke_request(7)).expect("revoke");
    assert!(
        holds(&store, CompareResult::Equal, 0),
        "missing key: lease 0"
    );
}

#[test]
fn snapshots_keep_their_own_leases() {
    let mut store = KvStore::new();
    grant(&mut store, 7, 30);
    leased_put(&mut store, "k", "v", 7);
    let before_revoke = store.clone();
    store.apply(&revoke_request(7)).expect("revoke");
    grant(&mut store, 8, 10);
    assert_eq!(lease_keys(&before_revoke, 7), keys(&["k"]));
    assert_eq!(before_revoke.lease_ids(), vec![7]);
    assert_eq!(get(&before_revoke, "k").map(|kv| kv.lease), Some(7));
    assert_eq!(store.lease_ids(), vec![8]);
    assert_eq!(get(&store, "k"), None);
}

#[test]
fn failed_writes_leave_leases_unchanged() {
    let mut store = KvStore::new();
    grant(&mut store, 7, 30);
    leased_put(&mut store, "a", "1", 7);
    // The first op would detach "a", but the second fails the txn.
    let request = txn(
        vec![],
        vec![put_op("a", "2"), leased_put_op("b", "1", 9)],
        vec![],
    );
    assert!(store.apply(&WriteRequest::Txn(request)).is_err());
    assert_eq!(lease_keys(&store, 7), keys(&["a"]));
}

#[test]
fn compaction_does_not_touch_leases() {
    let mut store = KvStore::new();
    grant(&mut store, 7, 30);
    leased_put(&mut store, "a", "1", 7); // 2
    leased_put(&mut store, "a", "2", 7); // 3
    leased_put(&mut store, "b", "1", 7); // 4
    delete(&mut store, "b", ""); // 5
    store.apply(&compaction_request(5)).expect("compact");
    assert_eq!(lease_keys(&store, 7), keys(&["a"]));
    assert_eq!(get(&store, "a").map(|kv| kv.lease), Some(7));
    store
        .apply(&revoke_request(7))
        .expect("revoke after compaction");
    assert_eq!(store.current_revision(), 6);
    assert_eq!(get(&store, "a"), None);
}
