//! One failover round from the client's side: puts paced at a fixed rate (open loop, each on
//! its own stream, so a put stuck on the dead leader does not hold back the next one) spread
//! over the surviving members; the kill once enough puts succeeded; the first put sent after
//! the kill that succeeds ends the round.
//!
//! The round's figure is `ack - kill` of that put. Puts sent before the kill and acknowledged
//! after it do not count: the old leader may have committed them before it died. The
//! resolution is one pacing interval (1 / `--put-rate`) plus one put's latency.

use crate::error::BenchError;
use crate::grpc::{CallError, Channel};
use crate::limits::FAILOVER_PUTS_IN_FLIGHT_MAX;
use crate::metrics::LatencyRecorder;
use bytes::Bytes;
use capstan_proto::etcdserverpb::{PutRequest, PutResponse};
use capstan_proto::method::KV_PUT;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

/// The key every failover put writes.
const KEY: &[u8] = b"capstan-bench/failover";

/// How the round is run.
pub struct RoundPlan {
    pub put_rate: f64,
    pub puts_before_kill: u64,
    /// Limit for reaching `puts_before_kill`.
    pub warm_timeout: Duration,
    /// Limit for a successful put after the kill.
    pub round_timeout: Duration,
    /// Limit of one put.
    pub request_timeout: Duration,
}

/// What one round measured.
pub struct RoundOutcome {
    /// From the kill to the acknowledgement of the first put sent after it; `None` if none
    /// succeeded within the round timeout.
    pub kill_to_ack: Option<Duration>,
    /// Every put, latency from its intended send time (errors: failed, or still pending
    /// after the drain).
    pub puts: LatencyRecorder,
    /// Puts that failed after the kill (any send time).
    pub failed_after_kill: u64,
}

struct PutDone {
    intended: Instant,
    started: Instant,
    acked: Instant,
    result: Result<(), CallError>,
}

/// Runs one round; `kill` is called once, and returns the instant just before the signal.
///
/// After the first success following the kill, no new put is sent; the puts in flight are
/// awaited (each is bounded by the request timeout, the whole drain by the round timeout) so
/// that the `put` series includes the ones the failover held up. Puts still pending after
/// that count as errors.
pub async fn run_round<K>(
    survivors: Vec<Channel>,
    plan: &RoundPlan,
    kill: K,
) -> Result<RoundOutcome, BenchError>
where
    K: FnOnce() -> Result<Instant, BenchError>,
{
    assert!(!survivors.is_empty() && plan.put_rate > 0.0);
    let (done_sender, mut done) = mpsc::unbounded_channel::<PutDone>();
    let (stop, stopped) = watch::channel(false);
    let sent = Arc::new(AtomicU64::new(0));
    let pacer = tokio::spawn(pace(
        survivors,
        plan.put_rate,
        plan.request_timeout,
        done_sender,
        stopped,
        sent.clone(),
    ));
    let observed = observe(&mut done, plan, kill).await;
    let _ = stop.send(true);
    let mut outcome = match observed {
        Ok(outcome) => outcome,
        Err(error) => {
            pacer.abort();
            let _ = pacer.await;
            return Err(error);
        }
    };
    let mut received = outcome.puts.count() + outcome.puts.errors();
    let drain_deadline = tokio::time::Instant::now() + plan.round_timeout;
    while let Ok(Some(put)) = tokio::time::timeout_at(drain_deadline, done.recv()).await {
        received += 1;
        outcome.record(&put);
        if put.result.is_err() {
            outcome.failed_after_kill += 1;
        }
    }
    pacer.abort();
    let _ = pacer.await;
    let pending = sent.load(Ordering::SeqCst).saturating_sub(received);
    let reason = CallError::Protocol("put still pending when the round ended".to_string());
    for _ in 0..pending {
        outcome.puts.record_error(&reason);
    }
    Ok(outcome)
}

