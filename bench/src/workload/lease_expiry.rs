//! `lease-expiry`: how late the server expires leases that nobody keeps alive.
//!
//! 1. One watch on a prefix unique to this run (first connection), created before anything
//!    is written.
//! 2. `--leases` calls spread over `--clients` (closed loop): each grants a lease with `--ttl`
//!    and puts one key under the prefix attached to it (series `grant-put`).
//! 3. No keep-alive. Every lease's key is deleted when the server expires it; the watcher
//!    records when each DELETE event arrived, until every expected event came or `--grace`
//!    after the last lease was due.
//!
//! Figures ([`super::expiry_lateness`]): `expiry-late` is each event's lateness after the
//! grant's answer + TTL (its ops/s is the server's expiry rate over the span from the first
//! lease's due time to the last event); `expiry-early` counts events that came before the
//! grant's request + TTL, by how early.

use super::expiry_lateness::{classify, LeaseLog, LeaseTimes};
use super::watch_stream::{open, wait_created, WatchReceiver};
use super::{mode_text, series, RunContext, RunResult, SeriesResult};
use crate::cli::LeaseExpiryArgs;
use crate::client::Pool;
use crate::driver::{self, Call, Outcome, Plan};
use crate::error::BenchError;
use crate::grpc::{CallError, Channel};
use crate::keys::{prefix_end, spread};
use crate::limits::{LEASES_MAX, LEASE_TTL_S_MAX, WATCH_POLL_INTERVAL};
use bytes::Bytes;
use capstan_proto::etcdserverpb::{
    watch_request, LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeRequest, LeaseRevokeResponse,
    PutRequest, PutResponse, WatchCreateRequest, WatchRequest,
};
use capstan_proto::method::{KV_PUT, LEASE_LEASE_GRANT, LEASE_LEASE_REVOKE, WATCH_WATCH};
use capstan_proto::mvccpb::event::EventType;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// Value of every key (its content does not matter).
const VALUE: &[u8] = b"expires";

fn check(args: &LeaseExpiryArgs) -> Result<(), BenchError> {
    if args.leases == 0 || args.leases > LEASES_MAX {
        return Err(BenchError::Usage(format!(
            "--leases must be in 1..={LEASES_MAX}"
        )));
    }
    if args.ttl < 1 || args.ttl > LEASE_TTL_S_MAX {
        return Err(BenchError::Usage(format!(
            "--ttl must be in 1..={LEASE_TTL_S_MAX} seconds"
        )));
    }
    Ok(())
}

/// A prefix no other run or round uses: the flag's prefix, then a hex run id and a slash.
fn run_prefix(prefix: &str, seed: u64) -> Bytes {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    let run_id = spread(nanos ^ u64::from(std::process::id()), seed);
    Bytes::from(format!("{prefix}{run_id:016x}/"))
}

