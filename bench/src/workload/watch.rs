//! `watch`: `--streams` streams with `--watch-per-stream` watchers each over
//! `--watched-key-total` keys (creation latency: from the create request to the server's
//! `created`), then `--put-total` puts over those keys from every client (closed loop, or
//! `--put-rate` open loop), and the latency of every event each watcher receives.

use super::watch_events::{event_latencies, EventCollector, PutLog, EVENTS_MAX};
use super::watch_stream::{create_request, open, wait_created};
use super::{mode_text, pacing, series, RunContext, RunResult};
use crate::cli::WatchArgs;
use crate::client::Pool;
use crate::driver::{self, Call, Plan};
use crate::error::BenchError;
use crate::keys::{check_key_space, key_index, varint_key};
use crate::limits::{TOTAL_CALLS_MAX, WATCHERS_MAX};
use crate::metrics::LatencyRecorder;
use bytes::Bytes;
use capstan_proto::etcdserverpb::PutRequest;
use capstan_proto::method::WATCH_WATCH;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

fn check(args: &WatchArgs) -> Result<usize, BenchError> {
    check_key_space(args.key_size, args.key_space_size)?;
    let watchers = args.streams.saturating_mul(args.watch_per_stream);
    if watchers == 0 || watchers > WATCHERS_MAX || args.watched_key_total == 0 {
        return Err(BenchError::Usage(format!(
            "need 1..={WATCHERS_MAX} watchers (streams x watch-per-stream) and \
             --watched-key-total >= 1"
        )));
    }
    if args.watched_key_total > WATCHERS_MAX || args.put_total > TOTAL_CALLS_MAX {
        return Err(BenchError::Usage(format!(
            "--watched-key-total is limited to {WATCHERS_MAX}, --put-total to {TOTAL_CALLS_MAX}"
        )));
    }
    let watchers_per_key = (watchers as u64).div_ceil(args.watched_key_total as u64);
    let puts_per_key = args.put_total.div_ceil(args.watched_key_total as u64);
    if watchers_per_key
        .saturating_mul(puts_per_key)
        .saturating_mul(args.watched_key_total as u64)
        > EVENTS_MAX
    {
        return Err(BenchError::Usage(format!(
            "this run would deliver more than {EVENTS_MAX} events"
        )));
    }
    Ok(watchers)
}

pub async fn run(args: &WatchArgs, context: &RunContext) -> Result<RunResult, BenchError> {
    let watchers = check(args)?;
    let rate = pacing("put-rate", args.put_rate)?;
    let keys: Vec<Bytes> = (0..args.watched_key_total as u64)
        .map(|i| {
            let index = key_index(i, args.key_space_size, args.sequential_keys, context.seed);
            varint_key(index, args.key_size)
        })
        .collect();
    let mut puts_per_key: HashMap<Bytes, u64> = HashMap::new();
    for put in 0..args.put_total {
        *puts_per_key
            .entry(keys[(put % keys.len() as u64) as usize].clone())
            .or_insert(0) += 1;
    }

    let pool = Pool::connect(&context.connect).await?;
    let create_start = Instant::now();
    let mut create_latency = LatencyRecorder::new();
    let mut senders = Vec::with_capacity(args.streams);
    let mut receivers = Vec::with_capacity(args.streams);
    for stream in 0..args.streams {
        let channel = pool.for_client(stream % context.clients);
        let setup =
            |error| BenchError::setup("watch create", WATCH_WATCH, channel.authority(), error);
        let (mut sender, mut receiver) = open(&channel).await.map_err(setup)?;
        let mut expected = 0u64;
        for watcher in 0..args.watch_per_stream {
            let key = &keys[(stream * args.watch_per_stream + watcher) % keys.len()];
            let sent = Instant::now();
            sender.send(&create_request(key, 0, false)).map_err(setup)?;
            wait_created(&mut receiver).await.map_err(setup)?;
            create_latency.record(sent.elapsed());
            expected += puts_per_key.get(key).copied().unwrap_or(0);
        }
        senders.push(sender);
        receivers.push((receiver, expected));
    }
    let create_elapsed = create_start.elapsed();
    let expected_total = receivers.iter().map(|(_, expected)| expected).sum();
    let collector = EventCollector::spawn(receivers);

    let puts = PutLog::default();
    let log = puts.clone();
    let put_keys = Arc::new(keys);
    let operation = Arc::new(move |call: Call| {
        let request = PutRequest {
            key: put_keys[(call.index % put_keys.len() as u64) as usize].clone(),
            value: Bytes::from_static(b"data"),
            ..Default::default()
        };
        let log = log.clone();
        async move { log.put(call, request).await }
    });
    let plan = Plan {
        total: args.put_total,
        duration: None,
        clients: context.clients,
        rate_per_s: rate,
        request_timeout: context.request_timeout,
        series_count: 1,
        progress: context.show_progress.then(|| "watch puts".to_string()),
    };
    let put_start = Instant::now();
    let measured = driver::run(&pool, &plan, operation).await;
    let arrivals = collector.collect(context.request_timeout).await;
    drop(senders);

    let events = event_latencies(&arrivals, &puts, expected_total);
    let put_recorder = measured.recorders.into_iter().next().unwrap_or_default();
    Ok(RunResult {
        benchmark: "watch".to_string(),
        mode: mode_text(rate),
        series: vec![
            series("watch-create", create_latency, create_elapsed, create_start),
            series("put", put_recorder, measured.elapsed, put_start),
            series("watch-event", events, measured.elapsed, put_start),
        ],
        notes: vec![format!(
            "{watchers} watchers over {} keys; {expected_total} events expected",
            args.watched_key_total
        )],
        warmup: 0,
        send_lag: measured.send_lag,
    })
}
