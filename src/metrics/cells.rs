//! The storage cells of one thread's metrics: counters, gauges and histograms that only their
//! own thread writes.
//!
//! Every cell is an atomic so that the scraping thread may read it, but the owning thread never
//! uses a read-modify-write instruction: it loads, adds and stores (two plain `mov`s on x86), so
//! counting costs what a `Cell<u64>` would and no cache line bounces between cores except when
//! a scrape reads it, once per scrape. This is correct only because exactly one thread writes a
//! cell; [`super::thread`] guarantees that by keeping each thread's cells in its thread-local.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// A monotonic count written by one thread.
#[derive(Debug, Default)]
pub struct Tally(AtomicU64);

impl Tally {
    /// Adds `amount`. Only the owning thread calls this.
    #[inline]
    pub fn add(&self, amount: u64) {
        let value = self.0.load(Ordering::Relaxed);
        self.0.store(value.wrapping_add(amount), Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Adds another thread's value into this one (used under the registry's lock, when a
    /// thread ends and its counts are folded into the retired totals).
    pub(super) fn absorb(&self, amount: u64) {
        self.0.fetch_add(amount, Ordering::Relaxed);
    }
}

/// A gauge one thread moves up and down (its part of a process-wide sum).
#[derive(Debug, Default)]
pub struct Level(AtomicI64);

impl Level {
    #[inline]
    pub fn add(&self, delta: i64) {
        let value = self.0.load(Ordering::Relaxed);
        self.0.store(value.wrapping_add(delta), Ordering::Relaxed);
    }

    #[inline]
    pub fn set(&self, value: i64) {
        self.0.store(value, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The most buckets (without `+Inf`) any histogram here has (etcd's backend snapshot: 17).
pub const BUCKETS_MAX: usize = 17;

/// Upper bounds of a histogram's buckets, as Prometheus's Go client defines them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Buckets {
    pub first: f64,
    pub factor: f64,
    pub count: usize,
}

impl Buckets {
    /// Go's `prometheus.ExponentialBuckets(first, factor, count)`.
    pub const fn exponential(first: f64, factor: f64, count: usize) -> Buckets {
        assert!(count <= BUCKETS_MAX);
        Buckets {
            first,
            factor,
            count,
        }
    }

    /// The upper bound of bucket `index`, computed as Go computes it (repeated
    /// multiplication), so the `le` labels print the same.
    pub fn bound(&self, index: usize) -> f64 {
        let mut bound = self.first;
        for _ in 0..index {
            bound *= self.factor;
        }
        bound
    }

    /// The index of the first bucket whose bound is at least `value` (`count` for `+Inf`).
    #[inline]
    pub fn index_of(&self, value: f64) -> usize {
        let mut bound = self.first;
        for index in 0..self.count {
            if value <= bound {
                return index;
            }
            bound *= self.factor;
        }
        self.count
    }
}

/// Go's `prometheus.DefBuckets` (grpc_server_handling_seconds), which are not exponential.
pub const DEFAULT_BUCKETS_SECONDS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One thread's part of a histogram: a count per bucket (not cumulative; the last is `+Inf`),
/// the sum of the observed values and their number.
#[derive(Debug, Default)]
pub struct HistogramCells {
    pub buckets: [Tally; BUCKETS_MAX + 1],
    /// The sum, as the bits of an `f64`.
    sum_bits: AtomicU64,
    pub count: Tally,
}

impl HistogramCells {
    /// Records `value` in bucket `bucket`. Only the owning thread calls this.
    #[inline]
    pub fn record(&self, bucket: usize, value: f64) {
        self.buckets[bucket.min(BUCKETS_MAX)].add(1);
        let sum = f64::from_bits(self.sum_bits.load(Ordering::Relaxed)) + value;
        self.sum_bits.store(sum.to_bits(), Ordering::Relaxed);
        self.count.add(1);
    }

    pub fn sum(&self) -> f64 {
        f64::from_bits(self.sum_bits.load(Ordering::Relaxed))
    }

    /// Adds another histogram's counts into this one (scrape-time sums and retired threads;
    /// callers serialize these).
    pub fn absorb(&self, other: &HistogramCells) {
        for (mine, theirs) in self.buckets.iter().zip(&other.buckets) {
            mine.absorb(theirs.get());
        }
        let sum = self.sum() + other.sum();
        self.sum_bits.store(sum.to_bits(), Ordering::Relaxed);
        self.count.absorb(other.count.get());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_bounds_print_as_gos() {
        let fsync = Buckets::exponential(0.001, 2.0, 14);
        assert_eq!(fsync.bound(0), 0.001);
        assert_eq!(fsync.bound(13), 8.192);
        assert_eq!(fsync.index_of(0.0005), 0);
        assert_eq!(fsync.index_of(0.001), 0);
        assert_eq!(fsync.index_of(0.0011), 1);
        assert_eq!(fsync.index_of(100.0), 14);
    }

    #[test]
    fn histogram_cells_add_up() {
        let cells = HistogramCells::default();
        cells.record(0, 0.5);
        cells.record(3, 1.5);
        let total = HistogramCells::default();
        total.absorb(&cells);
        total.absorb(&cells);
        assert_eq!(total.count.get(), 4);
        assert_eq!(total.sum(), 4.0);
        assert_eq!(total.buckets[3].get(), 2);
    }
}
