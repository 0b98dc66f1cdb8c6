//! Multi-member clusters under faults: elections, kill -9 and restart of the leader, writes
//! through any member, linearizable reads everywhere, minority partitions (through per-link
//! peer proxies), a SIGSTOPped leader, a member from another cluster, and cleanup.
//!
//! Every test asserts behaviour, not timings: waits poll with generous deadlines
//! ([`cluster::EVENTUALLY`]) that only keep a broken build from hanging. Tests run one at a time
//! ([`cluster::serial`]).
mod cluster;
mod common;

use cluster::*;
use common::*;

use etcd_client::{Client, GetOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// etcdctl's `--command-timeout` for requests a minority must not answer.
const MINORITY_TIMEOUT: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Election safety, from the members' `raft role changed` lines with `"role":"Leader"`: no term ever
/// had two leaders.
fn assert_one_leader_per_term(cluster: &Cluster) {
    let mut leaders: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for member in &cluster.members {
        for line in member.log().lines() {
            if !(line.contains("raft role changed") && line.contains("\"role\":\"Leader\"")) {
                continue;
            }
            let term = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|object| object.get("term").and_then(serde_json::Value::as_u64))
                .unwrap_or_else(|| panic!("no term in {line:?}"));
            leaders.entry(term).or_default().insert(member.name.clone());
        }
    }
    assert!(
        !leaders.is_empty(),
        "no member ever logged \"role\":\"Leader\""
    );
    for (term, members) in &leaders {
        assert_eq!(
            members.len(),
            1,
            "term {term} had several leaders: {members:?}"
        );
    }
}

/// The minority member must neither acknowledge a write nor answer a linearizable read.
fn assert_minority_refuses(cluster: &Cluster, member: usize, key: &str) {
    let get = cluster.etcdctl(
        &[member],
        MINORITY_TIMEOUT,
        &["get", "--prefix", "partition/"],
    );
    assert!(
        !get.status.success(),
        "n{} (cut off from the majority) answered a linearizable read: {}",
        member + 1,
        String::from_utf8_lossy(&get.stdout)
    );
    let put = cluster.etcdctl(
        &[member],
        MINORITY_TIMEOUT,
        &["put", key, "from-the-minority"],
    );
    assert!(
        !put.status.success(),
        "n{} (cut off from the majority) acknowledged a write: {}",
        member + 1,
        String::from_utf8_lossy(&put.stdout)
    );
}

fn run<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio_runtime().block_on(future)
}

/// Polls until `member` reports a leader other than itself at a term above `term`.
fn wait_until_follows_another(cluster: &Cluster, member: usize, term: u64) -> MemberStatus {
    let deadline = Instant::now() + EVENTUALLY;
    let own_id = cluster.members[member].id;
    let mut last = None;
    while Instant::now() < deadline {
        if let Some(status) = cluster.status(member) {
            if status.leader != 0 && status.leader != own_id && status.raft_term > term {
                return status;
            }
            last = Some(status);
        }
        std::thread::sleep(POLL);
    }
    panic!(
        "n{} never followed another leader above term {term}; last status {last:?}\n{}",
        member + 1,
        cluster.log_tails(40)
    );
}

/// Polls until `member` no longer reports itself as the leader (or stops answering Status).
fn wait_until_not_leader(cluster: &Cluster, member: usize) {
    let deadline = Instant::now() + EVENTUALLY;
    let own_id = cluster.members[member].id;
    let mut last = None;
    while Instant::now() < deadline {
        match cluster.status(member) {
            Some(status) if status.leader == own_id => last = Some(status),
            _ => return,
        }
        std::thread::sleep(POLL);
    }
    panic!(
        "isolated n{} still reports itself as leader after {EVENTUALLY:?}: {last:?}\n{}",
        member + 1,
        cluster.log_tails(40)
    );
}

/// Polls until every member in `members` reports (Maintenance.Status) the same commit index,
/// has applied all of it, and the same revision.
fn wait_status_converged(cluster: &Cluster, members: &[usize]) -> Vec<MemberStatus> {
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        let (statuses, raw) = cluster.statuses(members);
        let answered: Vec<MemberStatus> = members
            .iter()
            .filter_map(|&i| statuses[i].clone())
            .collect();
        if answered.len() == members.len()
            && answered.iter().all(|status| {
                status.raft_applied_index == status.raft_index
                    && status.raft_index == answered[0].raft_index
                    && status.revision == answered[0].revision
            })
        {
            return answered;
        }
        assert!(
            Instant::now() < deadline,
            "members {members:?} never reported the same applied raft index and revision:\n{raw}"
        );
        std::thread::sleep(POLL);
    }
}

