//! The Lock and Election services, single node: one script of calls through the Rust
//! `etcd-client` crate (which uses the `v3lockpb`/`v3electionpb` RPCs) run against Capstan and
//! against etcd 3.4, whose transcripts must be equal — results, error codes and messages, keys
//! and header revisions. Plus `etcdctl lock` and `etcdctl elect` in separate processes (etcdctl
//! runs the same recipes client-side over KV, Watch and Lease), and the one case where Capstan
//! follows newer etcd rather than 3.4 (a waiter whose lease expired).
mod cluster;
mod common;

use cluster::{serial, Cluster, ClusterSpec};
use common::*;
use etcd_client::{
    Client, Error, GetOptions, LeaderKey, LockOptions, ProclaimOptions, ResignOptions,
};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Generous bound for anything that should happen "soon" (avoids hangs, asserts nothing).
const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

/// "code: message" of a failed call, or a panic naming the call if it succeeded.
fn status_of<T: std::fmt::Debug>(result: Result<T, Error>) -> String {
    match result {
        Err(Error::GRpcStatus(status)) => format!("{:?}: {}", status.code(), status.message()),
        other => panic!("expected a gRPC error, got {other:?}"),
    }
}

/// Names the lease ids in a key, so two servers' keys compare.
struct Leases(Vec<(i64, &'static str)>);

impl Leases {
    fn name(&self, key: &[u8]) -> String {
        let mut text = String::from_utf8_lossy(key).into_owned();
        for (id, name) in &self.0 {
            text = text.replace(&format!("{id:x}"), name);
        }
        text
    }
}

async fn keys_under(client: &mut Client, prefix: &str) -> Vec<String> {
    let response = client
        .get(
            prefix,
            Some(GetOptions::new().with_prefix().with_keys_only()),
        )
        .await
        .expect("get prefix");
    response
        .kvs()
        .iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect()
}

/// Waits until `prefix` holds `count` keys (a waiter has queued its key).
async fn wait_for_keys(client: &mut Client, prefix: &str, count: usize) {
    let deadline = Instant::now() + WAIT;
    while keys_under(client, prefix).await.len() != count {
        assert!(
            Instant::now() < deadline,
            "{prefix} never held {count} keys"
        );
        tokio::time::sleep(POLL).await;
    }
}

fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.expect("header").revision()
}

/// The script both servers run; returns its transcript.
async fn script(endpoint: &str) -> Vec<String> {
    let mut client = connect(endpoint).await;
    let mut out = Vec::new();
    let a = client.lease_grant(600, None).await.expect("grant").id();
    let b = client.lease_grant(600, None).await.expect("grant").id();
    let c = client.lease_grant(600, None).await.expect("grant").id();
    let leases = Leases(vec![(a, "<A>"), (b, "<B>"), (c, "<C>")]);

    // --- errors -------------------------------------------------------------------------
    out.push(status_of(
        client
            .lock("l", Some(LockOptions::new().with_lease(0x7777)))
            .await,
    ));
    out.push(status_of(client.campaign("e", "v", 0x7777).await));
    out.push(status_of(client.leader("nobody").await));
    out.push(status_of(client.proclaim("v", None).await));
    out.push(status_of(client.resign(None).await));
    let stale = LeaderKey::new()
        .with_name("e")
        .with_key("e/1")
        .with_rev(99)
        .with_lease(a);
    out.push(status_of(
        client
            .proclaim("v", Some(ProclaimOptions::new().with_leader(stale.clone())))
            .await,
    ));
    let resigned = client
        .resign(Some(ResignOptions::new().with_leader(stale)))
        .await
        .expect("resign of a stale key succeeds");
    out.push(format!(
        "stale resign at {}",
        revision_of(resigned.header())
    ));
    out.push(status_of(client.unlock("").await));
    let unlocked = client.unlock("never-locked").await.expect("unlock");
    out.push(format!(
        "unlock absent at {}",
        revision_of(unlocked.header())
    ));

    // --- lock ---------------------------------------------------------------------------
    let held = client
        .lock("l", Some(LockOptions::new().with_lease(a)))
        .await
        .expect("lock");
    out.push(format!(
        "lock {} at {}",
        leases.name(held.key()),
        revision_of(held.header())
    ));
    let again = client
        .lock("l", Some(LockOptions::new().with_lease(a)))
        .await
        .expect("re-entrant lock");
    out.push(format!(
        "relock {} at {}",
        leases.name(again.key()),
        revision_of(again.header())
    ));
    // A waiter cancelled by its client takes its key away.
    let mut waiter = client.clone();
    let cancelled = tokio::spawn(async move {
        waiter
            .lock("l", Some(LockOptions::new().with_lease(b)))
            .await
    });
    wait_for_keys(&mut client, "l/", 2).await;
    cancelled.abort();
    wait_for_keys(&mut client, "l/", 1).await;
    out.push(format!(
        "after cancel {:?}",
        leases_named(&leases, &keys_under(&mut client, "l/").await)
    ));
    // A waiter gets the lock once the holder unlocks.
    let mut waiter = client.clone();
    let second = tokio::spawn(async move {
        waiter
            .lock("l", Some(LockOptions::new().with_lease(b)))
            .await
    });
    wait_for_keys(&mut client, "l/", 2).await;
    assert!(!second.is_finished(), "the second lock did not wait");
    let unlocked = client.unlock(held.key().to_vec()).await.expect("unlock");
    out.push(format!("unlock at {}", revision_of(unlocked.header())));
    let second = tokio::time::timeout(WAIT, second)
        .await
        .expect("second lock in time")
        .expect("join")
        .expect("second lock");
    out.push(format!(
        "second lock {} at {}",
        leases.name(second.key()),
        revision_of(second.header())
    ));
    // Revoking the holder's lease releases the lock too.
    let mut waiter = client.clone();
    let third = tokio::spawn(async move {
        waiter
            .lock("l", Some(LockOptions::new().with_lease(c)))
            .await
    });
    wait_for_keys(&mut client, "l/", 2).await;
    client.lease_revoke(b).await.expect("revoke");
    let third = tokio::time::timeout(WAIT, third)
        .await
        .expect("third lock in time")
        .expect("join")
        .expect("third lock");
    out.push(format!(
        "third lock {} at {}",
        leases.name(third.key()),
        revision_of(third.header())
    ));
    client.unlock(third.key().to_vec()).await.expect("unlock");
    // Lease 0: the server grants a lease of its own for the key.
    let leases_before = client.leases().await.expect("leases").leases().len();
    let own = client.lock("z", None).await.expect("lock with lease 0");
    let leases_after = client.leases().await.expect("leases").leases().len();
    out.push(format!(
        "lease-0 lock under z/: {}, leases +{}",
        String::from_utf8_lossy(own.key()).starts_with("z/"),
        leases_after - leases_before
    ));
    client.unlock(own.key().to_vec()).await.expect("unlock");

    // --- election -----------------------------------------------------------------------
    let d = client.lease_grant(600, None).await.expect("grant").id();
    let e = client.lease_grant(600, None).await.expect("grant").id();
    let leases = Leases(vec![(a, "<A>"), (c, "<C>"), (d, "<D>"), (e, "<E>")]);
    let won = client.campaign("e", "first", d).await.expect("campaign");
    let leader = won.leader().expect("leader key").clone();
    out.push(format!(
        "campaign {} rev {} lease-is-d {} at {}",
        leases.name(leader.key()),
        leader.rev(),
        leader.lease() == d,
        revision_of(won.header())
    ));
    let mut observer = client.observe("e").await.expect("observe");
    let observed = |response: Option<etcd_client::LeaderResponse>| {
        let response = response.expect("observe message");
        let kv = response.kv().expect("kv");
        format!(
            "observed {}={} at {}",
            leases.name(kv.key()),
            String::from_utf8_lossy(kv.value()),
            revision_of(response.header())
        )
    };
    out.push(observed(observer.message().await.expect("observe")));
    let current = client.leader("e").await.expect("leader");
    out.push(format!(
        "leader {} at {}",
        leases.name(current.kv().expect("kv").key()),
        revision_of(current.header())
    ));
    let proclaimed = client
        .proclaim(
            "second",
            Some(ProclaimOptions::new().with_leader(leader.clone())),
        )
        .await
        .expect("proclaim");
    out.push(format!("proclaim at {}", revision_of(proclaimed.header())));
    out.push(observed(observer.message().await.expect("observe")));
    // A second candidate waits; the leader re-campaigning with a new value proclaims it.
    let mut candidate = client.clone();
    let next = tokio::spawn(async move { candidate.campaign("e", "other", e).await });
    wait_for_keys(&mut client, "e/", 2).await;
    let recampaign = client.campaign("e", "third", d).await.expect("campaign");
    out.push(format!(
        "re-campaign rev {} at {}",
        recampaign.leader().expect("leader").rev(),
        revision_of(recampaign.header())
    ));
    out.push(observed(observer.message().await.expect("observe")));
    assert!(!next.is_finished(), "the second candidate did not wait");
    let resigned = client
        .resign(Some(ResignOptions::new().with_leader(leader.clone())))
        .await
        .expect("resign");
    out.push(format!("resign at {}", revision_of(resigned.header())));
    let next = tokio::time::timeout(WAIT, next)
        .await
        .expect("second candidate in time")
        .expect("join")
        .expect("campaign");
    let next_leader = next.leader().expect("leader").clone();
    out.push(format!(
        "elected {} rev {} at {}",
        leases.name(next_leader.key()),
        next_leader.rev(),
        revision_of(next.header())
    ));
    out.push(observed(observer.message().await.expect("observe")));
    // The old leader key no longer proclaims.
    out.push(status_of(
        client
            .proclaim("late", Some(ProclaimOptions::new().with_leader(leader)))
            .await,
    ));
    // A cancelled candidate resigns.
    let mut candidate = client.clone();
    let cancelled = tokio::spawn(async move { candidate.campaign("e", "never", c).await });
    wait_for_keys(&mut client, "e/", 2).await;
    cancelled.abort();
    wait_for_keys(&mut client, "e/", 1).await;
    out.push(format!(
        "after cancel {:?}",
        leases_named(&leases, &keys_under(&mut client, "e/").await)
    ));
    // Revoking the leader's lease elects nobody; the observer sees the next leader.
    client.lease_revoke(e).await.expect("revoke");
    out.push(status_of(client.leader("e").await));
    let won = client.campaign("e", "fourth", a).await.expect("campaign");
    out.push(format!("campaign at {}", revision_of(won.header())));
    out.push(observed(observer.message().await.expect("observe")));
    // Proclaim with lease 0 attaches a fresh server-granted lease to the leader key (etcd
    // opens a session for the call).
    let leader = won.leader().expect("leader").clone().with_lease(0);
    let leases_before = client.leases().await.expect("leases").leases().len();
    client
        .proclaim("fifth", Some(ProclaimOptions::new().with_leader(leader)))
        .await
        .expect("proclaim");
    let leases_after = client.leases().await.expect("leases").leases().len();
    let current = client.leader("e").await.expect("leader");
    let kv = current.kv().expect("kv");
    out.push(format!(
        "lease-0 proclaim: leases +{}, key lease changed {}",
        leases_after - leases_before,
        kv.lease() != a && kv.lease() != 0
    ));
    out.push(observed(observer.message().await.expect("observe")));
    out
}

fn leases_named(leases: &Leases, keys: &[String]) -> Vec<String> {
    keys.iter().map(|key| leases.name(key.as_bytes())).collect()
}

fn run_script(flavor: Flavor, dir: &Path) -> Vec<String> {
    let server = Server::start(flavor, dir, &[]);
    tokio_runtime().block_on(script(&server.endpoint()))
}

#[test]
fn lock_and_election_rpcs_match_etcd() {
    let capstan_dir = tempfile::tempdir().expect("tempdir");
    let etcd_dir = tempfile::tempdir().expect("tempdir");
    let capstan = run_script(Flavor::Capstan, capstan_dir.path());
    let etcd = run_script(Flavor::Etcd, etcd_dir.path());
    for (line, (ours, theirs)) in capstan.iter().zip(&etcd).enumerate() {
        assert_eq!(ours, theirs, "transcript line {line} differs");
    }
    assert_eq!(capstan.len(), etcd.len());
    // Spot-check the transcript says what the script means.
    assert_eq!(capstan[0], "Unknown: etcdserver: requested lease not found");
    assert!(capstan.contains(&"Unknown: election: not leader".to_string()));
}

/// Newer etcd (3.5+: `Mutex.Lock` re-reads its key after waiting) refuses a lock whose own
/// key vanished while it waited; etcd 3.4 returned success with a key that no longer exists.
/// Capstan follows the newer behaviour.
#[test]
fn a_waiter_whose_lease_expired_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(Flavor::Capstan, dir.path(), &[]);
    tokio_runtime().block_on(async {
        let mut client = connect(&server.endpoint()).await;
        let holder = client.lease_grant(600, None).await.expect("grant").id();
        let waiter_lease = client.lease_grant(600, None).await.expect("grant").id();
        client
            .lock("x", Some(LockOptions::new().with_lease(holder)))
            .await
            .expect("lock");
        let mut waiter = client.clone();
        let waiting = tokio::spawn(async move {
            waiter
                .lock("x", Some(LockOptions::new().with_lease(waiter_lease)))
                .await
        });
        wait_for_keys(&mut client, "x/", 2).await;
        client.lease_revoke(waiter_lease).await.expect("revoke");
        client.lease_revoke(holder).await.expect("revoke");
        let outcome = tokio::time::timeout(WAIT, waiting)
            .await
            .expect("waiter in time")
            .expect("join");
        assert_eq!(status_of(outcome), "Unknown: mutex: session is expired");
        assert!(keys_under(&mut client, "x/").await.is_empty());
    });
}

