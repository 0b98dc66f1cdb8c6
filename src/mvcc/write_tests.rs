//! Worked examples for puts and deletes.

use capstan_proto::etcdserverpb::PutRequest;
use capstan_proto::mvccpb::{event::EventType, KeyValue};

use crate::mvcc::test_support::*;
use crate::mvcc::{KvStore, MvccError, WriteRequest, WriteResponse};

fn get(store: &KvStore, key: &str) -> Option<KeyValue> {
    store
        .range(&range_request(key, ""))
        .expect("range")
        .kvs
        .into_iter()
        .next()
}

#[test]
fn put_versions_within_a_generation() {
    let mut store = KvStore::new();
    put(&mut store, "k", "v1");
    put(&mut store, "other", "x");
    let applied = put(&mut store, "k", "v2");
    let kv = get(&store, "k").expect("k is live");
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 4, 2));
    assert_eq!(applied.events.len(), 1);
    assert_eq!(applied.events[0].r#type, EventType::Put as i32);
    assert_eq!(applied.events[0].kv.as_ref(), Some(&kv));
    let previous = applied.events[0].prev_kv.as_ref().expect("event prev_kv");
    assert_eq!((previous.mod_revision, previous.version), (2, 1));
    assert_eq!(store.key_count(), 2);
}

#[test]
fn put_after_delete_starts_a_new_generation() {
    let mut store = KvStore::new();
    put(&mut store, "k", "v1");
    put(&mut store, "k", "v2");
    delete(&mut store, "k", "");
    put(&mut store, "k", "v3");
    let kv = get(&store, "k").expect("k is live");
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (5, 5, 1));
}

#[test]
fn put_returns_prev_kv_only_when_asked() {
    let mut store = KvStore::new();
    put(&mut store, "k", "v1");
    let mut request = put_request("k", "v2");
    let plain = store
        .apply(&WriteRequest::Put(request.clone()))
        .expect("put");
    assert!(matches!(plain.response, WriteResponse::Put(ref r) if r.prev_kv.is_none()));
    request.prev_kv = true;
    request.value = bytes("v3");
    let applied = store.apply(&WriteRequest::Put(request)).expect("put");
    let WriteResponse::Put(response) = applied.response else {
        panic!("expected put response");
    };
    assert_eq!(
        response.prev_kv.map(|kv| pair(&kv)),
        Some(("k".into(), "v2".into()))
    );
    assert!(response.header.is_none());

    let mut fresh = put_request("new", "x");
    fresh.prev_kv = true;
    let applied = store.apply(&WriteRequest::Put(fresh)).expect("put");
    assert!(matches!(applied.response, WriteResponse::Put(ref r) if r.prev_kv.is_none()));
}

#[test]
fn ignore_value_keeps_the_value_and_needs_the_key() {
    let mut store = KvStore::new();
    let ignore_value = PutRequest {
        key: bytes("k"),
        ignore_value: true,
        ..PutRequest::default()
    };
    assert_eq!(
        store.apply(&WriteRequest::Put(ignore_value.clone())),
        Err(MvccError::KeyNotFound)
    );
    assert_eq!(store.current_revision(), 1);
    put(&mut store, "k", "kept");
    store.apply(&WriteRequest::Put(ignore_value)).expect("put");
    let kv = get(&store, "k").expect("k is live");
    assert_eq!(
        (pair(&kv).1.as_str(), kv.version, kv.mod_revision),
        ("kept", 2, 3)
    );
}

#[test]
fn ignore_lease_needs_the_key() {
    let mut store = KvStore::new();
    let ignore_lease = PutRequest {
        key: bytes("k"),
        value: bytes("v"),
        ignore_lease: true,
        ..PutRequest::default()
    };
    assert_eq!(
        store.apply(&WriteRequest::Put(ignore_lease.clone())),
        Err(MvccError::KeyNotFound)
    );
    put(&mut store, "k", "v0");
    store.apply(&WriteRequest::Put(ignore_lease)).expect("put");
    assert_eq!(get(&store, "k").map(|kv| kv.lease), Some(0));
}

