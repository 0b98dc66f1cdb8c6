//! Seeded model test: random batches of puts and deletes, reads, range scans, bounded range
//! deletes and reopens, checked against a `BTreeMap` and the full invariant check after every
//! commit. `STORE_MODEL_SEED=n` runs one seed; `STORE_MODEL_SEEDS=n` sets how many.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::support::open_fast;
use crate::store::{ReadTxn, Store, WriteBatch, MAX_KEY_BYTES};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

const DEFAULT_SEEDS: u64 = 40;
const STEPS_PER_SEED: usize = 120;

fn random_key(rng: &mut StdRng, key_space: u32) -> Vec<u8> {
    let mut key = format!("key/{:06}", rng.gen_range(0..key_space)).into_bytes();
    if rng.gen_ratio(1, 20) {
        // Long keys make few cells per page, so splits and merges happen often.
        let extra = rng.gen_range(0..MAX_KEY_BYTES - key.len());
        key.extend(std::iter::repeat_n(b'x', extra));
    }
    key
}

fn random_value(rng: &mut StdRng) -> Vec<u8> {
    let len = match rng.gen_range(0..100) {
        0..70 => rng.gen_range(0..64),
        70..90 => rng.gen_range(64..1200),
        90..99 => rng.gen_range(1200..20_000),
        _ => rng.gen_range(20_000..300_000),
    };
    let fill: u8 = rng.gen();
    (0..len).map(|i| fill.wrapping_add(i as u8)).collect()
}

fn check_same(read: &ReadTxn, model: &Model, rng: &mut StdRng, key_space: u32, context: &str) {
    assert_eq!(read.key_count(), model.len() as u64, "{context}: key count");
    for _ in 0..20 {
        let key = random_key(rng, key_space);
        let got = read.get(&key).expect("get");
        assert_eq!(
            got,
            model.get(&key).map(Vec::as_slice),
            "{context}: get {key:?}"
        );
    }
    for _ in 0..5 {
        let start = random_key(rng, key_space);
        let end = random_key(rng, key_space);
        let end = if rng.gen_ratio(1, 4) { None } else { Some(end) };
        let limit = rng.gen_range(1..200);
        let got = read.range(&start, end.as_deref(), limit).expect("range");
        let upper = end
            .as_ref()
            .map_or(Bound::Unbounded, |end| Bound::Excluded(end.clone()));
        if end.as_ref().is_some_and(|end| *end < start) {
            assert!(got.is_empty(), "{context}: inverted range");
            continue;
        }
        let want: Vec<(Vec<u8>, Vec<u8>)> = model
            .range((Bound::Included(start.clone()), upper))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(
            got, want,
            "{context}: range {start:?}..{end:?} limit {limit}"
        );
    }
}

fn check_full(store: &Store, model: &Model, context: &str) {
    let read = store.read();
    let all: Vec<(Vec<u8>, Vec<u8>)> = read
        .iter(b"", None)
        .expect("iter")
        .map(|entry| entry.map(|(k, v)| (k.to_vec(), v.to_vec())).expect("entry"))
        .collect();
    let want: Vec<(Vec<u8>, Vec<u8>)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert!(all == want, "{context}: full scan differs from the model");
    store
        .check_invariants()
        .unwrap_or_else(|e| panic!("{context}: {e}"));
}

