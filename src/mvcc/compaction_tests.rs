//! Worked examples for compaction.

use crate::mvcc::test_support::*;
use crate::mvcc::{KvStore, MvccError, WriteResponse};

#[test]
fn compaction_revision_bounds() {
    let mut store = KvStore::new();
    // etcd starts with compactMainRev = -1, so 0 is a valid first target.
    store.apply(&compaction_request(0)).expect("compact at 0");
    assert_eq!(
        store.apply(&compaction_request(0)),
        Err(MvccError::Compacted)
    );
    assert_eq!(
        store.apply(&compaction_request(2)),
        Err(MvccError::FutureRevision)
    );
    put(&mut store, "a", "1");
    let applied = store
        .apply(&compaction_request(2))
        .expect("compact at current");
    assert!(matches!(applied.response, WriteResponse::Compaction(ref r) if r.header.is_none()));
    assert!(applied.events.is_empty());
    assert_eq!(store.compact_revision(), 2);
    assert_eq!(store.current_revision(), 2);
    assert_eq!(
        store.apply(&compaction_request(1)),
        Err(MvccError::Compacted)
    );
    assert_eq!(
        store.apply(&compaction_request(2)),
        Err(MvccError::Compacted)
    );
}

#[test]
fn the_module_doc_example() {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    put(&mut store, "a", "2");
    apply_txn(
        &mut store,
        txn(vec![], vec![put_op("b", "x"), delete_op("a", "")], vec![]),
    );
    delete(&mut store, "c", "");
    put(&mut store, "a", "3");
    assert_eq!(store.current_revision(), 5);

    let at = |store: &KvStore, revision: i64| {
        let mut request = range_request("\0", "\0");
        request.revision = revision;
        store.range(&request).map(|response| pairs(&response))
    };
    assert_eq!(at(&store, 3), Ok(owned_pairs(&[("a", "2")])));
    assert_eq!(at(&store, 4), Ok(owned_pairs(&[("b", "x")])));
    let latest = store.range(&range_request("a", "")).expect("range");
    assert_eq!(
        (latest.kvs[0].create_revision, latest.kvs[0].version),
        (5, 1)
    );

    let bytes_before = store.approximate_bytes();
    store.apply(&compaction_request(4)).expect("compact");
    assert!(store.approximate_bytes() < bytes_before);
    assert_eq!(at(&store, 3), Err(MvccError::Compacted));
    assert_eq!(at(&store, 4), Ok(owned_pairs(&[("b", "x")])));
    assert_eq!(at(&store, 5), Ok(owned_pairs(&[("a", "3"), ("b", "x")])));
    // The tombstone at 4 is exactly at the compaction revision: it stays (a watcher starting
    // at 4 still gets the delete) until a later compaction.
    assert_eq!(
        store.keys.get(b"a".as_slice()).map(|h| h.revisions()),
        Some(vec![4, 5])
    );
    assert_eq!(
        store.keys.get(b"b".as_slice()).map(|h| h.revisions()),
        Some(vec![4])
    );
}

#[test]
fn fully_deleted_keys_disappear() {
    let mut store = KvStore::new();
    put(&mut store, "gone", "1");
    delete(&mut store, "gone", "");
    put(&mut store, "kept", "1");
    store.apply(&compaction_request(4)).expect("compact");
    assert!(store.keys.get(b"gone".as_slice()).is_none());
    assert_eq!(store.key_count(), 1);
}

#[test]
fn snapshots_keep_history_a_later_compaction_dropped() {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    put(&mut store, "a", "2");
    let snapshot = store.clone();
    store.apply(&compaction_request(3)).expect("compact");
    let mut old = range_request("a", "");
    old.revision = 2;
    assert_eq!(store.range(&old), Err(MvccError::Compacted));
    assert_eq!(
        snapshot.range(&old).map(|response| pairs(&response)),
        Ok(owned_pairs(&[("a", "1")]))
    );
}
