//! Lease expiry lateness: when each lease was granted, when its key's DELETE event arrived,
//! and the classification of each arrival.
//!
//! A lease granted with TTL `t` cannot expire before `requested + t` (the server cannot have
//! granted it before it was asked), and is due at `answered + t` at the latest start of its
//! clock that the client can see. So an event that arrives
//!
//! - before `requested + t` is an **early** expiry (recorded as how early, in its own series);
//! - between `requested + t` and `answered + t` is on time: lateness 0 (the server started the
//!   clock between our request and its answer; counted, so the clamping is visible);
//! - after `answered + t` is late by `arrival - (answered + t)`.
//!
//! Leases whose event never arrived count as errors of the lateness series.

use crate::grpc::CallError;
use crate::metrics::LatencyRecorder;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When one lease was asked for and granted, and the TTL the server granted.
#[derive(Debug, Clone, Copy)]
pub struct LeaseTimes {
    pub lease_id: i64,
    pub requested: Instant,
    pub answered: Instant,
    pub ttl: Duration,
}

impl LeaseTimes {
    /// The earliest instant the lease may expire.
    pub fn earliest_expiry(&self) -> Instant {
        self.requested + self.ttl
    }

    /// When the lease is due, seen from the client: its grant's answer plus its TTL.
    pub fn due(&self) -> Instant {
        self.answered + self.ttl
    }
}

/// The leases of one run by the key attached to each (shared by the granting clients).
#[derive(Clone, Default)]
pub struct LeaseLog {
    leases: Arc<Mutex<HashMap<Bytes, LeaseTimes>>>,
}

impl LeaseLog {
    pub fn record(&self, key: Bytes, times: LeaseTimes) {
        // A poisoned lock means a client task panicked, which already aborts the run.
        let mut leases = self.leases.lock().expect("lease log lock");
        leases.insert(key, times);
    }

    pub fn snapshot(&self) -> HashMap<Bytes, LeaseTimes> {
        self.leases.lock().expect("lease log lock").clone()
    }
}

/// What the arrivals of one run say.
pub struct ExpiryFigures {
    /// Lateness of every event not early; errors: leases whose event never arrived.
    pub late: LatencyRecorder,
    /// How early each early expiry arrived.
    pub early: LatencyRecorder,
    /// Events between `requested + ttl` and `answered + ttl`, recorded as lateness 0.
    pub on_time_clamped: u64,
    /// DELETE events for keys of this run without a recorded lease (or seen twice).
    pub unexpected: u64,
    /// The earliest due instant of all leases.
    pub first_due: Option<Instant>,
    /// The last event that matched a lease.
    pub last_arrival: Option<Instant>,
}

impl ExpiryFigures {
    /// From the first lease's due time to the last matched event (zero if none): the span over
    /// which the server expired the leases, so count / span is its expiry rate.
    pub fn span(&self) -> Duration {
        match (self.first_due, self.last_arrival) {
            (Some(first), Some(last)) => last.saturating_duration_since(first),
            _ => Duration::ZERO,
        }
    }
}

/// Classifies the arrivals (`(key, arrival)` of DELETE events) against the leases.
/// `stream_error` explains missing events when the watch failed.
pub fn classify(
    leases: &HashMap<Bytes, LeaseTimes>,
    arrivals: &[(Bytes, Instant)],
    stream_error: Option<&CallError>,
) -> ExpiryFigures {
    let mut figures = ExpiryFigures {
        late: LatencyRecorder::new(),
        early: LatencyRecorder::new(),
        on_time_clamped: 0,
        unexpected: 0,
        first_due: leases.values().map(LeaseTimes::due).min(),
        last_arrival: None,
    };
    let mut seen: HashMap<&Bytes, ()> = HashMap::with_capacity(leases.len());
    for (key, arrived) in arrivals {
        let Some(times) = leases.get(key) else {
            figures.unexpected += 1;
            continue;
        };
        if seen.insert(key, ()).is_some() {
            figures.unexpected += 1;
            continue;
        }
        figures.last_arrival = Some(
            figures
                .last_arrival
                .map_or(*arrived, |last| last.max(*arrived)),
        );
        if *arrived < times.earliest_expiry() {
            figures
                .early
                .record(times.earliest_expiry().duration_since(*arrived));
        } else if *arrived < times.due() {
            figures.on_time_clamped += 1;
            figures.late.record(Duration::ZERO);
        } else {
            figures.late.record(arrived.duration_since(times.due()));
        }
    }
    let missing = leases.len().saturating_sub(seen.len());
    let reason = stream_error.cloned().unwrap_or_else(|| {
        CallError::Protocol("DELETE event not seen before the grace period ended".to_string())
    });
    for _ in 0..missing {
        figures.late.record_error(&reason);
    }
    figures
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(base: Instant, requested_ms: u64, answered_ms: u64) -> LeaseTimes {
        LeaseTimes {
            lease_id: 1,
            requested: base + Duration::from_millis(requested_ms),
            answered: base + Duration::from_millis(answered_ms),
            ttl: Duration::from_secs(5),
        }
    }

    fn key(name: &str) -> Bytes {
        Bytes::from(name.to_string())
    }

    #[test]
    fn arrivals_are_late_clamped_or_early() {
        let base = Instant::now();
        let mut leases = HashMap::new();
        leases.insert(key("late"), lease(base, 0, 10));
        leases.insert(key("clamped"), lease(base, 0, 10));
        leases.insert(key("early"), lease(base, 0, 10));
        leases.insert(key("missing"), lease(base, 0, 10));
        let at = |ms: u64| base + Duration::from_millis(ms);
        let arrivals = vec![
            (key("late"), at(5_010 + 250)),
            (key("clamped"), at(5_005)),
            (key("early"), at(4_900)),
            (key("late"), at(9_000)),
            (key("stranger"), at(5_000)),
        ];
        let figures = classify(&leases, &arrivals, None);
        assert_eq!(figures.late.count(), 2);
        assert_eq!(figures.late.errors(), 1);
        assert_eq!(figures.on_time_clamped, 1);
        assert_eq!(figures.early.count(), 1);
        assert_eq!(figures.unexpected, 2);
        let max_late_us = figures.late.histogram().max();
        assert!((249_000..=251_000).contains(&max_late_us), "{max_late_us}");
        let early_us = figures.early.histogram().max();
        assert!((99_000..=101_000).contains(&early_us), "{early_us}");
        assert_eq!(figures.span(), Duration::from_millis(250));
    }

    #[test]
    fn a_failed_watch_names_the_missing_events() {
        let base = Instant::now();
        let mut leases = HashMap::new();
        leases.insert(key("a"), lease(base, 0, 1));
        let failure = CallError::Protocol("watch canceled".to_string());
        let figures = classify(&leases, &[], Some(&failure));
        assert_eq!(figures.late.errors(), 1);
        assert!(figures
            .late
            .error_kinds()
            .contains_key(&failure.to_string()));
        assert_eq!(figures.span(), Duration::ZERO);
    }
}
