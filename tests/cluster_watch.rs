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

/// Watches per stream, and streams per member: 3 members × 4 × 100 = 1,200 watchers.
const WATCHES_PER_STREAM: usize = 100;
const STREAMS_PER_MEMBER: usize = 4;

/// Opens one stream with `starts.len()` watches on prefix `w/`, watch `i` from `starts[i]`
/// (auto ids are handed out in creation order, so id `i` is watch `i`).
async fn open_stream(
    endpoint: &str,
    starts: &[i64],
) -> (Client, etcd_client::Watcher, WatchStream) {
    let mut client = connect_to(endpoint, false).await;
    let options = |start: i64| WatchOptions::new().with_prefix().with_start_revision(start);
    let (mut watcher, stream) = client
        .watch("w/", Some(options(starts[0])))
        .await
        .expect("watch");
    for start in &starts[1..] {
        watcher
            .watch("w/", Some(options(*start)))
            .await
            .expect("add watch");
    }
    (client, watcher, stream)
}

/// Collects every watch's events on `stream` until each has reached `last_revision`;
/// false if the stream ended first.
async fn collect_all(stream: &mut WatchStream, last_revision: i64, seen: &mut [Vec<i64>]) -> bool {
    let done = |seen: &[Vec<i64>]| {
        seen.iter()
            .all(|revisions| revisions.last().is_some_and(|last| *last >= last_revision))
    };
    while !done(seen) {
        let message = tokio::time::timeout(WAIT, stream.message()).await;
        let Ok(Ok(Some(response))) = message else {
            return false;
        };
        let Some(revisions) = usize::try_from(response.watch_id())
            .ok()
            .and_then(|index| seen.get_mut(index))
        else {
            continue;
        };
        let mut in_response: Vec<i64> = Vec::new();
        for event in response.events() {
            in_response.push(event.kv().expect("event kv").mod_revision());
        }
        // Revision-atomic: a response never ends inside a revision another response continues.
        if let (Some(first), Some(previous)) = (in_response.first(), revisions.last()) {
            assert!(
                first > previous,
                "revision {first} split across responses or repeated"
            );
        }
        revisions.extend(in_response);
    }
    true
}

#[test]
fn watchers_on_every_member_see_one_gap_free_history_across_a_leader_kill() {
    let mut cluster = Cluster::start_plain(3);
    let leadership = cluster.wait_for_leader(&[0, 1, 2]);
    let endpoints: Vec<String> = (0..3).map(|i| cluster.endpoint(i)).collect();
    let runtime = tokio_runtime();
    // 1,200 watchers: on every member, 4 streams × 100 watches of `w/` from revision 1.
    let mut streams = Vec::new();
    runtime.block_on(async {
        for (member, endpoint) in endpoints.iter().enumerate() {
            for _ in 0..STREAMS_PER_MEMBER {
                let opened = open_stream(endpoint, &[1; WATCHES_PER_STREAM]).await;
                streams.push((member, opened));
            }
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
        let deleted = client.delete("w/3", None).await.expect("delete");
        acknowledged.push(deleted.header().expect("header").revision());
    });
    let last_revision = *acknowledged.last().expect("writes");
    let mut expected = acknowledged.clone();
    expected.sort_unstable();
    let mut watchers_checked = 0;
    runtime.block_on(async {
        for (member, (_client, _watcher, stream)) in streams.iter_mut() {
            let mut seen = vec![Vec::new(); WATCHES_PER_STREAM];
            if !collect_all(stream, last_revision, &mut seen).await {
                // Its member died: resume every watch on a survivor from its last revision + 1.
                assert_eq!(
                    *member, leadership.leader,
                    "a survivor's watch stream broke"
                );
                let starts: Vec<i64> = seen
                    .iter()
                    .map(|revisions| revisions.last().map_or(1, |last| last + 1))
                    .collect();
                let (_client, _watcher, mut resumed) =
                    open_stream(&endpoints[survivor], &starts).await;
                assert!(collect_all(&mut resumed, last_revision, &mut seen).await);
            }
            for (watch, revisions) in seen.iter().enumerate() {
                assert_eq!(
                    revisions, &expected,
                    "member {member}, watch {watch}: every acknowledged revision once, in order"
                );
                watchers_checked += 1;
            }
        }
    });
    assert_eq!(
        watchers_checked,
        3 * STREAMS_PER_MEMBER * WATCHES_PER_STREAM
    );
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