pub async fn run(args: &LeaseExpiryArgs, context: &RunContext) -> Result<RunResult, BenchError> {
    check(args)?;
    let prefix = run_prefix(&args.prefix, context.seed);
    let pool = Pool::connect(&context.connect).await?;

    let watch_channel = pool.for_client(0);
    let watcher = start_watch(&watch_channel, &prefix).await?;

    let leases = LeaseLog::default();
    let log = leases.clone();
    let ttl_s = args.ttl;
    let key_prefix = prefix.clone();
    let operation = Arc::new(move |call: Call| {
        let key = Bytes::from([&key_prefix[..], format!("{:08}", call.index).as_bytes()].concat());
        let log = log.clone();
        async move {
            Outcome {
                series: 0,
                result: grant_and_put(&call.channel, key, ttl_s, &log).await,
            }
        }
    });
    let plan = Plan {
        total: args.leases,
        duration: None,
        clients: context.clients,
        rate_per_s: None,
        request_timeout: context.request_timeout,
        series_count: 1,
        progress: context.show_progress.then(|| "lease grant+put".to_string()),
    };
    let start = Instant::now();
    let granted = driver::run(&pool, &plan, operation).await;
    let grant_recorder = granted.recorders.into_iter().next().unwrap_or_default();
    if grant_recorder.count() == 0 {
        if let Some(error) = grant_recorder.first_error() {
            watcher.stop().await;
            return Err(BenchError::setup(
                "lease grant and put",
                LEASE_LEASE_GRANT,
                pool.first_endpoint(),
                error.clone(),
            ));
        }
    }

    let leases = leases.snapshot();
    let expected = leases.len() as u64;
    let last_due = leases.values().map(LeaseTimes::due).max();
    let deadline = last_due.unwrap_or_else(Instant::now) + args.grace;
    while watcher.deleted() < expected && !watcher.ended() && Instant::now() < deadline {
        tokio::time::sleep(WATCH_POLL_INTERVAL).await;
    }
    let (arrivals, stream_error) = watcher.stop().await;
    let figures = classify(&leases, &arrivals, stream_error.as_ref());
    let seen: std::collections::HashSet<&Bytes> = arrivals.iter().map(|(key, _)| key).collect();
    let unexpired: Vec<(&Bytes, i64)> = leases
        .iter()
        .filter(|(key, _)| !seen.contains(key))
        .map(|(key, times)| (key, times.lease_id))
        .collect();
    revoke(&pool, unexpired.iter().map(|(_, lease)| *lease)).await;

    let granted_ttls: std::collections::BTreeSet<u64> =
        leases.values().map(|times| times.ttl.as_secs()).collect();
    let mut notes = vec![
        format!(
            "{expected} leases with a key each (TTL asked {ttl_s} s, granted {granted_ttls:?} s), \
             never kept alive; one watch on the keys' prefix through {}",
            watch_channel.authority()
        ),
        "expiry-late: DELETE event arrival - (grant answer + granted TTL); ops/s = events over \
         the span from the first lease's due time to the last event"
            .to_string(),
        "expiry-early: events that arrived before grant request + TTL (count = early \
         expiries, latency = how early)"
            .to_string(),
    ];
    if figures.on_time_clamped > 0 {
        notes.push(format!(
            "{} events arrived between grant request + TTL and grant answer + TTL: lateness 0",
            figures.on_time_clamped
        ));
    }
    if figures.unexpected > 0 {
        notes.push(format!(
            "{} DELETE events were not for a lease of this run (or repeated)",
            figures.unexpected
        ));
    }
    let span = figures.span();
    let results: Vec<SeriesResult> = vec![
        series("grant-put", grant_recorder, granted.elapsed, start),
        series("expiry-late", figures.late, span, start),
        series("expiry-early", figures.early, span, start),
    ];
    Ok(RunResult {
        benchmark: "lease-expiry".to_string(),
        mode: mode_text(None),
        series: results,
        notes,
        warmup: 0,
        send_lag: Default::default(),
    })
}

/// Grants one lease and attaches `key` to it; records the grant's times once both succeeded.
async fn grant_and_put(
    channel: &Channel,
    key: Bytes,
    ttl_s: i64,
    log: &LeaseLog,
) -> Result<(), CallError> {
    let requested = Instant::now();
    let grant: LeaseGrantResponse = channel
        .unary(LEASE_LEASE_GRANT, &LeaseGrantRequest { ttl: ttl_s, id: 0 })
        .await?;
    let answered = Instant::now();
    if !grant.error.is_empty() {
        return Err(CallError::Protocol(format!(
            "lease grant answered an error: {}",
            grant.error
        )));
    }
    let granted_ttl_s = u64::try_from(grant.ttl).unwrap_or(0);
    if granted_ttl_s == 0 {
        return Err(CallError::Protocol(format!(
            "lease grant answered TTL {}",
            grant.ttl
        )));
    }
    let put = PutRequest {
        key: key.clone(),
        value: Bytes::from_static(VALUE),
        lease: grant.id,
        ..Default::default()
    };
    channel.unary::<_, PutResponse>(KV_PUT, &put).await?;
    log.record(
        key,
        LeaseTimes {
            lease_id: grant.id,
            requested,
            answered,
            ttl: Duration::from_secs(granted_ttl_s),
        },
    );
    Ok(())
}

