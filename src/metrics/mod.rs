//! Counting for `/metrics`: per-thread counters written on the hot paths, summed at scrape
//! time.
//!
//! Shards share nothing mutable, and a counter must not become the one thing they do. So each
//! thread (every shard's executor, the page store's writer, a defrag thread) counts into its
//! own [`ThreadMetrics`], with plain loads and stores on cells only it writes (`cells`); a
//! scrape adds every thread's cells up (`thread::totals`). The cost on a hot path is a
//! thread-local lookup and a few stores; the cost of a scrape grows with the number of threads,
//! not with the traffic.
//!
//! What is counted where:
//! - gRPC calls (`grpc_server_*`, client bytes): `grpc::call`, on the shard serving the call;
//! - MVCC operations (`etcd_mvcc_*`): `mvcc`, on the shard that applies or reads;
//! - raft proposals, applies and heartbeats (`etcd_server_*`): `raft::group`, on the owner;
//! - WAL fsyncs and group-commit sizes: `raft::log_store` (the WAL crate reports each
//!   fdatasync's duration through a function pointer, `WalConfig::fdatasync_observer`);
//! - page store commits, defrags, snapshots (`etcd_disk_backend_*`): `durable::writer` and
//!   `server::snapshot`;
//! - peer traffic (`etcd_network_peer_*`): `peer`, on the owner shard;
//! - watchers (`etcd_debugging_mvcc_*watch*`, catch-ups): `watch::hub`, per shard.
//!
//! The names, help texts, label names and buckets of the `etcd_*`, `grpc_*` series are etcd
//! 3.6's; rendering them is `http::metrics`'.

mod cells;
pub mod grpc;
pub mod series;
mod thread;

pub use cells::{Buckets, HistogramCells, DEFAULT_BUCKETS_SECONDS};
pub use grpc::MethodId;
pub use series::{Counter, Gauge, Histogram};
pub use thread::{totals, PeerCells, ThreadMetrics, Totals};

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

thread_local! {
    static LOCAL: thread::Local = thread::Local::register();
}

/// Runs `count` on this thread's metrics (nothing while the thread is being torn down).
#[inline]
pub fn with<R>(count: impl FnOnce(&ThreadMetrics) -> R) -> Option<R> {
    LOCAL.try_with(|local| count(&local.metrics)).ok()
}

#[inline]
pub fn count(counter: Counter, amount: u64) {
    with(|metrics| metrics.counter(counter).add(amount));
}

#[inline]
pub fn gauge_add(gauge: Gauge, delta: i64) {
    with(|metrics| metrics.gauge(gauge).add(delta));
}

/// Sets this thread's part of `gauge` (the exported value is the sum over threads).
#[inline]
pub fn gauge_set(gauge: Gauge, value: i64) {
    with(|metrics| metrics.gauge(gauge).set(value));
}

#[inline]
pub fn observe(histogram: Histogram, value: f64) {
    let bucket = histogram.buckets().index_of(value);
    with(|metrics| metrics.histogram(histogram).record(bucket, value));
}

#[inline]
pub fn observe_duration(histogram: Histogram, elapsed: Duration) {
    observe(histogram, elapsed.as_secs_f64());
}

/// The WAL's fdatasync observer (`capstan_wal::WalConfig::fdatasync_observer`).
pub fn observe_wal_fdatasync(elapsed: Duration) {
    observe_duration(Histogram::WalFsyncSeconds, elapsed);
}

static EXTENSIVE: AtomicBool = AtomicBool::new(false);

/// `--metrics extensive`: also time every gRPC call (`grpc_server_handling_seconds`).
pub fn set_extensive(extensive: bool) {
    EXTENSIVE.store(extensive, Ordering::Relaxed);
}

pub fn is_extensive() -> bool {
    EXTENSIVE.load(Ordering::Relaxed)
}

/// One gRPC call, from its first request message to its status: counts it as
/// go-grpc-prometheus's server interceptors do.
pub struct CallTally {
    method: Option<MethodId>,
    started_at: Option<Instant>,
}

impl CallTally {
    /// A call of `method` (`None`: a path with no row; it is not counted) starts.
    pub fn start(method: Option<MethodId>) -> CallTally {
        if let Some(method) = method {
            with(|metrics| {
                metrics.methods[usize::from(method.0)].started.add(1);
                metrics.gauge(Gauge::CallsInFlight).add(1);
            });
        }
        CallTally {
            method,
            started_at: (method.is_some() && is_extensive()).then(Instant::now),
        }
    }

    /// A request message of `bytes` bytes was received on a call of `method`.
    #[inline]
    pub fn received(method: Option<MethodId>, bytes: usize) {
        if let Some(method) = method {
            with(|metrics| {
                metrics.methods[usize::from(method.0)]
                    .received_messages
                    .add(1);
                metrics
                    .counter(Counter::ClientGrpcReceivedBytes)
                    .add(bytes as u64);
            });
        }
    }

    /// `messages` response messages of `bytes` bytes in all were sent on a call of `method`.
    #[inline]
    pub fn sent(method: Option<MethodId>, messages: u64, bytes: usize) {
        if let Some(method) = method {
            with(|metrics| {
                metrics.methods[usize::from(method.0)]
                    .sent_messages
                    .add(messages);
                metrics
                    .counter(Counter::ClientGrpcSentBytes)
                    .add(bytes as u64);
            });
        }
    }

    /// The call ended with gRPC status `code` (0 to 16).
    pub fn handled(self, code: u8) {
        let Some(method) = self.method else {
            return;
        };
        let elapsed = self.started_at.map(|started| started.elapsed());
        with(|metrics| {
            let cells = &metrics.methods[usize::from(method.0)];
            cells.handled[usize::from(code).min(grpc::CODE_COUNT - 1)].add(1);
            metrics.gauge(Gauge::CallsInFlight).add(-1);
            if let Some(elapsed) = elapsed {
                let seconds = elapsed.as_secs_f64();
                cells
                    .handling_seconds
                    .record(grpc::default_bucket_of(seconds), seconds);
            }
        });
    }
}

/// Peer traffic, counted on the thread that moves the bytes.
pub fn peer_sent(peer: u64, bytes: usize) {
    with(|metrics| {
        if let Some(cells) = metrics.peer(peer) {
            cells.sent_bytes.add(bytes as u64);
        }
    });
}

pub fn peer_received(peer: u64, bytes: usize) {
    with(|metrics| {
        if let Some(cells) = metrics.peer(peer) {
            cells.received_bytes.add(bytes as u64);
        }
    });
}

/// `messages` messages for `peer` were dropped (a full queue) or lost with a failed write.
pub fn peer_send_failed(peer: u64, messages: u64) {
    with(|metrics| {
        if let Some(cells) = metrics.peer(peer) {
            cells.sent_failures.add(messages);
        }
    });
}

/// etcd's `etcd_network_peer_round_trip_time_seconds` buckets: 100 µs to 0.8192 s.
pub const PEER_ROUND_TRIP_BUCKETS: Buckets = Buckets::exponential(0.0001, 2.0, 14);

pub fn peer_round_trip(peer: u64, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    let bucket = PEER_ROUND_TRIP_BUCKETS.index_of(seconds);
    with(|metrics| {
        if let Some(cells) = metrics.peer(peer) {
            cells.round_trip_seconds.record(bucket, seconds);
        }
    });
}
