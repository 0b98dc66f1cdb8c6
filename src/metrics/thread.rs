//! Each thread's metrics, and their sum at scrape time.
//!
//! A thread's [`ThreadMetrics`] lives in an `Arc` held by its thread-local and by the process's
//! registry. The thread writes it (see `cells` for why that needs no read-modify-write); a
//! scrape locks the registry, which only thread start, thread exit and scrapes take, and adds
//! every thread's cells into a fresh `ThreadMetrics`. A thread that ends folds its cells into
//! the registry's `retired` totals so counters never go down and the registry stays bounded
//! when short-lived threads (defrags) count.

use super::cells::{HistogramCells, Level, Tally};
use super::grpc::{MethodCells, METHODS};
use super::series::{Counter, Gauge, Histogram};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Peers one thread keeps counts for; counts for more are dropped (etcd clusters have at most
/// a handful of members).
pub const PEER_SLOTS: usize = 16;

/// One thread's counts for one peer (`id` 0: a free slot).
#[derive(Debug, Default)]
pub struct PeerCells {
    id: AtomicU64,
    pub sent_bytes: Tally,
    pub received_bytes: Tally,
    pub sent_failures: Tally,
    pub round_trip_seconds: HistogramCells,
}

impl PeerCells {
    pub fn id(&self) -> u64 {
        self.id.load(Ordering::Relaxed)
    }

    fn absorb(&self, other: &PeerCells) {
        self.sent_bytes.absorb(other.sent_bytes.get());
        self.received_bytes.absorb(other.received_bytes.get());
        self.sent_failures.absorb(other.sent_failures.get());
        self.round_trip_seconds.absorb(&other.round_trip_seconds);
    }
}

/// Everything one thread counts.
#[derive(Debug)]
pub struct ThreadMetrics {
    /// The shard this thread runs (from its name, `shard-N-ID`), for the per-shard series.
    pub shard: Option<usize>,
    pub counters: [Tally; Counter::COUNT],
    pub gauges: [Level; Gauge::COUNT],
    pub histograms: [HistogramCells; Histogram::COUNT],
    pub methods: [MethodCells; METHODS.len()],
    pub peers: [PeerCells; PEER_SLOTS],
}

impl ThreadMetrics {
    fn new(shard: Option<usize>) -> ThreadMetrics {
        ThreadMetrics {
            shard,
            counters: Default::default(),
            gauges: Default::default(),
            histograms: Default::default(),
            methods: std::array::from_fn(|_| MethodCells::default()),
            peers: Default::default(),
        }
    }

    pub fn counter(&self, counter: Counter) -> &Tally {
        &self.counters[counter as usize]
    }

    pub fn gauge(&self, gauge: Gauge) -> &Level {
        &self.gauges[gauge as usize]
    }

    pub fn histogram(&self, histogram: Histogram) -> &HistogramCells {
        &self.histograms[histogram as usize]
    }

    /// This thread's cells for `peer`, claiming a free slot the first time; `None` when every
    /// slot is taken. Only the owning thread calls this (it alone writes the ids).
    pub fn peer(&self, peer: u64) -> Option<&PeerCells> {
        if let Some(cells) = self.peers.iter().find(|cells| cells.id() == peer) {
            return Some(cells);
        }
        let free = self.peers.iter().find(|cells| cells.id() == 0)?;
        free.id.store(peer, Ordering::Relaxed);
        Some(free)
    }

    /// Adds `other`'s cells into these (callers serialize: the registry's lock, or a sum
    /// nobody else sees yet).
    fn absorb(&self, other: &ThreadMetrics) {
        for (mine, theirs) in self.counters.iter().zip(&other.counters) {
            mine.absorb(theirs.get());
        }
        for (mine, theirs) in self.gauges.iter().zip(&other.gauges) {
            mine.set(mine.get() + theirs.get());
        }
        for (mine, theirs) in self.histograms.iter().zip(&other.histograms) {
            mine.absorb(theirs);
        }
        for (mine, theirs) in self.methods.iter().zip(&other.methods) {
            mine.started.absorb(theirs.started.get());
            for (code, count) in mine.handled.iter().zip(&theirs.handled) {
                code.absorb(count.get());
            }
            mine.received_messages
                .absorb(theirs.received_messages.get());
            mine.sent_messages.absorb(theirs.sent_messages.get());
            mine.handling_seconds.absorb(&theirs.handling_seconds);
        }
        for theirs in other.peers.iter().filter(|cells| cells.id() != 0) {
            if let Some(mine) = self.peer(theirs.id()) {
                mine.absorb(theirs);
            }
        }
    }
}

struct Registry {
    live: Vec<Arc<ThreadMetrics>>,
    retired: ThreadMetrics,
}

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        Mutex::new(Registry {
            live: Vec::new(),
            retired: ThreadMetrics::new(None),
        })
    })
}

/// The thread-local handle: registers on first use, retires on thread exit.
pub(super) struct Local {
    pub metrics: Arc<ThreadMetrics>,
}

impl Local {
    pub(super) fn register() -> Local {
        // glommio names an executor's thread `NAME-ID`: the shards' are `shard-N-ID`.
        let shard = std::thread::current()
            .name()
            .and_then(|name| name.strip_prefix("shard-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|number| number.parse().ok());
        let metrics = Arc::new(ThreadMetrics::new(shard));
        if let Ok(mut registry) = registry().lock() {
            registry.live.push(metrics.clone());
        }
        Local { metrics }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        if let Ok(mut registry) = registry().lock() {
            registry
                .live
                .retain(|live| !Arc::ptr_eq(live, &self.metrics));
            registry.retired.absorb(&self.metrics);
        }
    }
}

/// The process's sum at one instant, and each shard's own counters and gauges.
pub struct Totals {
    pub all: ThreadMetrics,
    pub shards: BTreeMap<usize, ThreadMetrics>,
}

/// Sums every thread's metrics.
pub fn totals() -> Totals {
    let totals = Totals {
        all: ThreadMetrics::new(None),
        shards: BTreeMap::new(),
    };
    let Ok(registry) = registry().lock() else {
        return totals;
    };
    let mut totals = totals;
    totals.all.absorb(&registry.retired);
    for live in &registry.live {
        totals.all.absorb(live);
        if let Some(shard) = live.shard {
            let own = totals
                .shards
                .entry(shard)
                .or_insert_with(|| ThreadMetrics::new(Some(shard)));
            own.absorb(live);
        }
    }
    totals
}
