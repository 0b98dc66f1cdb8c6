//! Latencies of one series in an HDR histogram with fixed bounds (1 µs .. 60 s, 3 significant
//! figures, values in microseconds), plus the errors seen.
//!
//! Fixed bounds make histograms of different clients, rounds and runs addable, and keep the
//! memory of a recorder constant however long the run.

use crate::grpc::CallError;
use crate::limits::{
    ERROR_KINDS_MAX, HISTOGRAM_SIGNIFICANT_FIGURES, LATENCY_US_MAX, LATENCY_US_MIN,
};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::time::Duration;

/// Label under which errors beyond [`ERROR_KINDS_MAX`] distinct messages are counted.
const OTHER_ERRORS: &str = "(other errors)";

#[derive(Clone)]
pub struct LatencyRecorder {
    histogram: Histogram<u64>,
    errors: u64,
    error_kinds: BTreeMap<String, u64>,
    first_error: Option<CallError>,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyRecorder {
    pub fn new() -> LatencyRecorder {
        // The bounds are constants that satisfy hdrhistogram's rules (low >= 1,
        // high >= 2 * low, sigfig <= 5): construction cannot fail.
        let histogram = Histogram::new_with_bounds(
            LATENCY_US_MIN,
            LATENCY_US_MAX,
            HISTOGRAM_SIGNIFICANT_FIGURES,
        )
        .expect("constant histogram bounds are valid");
        LatencyRecorder {
            histogram,
            errors: 0,
            error_kinds: BTreeMap::new(),
            first_error: None,
        }
    }

    /// Records one successful call's latency; values outside the bounds are clamped to them.
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let clamped = micros.clamp(LATENCY_US_MIN, LATENCY_US_MAX);
        self.histogram.saturating_record(clamped);
    }

    /// Counts one failed call under its message.
    pub fn record_error(&mut self, error: &CallError) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(error.clone());
        }
        let message = error.to_string();
        if self.error_kinds.contains_key(&message) || self.error_kinds.len() < ERROR_KINDS_MAX {
            *self.error_kinds.entry(message).or_insert(0) += 1;
        } else {
            *self
                .error_kinds
                .entry(OTHER_ERRORS.to_string())
                .or_insert(0) += 1;
        }
    }

    /// Adds another recorder's figures to this one.
    pub fn merge(&mut self, other: &LatencyRecorder) {
        // Same fixed bounds on both sides: adding cannot go out of range.
        self.histogram
            .add(&other.histogram)
            .expect("histograms share fixed bounds");
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error.clone();
        }
        for (message, count) in &other.error_kinds {
            *self.error_kinds.entry(message.clone()).or_insert(0) += count;
        }
    }

    pub fn histogram(&self) -> &Histogram<u64> {
        &self.histogram
    }

    /// Successful calls recorded.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// The first error recorded, to explain a run in which every call failed.
    pub fn first_error(&self) -> Option<&CallError> {
        self.first_error.as_ref()
    }

    pub fn error_kinds(&self) -> &BTreeMap<String, u64> {
        &self.error_kinds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_bounds_latencies_are_clamped_not_lost() {
        let mut recorder = LatencyRecorder::new();
        recorder.record(Duration::from_nanos(10));
        recorder.record(Duration::from_secs(3600));
        assert_eq!(recorder.count(), 2);
        assert_eq!(recorder.histogram().min(), LATENCY_US_MIN);
        assert!(recorder.histogram().max() >= LATENCY_US_MAX);
    }

    #[test]
    fn error_kinds_are_bounded() {
        let mut recorder = LatencyRecorder::new();
        for index in 0..(ERROR_KINDS_MAX + 5) {
            recorder.record_error(&CallError::Transport(format!("error {index}")));
        }
        assert_eq!(recorder.errors(), (ERROR_KINDS_MAX + 5) as u64);
        assert_eq!(recorder.error_kinds().len(), ERROR_KINDS_MAX + 1);
        assert_eq!(recorder.error_kinds().get(OTHER_ERRORS), Some(&5));
    }

    #[test]
    fn merging_adds_counts() {
        let mut left = LatencyRecorder::new();
        let mut right = LatencyRecorder::new();
        left.record(Duration::from_millis(1));
        right.record(Duration::from_millis(2));
        right.record_error(&CallError::Timeout(Duration::from_secs(1)));
        left.merge(&right);
        assert_eq!((left.count(), left.errors()), (2, 1));
    }
}
