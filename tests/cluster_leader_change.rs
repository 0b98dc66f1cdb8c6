//! Writes in flight when the leader dies: a follower forwards a client's put to the leader,
//! and if that leader stops (SIGSTOP) or dies (kill -9) the put is lost inside raft. The
//! follower answers it as soon as it stops hearing from that leader (or sees another one) with
//! etcd's error for an unknown outcome, "etcdserver: request timed out, possibly due to
//! previous leader failure" (the put may still apply, so never "leader changed", which etcd
//! uses for requests that did not execute), instead of leaving it to the request timeout
//! ("etcdserver: request timed out").
//!
//! A client talks to one follower only and puts unique keys in a loop while the leader is
//! stopped (then resumed), and again while the next leader is killed (then restarted). The test
//! asserts behaviour, not timings:
//! - every failed put failed with the leader-failure error or "no leader", never the plain
//!   "request timed out" (the client's own deadline is far longer than the members' request
//!   timeout, so a put left to that timeout would show as such), and at least one put failed
//!   with the leader-failure error;
//! - the new leader accepts writes through the same follower;
//! - once the cluster converged, every acknowledged put is there, and every failed put is
//!   either there with its value or absent, the same on every member.
//!
//! The election timeout is raised to 2.5 s so that a put sent right after the fault reaches the
//! follower while it still believes in the old leader, even on a loaded machine.
mod cluster;
mod common;

use cluster::*;
use common::*;

use etcd_client::{Client, ConnectOptions};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TIMING_FLAGS: [&str; 4] = ["--heartbeat-interval", "100", "--election-timeout", "2500"];
/// The client's deadline per put: well past the members' request timeout (5 s + 2 × 2.5 s).
const CLIENT_PATIENCE: Duration = Duration::from_secs(40);
/// Acknowledged puts before the fault (the writer is up and running) and after it (the new
/// leader accepts writes).
const ACKS_BEFORE_FAULT: usize = 10;
const ACKS_AFTER_FAULT: usize = 10;
/// Pause after a failed put, so the loop does not spin while there is no leader.
const PAUSE_AFTER_ERROR: Duration = Duration::from_millis(20);

const LEADER_FAILED: &str =
    "etcdserver: request timed out, possibly due to previous leader failure";
const NO_LEADER: &str = "etcdserver: no leader";

/// One put of the writer: its unique key and value, and the server's error if it failed.
#[derive(Debug)]
struct Attempt {
    key: String,
    value: String,
    error: Option<String>,
}

/// A task putting `prefix/NNNNN` keys through one member until told to stop.
struct Writer {
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<Vec<Attempt>>,
}

fn error_text(error: etcd_client::Error) -> String {
    match error {
        etcd_client::Error::GRpcStatus(status) => status.message().to_string(),
        other => other.to_string(),
    }
}

impl Writer {
    fn start(runtime: &tokio::runtime::Runtime, url: String, prefix: &str) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(AtomicUsize::new(0));
        let prefix = prefix.to_string();
        let task = {
            let (stop, acks) = (stop.clone(), acks.clone());
            runtime.spawn(async move {
                let options = ConnectOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(CLIENT_PATIENCE);
                let mut client = Client::connect([url], Some(options))
                    .await
                    .expect("connect the writer");
                let mut attempts = Vec::new();
                let mut sequence = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let key = format!("{prefix}/{sequence:05}");
                    let value = format!("value-{sequence}");
                    sequence += 1;
                    let result = tokio::time::timeout(
                        CLIENT_PATIENCE,
                        client.put(key.as_str(), value.as_str(), None),
                    )
                    .await;
                    let error = match result {
                        Ok(Ok(_)) => {
                            acks.fetch_add(1, Ordering::SeqCst);
                            None
                        }
                        Ok(Err(error)) => Some(error_text(error)),
                        Err(_) => Some(format!("no answer within {CLIENT_PATIENCE:?}")),
                    };
                    let failed = error.is_some();
                    attempts.push(Attempt { key, value, error });
                    if failed {
                        tokio::time::sleep(PAUSE_AFTER_ERROR).await;
                    }
                }
                attempts
            })
        };
        Writer { stop, acks, task }
    }

    fn acks(&self) -> usize {
        self.acks.load(Ordering::SeqCst)
    }

    /// Waits until the writer has `count` acknowledged puts in all.
    fn wait_for_acks(&self, cluster: &Cluster, count: usize) {
        let deadline = Instant::now() + EVENTUALLY;
        while self.acks() < count {
            assert!(
                Instant::now() < deadline,
                "the writer has {} of {count} acknowledged puts after {EVENTUALLY:?}\n{}",
                self.acks(),
                cluster.log_tails(40)
            );
            std::thread::sleep(POLL);
        }
    }

    fn finish(self, runtime: &tokio::runtime::Runtime) -> Vec<Attempt> {
        self.stop.store(true, Ordering::SeqCst);
        runtime.block_on(self.task).expect("writer task")
    }
}