fn run_seed(seed: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pages.db");
    let mut rng = StdRng::seed_from_u64(seed);
    let key_space = [50, 500, 5000][rng.gen_range(0..3)];
    let mut store = open_fast(&path);
    let mut model = Model::new();
    for step in 0..STEPS_PER_SEED {
        let context = format!("seed {seed} step {step}");
        match rng.gen_range(0..100) {
            0..75 => {
                let mut batch = WriteBatch::new();
                let mut staged = model.clone();
                let ops = if rng.gen_ratio(1, 10) {
                    rng.gen_range(100..600)
                } else {
                    rng.gen_range(1..40)
                };
                let delete_share = rng.gen_range(0..60);
                for _ in 0..ops {
                    let key = random_key(&mut rng, key_space);
                    if rng.gen_range(0..100) < delete_share {
                        batch.delete(&key).expect("delete");
                        staged.remove(&key);
                    } else {
                        let value = random_value(&mut rng);
                        batch.put(&key, &value).expect("put");
                        staged.insert(key, value);
                    }
                }
                batch
                    .set_meta_u64("applied_index", step as u64)
                    .expect("meta");
                store.commit(&batch).expect("commit");
                model = staged;
                assert_eq!(
                    store.read().meta_u64("applied_index").expect("meta"),
                    Some(step as u64)
                );
                store
                    .check_invariants()
                    .unwrap_or_else(|e| panic!("{context}: {e}"));
            }
            75..85 => {
                // Bounded range delete, as compaction would do it.
                let start = random_key(&mut rng, key_space);
                let end = random_key(&mut rng, key_space);
                let (start, end) = if start <= end {
                    (start, end)
                } else {
                    (end, start)
                };
                let mut from = start.clone();
                loop {
                    let step = store
                        .delete_range_step(&from, Some(&end), 25)
                        .expect("delete step");
                    match step.resume_from {
                        Some(next) => from = next,
                        None => break,
                    }
                }
                let doomed: Vec<Vec<u8>> =
                    model.range(start..end).map(|(k, _)| k.clone()).collect();
                for key in doomed {
                    model.remove(&key);
                }
                store
                    .check_invariants()
                    .unwrap_or_else(|e| panic!("{context}: {e}"));
            }
            85..95 => check_same(&store.read(), &model, &mut rng, key_space, &context),
            _ => {
                drop(store);
                store = open_fast(&path);
                check_full(&store, &model, &context);
            }
        }
    }
    check_full(&store, &model, &format!("seed {seed} end"));
    // Delete everything: the tree must collapse to empty and keep every page accounted for.
    let mut batch = WriteBatch::new();
    for key in model.keys() {
        batch.delete(key).expect("delete");
    }
    store.commit(&batch).expect("delete all");
    check_full(&store, &Model::new(), &format!("seed {seed} emptied"));
    assert_eq!(store.current_meta().data_root, crate::store::page::NO_PAGE);
}

#[test]
fn model_random_operations_match_btreemap() {
    let seeds: Vec<u64> = match std::env::var("STORE_MODEL_SEED") {
        Ok(seed) => vec![seed.parse().expect("STORE_MODEL_SEED is a number")],
        Err(_) => {
            let count = std::env::var("STORE_MODEL_SEEDS")
                .ok()
                .and_then(|n| n.parse().ok());
            (0..count.unwrap_or(DEFAULT_SEEDS)).collect()
        }
    };
    for seed in seeds {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| run_seed(seed))) {
            eprintln!("store model test failed: rerun with STORE_MODEL_SEED={seed}");
            resume_unwind(panic);
        }
    }
}

#[test]
fn sequential_appends_fill_pages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_fast(&dir.path().join("pages.db"));
    for chunk in 0..50u32 {
        let mut batch = WriteBatch::new();
        for index in 0..200u32 {
            let key = (chunk * 200 + index).to_be_bytes();
            batch.put(&key, &[7u8; 100]).expect("put");
        }
        store.commit(&batch).expect("commit");
    }
    store.check_invariants().expect("invariants");
    let stats = store.stats();
    assert_eq!(stats.data_keys, 10_000);
    // 10,000 cells of 2 + 7 + 4 + 100 bytes fill about 1.1 MB of leaves; allow slack for
    // branches and pages freed by the last commits but not yet reused.
    let cell_bytes = 10_000 * (2 + 7 + 4 + 100);
    assert!(stats.size_in_use_bytes < cell_bytes * 3 / 2, "{stats:?}");
}

#[test]
fn value_of_one_and_a_half_mebibytes_round_trips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pages.db");
    let value: Vec<u8> = (0..1_572_864u32).map(|i| (i % 251) as u8).collect();
    {
        let store = open_fast(&path);
        let mut batch = WriteBatch::new();
        batch.put(b"big", &value).expect("put");
        batch.put(b"small", b"v").expect("put");
        store.commit(&batch).expect("commit");
        assert_eq!(
            store.read().get(b"big").expect("get"),
            Some(value.as_slice())
        );
    }
    let store = open_fast(&path);
    assert_eq!(
        store.read().get(b"big").expect("get"),
        Some(value.as_slice())
    );
    store.check_invariants().expect("invariants");
    let mut batch = WriteBatch::new();
    batch.delete(b"big").expect("delete");
    store.commit(&batch).expect("commit");
    store.check_invariants().expect("invariants");
    assert!(
        store.stats().free_pages_pending >= 384,
        "{:?}",
        store.stats()
    );
}