impl RoundOutcome {
    fn record(&mut self, put: &PutDone) {
        match &put.result {
            Ok(()) => self
                .puts
                .record(put.acked.saturating_duration_since(put.intended)),
            Err(error) => self.puts.record_error(error),
        }
    }
}

async fn observe<K>(
    done: &mut mpsc::UnboundedReceiver<PutDone>,
    plan: &RoundPlan,
    kill: K,
) -> Result<RoundOutcome, BenchError>
where
    K: FnOnce() -> Result<Instant, BenchError>,
{
    let mut outcome = RoundOutcome {
        kill_to_ack: None,
        puts: LatencyRecorder::new(),
        failed_after_kill: 0,
    };
    let mut succeeded = 0u64;
    let warm_deadline = tokio::time::Instant::now() + plan.warm_timeout;
    let mut kill = Some(kill);
    let mut killed_at: Option<Instant> = None;
    let mut deadline = warm_deadline;
    loop {
        let Ok(Some(put)) = tokio::time::timeout_at(deadline, done.recv()).await else {
            break;
        };
        outcome.record(&put);
        match killed_at {
            None => {
                if put.result.is_ok() {
                    succeeded += 1;
                }
                if succeeded >= plan.puts_before_kill {
                    if let Some(kill) = kill.take() {
                        let at = kill()?;
                        killed_at = Some(at);
                        deadline = tokio::time::Instant::from_std(at) + plan.round_timeout;
                    }
                }
            }
            Some(at) => {
                if put.result.is_err() {
                    outcome.failed_after_kill += 1;
                } else if put.started >= at {
                    outcome.kill_to_ack = Some(put.acked.saturating_duration_since(at));
                    break;
                }
            }
        }
    }
    if killed_at.is_none() {
        let first_error = outcome.puts.first_error().map(ToString::to_string);
        return Err(BenchError::Usage(format!(
            "only {succeeded} of {} puts before the kill succeeded within {:?}{}",
            plan.puts_before_kill,
            plan.warm_timeout,
            first_error.map_or(String::new(), |error| format!(" (first error: {error})"))
        )));
    }
    Ok(outcome)
}

/// Starts put `i` at `start + i / rate` on survivor `i % survivors` until told to stop, then
/// waits for the puts in flight (aborting the pacer aborts them).
async fn pace(
    survivors: Vec<Channel>,
    rate: f64,
    request_timeout: Duration,
    done: mpsc::UnboundedSender<PutDone>,
    mut stop: watch::Receiver<bool>,
    sent: Arc<AtomicU64>,
) {
    let in_flight = Arc::new(Semaphore::new(FAILOVER_PUTS_IN_FLIGHT_MAX));
    let mut puts = JoinSet::new();
    let start = Instant::now();
    let request = PutRequest {
        key: Bytes::from_static(KEY),
        value: Bytes::from_static(b"failover"),
        ..Default::default()
    };
    for index in 0u64.. {
        let intended = start + Duration::from_secs_f64(index as f64 / rate);
        tokio::select! {
            _ = tokio::time::sleep_until(intended.into()) => {}
            _ = stop.changed() => break,
        }
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        sent.fetch_add(1, Ordering::SeqCst);
        // Reap finished tasks so the set does not grow with the run.
        while puts.try_join_next().is_some() {}
        let channel = survivors[(index % survivors.len() as u64) as usize].clone();
        let request = request.clone();
        let done = done.clone();
        puts.spawn(async move {
            let started = Instant::now();
            let call = channel.unary::<_, PutResponse>(KV_PUT, &request);
            let result = match tokio::time::timeout(request_timeout, call).await {
                Ok(reply) => reply.map(|_| ()),
                Err(_) => Err(CallError::Timeout(request_timeout)),
            };
            let acked = Instant::now();
            drop(permit);
            let _ = done.send(PutDone {
                intended,
                started,
                acked,
                result,
            });
        });
    }
    drop(done);
    while puts.join_next().await.is_some() {}
}
