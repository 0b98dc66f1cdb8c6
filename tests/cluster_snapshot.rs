//! Raft log compaction and snapshots in a 3-member cluster started with a small
//! `--snapshot-count` and small WAL segments: the log is compacted (old WAL segments are
//! released), a follower that was down while the log moved past it catches up through a
//! snapshot streamed in chunks and survives restarts from its own snapshot file, a watcher on a
//! lagging follower sees every event across the snapshot install, and a learner that joins after
//! compaction catches up through a snapshot, is promoted, and a member is then removed while the
//! cluster keeps serving.
mod cluster;
mod common;

use cluster::*;
use common::*;
use etcd_client::{EventType, WatchOptions};
use std::path::Path;
use std::time::Instant;

const SNAPSHOT_TAKEN: &str = "raft snapshot taken; log compacted";
const SNAPSHOT_INSTALLED: &str = "snapshot from the leader installed";
const RESTORED: &str = "state restored from snapshot";
const RESTORED_FROM_PAGES: &str = "state restored from the page store";
const PAGES_REBUILT: &str = "page store rebuilt from a snapshot";

fn spec(size: usize) -> ClusterSpec {
    ClusterSpec::new(size).flags(&["--snapshot-count", "100", "--wal-segment-bytes", "65536"])
}

/// Writes `count` keys `prefix/NNNN` with ~200-byte values through `member`; the revision of
/// the last one.
fn write_keys(cluster: &Cluster, member: usize, prefix: &str, count: usize) -> i64 {
    tokio_runtime().block_on(write_keys_async(cluster, member, prefix, count))
}

async fn write_keys_async(cluster: &Cluster, member: usize, prefix: &str, count: usize) -> i64 {
    let mut client = cluster.client(member).await;
    let mut revision = 0;
    for i in 0..count {
        let value = format!("{prefix}-{i}-{}", "v".repeat(200));
        let response = client
            .put(format!("{prefix}/{i:04}"), value, None)
            .await
            .expect("put");
        revision = response.header().expect("header").revision();
    }
    revision
}

/// Names of the files in `data_dir/member/SUBDIR` ending in `suffix`, sorted.
fn member_files(data_dir: &Path, subdir: &str, suffix: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(data_dir.join("member").join(subdir)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().to_str().map(str::to_string))
        .filter(|name| name.ends_with(suffix))
        .collect();
    names.sort();
    names
}

fn wait_for_log(cluster: &Cluster, member: usize, line: &str) {
    let deadline = Instant::now() + EVENTUALLY;
    while !cluster.log(member).contains(line) {
        assert!(
            Instant::now() < deadline,
            "n{} never logged {line:?}:\n{}",
            member + 1,
            cluster.log(member)
        );
        std::thread::sleep(POLL);
    }
}

fn converge(cluster: &Cluster, members: &[usize], revision: i64) -> Dump {
    tokio_runtime().block_on(cluster.wait_converged(members, revision))
}

