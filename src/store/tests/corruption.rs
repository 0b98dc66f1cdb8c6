//! Damaged bytes on disk: each is reported as corruption naming the file and the byte offset
//! of the damaged page, never served as data; resealed garbage never panics.

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::support::open_fast;
use crate::store::page::{seal, PageType, PAGE_BYTES};
use crate::store::{Store, StoreError, StoreOptions, WriteBatch};

const BIG_VALUE_BYTES: usize = 100_000;

/// A store with enough keys for a few levels, one overflow value, and a freelist.
fn build(dir: &Path) -> PathBuf {
    let path = dir.join("pages.db");
    let store = open_fast(&path);
    for round in 0..3u32 {
        let mut batch = WriteBatch::new();
        for index in 0..2000u32 {
            let value = format!("value-{round}-{index}").repeat(3);
            batch
                .put(format!("key/{index:05}").as_bytes(), value.as_bytes())
                .expect("put");
        }
        batch
            .put(b"big", &vec![round as u8; BIG_VALUE_BYTES])
            .expect("put");
        store.commit(&batch).expect("commit");
    }
    drop(store);
    path
}

/// Ids of the pages of one type, by their header byte.
fn pages_of_type(image: &[u8], page_type: PageType) -> Vec<u64> {
    (2..image.len() / PAGE_BYTES)
        .filter(|&page| image[page * PAGE_BYTES + 4] == page_type as u8)
        .map(|page| page as u64)
        .collect()
}

fn flip(path: &Path, offset_bytes: usize) {
    let mut image = std::fs::read(path).expect("read");
    image[offset_bytes] ^= 0x5a;
    std::fs::write(path, image).expect("write");
}

fn assert_corruption_at(error: StoreError, path: &Path, offset_bytes: u64) {
    match &error {
        StoreError::Corruption {
            path: error_path,
            offset_bytes: at,
            ..
        } => {
            assert_eq!(error_path, path, "{error}");
            assert_eq!(*at, offset_bytes, "{error}");
        }
        other => panic!("expected corruption, got {other}"),
    }
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains(&format!("byte offset {offset_bytes}")),
        "{message}"
    );
}

#[test]
fn corrupt_leaf_is_an_error_with_file_and_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = build(dir.path());
    let store = open_fast(&path);
    let leaf = {
        let read = store.read();
        // The leaf holding key/01000 is on the path of a lookup: find it by its content.
        let image = std::fs::read(&path).expect("read");
        let wanted = b"key/01000";
        let live = pages_of_type(&image, PageType::Leaf)
            .into_iter()
            .filter(|&page| {
                let bytes = &image[page as usize * PAGE_BYTES..(page as usize + 1) * PAGE_BYTES];
                bytes.windows(wanted.len()).any(|w| w == wanted) && read.txn_id() > 0
            });
        // Several versions of that leaf exist (copy-on-write); damage all of them.
        live.collect::<Vec<_>>()
    };
    drop(store);
    assert!(!leaf.is_empty());
    for &page in &leaf {
        flip(&path, page as usize * PAGE_BYTES + 3000);
    }
    let store = open_fast(&path);
    let read = store.read();
    let error = read
        .get(b"key/01000")
        .expect_err("damaged leaf must not be served");
    let StoreError::Corruption { offset_bytes, .. } = &error else {
        panic!("expected corruption, got {error}");
    };
    assert!(leaf
        .iter()
        .any(|&page| page * PAGE_BYTES as u64 == *offset_bytes));
    let offset_bytes = *offset_bytes;
    assert_corruption_at(error, &path, offset_bytes);
    let scan: Result<Vec<_>, _> = read.iter(b"", None).expect("iter").collect();
    assert!(matches!(scan, Err(StoreError::Corruption { .. })));
    // Keys in undamaged leaves still read.
    assert!(read.get(b"key/00000").expect("other leaf").is_some());
}

