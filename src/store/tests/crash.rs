//! Crash images of the commit protocol. A workload runs through a [`RecordingWriter`]; then for
//! every prefix of the recorded writes, syncs and length changes, the images a crash at that
//! point could leave are built: everything up to the last sync is on disk, each later call may
//! be on disk, lost, or (a write) torn at 512-byte sectors. Each image must open, without a
//! corruption error, to a state the workload committed: at least the last commit whose meta
//! write was synced, at most the last whose meta write had started.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::support::{open_fast, Event, RecordingWriter};
use crate::store::page::{le_u64, PAGE_BYTES};
use crate::store::{FileWriter, Store, StoreOptions, WriteBatch};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;
/// State after each commit: txn id -> (data, applied_index).
type States = BTreeMap<u64, (Model, Option<u64>)>;

const SECTOR_BYTES: usize = 512;
const COMMITS: usize = 14;
const RANDOM_FATES_PER_PREFIX: usize = 3;

#[derive(Clone, Copy, Debug)]
enum Fate {
    Applied,
    Lost,
    Torn,
}

/// Runs the workload; returns the file's bytes before it, the recorded calls, and the state
/// after every commit (txn id -> data, applied_index).
fn record_workload(seed: u64, path: &std::path::Path) -> (Vec<u8>, Vec<Event>, States) {
    drop(open_fast(path)); // creates the file
    let initial = std::fs::read(path).expect("read initial image");
    let events = Arc::new(Mutex::new(Vec::new()));
    let recorder = events.clone();
    let store = Store::open_with_writer(path, StoreOptions::default(), move |file| {
        Box::new(RecordingWriter {
            inner: FileWriter::new(file),
            events: recorder.clone(),
        })
    })
    .expect("open recording store");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model = Model::new();
    let mut states = BTreeMap::new();
    states.insert(0, (Model::new(), None));
    for commit in 0..COMMITS {
        let mut batch = WriteBatch::new();
        for _ in 0..rng.gen_range(1..120) {
            let key = format!("key/{:04}", rng.gen_range(0..400)).into_bytes();
            if rng.gen_ratio(1, 3) {
                batch.delete(&key).expect("delete");
                model.remove(&key);
            } else {
                let len = if rng.gen_ratio(1, 15) {
                    rng.gen_range(5_000..400_000)
                } else {
                    rng.gen_range(0..300)
                };
                let value = vec![rng.gen::<u8>(); len];
                batch.put(&key, &value).expect("put");
                model.insert(key, value);
            }
        }
        batch
            .set_meta_u64("applied_index", commit as u64 + 100)
            .expect("meta");
        let txn_id = store.commit(&batch).expect("commit");
        states.insert(txn_id, (model.clone(), Some(commit as u64 + 100)));
    }
    drop(store);
    let events = events.lock().expect("events").clone();
    (initial, events, states)
}

fn apply(image: &mut Vec<u8>, event: &Event, fate: Fate, rng: &mut StdRng) {
    match (event, fate) {
        (_, Fate::Lost) | (Event::Sync, _) => {}
        (Event::SetLen(len), _) => image.resize(*len as usize, 0),
        (
            Event::Write {
                offset_bytes,
                bytes,
            },
            fate,
        ) => {
            let start = *offset_bytes as usize;
            if image.len() < start + bytes.len() {
                image.resize(start + bytes.len(), 0);
            }
            for (index, sector) in bytes.chunks(SECTOR_BYTES).enumerate() {
                if matches!(fate, Fate::Applied) || rng.gen_ratio(1, 2) {
                    let at = start + index * SECTOR_BYTES;
                    image[at..at + sector.len()].copy_from_slice(sector);
                }
            }
        }
    }
}

/// The txn id of a meta page write, if `event` is one.
fn meta_txn(event: &Event) -> Option<u64> {
    match event {
        Event::Write {
            offset_bytes,
            bytes,
        } if *offset_bytes < 2 * PAGE_BYTES as u64 => {
            assert_eq!(bytes.len(), PAGE_BYTES, "meta pages are written alone");
            le_u64(bytes, 16)
        }
        _ => None,
    }
}

fn check_image(
    image: &[u8],
    dir: &std::path::Path,
    states: &States,
    txn_range: (u64, u64),
    context: &str,
) {
    let path = dir.join("crashed.db");
    std::fs::write(&path, image).expect("write image");
    let store = open_fast(&path);
    let read = store.read();
    let txn_id = read.txn_id();
    assert!(
        txn_range.0 <= txn_id && txn_id <= txn_range.1,
        "{context}: opened at txn {txn_id}, expected {txn_range:?}"
    );
    let (model, applied) = &states[&txn_id];
    let all: Model = read
        .iter(b"", None)
        .expect("iter")
        .map(|entry| entry.map(|(k, v)| (k.to_vec(), v.to_vec())).expect("entry"))
        .collect();
    assert!(
        &all == model,
        "{context}: contents differ from commit {txn_id}"
    );
    assert_eq!(
        &read.meta_u64("applied_index").expect("meta"),
        applied,
        "{context}"
    );
    store
        .check_invariants()
        .unwrap_or_else(|e| panic!("{context}: {e}"));
    drop(read);
    // The crashed store must take new commits.
    let mut batch = WriteBatch::new();
    batch.put(b"after-crash", &[1u8; 3000]).expect("put");
    batch.delete(b"key/0001").expect("delete");
    store.commit(&batch).expect("commit after crash");
    store
        .check_invariants()
        .unwrap_or_else(|e| panic!("{context} after a commit: {e}"));
    drop(store);
    std::fs::remove_file(&path).expect("remove image");
}

fn run_seed(seed: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (initial, events, states) = record_workload(seed, &dir.path().join("recorded.db"));
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let mut checked = 0;
    for prefix in 0..=events.len() {
        let durable = events[..prefix]
            .iter()
            .rposition(|event| matches!(event, Event::Sync))
            .map_or(0, |at| at + 1);
        let lowest = events[..durable]
            .iter()
            .filter_map(meta_txn)
            .max()
            .unwrap_or(0);
        let highest = events[..prefix]
            .iter()
            .filter_map(meta_txn)
            .max()
            .unwrap_or(0);
        let mut fates: Vec<Option<Fate>> = vec![Some(Fate::Applied), Some(Fate::Lost)];
        fates.extend(std::iter::repeat_n(None, RANDOM_FATES_PER_PREFIX));
        for (variant, fixed) in fates.into_iter().enumerate() {
            let mut image = initial.clone();
            for event in &events[..durable] {
                apply(&mut image, event, Fate::Applied, &mut rng);
            }
            for event in &events[durable..prefix] {
                let fate = fixed.unwrap_or_else(|| match rng.gen_range(0..3) {
                    0 => Fate::Applied,
                    1 => Fate::Lost,
                    _ => Fate::Torn,
                });
                apply(&mut image, event, fate, &mut rng);
            }
            let context = format!(
                "seed {seed} prefix {prefix}/{} variant {variant}",
                events.len()
            );
            check_image(&image, dir.path(), &states, (lowest, highest), &context);
            checked += 1;
        }
    }
    assert!(checked > COMMITS * 4 * 5, "only {checked} images checked");
}

#[test]
fn every_crash_image_opens_to_a_committed_state() {
    for seed in 0..3 {
        run_seed(seed);
    }
}