#[test]
fn a_follower_behind_the_compacted_log_catches_up_through_a_snapshot_and_restarts_from_it() {
    let _serial = serial();
    let mut cluster = Cluster::start(spec(3));
    let leadership = cluster.wait_for_leader(&cluster.all());
    let leader = leadership.leader;
    let follower = (leader + 1) % 3;
    cluster.kill9(follower);

    // A lease with a key, a delete and a compaction travel in the snapshot too.
    let lease_out = ctl_ok(&cluster, &[leader], &["lease", "grant", "600"]);
    let lease_id = lease_out
        .split_whitespace()
        .nth(1)
        .expect("lease id")
        .to_string();
    ctl_ok(
        &cluster,
        &[leader],
        &["put", "leased", "x", "--lease", &lease_id],
    );
    write_keys(&cluster, leader, "a", 300);
    ctl_ok(&cluster, &[leader], &["del", "a/0000"]);
    let compact_at = write_keys(&cluster, leader, "b", 100);
    ctl_ok(
        &cluster,
        &[leader],
        &["compaction", &compact_at.to_string()],
    );
    let last = write_keys(&cluster, leader, "c", 200);

    // The leader compacted its log: snapshot files exist (at most two are kept) and the first
    // WAL segments were released.
    wait_for_log(&cluster, leader, SNAPSHOT_TAKEN);
    let leader_dir = cluster.members[leader].data_dir.clone();
    let snaps = member_files(&leader_dir, "snap", ".snap");
    assert!(
        !snaps.is_empty() && snaps.len() <= 2,
        "snapshot files: {snaps:?}"
    );
    let segments = member_files(&leader_dir, "wal", ".wal");
    assert!(
        !segments.contains(&"0000000000000001.wal".to_string()),
        "the first WAL segment should have been released: {segments:?}"
    );

    // The follower missed more than the leader keeps: it gets a snapshot.
    cluster.restart(follower);
    wait_for_log(&cluster, follower, SNAPSHOT_INSTALLED);
    let dump = converge(&cluster, &cluster.all(), last);
    assert!(dump.value("a/0000").is_none(), "deleted key came back");
    assert_eq!(
        dump.kv("c/0199").map(|kv| kv.1.len()),
        Some("c-199-".len() + 200)
    );
    // History below the compaction is gone on the follower as on the leader.
    let old = cluster.etcdctl(
        &[follower],
        CTL_TIMEOUT,
        &[
            "get",
            "b/0000",
            "--consistency=s",
            &format!("--rev={}", compact_at - 1),
        ],
    );
    assert!(
        ctl_text(&old).contains("required revision has been compacted"),
        "{}",
        ctl_text(&old)
    );
    let ttl = ctl_ok(
        &cluster,
        &[follower],
        &["lease", "timetolive", &lease_id, "--keys"],
    );
    assert!(ttl.contains("leased"), "{ttl}");

    // The installed snapshot also rebuilt the follower's page store: restarted, it starts
    // from there.
    wait_for_log(&cluster, follower, PAGES_REBUILT);
    cluster.restart(follower);
    wait_for_log(&cluster, follower, RESTORED_FROM_PAGES);
    let more = write_keys(&cluster, follower, "d", 20);
    converge(&cluster, &cluster.all(), more);

    // Without its page store, it starts from its own snapshot file and rebuilds the store.
    cluster.kill9(follower);
    let pages = cluster.members[follower]
        .data_dir
        .join("member")
        .join("pages.db");
    std::fs::remove_file(&pages).expect("remove the page store");
    cluster.restart(follower);
    wait_for_log(&cluster, follower, RESTORED);
    let rebuilt_count = cluster.log(follower).matches(PAGES_REBUILT).count();
    assert!(rebuilt_count >= 2, "{}", cluster.log(follower));
    let more = write_keys(&cluster, follower, "e", 20);
    let dump = converge(&cluster, &cluster.all(), more);
    assert!(dump.value("d/0019").is_some());

    // And the whole cluster restarted at once comes back with everything.
    cluster.restart_together(&cluster.all());
    cluster.wait_for_leader(&cluster.all());
    let dump = converge(&cluster, &cluster.all(), more);
    assert!(dump.value("d/0019").is_some());
    assert!(dump.value("a/0299").is_some());
    assert!(dump.value("leased").is_some());
}

