//! The Lock and Election services, single node: one script of calls through the Rust
//! `etcd-client` crate (which uses the `v3lockpb`/`v3electionpb` RPCs) run against Capstan and
//! against etcd 3.4, whose transcripts must be equal — results, error codes and messages, keys
//! and header revisions. Plus `etcdctl lock` and `etcdctl elect` in separate processes (etcdctl
//! runs the same recipes client-side over KV, Watch and Lease), and the one case where Capstan
//! follows newer etcd rather than 3.4 (a waiter whose lease expired).
mod common;

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
