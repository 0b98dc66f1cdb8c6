//! `watch-get`: writes `--events` revisions of `watchkey`, opens `--watchers` watchers from the
//! first of them over `--streams` streams (so the server must replay history to every one of
//! them: "unsynced" watchers), and meanwhile measures serializable gets of another key from a
//! separate connection until every watcher has caught up.

use super::watch_events::{EventCollector, EVENTS_MAX};
use super::watch_stream::{create_request, open};
use super::{mode_text, series, RunContext, RunResult};
use crate::cli::WatchGetArgs;
use crate::client::{ConnectOptions, Pool};
use crate::error::BenchError;
use crate::grpc::CallError;
use crate::limits::WATCHERS_MAX;
use crate::metrics::LatencyRecorder;
use bytes::Bytes;
use capstan_proto::etcdserverpb::{PutRequest, PutResponse, RangeRequest, RangeResponse};
use capstan_proto::method::{KV_PUT, KV_RANGE, WATCH_WATCH};
use std::time::Instant;

const WATCHED_KEY: &[u8] = b"watchkey";
const READ_KEY: &[u8] = b"abc";

fn check(args: &WatchGetArgs) -> Result<(), BenchError> {
    if args.watchers == 0 || args.watchers > WATCHERS_MAX || args.streams == 0 || args.events == 0 {
        return Err(BenchError::Usage(format!(
            "need 1..={WATCHERS_MAX} --watchers, --streams >= 1 and --events >= 1"
        )));
    }
    if (args.watchers as u64).saturating_mul(args.events) > EVENTS_MAX {
        return Err(BenchError::Usage(format!(
            "watchers x events exceeds the limit of {EVENTS_MAX}"
        )));
    }
    Ok(())
}

pub async fn run(args: &WatchGetArgs, context: &RunContext) -> Result<RunResult, BenchError> {
    check(args)?;
    let pool = Pool::connect(&context.connect).await?;
    let writer = pool.for_client(0);
    let key = Bytes::from_static(WATCHED_KEY);
    let mut first_revision = 0;
    for event in 0..args.events {
        let request = PutRequest {
            key: key.clone(),
            value: Bytes::from(event.to_string().into_bytes()),
            ..Default::default()
        };
        let response: PutResponse = writer.unary(KV_PUT, &request).await.map_err(|error| {
            BenchError::setup("seeding watchkey", KV_PUT, writer.authority(), error)
        })?;
        if event == 0 {
            first_revision = response.header.map(|header| header.revision).unwrap_or(0);
        }
    }

    let mut senders = Vec::with_capacity(args.streams);
    let mut receivers = Vec::with_capacity(args.streams);
    for stream in 0..args.streams {
        let channel = pool.for_client(stream % context.clients);
        let (mut sender, receiver) = open(&channel).await.map_err(|error| {
            BenchError::setup("watch create", WATCH_WATCH, channel.authority(), error)
        })?;
        let watchers_here = (args.watchers / args.streams
            + usize::from(stream < args.watchers % args.streams))
            as u64;
        for _ in 0..watchers_here {
            sender
                .send(&create_request(&key, first_revision, false))
                .map_err(|error| {
                    BenchError::setup("watch create", WATCH_WATCH, channel.authority(), error)
                })?;
        }
        senders.push(sender);
        receivers.push((receiver, watchers_here * args.events));
    }
    let collector = EventCollector::spawn(receivers);

    let get_pool = Pool::connect(&ConnectOptions {
        conns: 1,
        ..context.connect.clone()
    })
    .await?;
    let reader = get_pool.for_client(0);
    let request = RangeRequest {
        key: Bytes::from_static(READ_KEY),
        serializable: true,
        ..Default::default()
    };
    let start = Instant::now();
    let deadline = start + context.request_timeout;
    let mut gets = LatencyRecorder::new();
    while !collector.all_finished() && Instant::now() < deadline {
        let sent = Instant::now();
        let call = reader.unary::<_, RangeResponse>(KV_RANGE, &request);
        match tokio::time::timeout(context.request_timeout, call).await {
            Ok(Ok(_)) => gets.record(sent.elapsed()),
            Ok(Err(error)) => gets.record_error(&error),
            Err(_) => gets.record_error(&CallError::Timeout(context.request_timeout)),
        }
    }
    let elapsed = start.elapsed();
    let arrivals = collector.collect(std::time::Duration::ZERO).await;
    drop(senders);
    if let Some(error) = arrivals.iter().find_map(|stream| stream.error.clone()) {
        return Err(BenchError::setup(
            "watch",
            WATCH_WATCH,
            pool.first_endpoint(),
            error,
        ));
    }
    let delivered: usize = arrivals.iter().map(|stream| stream.arrivals.len()).sum();
    let expected = args.watchers as u64 * args.events;
    Ok(RunResult {
        benchmark: "watch-get".to_string(),
        mode: mode_text(None),
        series: vec![series("get", gets, elapsed, start)],
        notes: vec![format!(
            "{delivered} of {expected} events delivered to {} watchers in {:.3} s",
            args.watchers,
            elapsed.as_secs_f64()
        )],
        warmup: 0,
        send_lag: LatencyRecorder::new(),
    })
}
