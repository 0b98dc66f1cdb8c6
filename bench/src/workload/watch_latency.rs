//! `watch-latency`: `--streams` streams with `--watchers-per-stream` watchers each, all on one
//! key; then `--put-total` puts of that key from one more connection, paced at `--put-rate`
//! (open loop). Reports the puts and, per watcher and put, the event latency.
//!
//! The event latency runs from the put's intended send time to the event's arrival, so it
//! includes the put's own commit; etcd's benchmark measures from the put's reply instead.

use super::watch_events::{event_latencies, EventCollector, PutLog, EVENTS_MAX};
use super::watch_stream::{create_request, open, wait_created};
use super::{check_size, mode_text, pacing, series, RunContext, RunResult, SeriesResult};
use crate::cli::WatchLatencyArgs;
use crate::client::{ConnectOptions, Pool};
use crate::driver::{self, Call, Plan};
use crate::error::BenchError;
use crate::keys::{random_bytes, random_text};
use crate::limits::{TOTAL_CALLS_MAX, WATCHERS_MAX};
use capstan_proto::etcdserverpb::PutRequest;
use capstan_proto::method::WATCH_WATCH;
use std::sync::Arc;
use std::time::Instant;

/// Offsets the value's seed from the key's.
const VALUE_SEED_SALT: u64 = 0x7a1e;

fn check(args: &WatchLatencyArgs) -> Result<u64, BenchError> {
    check_size("key-size", args.key_size)?;
    check_size("val-size", args.val_size)?;
    let watchers = args.streams.saturating_mul(args.watchers_per_stream);
    if args.key_size == 0 || watchers == 0 || watchers > WATCHERS_MAX {
        return Err(BenchError::Usage(format!(
            "need --key-size >= 1 and 1..={WATCHERS_MAX} watchers (streams x watchers-per-stream)"
        )));
    }
    if args.put_total == 0 || args.put_total > TOTAL_CALLS_MAX {
        return Err(BenchError::Usage(format!(
            "--put-total must be in 1..={TOTAL_CALLS_MAX}"
        )));
    }
    let events = (watchers as u64).saturating_mul(args.put_total);
    if events > EVENTS_MAX {
        return Err(BenchError::Usage(format!(
            "{events} events (watchers x put-total) exceed the limit of {EVENTS_MAX}"
        )));
    }
    Ok(watchers as u64)
}

pub async fn run(args: &WatchLatencyArgs, context: &RunContext) -> Result<RunResult, BenchError> {
    let watchers = check(args)?;
    let rate = pacing("put-rate", args.put_rate)?;
    let key = random_text(args.key_size, context.seed);
    let value = random_bytes(args.val_size, context.seed ^ VALUE_SEED_SALT);

    let watch_pool = Pool::connect(&context.connect).await?;
    let mut senders = Vec::with_capacity(args.streams);
    let mut receivers = Vec::with_capacity(args.streams);
    for stream in 0..args.streams {
        let channel = watch_pool.for_client(stream % context.clients);
        let setup =
            |error| BenchError::setup("watch create", WATCH_WATCH, channel.authority(), error);
        let (mut sender, mut receiver) = open(&channel).await.map_err(setup)?;
        for _ in 0..args.watchers_per_stream {
            sender
                .send(&create_request(&key, 0, args.prevkv))
                .map_err(setup)?;
            wait_created(&mut receiver).await.map_err(setup)?;
        }
        senders.push(sender);
        let expected = args.put_total * args.watchers_per_stream as u64;
        receivers.push((receiver, expected));
    }
    let collector = EventCollector::spawn(receivers);

    let put_pool = Pool::connect(&ConnectOptions {
        conns: 1,
        ..context.connect.clone()
    })
    .await?;
    let puts = PutLog::default();
    let log = puts.clone();
    let request = PutRequest {
        key,
        value,
        ..Default::default()
    };
    let operation = Arc::new(move |call: Call| {
        let request = request.clone();
        let log = log.clone();
        async move { log.put(call, request).await }
    });
    let plan = Plan {
        total: args.put_total,
        duration: None,
        clients: 1,
        rate_per_s: rate,
        request_timeout: context.request_timeout,
        series_count: 1,
        progress: context
            .show_progress
            .then(|| "watch-latency puts".to_string()),
    };
    let start = Instant::now();
    let measured = driver::run(&put_pool, &plan, operation).await;
    let arrivals = collector.collect(context.request_timeout).await;
    drop(senders);

    let events = event_latencies(&arrivals, &puts, args.put_total * watchers);
    let mut results: Vec<SeriesResult> = Vec::with_capacity(2);
    let put_recorder = measured.recorders.into_iter().next().unwrap_or_default();
    results.push(series("put", put_recorder, measured.elapsed, start));
    results.push(series("watch-event", events, measured.elapsed, start));
    Ok(RunResult {
        benchmark: "watch-latency".to_string(),
        mode: mode_text(rate),
        series: results,
        notes: vec![
            format!(
                "{watchers} watchers on one key ({} streams x {}); puts on a separate connection",
                args.streams, args.watchers_per_stream
            ),
            "watch-event latency: from the put's intended send time to the event's arrival \
             (etcd's benchmark measures from the put's reply)"
                .to_string(),
        ],
        warmup: 0,
        send_lag: measured.send_lag,
    })
}