#[test]
fn put_with_an_unknown_lease_fails() {
    let mut store = KvStore::new();
    let mut request = put_request("k", "v");
    request.lease = 7;
    assert_eq!(
        store.apply(&WriteRequest::Put(request.clone())),
        Err(MvccError::LeaseNotFound)
    );
    // The lease is checked before ignore_value's key lookup.
    request.ignore_value = true;
    assert_eq!(
        store.apply(&WriteRequest::Put(request)),
        Err(MvccError::LeaseNotFound)
    );
    assert_eq!(store.current_revision(), 1);
}

#[test]
fn delete_range_counts_and_returns_prev_kvs() {
    let mut store = KvStore::new();
    for key in ["a", "b", "c", "d"] {
        put(&mut store, key, key);
    }
    let mut request = delete_request("b", "d");
    request.prev_kv = true;
    let applied = store
        .apply(&WriteRequest::DeleteRange(request))
        .expect("delete");
    let WriteResponse::DeleteRange(response) = applied.response else {
        panic!("expected delete response");
    };
    assert_eq!(response.deleted, 2);
    assert_eq!(
        response.prev_kvs.iter().map(pair).collect::<Vec<_>>(),
        owned_pairs(&[("b", "b"), ("c", "c")])
    );
    assert_eq!(store.current_revision(), 6);
    assert_eq!(store.key_count(), 2);
    // Both tombstones share revision 6.
    assert_eq!(applied.events.len(), 2);
    for (event, key) in applied.events.iter().zip(["b", "c"]) {
        assert_eq!(event.r#type, EventType::Delete as i32);
        let expected = KeyValue {
            key: bytes(key),
            mod_revision: 6,
            ..KeyValue::default()
        };
        assert_eq!(event.kv.as_ref(), Some(&expected));
        assert_eq!(
            event.prev_kv.as_ref().map(pair),
            Some((key.into(), key.into()))
        );
    }
    // Without prev_kv no prev_kvs are returned.
    let applied = delete(&mut store, "\0", "\0");
    assert!(matches!(applied.response,
        WriteResponse::DeleteRange(ref r) if r.deleted == 2 && r.prev_kvs.is_empty()));
    assert_eq!(store.key_count(), 0);
}

#[test]
fn deleting_nothing_creates_no_revision() {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    delete(&mut store, "a", "");
    let applied = delete(&mut store, "a", "");
    assert!(matches!(applied.response, WriteResponse::DeleteRange(ref r) if r.deleted == 0));
    assert!(applied.events.is_empty());
    assert_eq!(store.current_revision(), 3);
}

#[test]
fn snapshots_do_not_see_later_writes() {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    let snapshot = store.clone();
    put(&mut store, "a", "2");
    delete(&mut store, "a", "");
    assert_eq!(snapshot.current_revision(), 2);
    assert_eq!(get(&snapshot, "a").map(|kv| pair(&kv).1), Some("1".into()));
    assert_eq!(get(&store, "a"), None);
    assert_eq!(snapshot.key_count(), 1);
}

#[test]
fn approximate_bytes_grows_with_versions() {
    let mut store = KvStore::new();
    assert_eq!(store.approximate_bytes(), 0);
    put(&mut store, "key", "value");
    let one = store.approximate_bytes();
    assert!(one >= 8);
    put(&mut store, "key", "value");
    assert!(store.approximate_bytes() > one);
}

#[test]
fn snapshots_can_be_shared_across_threads() {
    fn assert_shareable<T: Clone + Send + Sync + 'static>() {}
    assert_shareable::<KvStore>();
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    let snapshot = std::sync::Arc::new(store.clone());
    put(&mut store, "a", "2");
    let reader = std::thread::spawn(move || get(&snapshot, "a").map(|kv| pair(&kv).1));
    assert_eq!(reader.join().expect("reader thread"), Some("1".into()));
}
