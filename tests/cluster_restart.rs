//! Restarts: a killed member takes client connections before it can serve (they wait, as
//! etcd's do, instead of being refused) and answers no call from a state it has not caught up
//! to; a whole cluster killed at once comes back and takes
//! writes; a member restarting with its election clock fast-forwarded (etcd's initial election
//! tick advance) cannot unseat a healthy leader.
//!
//! The harness starts a member only to wait for its ready line, and here members must run while
//! they cannot get ready (alone, or cut off from the leader), so these tests start such members
//! themselves, with the command line the harness gave them (read from `/proc/<pid>/cmdline`
//! before the kill), on the same ports, data directory and log file ([`Relaunched`]).
mod cluster;
mod common;

use cluster::*;
use common::*;

use etcd_client::{Client, ConnectOptions, GetOptions};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The key whose old value a restarted member must never serve.
const KEY: &str = "restart/key";
/// A client deadline (and connect timeout) that outlasts a member's start-up and catch-up here.
const PATIENT_CALL: Duration = Duration::from_secs(20);
/// How long a call to a member that cannot serve is watched for an answer it must not give.
const WHILE_ALONE: Duration = Duration::from_secs(3);
/// Serializable reads made on the restarted member once it serves.
const READS_AFTER_SERVING: usize = 3;
/// What a member logs once its client port is bound (after the port was free: a killed
/// member's listening socket can outlive it briefly while io_uring tears down, and connections
/// it takes then are reset).
const LISTENING_LINE: &str = "listening for client connections";

fn run<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio_runtime().block_on(future)
}

/// A member process this test started; SIGKILLed and reaped on drop.
struct Relaunched {
    child: Child,
}

impl Drop for Relaunched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The command line of running member `i`.
fn command_line(cluster: &Cluster, i: usize) -> Vec<String> {
    let pid = cluster.members[i].pid().expect("the member runs");
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).expect("read the member's cmdline");
    raw.split(|byte| *byte == 0)
        .filter(|argument| !argument.is_empty())
        .map(|argument| String::from_utf8_lossy(argument).into_owned())
        .collect()
}

/// Starts member `i` again with `command_line`, logging to its log file, without waiting.
fn relaunch(cluster: &Cluster, i: usize, command_line: &[String]) -> Relaunched {
    let open_log = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&cluster.members[i].log_path)
            .expect("open the member log")
    };
    let mut command = Command::new(&command_line[0]);
    command
        .args(&command_line[1..])
        .stdin(Stdio::null())
        .stdout(open_log())
        .stderr(open_log())
        .env_remove("CAPSTAN_LOG");
    for (key, _) in std::env::vars() {
        if key.starts_with("ETCD_") {
            command.env_remove(key);
        }
    }
    let child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start n{} again: {error}", i + 1));
    Relaunched { child }
}

