//! etcd's initial corruption check (`--feature-gates=InitialCorruptCheck=true`, kubeadm's flag)
//! on real 3-member clusters: a restarted member compares its HashKV with the others' before it
//! serves and comes back; a member whose stored data differs from the others' at the same
//! revision and compaction refuses to start with etcd's error while the others keep serving; a
//! whole cluster killed and restarted together still starts (nobody is up to be asked at first).
mod cluster;
mod common;

use capstan_proto::capstanpb::KeySnapshot;
use cluster::*;
use prost::Message;
use std::path::Path;
use std::time::Duration;

const GATE: &str = "--feature-gates=InitialCorruptCheck=true";
const PASSED: &str = "initial corruption checking passed; no corruption";
const NO_DATA_YET: &str = "initial corruption check skipped";
const INCONSISTENT: &str = "found data inconsistency with peers";
/// Time for a member to exit after a SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

fn put(cluster: &Cluster, members: &[usize], key: &str, value: &str) {
    let output = cluster.etcdctl(members, CALL_TIMEOUT, &["put", key, value]);
    assert!(
        output.status.success(),
        "put {key}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Some keys, a compaction, then more keys: the restarted member's state and the others'
/// then agree on a compaction revision, not only on the versions.
fn write_history(cluster: &Cluster) {
    for round in 0..20 {
        put(
            cluster,
            &cluster.all(),
            &format!("/k{}", round % 7),
            &format!("value-{round}"),
        );
    }
    let status = cluster.status(0).expect("status");
    let output = cluster.etcdctl(
        &cluster.all(),
        CALL_TIMEOUT,
        &["compaction", &(status.revision - 5).to_string()],
    );
    assert!(
        output.status.success(),
        "compaction: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    for round in 0..5 {
        put(cluster, &cluster.all(), &format!("/after{round}"), "x");
    }
}

/// Waits until every member reports the same revision (all have applied every write).
fn wait_for_same_revision(cluster: &Cluster) {
    let deadline = std::time::Instant::now() + EVENTUALLY;
    loop {
        let (statuses, text) = cluster.statuses(&cluster.all());
        let revisions: Vec<Option<i64>> = statuses
            .iter()
            .map(|status| status.as_ref().map(|status| status.revision))
            .collect();
        if revisions
            .iter()
            .all(|revision| revision.is_some() && *revision == revisions[0])
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "members disagree on the revision: {text}"
        );
        std::thread::sleep(POLL);
    }
}

/// SIGTERM, then waits for the member to exit (its page store commits what it has queued).
fn stop(cluster: &mut Cluster, i: usize) {
    let pid = cluster.members[i].pid().expect("member runs");
    // SAFETY: kill(2) on our own, not yet reaped child.
    let result = unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    assert_eq!(result, 0, "kill -TERM {pid}");
    let status = cluster.wait_exit(i, STOP_TIMEOUT).expect("member stops");
    assert!(status.success(), "member exited with {status}");
}

/// Rewrites, in a stopped member's page store, the value of the newest stored version of one
/// key that a put wrote: one byte changed, same length, through the store's own commit (so the
/// page checksums are valid and the file loads). This is etcd's own approach in its e2e test
/// of this check (`CorruptBBolt`: the bbolt file edited offline with bbolt itself). Flipping a
/// byte of `pages.db` with a plain write would only exercise the page checksums, a refusal for
/// another reason; rewriting the row yields what the check exists for: a member that loads,
/// at the same revision and compaction as its peers, different data. Returns the key.
fn corrupt_one_value(data_dir: &Path) -> String {
    let path = data_dir
        .join("member")
        .join(capstan::durable::STORE_FILE_NAME);
    let store = capstan::store::Store::open(&path, capstan::store::StoreOptions::default())
        .expect("open the page store");
    let read = store.read();
    let mut newest: Option<(Vec<u8>, KeySnapshot)> = None;
    for entry in read
        .iter(b"r", Some(&capstan::durable::rows::rows_end()))
        .expect("rows")
    {
        let (key, value) = entry.expect("row");
        let row = KeySnapshot::decode(value).expect("a row");
        let live = row
            .versions
            .first()
            .is_some_and(|version| !version.tombstone && !version.value.is_empty());
        if live && row.key.starts_with(b"/after") {
            newest = Some((key.to_vec(), row));
        }
    }
    drop(read);
    let (row_key, mut row) = newest.expect("a stored version of /after*");
    let mut value = row.versions[0].value.to_vec();
    value[0] ^= 0x01;
    row.versions[0].value = value.into();
    let mut batch = capstan::store::WriteBatch::new();
    batch
        .put(&row_key, &row.encode_to_vec())
        .expect("batch put");
    store.commit(&batch).expect("commit");
    String::from_utf8_lossy(&row.key).into_owned()
}

#[test]
fn a_restarted_member_compares_with_its_peers_and_comes_back() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec::new(3).flags(&[GATE]));
    for i in cluster.all() {
        assert!(cluster.log(i).contains(NO_DATA_YET), "{}", cluster.log(i));
    }
    write_history(&cluster);
    wait_for_same_revision(&cluster);
    // A clean stop, so the page store holds every write: the member then compares at the
    // cluster's revision, which no peer has compacted away.
    stop(&mut cluster, 2);
    cluster.restart(2);
    let log = cluster.log(2);
    assert!(log.contains("starting initial corruption check"), "{log}");
    assert!(
        log.contains(PASSED)
            && log.contains("\"peers-compared\":2")
            && log.contains("\"peers-skipped\":0"),
        "{log}"
    );
    assert!(!log.contains("failed hash kv request"), "{log}");
    // The others answered the query.
    for i in [0, 1] {
        assert!(
            cluster.log(i).contains("answering a member's hash query"),
            "{}",
            cluster.log(i)
        );
    }
    put(&cluster, &[2], "/after-restart", "1");
}

