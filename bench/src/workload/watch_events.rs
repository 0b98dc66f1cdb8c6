//! Watch event latency: when each put was sent, when each event arrived, and the pairing of
//! the two by revision.
//!
//! A put's revision is only known from its reply, which may come after the event, so arrivals
//! are kept as `(mod_revision, instant)` and paired at the end. The latency of an event runs
//! from its put's send time (the intended one in an open loop) to its arrival on a watcher.

use super::watch_stream::WatchReceiver;
use crate::driver::{Call, Outcome};
use crate::grpc::CallError;
use crate::metrics::LatencyRecorder;
use capstan_proto::etcdserverpb::{PutRequest, PutResponse};
use capstan_proto::method::KV_PUT;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Events kept in memory by one run, all watchers together (16 bytes each).
pub const EVENTS_MAX: u64 = 50_000_000;

/// When each put (by the revision its reply carried) was sent.
#[derive(Clone, Default)]
pub struct PutLog {
    sent_at: Arc<Mutex<HashMap<i64, Instant>>>,
}

impl PutLog {
    pub fn record(&self, revision: i64, sent_at: Instant) {
        // A poisoned lock means a client task panicked, which already aborts the run.
        let mut sent = self.sent_at.lock().expect("put log lock");
        sent.insert(revision, sent_at);
    }

    /// Sends one put and records its revision against the call's send time (the put side of
    /// every watch workload).
    pub async fn put(&self, call: Call, request: PutRequest) -> Outcome {
        let reply = call.channel.unary::<_, PutResponse>(KV_PUT, &request).await;
        let result = reply.map(|response| {
            let revision = response.header.map(|header| header.revision).unwrap_or(0);
            self.record(revision, call.sent_at);
        });
        Outcome { series: 0, result }
    }

    fn snapshot(&self) -> HashMap<i64, Instant> {
        self.sent_at.lock().expect("put log lock").clone()
    }
}

/// What one stream's receiver saw.
pub struct StreamArrivals {
    pub arrivals: Vec<(i64, Instant)>,
    pub error: Option<CallError>,
}

/// Receivers of every stream, stoppable all at once.
pub struct EventCollector {
    tasks: Vec<JoinHandle<StreamArrivals>>,
    stop: watch::Sender<bool>,
}

impl EventCollector {
    /// Starts one receiving task per stream; each ends after `expected` events.
    pub fn spawn(streams: Vec<(WatchReceiver, u64)>) -> EventCollector {
        let (stop, stopped) = watch::channel(false);
        let tasks = streams
            .into_iter()
            .map(|(receiver, expected)| tokio::spawn(receive(receiver, expected, stopped.clone())))
            .collect();
        EventCollector { tasks, stop }
    }

    /// True once every receiver has ended (all events seen, or its stream failed).
    pub fn all_finished(&self) -> bool {
        self.tasks.iter().all(JoinHandle::is_finished)
    }

    /// Waits up to `grace` for the remaining events, then stops every receiver.
    pub async fn collect(self, grace: Duration) -> Vec<StreamArrivals> {
        let deadline = tokio::time::Instant::now() + grace;
        let mut results = Vec::with_capacity(self.tasks.len());
        for mut task in self.tasks {
            let finished = tokio::time::timeout_at(deadline, &mut task).await;
            let joined = match finished {
                Ok(joined) => joined,
                Err(_) => {
                    let _ = self.stop.send(true);
                    task.await
                }
            };
            match joined {
                Ok(arrivals) => results.push(arrivals),
                Err(error) => std::panic::resume_unwind(error.into_panic()),
            }
        }
        results
    }
}

async fn receive(
    mut receiver: WatchReceiver,
    expected: u64,
    mut stop: watch::Receiver<bool>,
) -> StreamArrivals {
    let mut arrivals = Vec::with_capacity(expected.min(EVENTS_MAX) as usize);
    let mut error = None;
    while (arrivals.len() as u64) < expected {
        tokio::select! {
            message = receiver.message() => match message {
                Ok(Some(response)) => {
                    let now = Instant::now();
                    for event in &response.events {
                        let revision = event.kv.as_ref().map(|kv| kv.mod_revision).unwrap_or(0);
                        arrivals.push((revision, now));
                    }
                    if response.canceled {
                        error = Some(CallError::Protocol(format!(
                            "watch canceled: {}", response.cancel_reason
                        )));
                        break;
                    }
                }
                Ok(None) => break,
                Err(failure) => {
                    error = Some(failure);
                    break;
                }
            },
            _ = stop.changed() => break,
        }
    }
    StreamArrivals { arrivals, error }
}

/// Pairs arrivals with puts. Events of revisions we did not write are ignored; each missing
/// event (expected but not delivered) counts as one error.
pub fn event_latencies(
    streams: &[StreamArrivals],
    puts: &PutLog,
    expected_total: u64,
) -> LatencyRecorder {
    let sent_at = puts.snapshot();
    let mut recorder = LatencyRecorder::new();
    let mut matched = 0u64;
    for stream in streams {
        for (revision, arrived) in &stream.arrivals {
            if let Some(sent) = sent_at.get(revision) {
                recorder.record(arrived.saturating_duration_since(*sent));
                matched += 1;
            }
        }
    }
    let stream_error = streams.iter().find_map(|stream| stream.error.clone());
    let missing = expected_total.saturating_sub(matched);
    let reason = stream_error
        .unwrap_or_else(|| CallError::Protocol("event not delivered in time".to_string()));
    for _ in 0..missing {
        recorder.record_error(&reason);
    }
    recorder
}
