//! `--sample`: completions and latency per second of the measured phase, to see a stall or a
//! slow start that the percentiles hide.

use crate::limits::SAMPLE_SECONDS_MAX;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    count: u64,
    latency_us_sum: u64,
    latency_us_max: u64,
}

/// Per-second buckets from a start instant; the last bucket takes everything past
/// [`SAMPLE_SECONDS_MAX`].
#[derive(Debug, Clone)]
pub struct SecondBuckets {
    start: Instant,
    buckets: Vec<Bucket>,
}

/// One printed sample.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SampleRow {
    pub second: u64,
    pub count: u64,
    pub mean_ms: f64,
    pub max_ms: f64,
}

impl SecondBuckets {
    pub fn new(start: Instant) -> SecondBuckets {
        SecondBuckets {
            start,
            buckets: Vec::new(),
        }
    }

    /// Records a call that completed at `end` after `latency`.
    pub fn record(&mut self, end: Instant, latency: Duration) {
        let second = end.saturating_duration_since(self.start).as_secs() as usize;
        let index = second.min(SAMPLE_SECONDS_MAX - 1);
        if self.buckets.len() <= index {
            self.buckets.resize(index + 1, Bucket::default());
        }
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let bucket = &mut self.buckets[index];
        bucket.count += 1;
        bucket.latency_us_sum = bucket.latency_us_sum.saturating_add(micros);
        bucket.latency_us_max = bucket.latency_us_max.max(micros);
    }

    /// Adds buckets recorded from the same start.
    pub fn merge(&mut self, other: &SecondBuckets) {
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), Bucket::default());
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            mine.count += theirs.count;
            mine.latency_us_sum = mine.latency_us_sum.saturating_add(theirs.latency_us_sum);
            mine.latency_us_max = mine.latency_us_max.max(theirs.latency_us_max);
        }
    }

    pub fn rows(&self) -> Vec<SampleRow> {
        self.buckets
            .iter()
            .enumerate()
            .map(|(second, bucket)| SampleRow {
                second: second as u64,
                count: bucket.count,
                mean_ms: if bucket.count == 0 {
                    0.0
                } else {
                    bucket.latency_us_sum as f64 / bucket.count as f64 / 1000.0
                },
                max_ms: bucket.latency_us_max as f64 / 1000.0,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_land_in_their_second() {
        let start = Instant::now();
        let mut buckets = SecondBuckets::new(start);
        buckets.record(start + Duration::from_millis(100), Duration::from_millis(2));
        buckets.record(
            start + Duration::from_millis(2500),
            Duration::from_millis(4),
        );
        let mut other = SecondBuckets::new(start);
        other.record(start + Duration::from_millis(200), Duration::from_millis(4));
        buckets.merge(&other);
        let rows = buckets.rows();
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[0].count, rows[1].count, rows[2].count), (2, 0, 1));
        assert!((rows[0].mean_ms - 3.0).abs() < 1e-9);
        assert!((rows[0].max_ms - 4.0).abs() < 1e-9);
    }
}
