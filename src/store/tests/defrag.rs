//! The compact copy and online defrag: same contents, smaller file, commits and readers
//! going on throughout.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::support::open_fast;
use crate::store::db::DEFRAG_FINAL_BATCHES_MAX;
use crate::store::{write_compact_copy, ReadTxn, Store, WriteBatch};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn scan(read: &ReadTxn) -> Model {
    read.iter(b"", None)
        .expect("iter")
        .map(|entry| entry.map(|(k, v)| (k.to_vec(), v.to_vec())).expect("entry"))
        .collect()
}

/// 20,000 keys (some with overflow values), then nine in ten deleted.
fn fragmented(store: &Store) -> Model {
    let mut model = Model::new();
    for chunk in 0..20u32 {
        let mut batch = WriteBatch::new();
        for index in chunk * 1000..(chunk + 1) * 1000 {
            let key = format!("key/{index:06}").into_bytes();
            let value = if index % 97 == 0 {
                vec![3u8; 9000]
            } else {
                vec![1u8; 120]
            };
            batch.put(&key, &value).expect("put");
            model.insert(key, value);
        }
        store.commit(&batch).expect("commit");
    }
    let mut batch = WriteBatch::new();
    for index in 0..20_000u32 {
        if index % 10 != 0 {
            let key = format!("key/{index:06}").into_bytes();
            batch.delete(&key).expect("delete");
            model.remove(&key);
        }
    }
    batch.set_meta_u64("applied_index", 77).expect("meta");
    store.commit(&batch).expect("commit");
    model
}

#[test]
fn compact_copy_has_the_same_contents_in_fewer_pages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_fast(&dir.path().join("pages.db"));
    let model = fragmented(&store);
    let copy_path = dir.path().join("copy.db");
    let report = write_compact_copy(&store.read(), &copy_path).expect("copy");
    assert_eq!(report.data_keys, model.len() as u64);
    let copy = open_fast(&copy_path);
    assert!(scan(&copy.read()) == model);
    assert_eq!(
        copy.read().meta_u64("applied_index").expect("meta"),
        Some(77)
    );
    assert_eq!(copy.read().txn_id(), store.read().txn_id());
    copy.check_invariants().expect("invariants");
    assert!(
        copy.stats().size_bytes * 3 < store.stats().size_bytes,
        "{:?}",
        copy.stats()
    );
    // The copy takes commits like any store.
    let mut batch = WriteBatch::new();
    batch.put(b"key/000001", b"new").expect("put");
    copy.commit(&batch).expect("commit");
    copy.check_invariants().expect("invariants");
    // An empty store copies too.
    let empty = open_fast(&dir.path().join("empty.db"));
    write_compact_copy(&empty.read(), &dir.path().join("empty-copy.db")).expect("copy empty");
    assert!(scan(&open_fast(&dir.path().join("empty-copy.db")).read()).is_empty());
}

#[test]
fn online_defrag_shrinks_the_file_while_a_writer_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pages.db");
    let store = open_fast(&path);
    let before_model = fragmented(&store);
    let old_reader = store.read();
    let model = Mutex::new(before_model.clone());
    // Commits between the copy and the catch-up, more than the final round takes at once.
    let (hook_done, hook_result) = std::sync::mpsc::channel();
    *store.after_defrag_copy.lock().expect("hook") = Some(Box::new(move |store: &Store| {
        let mut added = Model::new();
        for index in 0..(DEFRAG_FINAL_BATCHES_MAX as u32 * 3) {
            let mut batch = WriteBatch::new();
            let key = format!("during/{index:05}").into_bytes();
            batch.put(&key, b"d").expect("put");
            store.commit(&batch).expect("commit in hook");
            added.insert(key, b"d".to_vec());
        }
        hook_done.send(added).expect("send");
    }));
    let stop = AtomicBool::new(false);
    let report = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut round = 0u32;
            while !stop.load(Ordering::Relaxed) || round < 20 {
                let mut batch = WriteBatch::new();
                let mut model = model.lock().expect("model");
                for index in 0..50u32 {
                    let key = format!("new/{round:05}/{index:02}").into_bytes();
                    batch.put(&key, &round.to_le_bytes()).expect("put");
                    model.insert(key, round.to_le_bytes().to_vec());
                }
                let old_key = format!("key/{:06}", (round * 10) % 20_000).into_bytes();
                batch.delete(&old_key).expect("delete");
                model.remove(&old_key);
                store.commit(&batch).expect("commit during defrag");
                round += 1;
            }
        });
        let report = store.defragment().expect("defragment");
        stop.store(true, Ordering::Relaxed);
        writer.join().expect("writer thread");
        report
    });
    let mut model = model.into_inner().expect("model");
    model.extend(hook_result.recv().expect("hook ran"));
    assert!(
        report.replayed_batches >= DEFRAG_FINAL_BATCHES_MAX * 3,
        "{report:?}"
    );
    assert!(
        report.size_bytes_after * 2 < report.size_bytes_before,
        "{report:?}"
    );
    assert!(scan(&store.read()) == model);
    assert_eq!(
        store.read().meta_u64("applied_index").expect("meta"),
        Some(77)
    );
    store.check_invariants().expect("invariants");
    assert!(
        scan(&old_reader) == before_model,
        "a reader from before keeps its snapshot"
    );
    drop(old_reader);
    assert!(!dir.path().join("pages.defrag").exists());
    drop(store);
    let reopened = open_fast(&path);
    assert!(scan(&reopened.read()) == model);
    reopened.check_invariants().expect("invariants");
}