/// Acknowledged writes: key, value, revision.
type Acked = Vec<(String, String, i64)>;

/// A background load: one writer per member, unique keys, 20 ms apart. A write that fails or
/// times out is indeterminate; an acknowledged one must survive.
struct Load {
    stop: Arc<AtomicBool>,
    /// Acknowledged writes, by member.
    acked: Vec<Arc<Mutex<Acked>>>,
    failed: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(runtime: &tokio::runtime::Runtime, cluster: &Cluster) -> Load {
        let clients = runtime.block_on(async {
            let mut clients = Vec::new();
            for i in cluster.all() {
                clients.push(cluster.client(i).await);
            }
            clients
        });
        let stop = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicUsize::new(0));
        let acked: Vec<Arc<Mutex<Acked>>> = clients
            .iter()
            .map(|_| Arc::new(Mutex::new(Vec::new())))
            .collect();
        let tasks = clients
            .into_iter()
            .enumerate()
            .map(|(member, mut client)| {
                let (stop, failed, acked) = (stop.clone(), failed.clone(), acked[member].clone());
                runtime.spawn(async move {
                    let mut sequence = 0u32;
                    while !stop.load(Ordering::SeqCst) {
                        let key = format!("load/n{}/{sequence:05}", member + 1);
                        let value = format!("value-{sequence}");
                        match put(&mut client, &key, &value).await {
                            Ok(revision) => acked.lock().unwrap().push((key, value, revision)),
                            Err(_) => {
                                failed.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        sequence += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
            })
            .collect();
        Load {
            stop,
            acked,
            failed,
            tasks,
        }
    }

    /// The highest revision member `i`'s writer has had acknowledged.
    fn last_acked(&self, member: usize) -> i64 {
        let acked = self.acked[member].lock().unwrap();
        acked.last().map_or(0, |(_, _, revision)| *revision)
    }

    /// Waits until the writer of every member in `members` has had a write acknowledged at a
    /// revision above `revision`.
    fn wait_for_acks_above(&self, cluster: &Cluster, members: &[usize], revision: i64) {
        let deadline = Instant::now() + EVENTUALLY;
        while !members.iter().all(|&i| self.last_acked(i) > revision) {
            assert!(
                Instant::now() < deadline,
                "writes through {members:?} never acknowledged above revision {revision}\n{}",
                cluster.log_tails(40)
            );
            std::thread::sleep(POLL);
        }
    }

    /// Stops the writers; every acknowledged write, and how many failed.
    fn finish(self, runtime: &tokio::runtime::Runtime) -> (Acked, usize) {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            runtime.block_on(task).expect("load task");
        }
        let acked = self
            .acked
            .iter()
            .flat_map(|acked| acked.lock().unwrap().clone())
            .collect();
        (acked, self.failed.load(Ordering::SeqCst))
    }
}

/// `count` writes alternating over `members`, each acknowledged (retried across a leader
/// change); 1 KiB values so that catching up takes many raft messages.
async fn write_bulk(cluster: &Cluster, members: &[usize], prefix: &str, count: usize) -> Acked {
    let mut clients = Vec::new();
    for &member in members {
        clients.push(cluster.client(member).await);
    }
    let mut acked = Acked::new();
    let size = clients.len();
    for n in 0..count {
        let key = format!("{prefix}{n:04}");
        let value = format!("{n:04}-{}", "x".repeat(1019));
        let revision = put_eventually(&mut clients[n % size], &key, &value).await;
        acked.push((key, value, revision));
    }
    acked
}

/// Every acknowledged write is in `dump` with its value and revision (keys are written once).
fn assert_acked_present(dump: &Dump, acked: &[(String, String, i64)]) {
    for (key, value, revision) in acked {
        let kv = dump
            .kv(key)
            .unwrap_or_else(|| panic!("acknowledged write {key} (revision {revision}) was lost"));
        assert_eq!(kv.1, value.as_bytes(), "value of acknowledged {key}");
        assert_eq!(kv.3, *revision, "mod revision of acknowledged {key}");
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Start-up from etcd's flags
// ---------------------------------------------------------------------------------------------

/// `etcdctl endpoint status` over every endpoint of a 3- and a 5-member cluster: every member
/// answers with its own id, one cluster id, exactly one leader, the same leader and term
/// everywhere.
#[test]
fn three_and_five_member_clusters_agree_on_one_leader() {
    let _serial = serial();
    for size in [3, 5] {
        let cluster = Cluster::start_plain(size);
        let all = cluster.all();
        let deadline = Instant::now() + EVENTUALLY;
        let (statuses, leadership) = loop {
            let (statuses, raw) = cluster.statuses(&all);
            if let Some(leadership) = cluster.agreement(&all, &statuses) {
                break (statuses, leadership);
            }
            assert!(
                Instant::now() < deadline,
                "{size} members never agreed on a leader; last `endpoint status`:\n{raw}"
            );
            std::thread::sleep(POLL);
        };
        let statuses: Vec<MemberStatus> = statuses.into_iter().flatten().collect();
        assert_eq!(statuses.len(), size, "every member answers: {statuses:?}");
        for (i, status) in statuses.iter().enumerate() {
            assert_eq!(status.endpoint, cluster.endpoint(i));
            assert_eq!(
                status.member_id,
                cluster.members[i].id,
                "n{} reports the member id etcd derives from its peer url and token",
                i + 1
            );
            assert_eq!(status.leader, leadership.leader_id, "{statuses:?}");
            assert_eq!(status.raft_term, leadership.term, "{statuses:?}");
            assert!(
                status.raft_term >= 1 && status.raft_index >= 1,
                "{status:?}"
            );
        }
        let ids: BTreeSet<u64> = statuses.iter().map(|status| status.member_id).collect();
        assert_eq!(ids.len(), size, "member ids are distinct: {statuses:?}");
        let cluster_ids: BTreeSet<u64> = statuses.iter().map(|status| status.cluster_id).collect();
        assert_eq!(cluster_ids.len(), 1, "one cluster id: {statuses:?}");
        assert_ne!(cluster_ids.first(), Some(&0));
        let leaders = statuses
            .iter()
            .filter(|status| status.member_id == status.leader)
            .count();
        assert_eq!(leaders, 1, "exactly one member is the leader: {statuses:?}");
        assert!(
            cluster
                .log(leadership.leader)
                .contains("\"role\":\"Leader\""),
            "the leader logged its election"
        );
        // An idle cluster: everyone has committed and applied the same raft index.
        let settled = wait_status_converged(&cluster, &all);
        assert!(settled[0].raft_index >= 1, "{settled:?}");
        assert_one_leader_per_term(&cluster);
    }
}

// ---------------------------------------------------------------------------------------------
// 2. kill -9 of the leader
// ---------------------------------------------------------------------------------------------

/// kill -9 of the leader while writes go through every member: the survivors elect a new
/// leader and take writes on both endpoints; the old leader, restarted on its data directory,
/// catches up to the same revision and values (full serializable dumps compared member by
/// member); no acknowledged write is lost. Then kill -9 of every member and a restart of all of
/// them: same data.
#[test]
fn killed_leader_is_replaced_and_catches_up_after_restart() {
    let _serial = serial();
    let mut cluster = Cluster::start_plain(3);
    let runtime = tokio_runtime();
    let first = cluster.wait_for_leader(&cluster.all());
    runtime.block_on(async {
        let mut client = cluster.client(first.leader).await;
        for n in 0..10 {
            put_eventually(&mut client, &format!("before/{n}"), &format!("v{n}")).await;
        }
        put_eventually(&mut client, "doomed", "to be deleted").await;
    });
    // Writes through every member are in flight when the leader dies.
    let load = Load::start(&runtime, &cluster);
    load.wait_for_acks_above(&cluster, &cluster.all(), 0);

    cluster.kill9(first.leader);
    let survivors = cluster.others(&[first.leader]);
    let second = cluster.wait_for_leader(&survivors);
    assert_ne!(second.leader, first.leader);
    assert!(second.term > first.term, "{first:?} then {second:?}");

    let last_revision = runtime.block_on(async {
        let mut revisions = Vec::new();
        for &member in &survivors {
            let mut client = cluster.client(member).await;
            let key = format!("after/n{}", member + 1);
            let revision = put(&mut client, &key, "written after the kill")
                .await
                .unwrap_or_else(|error| panic!("write through survivor n{}: {error}", member + 1));
            revisions.push(revision);
        }
        let mut client = cluster.client(survivors[1]).await;
        revisions.push(
            put(&mut client, "before/0", "rewritten")
                .await
                .expect("overwrite"),
        );
        let deleted = tokio::time::timeout(CALL_TIMEOUT, client.delete("doomed", None))
            .await
            .expect("delete timed out")
            .expect("delete");
        assert_eq!(deleted.deleted(), 1);
        revisions.push(deleted.header().expect("header").revision());
        assert!(
            revisions.windows(2).all(|pair| pair[0] < pair[1]),
            "{revisions:?}"
        );
        *revisions.last().expect("revisions")
    });

    // The load keeps going through both survivors.
    load.wait_for_acks_above(&cluster, &survivors, last_revision);
    let (acked, failed) = load.finish(&runtime);
    eprintln!(
        "load: {} writes acknowledged, {failed} failed or timed out",
        acked.len()
    );
    let last_revision = acked
        .iter()
        .map(|(_, _, revision)| *revision)
        .max()
        .unwrap_or(0)
        .max(last_revision);

    cluster.restart(first.leader);
    let dump = runtime.block_on(cluster.wait_converged(&cluster.all(), last_revision));
    assert_acked_present(&dump, &acked);
    assert_eq!(dump.value("before/0"), Some(&b"rewritten"[..]));
    for n in 1..10 {
        assert_eq!(
            dump.value(&format!("before/{n}")),
            Some(format!("v{n}").as_bytes())
        );
    }
    assert_eq!(dump.value("doomed"), None);
    for &member in &survivors {
        assert_eq!(
            dump.value(&format!("after/n{}", member + 1)),
            Some(&b"written after the kill"[..])
        );
    }
    let third = cluster.wait_for_leader(&cluster.all());
    assert!(third.term >= second.term);

    // And after kill -9 of every member, the whole cluster comes back with the same data.
    let all = cluster.all();
    let before_restart = runtime.block_on(cluster.wait_converged(&all, dump.revision));
    for &i in &all {
        cluster.kill9(i);
    }
    cluster.restart_together(&all);
    let fourth = cluster.wait_for_leader(&all);
    assert!(fourth.term > third.term);
    let after_restart = runtime.block_on(cluster.wait_converged(&all, before_restart.revision));
    assert_eq!(
        after_restart, before_restart,
        "a restart of every member changed the data"
    );
    assert_one_leader_per_term(&cluster);
}

// ---------------------------------------------------------------------------------------------
// 3. Writes anywhere, linearizable reads everywhere
// ---------------------------------------------------------------------------------------------

/// A write acknowledged by any member (followers forward to the leader) is seen at once by a
/// linearizable read on every member.
#[test]
fn writes_on_any_member_are_seen_by_linearizable_reads_everywhere() {
    let _serial = serial();
    let cluster = Cluster::start_plain(3);
    let leadership = cluster.wait_for_leader(&cluster.all());
    let last_revision = run(async {
        let mut clients = Vec::new();
        for i in cluster.all() {
            clients.push(cluster.client(i).await);
        }
        let mut last_revision = 0;
        for round in 0..30usize {
            let writer = round % 3;
            let key = format!("lin/{round}");
            let value = format!("round {round} via n{}", writer + 1);
            let revision = put(&mut clients[writer], &key, &value)
                .await
                .unwrap_or_else(|error| {
                    panic!(
                        "write {key} on n{} (leader n{}): {error}",
                        writer + 1,
                        leadership.leader + 1
                    )
                });
            let shared_revision = put(&mut clients[writer], "lin/shared", &value)
                .await
                .unwrap_or_else(|error| panic!("write lin/shared on n{}: {error}", writer + 1));
            assert!(shared_revision > revision && revision > last_revision);
            last_revision = shared_revision;
            for reader in [(writer + 1) % 3, (writer + 2) % 3, writer] {
                let (found, header_revision) = get(&mut clients[reader], &key, false)
                    .await
                    .unwrap_or_else(|error| panic!("read {key} on n{}: {error}", reader + 1));
                assert_eq!(
                    found,
                    Some((value.clone().into_bytes(), revision)),
                    "n{} after a write acknowledged by n{}",
                    reader + 1,
                    writer + 1
                );
                assert!(header_revision >= shared_revision);
                let (found, _) = get(&mut clients[reader], "lin/shared", false)
                    .await
                    .unwrap_or_else(|error| panic!("read lin/shared on n{}: {error}", reader + 1));
                assert_eq!(
                    found,
                    Some((value.clone().into_bytes(), shared_revision)),
                    "n{} sees the latest lin/shared",
                    reader + 1
                );
            }
        }
        // A delete through one follower is seen by linearizable reads everywhere.
        let deleter = cluster.others(&[leadership.leader])[0];
        let deleted =
            tokio::time::timeout(CALL_TIMEOUT, clients[deleter].delete("lin/shared", None))
                .await
                .expect("delete timed out")
                .expect("delete through a follower");
        assert_eq!(deleted.deleted(), 1);
        let delete_revision = deleted.header().expect("header").revision();
        for reader in cluster.all() {
            let (found, header_revision) = get(&mut clients[reader], "lin/shared", false)
                .await
                .expect("read after delete");
            assert_eq!(found, None, "n{} still sees a deleted key", reader + 1);
            assert!(header_revision >= delete_revision);
        }
        delete_revision
    });
    let dump = run(cluster.wait_converged(&cluster.all(), last_revision));
    assert_eq!(dump.revision, last_revision);
    assert_eq!(dump.kvs.len(), 30);
    let settled = wait_status_converged(&cluster, &cluster.all());
    assert_eq!(settled[0].revision, last_revision);
    assert_one_leader_per_term(&cluster);
}

// ---------------------------------------------------------------------------------------------
// 4. Minority partitions
// ---------------------------------------------------------------------------------------------

/// Cut one follower off (black hole, both directions), then the leader (connections dropped,
/// both directions): the majority keeps writing and reading; the minority neither acknowledges
/// writes nor answers linearizable reads; after healing everyone converges.
#[test]
fn minority_partition_cannot_write_or_read_linearizably() {
    let _serial = serial();
    let cluster = Cluster::start(ClusterSpec::new(3).proxied());
    let runtime = tokio_runtime();
    let all = cluster.all();
    let first = cluster.wait_for_leader(&all);
    let mut acked: Acked = Vec::new();

    // --- A follower alone, traffic black-holed. --------------------------------------------
    let follower = cluster.others(&[first.leader])[0];
    let majority = cluster.others(&[follower]);
    cluster.isolate(follower, Link::Blackhole);
    runtime.block_on(async {
        for &member in &majority {
            let mut client = cluster.client(member).await;
            let key = format!("partition/a/n{}", member + 1);
            let revision = put_eventually(&mut client, &key, "majority").await;
            acked.push((key, "majority".to_string(), revision));
        }
        for &member in &majority {
            let mut client = cluster.client(member).await;
            for (key, value, revision) in &acked {
                let (found, _) = get(&mut client, key, false)
                    .await
                    .unwrap_or_else(|error| panic!("majority read on n{}: {error}", member + 1));
                assert_eq!(found, Some((value.clone().into_bytes(), *revision)));
            }
        }
        // The cut-off member falls far behind.
        acked.extend(write_bulk(&cluster, &majority, "bulk/a/", 300).await);
    });
    assert_minority_refuses(&cluster, follower, "partition/a/minority");
    runtime.block_on(async {
        // Serializable reads stay local: they answer, and cannot contain what was written
        // after the cut.
        let mut client = cluster.client(follower).await;
        let local = dump(&mut client, true)
            .await
            .unwrap_or_else(|error| panic!("serializable read on the minority: {error}"));
        for (key, _, _) in &acked {
            assert_eq!(
                local.kv(key),
                None,
                "the cut-off n{} has {key}",
                follower + 1
            );
        }
    });
    assert_eq!(cluster.unidentified_peer_connections(), 0);

    cluster.heal();
    let last = acked
        .iter()
        .map(|(_, _, revision)| *revision)
        .max()
        .unwrap();
    let dump = runtime.block_on(cluster.wait_converged(&all, last));
    assert_acked_present(&dump, &acked);
    runtime.block_on(async {
        let mut client = cluster.client(follower).await;
        let (found, _) = get(&mut client, &acked[0].0, false)
            .await
            .expect("linearizable read on the healed member");
        assert_eq!(found, Some((acked[0].1.clone().into_bytes(), acked[0].2)));
    });

    // --- The leader alone, connections dropped. ----------------------------------------------
    let before = cluster.wait_for_leader(&all);
    let old_leader = before.leader;
    let majority = cluster.others(&[old_leader]);
    cluster.isolate(old_leader, Link::Drop);
    // At once, while it may still believe it leads: no linearizable read, no write.
    assert_minority_refuses(&cluster, old_leader, "partition/b/minority");
    let elected = cluster.wait_for_leader(&majority);
    assert_ne!(elected.leader, old_leader);
    assert!(elected.term > before.term);
    runtime.block_on(async {
        for &member in &majority {
            let mut client = cluster.client(member).await;
            let key = format!("partition/b/n{}", member + 1);
            let revision = put_eventually(&mut client, &key, "new majority").await;
            acked.push((key, "new majority".to_string(), revision));
        }
        for &member in &majority {
            let mut client = cluster.client(member).await;
            for (key, value, revision) in &acked {
                let (found, _) = get(&mut client, key, false)
                    .await
                    .unwrap_or_else(|error| panic!("majority read on n{}: {error}", member + 1));
                assert_eq!(found, Some((value.clone().into_bytes(), *revision)));
            }
        }
        // The cut-off member falls far behind.
        acked.extend(write_bulk(&cluster, &majority, "bulk/b/", 300).await);
    });
    // check_quorum: a leader that hears from nobody steps down.
    wait_until_not_leader(&cluster, old_leader);
    assert_minority_refuses(&cluster, old_leader, "partition/b/minority-again");
    assert_eq!(cluster.unidentified_peer_connections(), 0);

    cluster.heal();
    let healed = cluster.wait_for_leader(&all);
    assert!(healed.term >= elected.term);
    let last = acked
        .iter()
        .map(|(_, _, revision)| *revision)
        .max()
        .unwrap();
    let dump = runtime.block_on(cluster.wait_converged(&all, last));
    assert_acked_present(&dump, &acked);
    assert_one_leader_per_term(&cluster);
}

/// Five members, the leader and one follower cut off together (connections dropped): neither
/// of the two writes or reads linearizably, the three others elect a leader among themselves and
/// take writes; after healing all five converge.
#[test]
fn five_member_cluster_minority_of_two_cannot_write_or_read_linearizably() {
    let _serial = serial();
    let cluster = Cluster::start(ClusterSpec::new(5).proxied());
    let runtime = tokio_runtime();
    let all = cluster.all();
    let first = cluster.wait_for_leader(&all);
    let minority = [first.leader, cluster.others(&[first.leader])[0]];
    let majority = cluster.others(&minority);
    for &cut_off in &minority {
        for &member in &majority {
            cluster.set_link(cut_off, member, Link::Drop);
            cluster.set_link(member, cut_off, Link::Drop);
        }
    }
    for &cut_off in &minority {
        assert_minority_refuses(&cluster, cut_off, "partition/five/minority");
    }
    let elected = cluster.wait_for_leader(&majority);
    assert!(elected.term > first.term);
    let acked = runtime.block_on(write_bulk(&cluster, &majority, "partition/five/", 100));
    for &cut_off in &minority {
        assert_minority_refuses(&cluster, cut_off, "partition/five/minority-again");
    }
    assert_eq!(cluster.unidentified_peer_connections(), 0);

    cluster.heal();
    let last = acked
        .iter()
        .map(|(_, _, revision)| *revision)
        .max()
        .unwrap();
    let dump = runtime.block_on(cluster.wait_converged(&all, last));
    assert_acked_present(&dump, &acked);
    let healed = cluster.wait_for_leader(&all);
    assert!(healed.term >= elected.term);
    assert_one_leader_per_term(&cluster);
}

// ---------------------------------------------------------------------------------------------
// 5. SIGSTOP of the leader
// ---------------------------------------------------------------------------------------------

/// A frozen leader is replaced and the cluster keeps taking writes; once thawed it steps down
/// and catches up; no acknowledged write is lost (including one sent to it while frozen).
#[test]
fn stopped_leader_steps_down_and_catches_up_after_sigcont() {
    let _serial = serial();
    let mut cluster = Cluster::start_plain(3);
    let runtime = tokio_runtime();
    let all = cluster.all();
    let first = cluster.wait_for_leader(&all);
    let old = first.leader;
    let survivors = cluster.others(&[old]);

    // Connected before the freeze, without a client-side timeout of its own.
    let frozen_client = runtime.block_on(async {
        Client::connect([cluster.members[old].url()], None)
            .await
            .expect("connect")
    });
    let load = Load::start(&runtime, &cluster);
    load.wait_for_acks_above(&cluster, &all, 0);

    cluster.pause(old);
    let pending = {
        let mut client = frozen_client.clone();
        runtime.spawn(async move {
            tokio::time::timeout(
                EVENTUALLY,
                client.put("pending/sent-while-frozen", "maybe", None),
            )
            .await
        })
    };
    let second = cluster.wait_for_leader(&survivors);
    assert_ne!(second.leader, old);
    assert!(second.term > first.term);
    let during = runtime.block_on(async {
        let mut acked = Vec::new();
        for &member in &survivors {
            let mut client = cluster.client(member).await;
            let key = format!("frozen/n{}", member + 1);
            let revision = put_eventually(&mut client, &key, "while the leader is frozen").await;
            acked.push((key, "while the leader is frozen".to_string(), revision));
        }
        acked
    });
    // A linearizable read sent to the frozen leader after those writes were acknowledged: if it
    // is ever answered, it must see them (a deposed leader must not answer from its own state).
    let pending_read = {
        let mut client = frozen_client.clone();
        runtime.spawn(async move {
            tokio::time::timeout(
                EVENTUALLY,
                client.get("frozen/", Some(GetOptions::new().with_prefix())),
            )
            .await
        })
    };
    // Give the read time to reach the frozen member's socket before it thaws.
    std::thread::sleep(Duration::from_millis(300));

    cluster.resume(old);
    let status = wait_until_follows_another(&cluster, old, first.term);
    assert!(status.raft_term >= second.term);
    // The thawed member takes writes again (through the leader).
    let after = runtime.block_on(async {
        let mut client = cluster.client(old).await;
        let revision = put_eventually(&mut client, "thawed/n-old", "after SIGCONT").await;
        vec![(
            "thawed/n-old".to_string(),
            "after SIGCONT".to_string(),
            revision,
        )]
    });
    // The thawed member's own writer gets acknowledgements again.
    load.wait_for_acks_above(&cluster, &all, after[0].2);
    let (load_acked, failed) = load.finish(&runtime);
    let mut acked: Acked = during.iter().cloned().chain(after).collect();
    acked.extend(load_acked);
    match runtime.block_on(pending_read).expect("pending read task") {
        Ok(Ok(response)) => {
            let seen: Vec<(Vec<u8>, Vec<u8>, i64)> = response
                .kvs()
                .iter()
                .map(|kv| (kv.key().to_vec(), kv.value().to_vec(), kv.mod_revision()))
                .collect();
            let expected: Vec<(Vec<u8>, Vec<u8>, i64)> = during
                .iter()
                .map(|(key, value, revision)| {
                    (
                        key.clone().into_bytes(),
                        value.clone().into_bytes(),
                        *revision,
                    )
                })
                .collect();
            assert_eq!(
                seen, expected,
                "a linearizable read sent to the frozen old leader after writes were \
                 acknowledged by the new one answered without them (stale read)"
            );
            eprintln!("the read sent to the frozen leader was answered, and saw every write");
        }
        Ok(Err(error)) => eprintln!("the read sent to the frozen leader failed: {error}"),
        Err(_) => panic!("the read sent to the frozen leader never got an answer"),
    }
    let pending = runtime.block_on(pending).expect("pending put task");
    match pending {
        Ok(Ok(response)) => {
            let revision = response.header().expect("header").revision();
            eprintln!("the write sent to the frozen leader was acknowledged at {revision}");
            acked.push((
                "pending/sent-while-frozen".to_string(),
                "maybe".to_string(),
                revision,
            ));
        }
        Ok(Err(error)) => eprintln!("the write sent to the frozen leader failed: {error}"),
        Err(_) => panic!("the write sent to the frozen leader never got an answer"),
    }
    eprintln!(
        "load: {} writes acknowledged, {failed} failed or timed out",
        acked.len()
    );

    let last = acked
        .iter()
        .map(|(_, _, revision)| *revision)
        .max()
        .unwrap();
    let dump = runtime.block_on(cluster.wait_converged(&all, last));
    assert_acked_present(&dump, &acked);
    let final_leadership = cluster.wait_for_leader(&all);
    assert!(final_leadership.term >= second.term);
    assert_one_leader_per_term(&cluster);
}

// ---------------------------------------------------------------------------------------------
// 6. A member of another cluster
// ---------------------------------------------------------------------------------------------

/// n3 is started with another `--initial-cluster-token`, so it derives other ids and another
/// cluster id: n1 and n2 refuse its connections (`cluster ID mismatch`), form the cluster on
/// their own, and n3 never follows their leader nor gets their data.
#[test]
fn member_with_another_cluster_token_cannot_join() {
    let _serial = serial();
    let cluster = Cluster::start(
        ClusterSpec::new(3)
            .token(0, "cluster-a")
            .token(1, "cluster-a")
            .token(2, "cluster-b")
            .wait_ready(&[0, 1]),
    );
    let stranger = 2;
    let leadership = cluster.wait_for_leader(&[0, 1]);
    let revision = run(async {
        let mut client = cluster.client(leadership.leader).await;
        put_eventually(&mut client, "only/cluster-a", "yes").await
    });

    let deadline = Instant::now() + EVENTUALLY;
    while !(cluster.log(0).contains(CLUSTER_ID_MISMATCH)
        && cluster.log(1).contains(CLUSTER_ID_MISMATCH))
    {
        assert!(
            Instant::now() < deadline,
            "n1 and n2 never logged `{CLUSTER_ID_MISMATCH}`\n{}",
            cluster.log_tails(40)
        );
        std::thread::sleep(POLL);
    }
    // Several election timeouts after the refusals: n3 still has no part in cluster-a.
    let watch_until = Instant::now() + Duration::from_secs(5);
    let mut polls = 0;
    while Instant::now() < watch_until || polls < 3 {
        polls += 1;
        std::thread::sleep(Duration::from_millis(500));
        // n3 binds its client port at start and takes calls only once it serves (until then
        // they wait); whatever it answers must not be cluster-a's.
        if std::net::TcpStream::connect(cluster.endpoint(stranger)).is_err() {
            continue;
        }
        if let Some(status) = cluster.status(stranger) {
            assert_ne!(
                status.leader, leadership.leader_id,
                "n3 follows cluster-a's leader: {status:?}"
            );
            assert!(
                cluster
                    .index_of_id(status.leader)
                    .is_none_or(|i| i == stranger),
                "{status:?}"
            );
            let cluster_a = cluster.status(leadership.leader).expect("leader status");
            assert_ne!(status.cluster_id, cluster_a.cluster_id);
        }
        let get = cluster.etcdctl(
            &[stranger],
            Duration::from_secs(2),
            &["get", "--consistency=s", "only/cluster-a"],
        );
        assert!(
            !String::from_utf8_lossy(&get.stdout).contains("only/cluster-a"),
            "n3 has cluster-a's data"
        );
    }
    assert!(
        !cluster.log(stranger).contains(READY_LINE),
        "n3 never has a leader, so it never serves\n{}",
        cluster.log(stranger)
    );
    // cluster-a is unaffected.
    let dump = run(cluster.wait_converged(&[0, 1], revision));
    assert_eq!(dump.value("only/cluster-a"), Some(&b"yes"[..]));
    assert_eq!(
        cluster.wait_for_leader(&[0, 1]).leader_id,
        leadership.leader_id
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Cleanup
// ---------------------------------------------------------------------------------------------

/// Dropping a cluster kills every member (a SIGSTOPped one too), stops every proxy thread
/// (including black-holing ones), frees every port and removes the data directories.
#[test]
fn dropping_a_cluster_leaves_no_process_thread_or_port_behind() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec::new(3).proxied());
    let leadership = cluster.wait_for_leader(&cluster.all());
    let follower = cluster.others(&[leadership.leader])[0];
    cluster.set_link(leadership.leader, follower, Link::Blackhole);
    cluster.set_link(follower, leadership.leader, Link::Drop);
    // Wait until the black hole has swallowed a connection, so a black-holing thread is live.
    let deadline = Instant::now() + EVENTUALLY;
    while cluster.accepted_connections(leadership.leader, follower) < 2 {
        assert!(Instant::now() < deadline, "the leader never reconnected");
        std::thread::sleep(POLL);
    }
    cluster.pause(follower);

    let pids: Vec<u32> = cluster
        .members
        .iter()
        .map(|member| member.pid().expect("running"))
        .collect();
    let mut ports: Vec<u16> = cluster
        .members
        .iter()
        .flat_map(|member| [member.client_port, member.peer_port])
        .collect();
    ports.extend(cluster.proxy_ports());
    let threads = cluster.proxy_threads();
    assert!(
        threads.load(Ordering::SeqCst) > 3,
        "proxy threads are running"
    );
    let data_root = cluster.data_root();
    assert!(data_root.exists());

    drop(cluster);

    for pid in pids {
        // SAFETY: kill(2) with signal 0 only checks whether the process exists.
        let exists = unsafe { libc::kill(pid as i32, 0) } == 0;
        assert!(!exists, "member process {pid} is still there");
    }
    assert_eq!(
        threads.load(Ordering::SeqCst),
        0,
        "proxy threads left running"
    );
    for port in ports {
        std::net::TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|error| panic!("port {port} still taken: {error}"));
    }
    assert!(!data_root.exists(), "data directories left behind");
}