/// Best effort, for leases whose expiry was not seen: they expire by themselves anyway.
async fn revoke(pool: &Pool, leases: impl Iterator<Item = i64>) {
    let channel = pool.for_client(0);
    for id in leases {
        let _ = channel
            .unary::<_, LeaseRevokeResponse>(LEASE_LEASE_REVOKE, &LeaseRevokeRequest { id })
            .await;
    }
}

/// DELETE events seen (key, arrival), and why the watch ended early, if it did.
type Collected = (Vec<(Bytes, Instant)>, Option<CallError>);

/// The watch on the run's prefix and the task collecting its DELETE events.
struct PrefixWatch {
    deleted: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Collected>,
}

async fn start_watch(channel: &Channel, prefix: &Bytes) -> Result<PrefixWatch, BenchError> {
    let setup = |error| BenchError::setup("watch create", WATCH_WATCH, channel.authority(), error);
    let (mut sender, mut receiver) = open(channel).await.map_err(setup)?;
    let create = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: prefix.clone(),
                range_end: prefix_end(prefix),
                ..Default::default()
            },
        )),
    };
    sender.send(&create).map_err(setup)?;
    wait_created(&mut receiver).await.map_err(setup)?;
    let deleted = Arc::new(AtomicU64::new(0));
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(collect_deletes(sender, receiver, deleted.clone(), stopped));
    Ok(PrefixWatch {
        deleted,
        stop,
        task,
    })
}

impl PrefixWatch {
    fn deleted(&self) -> u64 {
        self.deleted.load(Ordering::Relaxed)
    }

    /// The stream failed or the server ended it.
    fn ended(&self) -> bool {
        self.task.is_finished()
    }

    async fn stop(self) -> Collected {
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(collected) => collected,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
}

async fn collect_deletes(
    // Kept so the stream stays open until the collection ends.
    _sender: super::watch_stream::WatchSender,
    mut receiver: WatchReceiver,
    deleted: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> Collected {
    let mut arrivals = Vec::new();
    loop {
        tokio::select! {
            message = receiver.message() => match message {
                Ok(Some(response)) => {
                    let now = Instant::now();
                    for event in &response.events {
                        if event.r#type != EventType::Delete as i32 {
                            continue;
                        }
                        if let Some(kv) = &event.kv {
                            arrivals.push((kv.key.clone(), now));
                            deleted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if response.canceled {
                        let reason = format!("watch canceled: {}", response.cancel_reason);
                        return (arrivals, Some(CallError::Protocol(reason)));
                    }
                }
                Ok(None) => {
                    let ended = CallError::Protocol("watch stream ended".to_string());
                    return (arrivals, Some(ended));
                }
                Err(failure) => return (arrivals, Some(failure)),
            },
            _ = stop.changed() => return (arrivals, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_prefixes_differ_and_end_with_a_slash() {
        let first = run_prefix("p/", 1);
        std::thread::sleep(Duration::from_millis(1));
        let second = run_prefix("p/", 1);
        assert_ne!(first, second);
        assert!(first.starts_with(b"p/") && first.ends_with(b"/"));
        assert_eq!(first.len(), "p/".len() + 16 + 1);
    }

    #[test]
    fn flags_are_checked() {
        let args = |leases, ttl| LeaseExpiryArgs {
            leases,
            ttl,
            grace: Duration::from_secs(1),
            prefix: "p/".to_string(),
        };
        assert!(check(&args(1000, 5)).is_ok());
        assert!(check(&args(0, 5)).is_err());
        assert!(check(&args(10, 0)).is_err());
    }
}