#[test]
fn a_member_with_different_data_refuses_to_start_and_the_others_keep_serving() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec::new(3).flags(&[GATE]));
    write_history(&cluster);
    wait_for_same_revision(&cluster);
    let revision_before = cluster.status(0).expect("status").revision;
    stop(&mut cluster, 2);
    let key = corrupt_one_value(&cluster.members[2].data_dir);

    let status = cluster
        .restart_with_env(2, &[])
        .expect_err("a member with corrupt data must not start");
    assert_eq!(status.code(), Some(1), "{}", cluster.log(2));
    let log = cluster.log(2);
    let id = format!("{:x}", cluster.members[2].id);
    assert!(
        log.contains(&format!("{id} {INCONSISTENT}")),
        "{key} was corrupted; log:\n{log}"
    );
    assert!(
        log.contains("found different hash values from remote peer"),
        "{log}"
    );
    assert!(!log.contains(PASSED), "{log}");
    // It stopped before serving anything.
    assert_eq!(cluster.members[2].ready_lines(), 1, "{log}");

    // The other two still have a quorum and take writes (once they elected a leader, if the
    // stopped member led).
    cluster.wait_for_leader(&[0, 1]);
    put(&cluster, &[0, 1], "/while-3-is-down", "1");
    let status = cluster.status(0).expect("status");
    assert!(status.revision > revision_before);
}

#[test]
fn a_whole_cluster_restarted_together_starts_with_the_check() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec::new(3).flags(&[GATE]));
    write_history(&cluster);
    wait_for_same_revision(&cluster);
    let started = std::time::Instant::now();
    cluster.restart_together(&cluster.all());
    let took = started.elapsed();
    for i in cluster.all() {
        let log = cluster.log(i);
        let restarted = log
            .rsplit("starting initial corruption check")
            .next()
            .unwrap_or_default();
        assert!(restarted.contains(PASSED), "member {i}: {log}");
    }
    // Members that were not up yet were skipped at once (connection refused), not waited for.
    assert!(took < Duration::from_secs(15), "restart took {took:?}");
    put(&cluster, &cluster.all(), "/after-restart-all", "1");
}

#[test]
fn a_stopped_peer_costs_one_answer_timeout_and_is_skipped() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec::new(3).flags(&[GATE]));
    write_history(&cluster);
    wait_for_same_revision(&cluster);
    stop(&mut cluster, 2);
    // Frozen with its sockets open: its kernel still accepts the connection, nobody answers.
    cluster.pause(0);
    let started = std::time::Instant::now();
    cluster.restart(2);
    let took = started.elapsed();
    let log = cluster.log(2);
    let restarted = log
        .rsplit("starting initial corruption check")
        .next()
        .unwrap_or_default();
    assert!(
        restarted.contains(PASSED)
            && restarted.contains("\"peers-compared\":1")
            && restarted.contains("\"peers-skipped\":1"),
        "{log}"
    );
    assert!(restarted.contains("failed hash kv request"), "{log}");
    assert!(took < Duration::from_secs(15), "restart took {took:?}");
    cluster.resume(0);
    put(&cluster, &cluster.all(), "/after-pause", "1");
}
