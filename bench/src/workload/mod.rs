//! The workloads, one file each, and what they share: the run context, the result of a run,
//! and [`measure`] (warm-up, then the measured phase) for the request-per-call workloads.
//!
//! | sub-command | calls | series |
//! | --- | --- | --- |
//! | `put` | `KV/Put` | put |
//! | `range` | `KV/Range` | range |
//! | `txn-put` | `KV/Txn` with `--txn-ops` puts | txn-put |
//! | `txn-mixed` | `KV/Txn` with one range or one put | read, write |
//! | `watch` | `Watch/Watch` creates, then puts | watch-create, put, watch-event |
//! | `watch-latency` | watchers on one key, paced puts | put, watch-event |
//! | `watch-get` | unsynced watchers catching up, serializable gets | get |
//! | `lease-keepalive` | `Lease/LeaseGrant` per client, then `LeaseKeepAlive` once per call | lease-keepalive |
//! | `lease-expiry` | a prefix watch; `LeaseGrant` + `Put` per lease, never kept alive | grant-put, expiry-late, expiry-early |
//! | `failover` | paced `Put`s to the followers, SIGKILL of the leader, per round | failover, put |

pub mod expiry_lateness;
pub mod failover;
pub mod lease_expiry;
pub mod lease_keepalive;
pub mod put;
pub mod range;
pub mod txn_mixed;
pub mod txn_put;
pub mod watch;
pub mod watch_events;
pub mod watch_get;
pub mod watch_latency;
pub mod watch_stream;

use crate::cli::Workload;
use crate::client::{ConnectOptions, Pool};
use crate::driver::{self, Call, Outcome, Plan};
use crate::error::BenchError;
use crate::limits::{KEY_OR_VALUE_BYTES_MAX, TOTAL_CALLS_MAX};
use crate::metrics::{LatencyRecorder, SecondBuckets};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Settings shared by every workload of one run.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub connect: ConnectOptions,
    pub clients: usize,
    /// Measured calls (`--total`).
    pub total: u64,
    /// Calls made and discarded before measuring (`--warmup`).
    pub warmup: u64,
    /// Longest measured phase (`--duration`); `None`: until `total` calls are made.
    pub duration: Option<Duration>,
    pub request_timeout: Duration,
    /// Draw a progress bar (stderr is a terminal).
    pub show_progress: bool,
    pub seed: u64,
}

/// The figures of one series.
pub struct SeriesResult {
    pub name: String,
    pub recorder: LatencyRecorder,
    pub elapsed: Duration,
    pub samples: SecondBuckets,
}

/// What one run of a workload measured.
pub struct RunResult {
    pub benchmark: String,
    /// "closed loop" or "open loop at R/s".
    pub mode: String,
    pub series: Vec<SeriesResult>,
    /// Remarks printed with the figures (what was measured and how).
    pub notes: Vec<String>,
    /// Calls made before measuring in each run (0 for workloads without a warm-up).
    pub warmup: u64,
    /// Open loop: how late calls were sent after their intended time (empty when closed).
    pub send_lag: LatencyRecorder,
}

impl RunResult {
    /// Adds another run of the same workload (compare rounds): histograms and errors add up,
    /// elapsed times add up, so throughput stays calls / time spent measuring.
    pub fn absorb(&mut self, other: RunResult) {
        for incoming in other.series {
            match self.series.iter_mut().find(|s| s.name == incoming.name) {
                Some(series) => {
                    series.recorder.merge(&incoming.recorder);
                    series.elapsed += incoming.elapsed;
                    series.samples.merge(&incoming.samples);
                }
                None => self.series.push(incoming),
            }
        }
        self.send_lag.merge(&other.send_lag);
        for note in other.notes {
            if !self.notes.contains(&note) {
                self.notes.push(note);
            }
        }
    }
}

/// Runs one workload.
pub async fn run(workload: &Workload, context: &RunContext) -> Result<RunResult, BenchError> {
    check_context(workload, context)?;
    match workload {
        Workload::Put(args) => put::run(args, context).await,
        Workload::Range(args) => range::run(args, context).await,
        Workload::TxnPut(args) => txn_put::run(args, context).await,
        Workload::TxnMixed(args) => txn_mixed::run(args, context).await,
        Workload::Watch(args) => watch::run(args, context).await,
        Workload::WatchLatency(args) => watch_latency::run(args, context).await,
        Workload::WatchGet(args) => watch_get::run(args, context).await,
        Workload::LeaseKeepalive(args) => lease_keepalive::run(args, context).await,
        Workload::LeaseExpiry(args) => lease_expiry::run(args, context).await,
        Workload::Failover(args) => failover::run(args, context).await,
    }
}