/// Every failure is the leader-failure error or "no leader", and at least one is the former.
fn assert_failed_fast(attempts: &[Attempt], fault: &str) {
    let failures: Vec<&Attempt> = attempts
        .iter()
        .filter(|attempt| attempt.error.is_some())
        .collect();
    for attempt in &failures {
        let error = attempt.error.as_deref().unwrap_or_default();
        assert!(
            error == LEADER_FAILED || error == NO_LEADER,
            "{fault}: put {} failed with {error:?}, not {LEADER_FAILED:?} or {NO_LEADER:?}; \
             every failure: {failures:?}",
            attempt.key
        );
    }
    assert!(
        failures
            .iter()
            .any(|attempt| attempt.error.as_deref() == Some(LEADER_FAILED)),
        "{fault}: no put in flight failed with {LEADER_FAILED:?}; failures: {failures:?}"
    );
}

/// In the converged data: every acknowledged put is there; every failed one is there with its
/// own value or absent (the dump is the same on every member).
fn assert_consistent(attempts: &[Attempt], dump: &Dump, fault: &str) {
    for attempt in attempts {
        let found = dump.value(&attempt.key);
        match (&attempt.error, found) {
            (None, Some(value)) | (Some(_), Some(value)) => assert_eq!(
                value,
                attempt.value.as_bytes(),
                "{fault}: {} holds a value no put wrote",
                attempt.key
            ),
            (None, None) => panic!(
                "{fault}: acknowledged put {} is missing from the converged data",
                attempt.key
            ),
            (Some(_), None) => {}
        }
    }
}

/// A put through `member` until acknowledged; its revision.
fn put_marker(runtime: &tokio::runtime::Runtime, cluster: &Cluster, member: usize) -> i64 {
    runtime.block_on(async {
        let mut client = cluster.client(member).await;
        put_eventually(&mut client, "marker", "after the fault").await
    })
}

#[test]
fn puts_in_flight_when_the_leader_stops_or_dies_fail_fast_with_an_unknown_outcome() {
    let _serial = serial();
    let runtime = tokio_runtime();
    let mut cluster = Cluster::start(ClusterSpec::new(3).flags(&TIMING_FLAGS));
    let all = cluster.all();

    // 1. The leader freezes (SIGSTOP) while a follower's client writes.
    let first = cluster.wait_for_leader(&all);
    let follower = cluster.others(&[first.leader])[0];
    let writer = Writer::start(&runtime, cluster.members[follower].url(), "stopped");
    writer.wait_for_acks(&cluster, ACKS_BEFORE_FAULT);
    cluster.pause(first.leader);
    let acks_at_fault = writer.acks();
    writer.wait_for_acks(&cluster, acks_at_fault + ACKS_AFTER_FAULT);
    let attempts = writer.finish(&runtime);
    assert_failed_fast(&attempts, "leader stopped");

    cluster.resume(first.leader);
    let second = cluster.wait_for_leader(&all);
    assert!(second.term > first.term, "{first:?} then {second:?}");
    let revision = put_marker(&runtime, &cluster, follower);
    let dump = runtime.block_on(cluster.wait_converged(&all, revision));
    assert_consistent(&attempts, &dump, "leader stopped");

    // 2. The next leader is killed (-9) while a follower's client writes.
    let follower = cluster.others(&[second.leader])[0];
    let writer = Writer::start(&runtime, cluster.members[follower].url(), "killed");
    writer.wait_for_acks(&cluster, ACKS_BEFORE_FAULT);
    cluster.kill9(second.leader);
    let acks_at_fault = writer.acks();
    writer.wait_for_acks(&cluster, acks_at_fault + ACKS_AFTER_FAULT);
    let attempts = writer.finish(&runtime);
    assert_failed_fast(&attempts, "leader killed");

    let survivors = cluster.others(&[second.leader]);
    let third = cluster.wait_for_leader(&survivors);
    assert!(third.term > second.term, "{second:?} then {third:?}");
    cluster.restart(second.leader);
    cluster.wait_for_leader(&all);
    let revision = put_marker(&runtime, &cluster, follower);
    let dump = runtime.block_on(cluster.wait_converged(&all, revision));
    assert_consistent(&attempts, &dump, "leader killed");
}
