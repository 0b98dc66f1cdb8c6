//! Leases in a cluster: keep-alives and time-to-live questions sent to followers are answered
//! by the leader's lease clock; killing the leader neither expires a lease its client keeps
//! alive nor keeps an abandoned one alive much past its TTL (checkpointed remaining TTLs plus
//! one election timeout).
mod cluster;
mod common;

use cluster::*;
use common::*;
use etcd_client::{Client, EventType, LeaseTimeToLiveOptions, PutOptions, WatchOptions};
use std::time::{Duration, Instant};

/// The members' `--election-timeout` (the default).
const ELECTION_TIMEOUT: Duration = Duration::from_millis(1000);
/// Scheduling slack on a loaded machine added to the expiry bound of the acceptance criterion.
const EXPIRY_SLACK: Duration = Duration::from_secs(3);

fn follower_of(cluster: &Cluster, leadership: &Leadership) -> usize {
    cluster.others(&[leadership.leader])[0]
}

async fn keep_alive_once(client: &mut Client, lease_id: i64) -> Result<i64, String> {
    let (mut keeper, mut answers) = client
        .lease_keep_alive(lease_id)
        .await
        .map_err(|error| error.to_string())?;
    keeper
        .keep_alive()
        .await
        .map_err(|error| error.to_string())?;
    match tokio::time::timeout(CALL_TIMEOUT, answers.message()).await {
        Ok(Ok(Some(answer))) => Ok(answer.ttl()),
        other => Err(format!("no keep-alive answer: {other:?}")),
    }
}

#[test]
fn follower_keep_alive_and_time_to_live_are_answered_by_the_leader() {
    let _serial = serial();
    let cluster = Cluster::start_plain(3);
    let leadership = cluster.wait_for_leader(&cluster.all());
    let follower = follower_of(&cluster, &leadership);
    let runtime = tokio_runtime();
    runtime.block_on(async {
        let mut client = cluster.client(follower).await;
        let lease = client.lease_grant(5, None).await.expect("grant").id();
        client
            .put("leased", "v", Some(PutOptions::new().with_lease(lease)))
            .await
            .expect("put with lease");
        assert_eq!(keep_alive_once(&mut client, lease).await, Ok(5));
        let answer = client
            .lease_time_to_live(lease, Some(LeaseTimeToLiveOptions::new().with_keys()))
            .await
            .expect("time to live");
        assert!((1..=5).contains(&answer.ttl()), "ttl {}", answer.ttl());
        assert_eq!(answer.granted_ttl(), 5);
        assert_eq!(answer.keys(), [b"leased".to_vec()]);
        // An unknown lease: keep-alive answers 0, time-to-live -1, as on the leader.
        // (etcd-client turns the TTL-0 answer into its "lease not found" error.)
        let unknown = keep_alive_once(&mut client, 0x5eed).await;
        assert!(
            unknown == Ok(0)
                || unknown
                    .as_ref()
                    .is_err_and(|e| e.contains("lease not found")),
            "keep-alive of an unknown lease: {unknown:?}"
        );
        let unknown = client
            .lease_time_to_live(0x5eed, None)
            .await
            .expect("time to live of an unknown lease");
        assert_eq!(unknown.ttl(), -1);

        // Debian etcdctl 3.4 against the follower.
        let id = format!("{lease:x}");
        let once = cluster.etcdctl(
            &[follower],
            CALL_TIMEOUT,
            &["lease", "keep-alive", "--once", &id],
        );
        let stdout = String::from_utf8_lossy(&once.stdout);
        assert!(
            once.status.success() && stdout.contains("keepalived with TTL(5)"),
            "etcdctl lease keep-alive --once: {stdout} {}",
            String::from_utf8_lossy(&once.stderr)
        );
        let ttl = cluster.etcdctl(
            &[follower],
            CALL_TIMEOUT,
            &["lease", "timetolive", "--keys", &id],
        );
        let stdout = String::from_utf8_lossy(&ttl.stdout);
        assert!(
            ttl.status.success()
                && stdout.contains("granted with TTL(5s)")
                && stdout.contains("attached keys([leased])"),
            "etcdctl lease timetolive --keys: {stdout} {}",
            String::from_utf8_lossy(&ttl.stderr)
        );
    });
}