fn check_context(workload: &Workload, context: &RunContext) -> Result<(), BenchError> {
    if context.total > TOTAL_CALLS_MAX || context.warmup > TOTAL_CALLS_MAX {
        return Err(BenchError::Usage(format!(
            "--total and --warmup are limited to {TOTAL_CALLS_MAX}"
        )));
    }
    let measured_per_call = matches!(
        workload,
        Workload::Put(_)
            | Workload::Range(_)
            | Workload::TxnPut(_)
            | Workload::TxnMixed(_)
            | Workload::LeaseKeepalive(_)
    );
    if context.duration.is_some() && !measured_per_call {
        return Err(BenchError::Usage(format!(
            "--duration is not supported by {}",
            workload.name()
        )));
    }
    Ok(())
}

/// Refuses key or value sizes beyond [`KEY_OR_VALUE_BYTES_MAX`].
pub(crate) fn check_size(flag: &str, bytes: usize) -> Result<(), BenchError> {
    if bytes > KEY_OR_VALUE_BYTES_MAX {
        return Err(BenchError::Usage(format!(
            "--{flag} {bytes} exceeds {KEY_OR_VALUE_BYTES_MAX} bytes"
        )));
    }
    Ok(())
}

/// `--rate 0` means closed loop; a negative or non-finite rate is refused.
pub(crate) fn pacing(flag: &str, rate: f64) -> Result<Option<f64>, BenchError> {
    if !rate.is_finite() || rate < 0.0 {
        return Err(BenchError::Usage(format!(
            "--{flag} must be a non-negative number, got {rate}"
        )));
    }
    Ok((rate > 0.0).then_some(rate))
}

/// How a run is paced, for reports.
pub(crate) fn mode_text(rate: Option<f64>) -> String {
    match rate {
        None => "closed loop".to_string(),
        Some(rate) => format!("open loop at {rate} calls/s"),
    }
}

/// What [`measure`] needs besides the operation.
pub(crate) struct MeasureSpec<'a> {
    pub series: &'a [&'a str],
    pub rate: Option<f64>,
    /// The gRPC method the calls use, named when the server does not implement it.
    pub method: &'a str,
}

/// The measured phase of a request-per-call workload.
pub(crate) struct Measurement {
    pub series: Vec<SeriesResult>,
    pub send_lag: LatencyRecorder,
}

/// Warm-up (not recorded), then `context.total` measured calls of `operation` (fewer if
/// `context.duration` ends the measured phase first).
///
/// If every call of a phase failed with UNIMPLEMENTED, the run stops with an error naming the
/// method, rather than printing a table of errors.
pub(crate) async fn measure<F, Fut>(
    context: &RunContext,
    pool: &Pool,
    spec: MeasureSpec<'_>,
    operation: Arc<F>,
) -> Result<Measurement, BenchError>
where
    F: Fn(Call) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let plan = |total: u64, duration: Option<Duration>, progress: Option<String>| Plan {
        total,
        duration,
        clients: context.clients,
        rate_per_s: spec.rate,
        request_timeout: context.request_timeout,
        series_count: spec.series.len(),
        progress,
    };
    if context.warmup > 0 {
        let warmup = driver::run(pool, &plan(context.warmup, None, None), operation.clone()).await;
        refuse_unimplemented(&warmup.recorders, spec.method, pool)?;
    }
    let label = context.show_progress.then(|| spec.series.join("+"));
    let measured = driver::run(
        pool,
        &plan(context.total, context.duration, label),
        operation,
    )
    .await;
    refuse_unimplemented(&measured.recorders, spec.method, pool)?;
    let series = spec
        .series
        .iter()
        .zip(measured.recorders)
        .zip(measured.samples)
        .map(|((name, recorder), samples)| SeriesResult {
            name: name.to_string(),
            recorder,
            elapsed: measured.elapsed,
            samples,
        })
        .collect();
    Ok(Measurement {
        series,
        send_lag: measured.send_lag,
    })
}

fn refuse_unimplemented(
    recorders: &[LatencyRecorder],
    method: &str,
    pool: &Pool,
) -> Result<(), BenchError> {
    let succeeded: u64 = recorders.iter().map(LatencyRecorder::count).sum();
    if succeeded > 0 {
        return Ok(());
    }
    let unimplemented = recorders
        .iter()
        .filter_map(LatencyRecorder::first_error)
        .find(|error| error.is_unimplemented());
    match unimplemented {
        Some(error) => Err(BenchError::Unimplemented {
            endpoint: pool.first_endpoint().to_string(),
            method: method.to_string(),
            detail: error.to_string(),
        }),
        None => Ok(()),
    }
}

/// One series that was not produced by [`measure`] (watch phases, gets during catch-up).
pub(crate) fn series(
    name: &str,
    recorder: LatencyRecorder,
    elapsed: Duration,
    start: Instant,
) -> SeriesResult {
    SeriesResult {
        name: name.to_string(),
        recorder,
        elapsed,
        samples: SecondBuckets::new(start),
    }
}