/// A child process killed and reaped when the test ends, however it ends.
struct Process(Child);

impl Process {
    fn interrupt(&self) {
        let status = Command::new("kill")
            .arg("-INT")
            .arg(self.0.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -INT failed");
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "process did not exit");
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_etcdctl(endpoint: &str, args: &[&str]) -> Process {
    require_tool("etcdctl", "etcd-client");
    let child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn etcdctl");
    Process(child)
}

/// Lines of the process's stdout, as they come.
fn stdout_lines(process: &mut Process) -> mpsc::Receiver<String> {
    let stdout = process.0.stdout.take().expect("piped stdout");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

fn next_line(lines: &mpsc::Receiver<String>) -> String {
    lines.recv_timeout(WAIT).expect("a line in time")
}

fn keys_with_etcdctl(endpoint: &str, prefix: &str) -> Vec<String> {
    etcdctl_ok(endpoint, &["get", "--prefix", "--keys-only", prefix])
        .lines()
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect()
}

fn wait_for_keys_with_etcdctl(endpoint: &str, prefix: &str, count: usize) {
    let deadline = Instant::now() + WAIT;
    while keys_with_etcdctl(endpoint, prefix).len() != count {
        assert!(
            Instant::now() < deadline,
            "{prefix} never held {count} keys"
        );
        std::thread::sleep(POLL);
    }
}

/// `etcdctl lock NAME -- COMMAND` in two processes: the second runs its command only after
/// the first's command has finished and released the lock.
#[test]
fn etcdctl_lock_is_mutually_exclusive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(Flavor::Capstan, dir.path(), &[]);
    let endpoint = server.endpoint();
    let log = dir.path().join("critical-section.log");
    let release = dir.path().join("release-first");
    let first_script = format!(
        "echo first-in >> {log}; while [ ! -e {release} ]; do sleep 0.05; done; \
         echo first-out >> {log}",
        log = log.display(),
        release = release.display()
    );
    let second_script = format!("echo second-in >> {}", log.display());
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();

    let mut first = spawn_etcdctl(&endpoint, &["lock", "L", "--", "sh", "-c", &first_script]);
    let deadline = Instant::now() + WAIT;
    while read_log().is_empty() {
        assert!(Instant::now() < deadline, "the first lock was not acquired");
        std::thread::sleep(POLL);
    }
    let mut second = spawn_etcdctl(&endpoint, &["lock", "L", "--", "sh", "-c", &second_script]);
    // The second process has queued its key: it waits for the first.
    wait_for_keys_with_etcdctl(&endpoint, "L/", 2);
    assert_eq!(read_log(), "first-in\n");
    std::fs::write(&release, b"").expect("release the first");
    assert!(first.wait_exit().success());
    assert!(second.wait_exit().success());
    assert_eq!(read_log(), "first-in\nfirst-out\nsecond-in\n");
    assert!(keys_with_etcdctl(&endpoint, "L/").is_empty());
}

/// `etcdctl elect NAME PROPOSAL` in two processes elects one at a time, and
/// `etcdctl elect -l NAME` observes each leader in turn.
#[test]
fn etcdctl_elect_one_leader_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(Flavor::Capstan, dir.path(), &[]);
    let endpoint = server.endpoint();
    let mut observer = spawn_etcdctl(&endpoint, &["elect", "-l", "E"]);
    let observed = stdout_lines(&mut observer);

    let mut first = spawn_etcdctl(&endpoint, &["elect", "E", "first"]);
    let first_lines = stdout_lines(&mut first);
    let first_key = next_line(&first_lines);
    assert!(first_key.starts_with("E/"), "{first_key}");
    assert_eq!(next_line(&first_lines), "first");
    assert_eq!(next_line(&observed), first_key);
    assert_eq!(next_line(&observed), "first");

    let mut second = spawn_etcdctl(&endpoint, &["elect", "E", "second"]);
    let second_lines = stdout_lines(&mut second);
    wait_for_keys_with_etcdctl(&endpoint, "E/", 2);
    assert!(
        second_lines.try_recv().is_err(),
        "the second candidate was elected while the first leads"
    );

    // Ctrl-C makes the leader resign; the second candidate takes over.
    first.interrupt();
    first.wait_exit();
    let second_key = next_line(&second_lines);
    assert!(second_key.starts_with("E/") && second_key != first_key);
    assert_eq!(next_line(&second_lines), "second");
    assert_eq!(next_line(&observed), second_key);
    assert_eq!(next_line(&observed), "second");
    second.interrupt();
    second.wait_exit();
    wait_for_keys_with_etcdctl(&endpoint, "E/", 0);
}

/// In a three-member cluster, a lock held through one member makes a Lock sent to another
/// member wait, until an Unlock through the third; an observer on a follower sees leaders
/// elected through other members.
#[test]
fn lock_and_election_across_a_cluster() {
    let _serial = serial();
    let cluster = Cluster::start(ClusterSpec::new(3));
    cluster.wait_for_leader(&cluster.all());
    tokio_runtime().block_on(async {
        let mut clients = Vec::new();
        for i in 0..3 {
            clients.push(connect(&cluster.endpoint(i)).await);
        }
        let first_lease = clients[0].lease_grant(600, None).await.expect("grant").id();
        let second_lease = clients[0].lease_grant(600, None).await.expect("grant").id();
        let held = clients[0]
            .lock("c", Some(LockOptions::new().with_lease(first_lease)))
            .await
            .expect("lock through member 0");
        let mut waiter = clients[1].clone();
        let waiting = tokio::spawn(async move {
            waiter
                .lock("c", Some(LockOptions::new().with_lease(second_lease)))
                .await
        });
        wait_for_keys(&mut clients[2], "c/", 2).await;
        assert!(
            !waiting.is_finished(),
            "the lock through member 1 did not wait"
        );
        clients[2]
            .unlock(held.key().to_vec())
            .await
            .expect("unlock through member 2");
        let second = tokio::time::timeout(WAIT, waiting)
            .await
            .expect("second lock in time")
            .expect("join")
            .expect("second lock");
        assert_eq!(
            String::from_utf8_lossy(second.key()),
            format!("c/{second_lease:x}")
        );

        let mut observer = clients[2].observe("ce").await.expect("observe");
        let won = clients[0]
            .campaign("ce", "zero", first_lease)
            .await
            .expect("campaign through member 0");
        let seen = tokio::time::timeout(WAIT, observer.message())
            .await
            .expect("observed in time")
            .expect("observe")
            .expect("a message");
        assert_eq!(seen.kv().expect("kv").value(), b"zero");
        clients[1]
            .resign(Some(
                ResignOptions::new().with_leader(won.leader().expect("leader").clone()),
            ))
            .await
            .expect("resign through member 1");
        clients[1]
            .campaign("ce", "one", second_lease)
            .await
            .expect("campaign through member 1");
        let seen = tokio::time::timeout(WAIT, observer.message())
            .await
            .expect("observed in time")
            .expect("observe")
            .expect("a message");
        assert_eq!(seen.kv().expect("kv").value(), b"one");
    });
}