fn wait_for(cluster: &Cluster, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + EVENTUALLY;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {EVENTUALLY:?}\n{}",
            cluster.log_tails(40)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for_ready_line(cluster: &Cluster, i: usize, ready_before: usize) {
    wait_for(cluster, &format!("n{} ready again", i + 1), || {
        cluster.members[i].ready_lines() > ready_before
    });
}

/// A client of member `i` only, whose calls carry [`PATIENT_CALL`] as their deadline.
async fn patient_client(cluster: &Cluster, i: usize) -> Client {
    let options = ConnectOptions::new()
        .with_connect_timeout(PATIENT_CALL)
        .with_timeout(PATIENT_CALL);
    Client::connect([cluster.members[i].url()], Some(options))
        .await
        .expect("connect etcd-client")
}

async fn serializable_get(client: &mut Client, key: &str) -> Result<Option<Vec<u8>>, String> {
    let options = GetOptions::new().with_serializable();
    let response = tokio::time::timeout(PATIENT_CALL * 2, client.get(key, Some(options)))
        .await
        .map_err(|_| "get timed out".to_string())?
        .map_err(|error| error.to_string())?;
    Ok(response.kvs().first().map(|kv| kv.value().to_vec()))
}

/// n1 misses a write while it is down, then the whole cluster dies. n1 comes back first, alone:
/// its client port takes connections at once, but it cannot serve (no quorum), so a call waits
/// — its old value is never read, not even serializably. Once the others are back, a
/// serializable read that was already waiting returns the new value, and a write through n1 is
/// acknowledged.
#[test]
fn a_restarted_member_takes_connections_at_once_and_never_serves_its_old_state() {
    let _serial = serial();
    let mut cluster = Cluster::start_plain(3);
    let all = cluster.all();
    cluster.wait_for_leader(&all);
    ctl_ok(&cluster, &all, &["put", KEY, "old"]);
    let dump = run(cluster.wait_converged(&all, 0));
    assert_eq!(dump.value(KEY), Some(&b"old"[..]));
    let command_lines: Vec<Vec<String>> = all.iter().map(|&i| command_line(&cluster, i)).collect();

    let stale = 0;
    cluster.kill9(stale);
    run(async {
        // n1 may have led: the first attempt may meet the election.
        let mut client = cluster.client(1).await;
        put_eventually(&mut client, KEY, "new").await;
    });
    cluster.kill9(1);
    cluster.kill9(2);

    let ready_before: Vec<usize> = all
        .iter()
        .map(|&i| cluster.members[i].ready_lines())
        .collect();
    let listening_before = cluster.log(stale).matches(LISTENING_LINE).count();
    let _stale_member = relaunch(&cluster, stale, &command_lines[stale]);
    wait_for(&cluster, "n1 binds its client port", || {
        cluster.log(stale).matches(LISTENING_LINE).count() > listening_before
    });
    if let Err(error) = TcpStream::connect(cluster.endpoint(stale)) {
        panic!("n1, alone, refuses connections: {error}");
    }
    run(async {
        let mut client = patient_client(&cluster, stale).await;
        let alone = tokio::time::timeout(WHILE_ALONE, serializable_get(&mut client, KEY)).await;
        assert!(
            alone.is_err(),
            "n1, alone, did not keep a serializable read waiting: {alone:?}"
        );
    });
    assert_eq!(
        cluster.members[stale].ready_lines(),
        ready_before[stale],
        "n1 got ready alone"
    );

    let reads = run(async {
        let mut client = patient_client(&cluster, stale).await;
        let waiting = tokio::spawn(async move {
            let mut values = Vec::new();
            while values.len() < READS_AFTER_SERVING {
                values.push(serializable_get(&mut client, KEY).await);
            }
            values
        });
        let others: Vec<Relaunched> = [1, 2]
            .iter()
            .map(|&i| relaunch(&cluster, i, &command_lines[i]))
            .collect();
        let values = waiting.await.expect("reader task");
        (values, others)
    });
    let (values, _others) = reads;
    for value in &values {
        assert_eq!(
            value.as_ref().map(|value| value.as_deref()),
            Ok(Some(&b"new"[..])),
            "n1 answered a serializable read from before its catch-up: {values:?}\n{}",
            cluster.log_tails(40)
        );
    }
    for &i in &all {
        wait_for_ready_line(&cluster, i, ready_before[i]);
    }
    run(async {
        let mut client = cluster.client(stale).await;
        put_eventually(&mut client, "restart/after", "written").await;
    });
    let dump = run(cluster.wait_converged(&all, 0));
    assert_eq!(dump.value(KEY), Some(&b"new"[..]));
    assert_eq!(dump.value("restart/after"), Some(&b"written"[..]));
}

/// All three members killed at once and started together: every acknowledged write is there
/// and each member takes a write again.
#[test]
fn a_whole_cluster_restart_keeps_every_acknowledged_write_and_takes_new_ones() {
    let _serial = serial();
    let mut cluster = Cluster::start_plain(3);
    let all = cluster.all();
    cluster.wait_for_leader(&all);
    let acknowledged: Vec<(String, String)> = (0..20)
        .map(|n| (format!("restart/before/{n:02}"), format!("value-{n}")))
        .collect();
    run(async {
        let mut client = cluster.client(0).await;
        for (key, value) in &acknowledged {
            put_eventually(&mut client, key, value).await;
        }
    });
    for round in 0..2 {
        cluster.restart_together(&all);
        run(async {
            for &i in &all {
                let mut client = cluster.client(i).await;
                put_eventually(
                    &mut client,
                    &format!("restart/after/{round}/n{}", i + 1),
                    "x",
                )
                .await;
            }
        });
        let dump = run(cluster.wait_converged(&all, 0));
        for (key, value) in &acknowledged {
            assert_eq!(
                dump.value(key),
                Some(value.as_bytes()),
                "{key} after round {round}"
            );
        }
        for &i in &all {
            let key = format!("restart/after/{round}/n{}", i + 1);
            assert_eq!(dump.value(&key), Some(&b"x"[..]));
        }
    }
}

/// A follower restarts while it cannot hear the leader (its link from the leader drops every
/// connection), so with its election clock fast-forwarded it campaigns at once, again and again.
/// Pre-vote and check-quorum keep that from unseating anyone: the leader and term stay, writes
/// go on, and once the link heals the follower follows the same leader in the same term — and
/// a read that waited on it sees the write it missed.
#[test]
fn a_restarted_member_cannot_unseat_a_healthy_leader() {
    let _serial = serial();
    // A long election timeout: only the restarted member's campaigns could change the term,
    // not a busy machine's scheduling.
    let mut cluster = Cluster::start(ClusterSpec::new(3).proxied().flags(&[
        "--heartbeat-interval",
        "100",
        "--election-timeout",
        "2500",
    ]));
    let all = cluster.all();
    let before = cluster.wait_for_leader(&all);
    let follower = cluster.others(&[before.leader])[0];
    let healthy = cluster.others(&[follower]);
    let command_line = command_line(&cluster, follower);
    cluster.kill9(follower);
    cluster.set_link(before.leader, follower, Link::Drop);
    let log_before = cluster.log(follower).len();
    let ready_before = cluster.members[follower].ready_lines();
    let _restarted = relaunch(&cluster, follower, &command_line);

    wait_for(&cluster, "the restarted follower campaigns", || {
        cluster.log(follower)[log_before..].contains("\"role\":\"PreCandidate\"")
    });
    let during = cluster.wait_for_leader(&healthy);
    assert_eq!(
        (during.leader, during.term),
        (before.leader, before.term),
        "a restarted member's campaign changed the leadership\n{}",
        cluster.log_tails(40)
    );
    ctl_ok(&cluster, &[before.leader], &["put", "restart/during", "x"]);

    // The follower missed that write, and the term does not change when it hears the leader
    // again: a read waiting on it now must still see the write.
    let read = run(async {
        let mut client = patient_client(&cluster, follower).await;
        let waiting =
            tokio::spawn(async move { serializable_get(&mut client, "restart/during").await });
        cluster.heal();
        waiting.await.expect("reader task")
    });
    assert_eq!(
        read.as_ref().map(|value| value.as_deref()),
        Ok(Some(&b"x"[..])),
        "the restarted follower served a read from before it caught up\n{}",
        cluster.log_tails(40)
    );
    wait_for_ready_line(&cluster, follower, ready_before);
    let after = cluster.wait_for_leader(&all);
    assert_eq!(
        (after.leader, after.term),
        (before.leader, before.term),
        "the leadership changed once the restarted member heard the leader\n{}",
        cluster.log_tails(40)
    );
    let dump = run(cluster.wait_converged(&all, 0));
    assert_eq!(dump.value("restart/during"), Some(&b"x"[..]));
}
