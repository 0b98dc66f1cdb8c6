//! What a run records: one [`LatencyRecorder`] (HDR histogram + error counts) per series and,
//! for `--sample`, per-second [`SecondBuckets`]; and what it reports from them
//! ([`SeriesSummary`]).

pub mod histogram;
pub mod summary;
pub mod timeseries;

pub use histogram::LatencyRecorder;
pub use summary::{CurvePoint, LatencyFigures, SeriesSummary};
pub use timeseries::{SampleRow, SecondBuckets};