#[test]
fn corrupt_overflow_run_is_an_error_with_its_first_page_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = build(dir.path());
    let image = std::fs::read(&path).expect("read");
    let runs = pages_of_type(&image, PageType::Overflow);
    assert!(!runs.is_empty());
    // Damage the second page of every run; the live one is among them.
    for &first in &runs {
        flip(&path, (first as usize + 1) * PAGE_BYTES + 100);
    }
    let store = open_fast(&path);
    let error = store
        .read()
        .get(b"big")
        .expect_err("damaged value must not be served");
    let StoreError::Corruption { offset_bytes, .. } = &error else {
        panic!("expected corruption, got {error}");
    };
    let offset_bytes = *offset_bytes;
    assert!(runs
        .iter()
        .any(|&page| page * PAGE_BYTES as u64 == offset_bytes));
    assert_corruption_at(error, &path, offset_bytes);
}

#[test]
fn corrupt_newest_meta_falls_back_and_both_corrupt_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = build(dir.path());
    let store = open_fast(&path);
    let newest = store.read().txn_id();
    drop(store);
    let newest_slot = (newest % 2) as usize;
    flip(&path, newest_slot * PAGE_BYTES + 50);
    let store = open_fast(&path);
    assert_eq!(
        store.read().txn_id(),
        newest - 1,
        "falls back to the previous commit"
    );
    let ignored = store
        .open_report()
        .ignored_meta
        .clone()
        .expect("reports the bad slot");
    assert!(
        ignored.contains(&format!("byte offset {}", newest_slot * PAGE_BYTES)),
        "{ignored}"
    );
    assert!(ignored.contains(&path.display().to_string()), "{ignored}");
    assert_eq!(
        store.read().get(b"big").expect("get"),
        Some(&[1u8; BIG_VALUE_BYTES][..])
    );
    drop(store);
    flip(&path, (1 - newest_slot) * PAGE_BYTES + 60);
    let error = Store::open(&path, StoreOptions::default())
        .err()
        .expect("no valid meta");
    assert_corruption_at(error, &path, 0);
}

#[test]
fn corrupt_freelist_page_fails_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = build(dir.path());
    let store = open_fast(&path);
    let head = store.current_meta().freelist_head;
    drop(store);
    assert_ne!(head, 0, "the workload leaves free pages");
    flip(&path, head as usize * PAGE_BYTES + 40);
    let error = Store::open(&path, StoreOptions::default())
        .err()
        .expect("bad freelist");
    assert_corruption_at(error, &path, head * PAGE_BYTES as u64);
}

/// Random bytes in random tree pages, with the checksum recomputed so the parsers see them:
/// every outcome is fine except a panic.
#[test]
fn resealed_garbage_never_panics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = std::fs::read(build(dir.path())).expect("read");
    let path = dir.path().join("garbage.db");
    for seed in 0..60u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut image = good.clone();
        let candidates: Vec<u64> = [PageType::Leaf, PageType::Branch, PageType::Freelist]
            .into_iter()
            .flat_map(|page_type| pages_of_type(&good, page_type))
            .collect();
        for _ in 0..rng.gen_range(1..4) {
            let page = candidates[rng.gen_range(0..candidates.len())] as usize;
            let bytes = &mut image[page * PAGE_BYTES..(page + 1) * PAGE_BYTES];
            for _ in 0..rng.gen_range(1..8) {
                let at = rng.gen_range(6..PAGE_BYTES);
                bytes[at] = rng.gen();
            }
            seal(bytes);
        }
        std::fs::write(&path, &image).expect("write");
        let Ok(store) = Store::open(&path, StoreOptions::default()) else {
            continue;
        };
        let read = store.read();
        if let Ok(iter) = read.iter(b"", None) {
            for entry in iter.take(10_000) {
                if entry.is_err() {
                    break;
                }
            }
        }
        let _ = read.get(b"key/01234");
        let _ = read.range(b"key/005", Some(b"key/006"), 50);
        drop(read);
        let mut batch = WriteBatch::new();
        for index in (0..2000u32).step_by(7) {
            batch
                .put(format!("key/{index:05}").as_bytes(), b"x")
                .expect("put");
        }
        for index in (0..2000u32).step_by(3) {
            batch
                .delete(format!("key/{index:05}").as_bytes())
                .expect("delete");
        }
        let _ = store.commit(&batch);
    }
}