/// Keeps `lease_id` alive through member `i` every `period` until `stop`, re-opening the
/// stream after errors; returns how many keep-alives answered with a positive TTL.
async fn keep_alive_loop(
    endpoint: String,
    lease_id: i64,
    period: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<u64, String> {
    let mut renewed = 0;
    let mut client: Option<Client> = None;
    while !*stop.borrow() {
        if client.is_none() {
            client = Client::connect([format!("http://{endpoint}")], None)
                .await
                .ok();
        }
        if let Some(connected) = client.as_mut() {
            match keep_alive_once(connected, lease_id).await {
                Ok(0) => return Err(format!("lease {lease_id:x} expired while kept alive")),
                Ok(_) => renewed += 1,
                Err(_) => client = None,
            }
        }
        tokio::time::sleep(period).await;
    }
    Ok(renewed)
}

#[test]
fn leader_kill_keeps_kept_alive_leases_and_expires_abandoned_ones_on_time() {
    let _serial = serial();
    let mut cluster = Cluster::start_plain(3);
    let leadership = cluster.wait_for_leader(&cluster.all());
    let survivors = cluster.others(&[leadership.leader]);
    let (asker, watcher) = (survivors[0], survivors[1]);
    let ttl_seconds = 6;
    let ttl = Duration::from_secs(ttl_seconds as u64);
    let runtime = tokio_runtime();
    runtime.block_on(async {
        let mut client = cluster.client(asker).await;
        let kept = client
            .lease_grant(ttl_seconds, None)
            .await
            .expect("grant")
            .id();
        let abandoned = client
            .lease_grant(ttl_seconds, None)
            .await
            .expect("grant")
            .id();
        client
            .put("kept", "1", Some(PutOptions::new().with_lease(kept)))
            .await
            .expect("put kept");
        client
            .put(
                "abandoned",
                "1",
                Some(PutOptions::new().with_lease(abandoned)),
            )
            .await
            .expect("put abandoned");
        let mut watch_client = cluster.client(watcher).await;
        let (_watcher, mut events) = watch_client
            .watch("abandoned", Some(WatchOptions::new()))
            .await
            .expect("watch");

        let (stop, stop_seen) = tokio::sync::watch::channel(false);
        let keeper = tokio::spawn(keep_alive_loop(
            cluster.endpoint(asker),
            kept,
            Duration::from_secs(1),
            stop_seen,
        ));
        // The abandoned lease's last keep-alive comes well after its grant (so only a
        // checkpoint tells the other members about it), through a follower too.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let last_keep_alive = Instant::now();
        assert_eq!(
            keep_alive_once(&mut client, abandoned).await,
            Ok(ttl_seconds)
        );
        // Kill the leader well into the TTL: a new leader restarting the lease from its full
        // TTL would keep it far past the bound checked below.
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        cluster.kill9(leadership.leader);

        let deleted_at = loop {
            let message = tokio::time::timeout(EVENTUALLY, events.message())
                .await
                .expect("the abandoned key's DELETE arrives")
                .expect("watch stream")
                .expect("watch open");
            if message
                .events()
                .iter()
                .any(|event| event.event_type() == EventType::Delete)
            {
                break Instant::now();
            }
        };
        let lived = deleted_at - last_keep_alive;
        eprintln!("abandoned lease gone {lived:?} after its last keep-alive (TTL {ttl:?})");
        assert!(lived >= ttl, "expired early: {lived:?} < {ttl:?}");
        assert!(
            lived <= ttl + ELECTION_TIMEOUT + EXPIRY_SLACK,
            "expired {lived:?} after its last keep-alive, TTL {ttl:?}\n{}",
            cluster.log_tails(30)
        );

        // Two more TTLs: the kept-alive lease and its key survive on every live member.
        tokio::time::sleep(2 * ttl).await;
        stop.send(true).expect("stop keeper");
        let renewed = keeper.await.expect("keeper task").expect("kept alive");
        assert!(renewed >= 3, "only {renewed} keep-alives answered");
        for &i in &survivors {
            let mut member = cluster.client(i).await;
            let kept_key = member.get("kept", None).await.expect("get kept");
            assert_eq!(
                kept_key.kvs().len(),
                1,
                "member {i} lost the kept-alive key"
            );
            let gone = member.get("abandoned", None).await.expect("get abandoned");
            assert!(
                gone.kvs().is_empty(),
                "member {i} still has the abandoned key"
            );
        }
        let left = client
            .lease_time_to_live(kept, None)
            .await
            .expect("time to live");
        assert!(left.ttl() > 0, "kept-alive lease has ttl {}", left.ttl());
    });
}