#[test]
fn a_watcher_on_a_lagging_follower_sees_every_event_across_the_snapshot_install() {
    let _serial = serial();
    let cluster = Cluster::start(spec(3).proxied());
    let leadership = cluster.wait_for_leader(&cluster.all());
    let lagging = (leadership.leader + 1) % 3;
    let first = write_keys(&cluster, leadership.leader, "w", 10);
    converge(&cluster, &cluster.all(), first);

    let runtime = tokio_runtime();
    let mut seen: Vec<(i64, String)> = Vec::new();
    runtime.block_on(async {
        let mut client = cluster.client(lagging).await;
        let (_watcher, mut stream) = client
            .watch("w/", Some(WatchOptions::new().with_prefix()))
            .await
            .expect("watch on the lagging follower");
        // Cut the follower off; the majority writes far past the log it keeps.
        cluster.isolate(lagging, Link::Drop);
        let others = cluster.others(&[lagging]);
        let leader = cluster.wait_for_leader(&others).leader;
        let last = write_keys_async(&cluster, leader, "w", 400).await;
        wait_for_log(&cluster, leader, SNAPSHOT_TAKEN);
        cluster.heal();
        wait_for_log(&cluster, lagging, SNAPSHOT_INSTALLED);
        let deadline = Instant::now() + EVENTUALLY;
        while seen.last().is_none_or(|(revision, _)| *revision < last) {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = tokio::time::timeout(left, stream.message())
                .await
                .expect("events in time")
                .expect("watch stream")
                .expect("watch open");
            assert!(!message.canceled(), "watch cancelled: {message:?}");
            for event in message.events() {
                assert_eq!(event.event_type(), EventType::Put);
                let kv = event.kv().expect("kv");
                seen.push((
                    kv.mod_revision(),
                    String::from_utf8_lossy(kv.key()).into_owned(),
                ));
            }
        }
        let revisions: Vec<i64> = seen.iter().map(|(revision, _)| *revision).collect();
        let expected: Vec<i64> = (first + 1..=last).collect();
        assert_eq!(revisions, expected, "every revision once, in order");
    });
}

#[test]
fn a_learner_joins_after_compaction_through_a_snapshot_is_promoted_then_a_member_is_removed() {
    let _serial = serial();
    let mut cluster = Cluster::start(spec(3));
    let leadership = cluster.wait_for_leader(&cluster.all());
    let voters = cluster.all();
    let written = write_keys(&cluster, leadership.leader, "before", 300);
    wait_for_log(&cluster, leadership.leader, SNAPSHOT_TAKEN);

    let peer_port = free_port();
    ctl_ok(
        &cluster,
        &[leadership.leader],
        &[
            "member",
            "add",
            "n4",
            "--learner",
            &format!("--peer-urls=http://127.0.0.1:{peer_port}"),
        ],
    );
    let learner = cluster.start_joiner("n4", peer_port, &voters);
    wait_for_log(&cluster, learner, SNAPSHOT_INSTALLED);
    let mut all = voters.clone();
    all.push(learner);
    converge(&cluster, &all, written);

    let learner_hex = format!("{:x}", cluster.members[learner].id);
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        let output = cluster.etcdctl(&voters, CTL_TIMEOUT, &["member", "promote", &learner_hex]);
        if output.status.success() {
            break;
        }
        assert!(
            ctl_text(&output).contains("in sync with leader") && Instant::now() < deadline,
            "promote: {}",
            ctl_text(&output)
        );
        std::thread::sleep(POLL);
    }
    ctl_ok(&cluster, &[learner], &["put", "on-promoted", "yes"]);

    // Remove a follower that is not the new member; the other three keep serving.
    let leader = cluster.wait_for_leader(&all).leader;
    let victim = *voters.iter().find(|&&i| i != leader).expect("a follower");
    let victim_hex = format!("{:x}", cluster.members[victim].id);
    ctl_ok(&cluster, &[leader], &["member", "remove", &victim_hex]);
    let rest: Vec<usize> = all.iter().copied().filter(|&i| i != victim).collect();
    let after = write_keys(&cluster, learner, "after", 150);
    let dump = converge(&cluster, &rest, after);
    assert!(dump.value("before/0299").is_some());
    assert!(dump.value("on-promoted").is_some());
    let list = ctl_ok(&cluster, &rest, &["member", "list"]);
    assert_eq!(list.lines().count(), 3, "{list}");
}
