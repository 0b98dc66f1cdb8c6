//! Sync throughput measurement; run with
//! `cargo test -p capstan-wal --release --test bench -- --ignored --nocapture`.

mod common;

use std::time::{Duration, Instant};

use capstan_wal::{Wal, WalConfig};
use common::run;

const BENCH_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
const BENCH_DURATION_MS: u64 = 1500;
const BENCH_PAYLOAD_BYTES: usize = 100;

#[test]
#[ignore]
fn sync_throughput() {
    run(|| async {
        for batch in [1usize, 16, 256] {
            let tmp = tempfile::tempdir().unwrap();
            let config = WalConfig {
                dir: tmp.path().to_path_buf(),
                segment_bytes: BENCH_SEGMENT_BYTES,
            };
            let (mut wal, _) = Wal::open(config).await.unwrap();
            let payload = vec![0xABu8; BENCH_PAYLOAD_BYTES];
            let start = Instant::now();
            let mut syncs = 0u64;
            while start.elapsed() < Duration::from_millis(BENCH_DURATION_MS) {
                for _ in 0..batch {
                    wal.append(1, &payload).unwrap();
                }
                wal.sync().await.unwrap();
                syncs += 1;
            }
            let secs = start.elapsed().as_secs_f64();
            println!(
                "batch {batch:>3} x {BENCH_PAYLOAD_BYTES} B: {:>8.0} syncs/s, {:>9.0} records/s, {} segments",
                syncs as f64 / secs,
                (syncs * batch as u64) as f64 / secs,
                wal.segment_count()
            );
        }
    });
}

/// How long `Wal::open` takes on a default-sized (64 MiB) segment holding a few records: the
/// start-up cost of a restarted member. Run as the test above.
#[test]
#[ignore]
fn reopen_time() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let config = WalConfig::new(tmp.path().to_path_buf());
        {
            let (mut wal, _) = Wal::open(config.clone()).await.unwrap();
            for _ in 0..50 {
                wal.append(1, &[0xABu8; BENCH_PAYLOAD_BYTES]).unwrap();
            }
            wal.sync().await.unwrap();
        }
        for round in 0..5 {
            let start = Instant::now();
            let (_wal, recovered) = Wal::open(config.clone()).await.unwrap();
            println!(
                "reopen {round}: {} records in {:.1} ms",
                recovered.records.len(),
                start.elapsed().as_secs_f64() * 1000.0
            );
        }
    });
}
