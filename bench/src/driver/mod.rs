//! Running calls: `--clients` sequential loops sharing one counter of request indices.
//!
//! Each client takes the next index, waits for its intended send time when the run is open
//! loop ([`schedule`]), makes the call on its connection and records the latency in its own
//! recorders (no locks on the hot path); the recorders are merged when every client is done.
//!
//! In a closed loop the latency runs from the actual send. In an open loop (`--rate`) it runs
//! from the intended send time `start + index / rate`: when the server stalls, the calls that
//! should have been sent meanwhile are late, and their lateness is part of their latency —
//! this is what keeps the percentiles honest (no coordinated omission).

pub mod progress;
pub mod schedule;

use crate::client::Pool;
use crate::grpc::{CallError, Channel};
use crate::metrics::{LatencyRecorder, SecondBuckets};
use schedule::{Indices, Pacing};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one phase of calls should do.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Calls to make.
    pub total: u64,
    /// No call is handed out this long after the start (calls under way still finish);
    /// `None`: all `total` are made.
    pub duration: Option<Duration>,
    /// Concurrent sequential loops.
    pub clients: usize,
    /// `Some(calls per second)`: open loop; `None`: closed loop.
    pub rate_per_s: Option<f64>,
    /// A call taking longer is abandoned and counted as an error.
    pub request_timeout: Duration,
    /// Series the operation reports into (indices `0..series_count`).
    pub series_count: usize,
    /// Label of the progress bar; `None` draws none.
    pub progress: Option<String>,
}

/// One call to make.
pub struct Call {
    pub channel: Channel,
    pub client: usize,
    pub index: u64,
    /// When the call was meant to be sent: the intended time in an open loop, the actual
    /// send time in a closed loop. Latency is measured from here.
    pub sent_at: Instant,
}

/// What one call reports: the series it belongs to and whether it succeeded.
pub struct Outcome {
    pub series: usize,
    pub result: Result<(), CallError>,
}

/// The figures of one phase.
pub struct Measured {
    pub recorders: Vec<LatencyRecorder>,
    /// Open loop only: how long after its intended time each call was sent (pacer precision,
    /// or every client still busy). Part of the reported latencies.
    pub send_lag: LatencyRecorder,
    pub samples: Vec<SecondBuckets>,
    /// From the start of the phase to the last completion.
    pub elapsed: Duration,
}

struct ClientFigures {
    recorders: Vec<LatencyRecorder>,
    send_lag: LatencyRecorder,
    samples: Vec<SecondBuckets>,
}

/// Runs `plan.total` calls of `operation` over `pool`.
pub async fn run<F, Fut>(pool: &Pool, plan: &Plan, operation: Arc<F>) -> Measured
where
    F: Fn(Call) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    assert!(plan.clients > 0 && plan.series_count > 0);
    let completed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = plan.duration.map(|duration| start + duration);
    let indices = Indices::start(plan.total, Pacing::new(plan.rate_per_s, start), deadline);
    let progress = plan
        .progress
        .as_ref()
        .map(|label| progress::spawn(label.clone(), plan.total, completed.clone()));

    let mut handles = Vec::with_capacity(plan.clients);
    for client in 0..plan.clients {
        let channel = pool.for_client(client);
        let operation = operation.clone();
        let indices = indices.clone();
        let completed = completed.clone();
        let plan = plan.clone();
        handles.push(tokio::spawn(async move {
            let mut figures = ClientFigures {
                recorders: vec![LatencyRecorder::new(); plan.series_count],
                send_lag: LatencyRecorder::new(),
                samples: vec![SecondBuckets::new(start); plan.series_count],
            };
            while let Some((index, intended)) = indices.next().await {
                if let Some(intended) = intended {
                    figures.send_lag.record(intended.elapsed());
                }
                let sent_at = intended.unwrap_or_else(Instant::now);
                let call = Call {
                    channel: channel.clone(),
                    client,
                    index,
                    sent_at,
                };
                let outcome = tokio::time::timeout(plan.request_timeout, operation(call)).await;
                let end = Instant::now();
                let (series, result) = match outcome {
                    Ok(outcome) => (outcome.series, outcome.result),
                    Err(_) => (0, Err(CallError::Timeout(plan.request_timeout))),
                };
                assert!(
                    series < plan.series_count,
                    "operation reported series {series}"
                );
                match result {
                    Ok(()) => {
                        let latency = end.saturating_duration_since(sent_at);
                        figures.recorders[series].record(latency);
                        figures.samples[series].record(end, latency);
                    }
                    Err(error) => figures.recorders[series].record_error(&error),
                }
                completed.fetch_add(1, Ordering::Relaxed);
            }
            figures
        }));
    }

    let mut recorders = vec![LatencyRecorder::new(); plan.series_count];
    let mut send_lag = LatencyRecorder::new();
    let mut samples = vec![SecondBuckets::new(start); plan.series_count];
    for handle in handles {
        // A client task only ends by returning; a panic in it is a bug and is re-raised.
        let figures = match handle.await {
            Ok(figures) => figures,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        };
        send_lag.merge(&figures.send_lag);
        for (series, recorder) in figures.recorders.iter().enumerate() {
            recorders[series].merge(recorder);
            samples[series].merge(&figures.samples[series]);
        }
    }
    let elapsed = start.elapsed();
    if let Some(progress) = progress {
        progress.finish().await;
    }
    Measured {
        recorders,
        send_lag,
        samples,
        elapsed,
    }
}
