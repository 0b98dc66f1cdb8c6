//! The figures reported for one series, computed from its recorder: count, errors,
//! throughput, mean and percentiles in milliseconds, and the latency-by-percentile curve that
//! `--plot` draws.

use super::LatencyRecorder;
use crate::limits::CURVE_NINES_STEP;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Latency figures, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LatencyFigures {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    #[serde(rename = "p99.9")]
    pub p99_9: f64,
    #[serde(rename = "p99.99")]
    pub p99_99: f64,
    pub max: f64,
}

/// One point of the latency-by-percentile curve.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CurvePoint {
    pub percentile: f64,
    pub latency_ms: f64,
}

/// Everything reported about one series.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeriesSummary {
    pub name: String,
    /// Successful calls measured.
    pub count: u64,
    pub errors: u64,
    /// Error messages and how often each was seen.
    pub error_kinds: Vec<(String, u64)>,
    /// Wall time of the measured phase, in seconds.
    pub elapsed_s: f64,
    /// Successful calls per second of `elapsed_s`.
    pub throughput_ops_per_s: f64,
    pub latency_ms: LatencyFigures,
    pub curve: Vec<CurvePoint>,
}

fn micros_to_ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

impl SeriesSummary {
    pub fn from_recorder(name: &str, recorder: &LatencyRecorder, elapsed: Duration) -> Self {
        let histogram = recorder.histogram();
        let count = recorder.count();
        let at = |percentile: f64| micros_to_ms(histogram.value_at_percentile(percentile));
        let latency_ms = if count == 0 {
            LatencyFigures::default()
        } else {
            LatencyFigures {
                mean: histogram.mean() / 1000.0,
                p50: at(50.0),
                p90: at(90.0),
                p99: at(99.0),
                p99_9: at(99.9),
                p99_99: at(99.99),
                max: micros_to_ms(histogram.max()),
            }
        };
        let elapsed_s = elapsed.as_secs_f64();
        let throughput_ops_per_s = if elapsed_s > 0.0 {
            count as f64 / elapsed_s
        } else {
            0.0
        };
        SeriesSummary {
            name: name.to_string(),
            count,
            errors: recorder.errors(),
            error_kinds: recorder
                .error_kinds()
                .iter()
                .map(|(message, count)| (message.clone(), *count))
                .collect(),
            elapsed_s,
            throughput_ops_per_s,
            latency_ms,
            curve: curve(recorder),
        }
    }
}

/// Points from p0 to the last percentile the sample size can resolve (1 - 1/count), evenly
/// spaced in "nines" (-log10(1 - p)), then the maximum.
fn curve(recorder: &LatencyRecorder) -> Vec<CurvePoint> {
    let histogram = recorder.histogram();
    let count = recorder.count();
    if count == 0 {
        return Vec::new();
    }
    let nines_max = (count as f64).log10().max(1.0);
    let steps = (nines_max / CURVE_NINES_STEP).ceil() as u64;
    let mut points = Vec::with_capacity(steps as usize + 2);
    for step in 0..=steps {
        let nines = (step as f64 * CURVE_NINES_STEP).min(nines_max);
        let percentile = 100.0 * (1.0 - 10f64.powf(-nines));
        points.push(CurvePoint {
            percentile,
            latency_ms: micros_to_ms(histogram.value_at_percentile(percentile)),
        });
    }
    points.push(CurvePoint {
        percentile: 100.0,
        latency_ms: micros_to_ms(histogram.max()),
    });
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_follow_the_recorded_latencies() {
        let mut recorder = LatencyRecorder::new();
        for millis in 1..=1000u64 {
            recorder.record(Duration::from_millis(millis));
        }
        let summary = SeriesSummary::from_recorder("put", &recorder, Duration::from_secs(2));
        assert_eq!(summary.count, 1000);
        assert!((summary.throughput_ops_per_s - 500.0).abs() < 1e-9);
        let figures = &summary.latency_ms;
        assert!((figures.p50 - 500.0).abs() < 1.0, "{figures:?}");
        assert!((figures.p99 - 990.0).abs() < 1.0, "{figures:?}");
        assert!((figures.max - 1000.0).abs() < 1.0, "{figures:?}");
        let last = summary.curve.last().map(|point| point.percentile);
        assert_eq!(last, Some(100.0));
        assert!(summary
            .curve
            .windows(2)
            .all(|pair| pair[0].latency_ms <= pair[1].latency_ms));
    }

    #[test]
    fn an_empty_series_reports_zeros() {
        let summary = SeriesSummary::from_recorder("x", &LatencyRecorder::new(), Duration::ZERO);
        assert_eq!(summary.count, 0);
        assert!(summary.curve.is_empty());
        assert_eq!(summary.throughput_ops_per_s, 0.0);
    }
}
