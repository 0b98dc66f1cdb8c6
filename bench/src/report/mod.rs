//! What a run reports and how: the [`Report`] of one run (settings, figures per series,
//! notes), printed as a table for people ([`table`]) or as JSON / CSV for machines ([`csv`];
//! JSON is the serde form of [`Report`] and [`crate::compare::Comparison`]).

pub mod csv;
pub mod table;

use crate::metrics::{LatencyRecorder, SampleRow, SeriesSummary};
use crate::workload::RunResult;
use serde::{Deserialize, Serialize};

/// Per-second samples of one series (`--sample`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeriesSamples {
    pub name: String,
    pub rows: Vec<SampleRow>,
}

/// Everything reported about one run (or one side of a comparison, rounds merged).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The sub-command (`put`, `range`, ...).
    pub benchmark: String,
    /// `--label`, the compare side's name, or the endpoints.
    pub label: String,
    pub endpoints: Vec<String>,
    pub conns: usize,
    pub clients: usize,
    pub warmup: u64,
    /// "closed loop" or "open loop at R calls/s".
    pub mode: String,
    /// The command line that produced the report.
    pub command: String,
    pub series: Vec<SeriesSummary>,
    pub notes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<SeriesSamples>,
}

/// The settings a report names besides its figures.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    pub label: String,
    pub endpoints: Vec<String>,
    pub conns: usize,
    pub clients: usize,
    pub command: String,
    pub with_samples: bool,
}

impl Report {
    pub fn new(result: &RunResult, settings: &ReportSettings) -> Report {
        let series = result
            .series
            .iter()
            .map(|series| {
                SeriesSummary::from_recorder(&series.name, &series.recorder, series.elapsed)
            })
            .collect();
        let samples = if settings.with_samples {
            result
                .series
                .iter()
                .map(|series| SeriesSamples {
                    name: series.name.clone(),
                    rows: series.samples.rows(),
                })
                .collect()
        } else {
            Vec::new()
        };
        Report {
            benchmark: result.benchmark.clone(),
            label: settings.label.clone(),
            endpoints: settings.endpoints.clone(),
            conns: settings.conns,
            clients: settings.clients,
            warmup: result.warmup,
            mode: result.mode.clone(),
            command: settings.command.clone(),
            series,
            notes: result
                .notes
                .iter()
                .cloned()
                .chain(send_lag_note(&result.send_lag))
                .collect(),
            samples,
        }
    }
}

/// Open loop: how late calls were sent, when any were measured.
fn send_lag_note(send_lag: &LatencyRecorder) -> Option<String> {
    if send_lag.count() == 0 {
        return None;
    }
    let histogram = send_lag.histogram();
    let ms = |micros: u64| micros as f64 / 1000.0;
    Some(format!(
        "open loop: calls were sent p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms after their \
         intended time (pacer precision, or every client busy: then more --clients offer the \
         rate); this is counted in the latencies",
        ms(histogram.value_at_percentile(50.0)),
        ms(histogram.value_at_percentile(99.0)),
        ms(histogram.max())
    ))
}
