//! Shared helpers for the WAL tests: an executor runner, a tiny seeded
//! LCG, and a model of where records land on disk (from FORMAT.md).
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};

use capstan_wal::{segment_file_name, Record, Wal, WalConfig};

/// Small segments so tests rotate often.
pub const TEST_SEGMENT_BYTES: u64 = 64 * 1024;
/// io_uring registered memory per test executor (memlock is 8 MiB/process).
pub const TEST_IO_MEMORY_BYTES: usize = 1 << 20;

/// Runs `f` to completion on a fresh glommio executor thread.
pub fn run<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    glommio::LocalExecutorBuilder::default()
        .io_memory(TEST_IO_MEMORY_BYTES)
        .spawn(f)
        .expect("spawn executor")
        .join()
        .expect("executor thread");
}

/// A tiny deterministic PRNG (Knuth's MMIX LCG).
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Lcg(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }
    /// Uniform-ish in `[0, n)`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
    /// A record with a caller kind and a payload of up to `max_len` bytes.
    pub fn record(&mut self, max_len: usize) -> Record {
        let kind = 1 + self.below(0xEF) as u8;
        let len = self.below(max_len as u64 + 1) as usize;
        Record {
            kind,
            payload: self.bytes(len),
        }
    }
}

pub fn config(dir: &Path) -> WalConfig {
    WalConfig {
        dir: dir.to_path_buf(),
        segment_bytes: TEST_SEGMENT_BYTES,
    }
}

pub fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(segment_file_name(seq))
}

/// Where one record lands: segment seq, start offset, end of its bytes
/// (unpadded), end of its padded slot.
#[derive(Debug, Clone, Copy)]
pub struct Placement {
    pub seq: u64,
    pub start: u64,
    pub end: u64,
    pub padded_end: u64,
}

/// Computes record placement for a WAL that started empty and always used
/// `segment_bytes` segments.
pub fn layout(records: &[Record], segment_bytes: u64) -> Vec<Placement> {
    let header = capstan_wal::SEGMENT_HEADER_BYTES;
    let mut seq = 1;
    let mut at = header;
    records
        .iter()
        .map(|r| {
            let raw = capstan_wal::RECORD_HEADER_BYTES as u64 + r.payload.len() as u64;
            let padded = raw.div_ceil(8) * 8;
            if at + padded > segment_bytes {
                seq += 1;
                at = header;
            }
            let p = Placement {
                seq,
                start: at,
                end: at + raw,
                padded_end: at + padded,
            };
            at += padded;
            p
        })
        .collect()
}

/// Appends `records` in batches of random size, syncing after each batch.
pub async fn append_in_batches(wal: &mut Wal, records: &[Record], rng: &mut Lcg, batch_max: u64) {
    let mut i = 0;
    while i < records.len() {
        let n = (1 + rng.below(batch_max)) as usize;
        let batch = &records[i..(i + n).min(records.len())];
        for r in batch {
            wal.append(r.kind, &r.payload).expect("append");
        }
        let stats = wal.sync().await.expect("sync");
        assert_eq!(stats.records, batch.len() as u64);
        assert_eq!(wal.pending_bytes(), 0);
        i += batch.len();
    }
}
