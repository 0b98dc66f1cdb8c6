//! Watch in a cluster: watchers on every member see the same gap-free history across a leader
//! kill (a watcher whose member died resumes elsewhere from its last revision), and
//! `hasleader` watch streams are cancelled with etcd's "no leader" once quorum is lost.
mod cluster;
mod common;

use cluster::*;
use common::*;
use etcd_client::{Client, ConnectOptions, EventType, WatchOptions, WatchStream};
use std::time::Duration;

/// Generous bound for anything that should happen "soon" (avoids hangs, asserts nothing).
const WAIT: Duration = Duration::from_secs(30);

async fn connect_to(endpoint: &str, require_leader: bool) -> Client {
    let options = ConnectOptions::new()
        .with_require_leader(require_leader)
        .with_timeout(Duration::from_secs(3));
    Client::connect([format!("http://{endpoint}")], Some(options))
        .await
        .expect("connect")
}

/// Collects (revision, key) of every event until `last_revision` is seen or the stream ends.
async fn collect_until(
    stream: &mut WatchStream,
    last_revision: i64,
    seen: &mut Vec<(i64, String, bool)>,
) -> bool {
    loop {
        let message = tokio::time::timeout(WAIT, stream.message()).await;
        let Ok(Ok(Some(response))) = message else {
            return false;
        };
        for event in response.events() {
            let kv = event.kv().expect("event kv");
            seen.push((
                kv.mod_revision(),
                String::from_utf8_lossy(kv.key()).into_owned(),
                event.event_type() == EventType::Delete,
            ));
        }
        if seen
            .last()
            .is_some_and(|(revision, _, _)| *revision >= last_revision)
        {
            return true;
        }
    }
}

#[test]
fn watchers_on_every_member_see_one_gap_free_history_across_a_leader_kill() {
    let mut cluster = Cluster::start_plain(3);
    let leadership = cluster.wait_for_leader(&[0, 1, 2]);
    let endpoints: Vec<String> = (0..3).map(|i| cluster.endpoint(i)).collect();
    let runtime = tokio_runtime();
    // Writes and acknowledged revisions, and one watcher per member, all from revision 1.
    let mut streams = Vec::new();
    runtime.block_on(async {
        for endpoint in &endpoints {
            let mut client = connect_to(endpoint, false).await;
            let (_watcher, stream) = client
                .watch(
                    "w/",
                    Some(WatchOptions::new().with_prefix().with_start_revision(1)),
                )
                .await
                .expect("watch");
            streams.push((client, _watcher, stream));
        }
    });
    let survivor = (leadership.leader + 1) % 3;
    let mut acknowledged = Vec::new();
    runtime.block_on(async {
        let mut client = connect_to(&endpoints[survivor], false).await;
        for i in 0..100 {
            let put = client
                .put(format!("w/{}", i % 7), format!("{i}"), None)
                .await;
            acknowledged.push(put.expect("put").header().expect("header").revision());
        }
    });
    cluster.kill9(leadership.leader);
    let survivors: Vec<usize> = (0..3).filter(|i| *i != leadership.leader).collect();
    cluster.wait_for_leader(&survivors);
    runtime.block_on(async {
        let mut client = connect_to(&endpoints[survivor], false).await;
        for i in 100..200 {
            // A request in flight during the election may fail: retry until acknowledged.
            loop {
                match client
                    .put(format!("w/{}", i % 7), format!("{i}"), None)
                    .await
                {
                    Ok(put) => {
                        acknowledged.push(put.header().expect("header").revision());
                        break;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
        if let Ok(deleted) = client.delete("w/3", None).await {
            acknowledged.push(deleted.header().expect("header").revision());
        }
    });
    let last_revision = *acknowledged.last().expect("writes");
    runtime.block_on(async {
        for (member, (_client, _watcher, stream)) in streams.iter_mut().enumerate() {
            let mut seen = Vec::new();
            let complete = collect_until(stream, last_revision, &mut seen).await;
            if !complete {
                // Its member died: resume on a survivor from the last revision seen + 1.
                assert_eq!(member, leadership.leader, "a survivor's watch stream broke");
                let resume_from = seen.last().map_or(1, |(revision, _, _)| revision + 1);
                let mut client = connect_to(&endpoints[survivor], false).await;
                let (_watcher, mut resumed) = client
                    .watch(
                        "w/",
                        Some(
                            WatchOptions::new()
                                .with_prefix()
                                .with_start_revision(resume_from),
                        ),
                    )
                    .await
                    .expect("resume watch");
                assert!(collect_until(&mut resumed, last_revision, &mut seen).await);
            }
            let revisions: Vec<i64> = seen.iter().map(|(revision, _, _)| *revision).collect();
            let mut expected = acknowledged.clone();
            expected.sort_unstable();
            assert_eq!(
                revisions, expected,
                "member {member}: every acknowledged revision exactly once, in order"
            );
        }
    });
}

#[test]
fn hasleader_watch_is_cancelled_with_no_leader_once_quorum_is_lost() {
    let mut cluster = Cluster::start_plain(3);
    cluster.wait_for_leader(&[0, 1, 2]);
    let endpoint = cluster.endpoint(0);
    let runtime = tokio_runtime();
    let (mut client, _watcher, mut stream) = runtime.block_on(async {
        let mut client = connect_to(&endpoint, true).await;
        let (watcher, stream) = client.watch("k", None).await.expect("watch");
        client.put("k", "v", None).await.expect("put while healthy");
        (client, watcher, stream)
    });
    runtime.block_on(async {
        let mut seen = Vec::new();
        assert!(
            collect_until(&mut stream, 0, &mut seen).await,
            "first event"
        );
    });
    cluster.kill9(1);
    cluster.kill9(2);
    runtime.block_on(async {
        let ended = tokio::time::timeout(WAIT, async {
            loop {
                match stream.message().await {
                    Ok(Some(_)) => continue,
                    Ok(None) => return "stream ended without a status".to_string(),
                    Err(error) => return error.to_string(),
                }
            }
        })
        .await
        .expect("the hasleader watch must end once the member has no leader");
        assert!(
            ended.contains("etcdserver: no leader"),
            "watch ended with: {ended}"
        );
        // A unary call with hasleader fails at once now.
        let error = client.get("k", None).await.expect_err("no leader");
        assert!(
            error.to_string().contains("etcdserver: no leader"),
            "{error}"
        );
    });
}
