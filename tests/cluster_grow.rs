//! Growing a cluster that started as one member, the etcd way, with Debian etcdctl 3.4:
//! `member add`, then start the new member with `--initial-cluster` naming both and
//! `--initial-cluster-state existing`; it catches up and both serve; then a third the same way.
//!
//! As in etcd, one voter plus an added voter makes a quorum of two: the add itself is accepted,
//! but no write is acknowledged until the new member is up. The first member, restarted with
//! the flags it was first started with, rejoins the grown cluster.
//!
//! A lone member started without `--listen-peer-urls` runs without a peer listener (so several
//! single-member servers can share a machine without contending for etcd's default port 2380);
//! it refuses `member add` instead of accepting a member it could never reach.
mod cluster;
mod common;

use cluster::*;
use common::*;
use std::time::{Duration, Instant};

/// etcdctl's `--command-timeout` for a write that must not be acknowledged.
const REFUSED_WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Keys written while the cluster had one member.
const KEYS_ALONE: usize = 20;

/// Retries `args` until etcdctl succeeds (a member that just joined may still be electing).
fn eventually_succeeds(cluster: &Cluster, members: &[usize], args: &[&str]) -> String {
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        let output = cluster.etcdctl(members, CTL_TIMEOUT, args);
        if output.status.success() {
            return String::from_utf8_lossy(&output.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "etcdctl {args:?} never succeeded: {}\n{}",
            ctl_text(&output),
            cluster.log_tails(30)
        );
        std::thread::sleep(POLL);
    }
}

/// (id, name, peer urls, client urls, is learner) of every member, from `member list -w json`.
type Listed = (u64, String, Vec<String>, Vec<String>, bool);

fn strings(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn member_list(cluster: &Cluster, members: &[usize]) -> Vec<Listed> {
    let stdout = ctl_ok(cluster, members, &["member", "list", "-w", "json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("member list json");
    let mut list: Vec<Listed> = json["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|member| {
            (
                member["ID"].as_u64().expect("ID"),
                member["name"].as_str().unwrap_or_default().to_string(),
                strings(&member["peerURLs"]),
                strings(&member["clientURLs"]),
                member["isLearner"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    list.sort();
    list
}

/// `member add NAME --peer-urls=URL` through `via`; checks etcdctl's answer names the new
/// member's id and the `--initial-cluster-state existing` to start it with.
fn add_member(cluster: &Cluster, via: &[usize], name: &str, peer_port: u16) -> u64 {
    let url = format!("http://127.0.0.1:{peer_port}");
    let added = ctl_ok(
        cluster,
        via,
        &["member", "add", name, &format!("--peer-urls={url}")],
    );
    let id = capstan::config::member_id_of(std::slice::from_ref(&url), DEFAULT_TOKEN);
    assert!(added.contains(&format!("{id:x}")), "{added}");
    assert!(
        added.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""),
        "{added}"
    );
    assert!(added.contains(&format!("{name}={url}")), "{added}");
    id
}

/// Polls a serializable read on `member` until it holds every `alone/` key.
fn wait_caught_up(cluster: &Cluster, member: usize) {
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        let got = cluster.etcdctl(
            &[member],
            CTL_TIMEOUT,
            &[
                "get",
                "alone/",
                "--prefix",
                "--keys-only",
                "--consistency=s",
            ],
        );
        let keys = String::from_utf8_lossy(&got.stdout)
            .matches("alone/")
            .count();
        if keys == KEYS_ALONE {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "n{} has {keys} of {KEYS_ALONE} keys: {}\n{}",
            member + 1,
            ctl_text(&got),
            cluster.log(member)
        );
        std::thread::sleep(POLL);
    }
}

/// `endpoint status --cluster` through `via`: every member answers, with one cluster id and one
/// leader among them.
fn assert_cluster_status(cluster: &Cluster, via: &[usize], expected_members: usize) {
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        let output = cluster.etcdctl(
            via,
            CTL_TIMEOUT,
            &["endpoint", "status", "--cluster", "-w", "json"],
        );
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let entries = serde_json::from_str::<serde_json::Value>(stdout.trim())
            .ok()
            .and_then(|json| json.as_array().cloned())
            .unwrap_or_default();
        let field = |entry: &serde_json::Value, path: &[&str]| -> u64 {
            path.iter()
                .fold(entry, |value, key| &value[*key])
                .as_u64()
                .unwrap_or(0)
        };
        let endpoints: Vec<String> = entries
            .iter()
            .filter_map(|entry| entry["Endpoint"].as_str().map(str::to_string))
            .collect();
        let cluster_ids: Vec<u64> = entries
            .iter()
            .map(|entry| field(entry, &["Status", "header", "cluster_id"]))
            .collect();
        let leaders: Vec<u64> = entries
            .iter()
            .map(|entry| field(entry, &["Status", "leader"]))
            .collect();
        let members: Vec<u64> = entries
            .iter()
            .map(|entry| field(entry, &["Status", "header", "member_id"]))
            .collect();
        let agreed = output.status.success()
            && entries.len() == expected_members
            && cluster_ids
                .iter()
                .all(|id| *id != 0 && *id == cluster_ids[0])
            && leaders.iter().all(|id| *id != 0 && *id == leaders[0])
            && members.contains(&leaders[0]);
        if agreed {
            for member in &cluster.members {
                assert!(
                    endpoints.contains(&member.url()),
                    "{} ({}) missing from {endpoints:?}",
                    member.name,
                    member.url()
                );
            }
            return;
        }
        assert!(
            Instant::now() < deadline,
            "endpoint status --cluster never showed {expected_members} agreeing members: {}\n\
             member list: {:?}\n{}",
            ctl_text(&output),
            member_list(cluster, via),
            cluster.log_tails(30)
        );
        std::thread::sleep(POLL);
    }
}

#[test]
fn a_single_member_grows_to_three_with_member_add() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec::new(1));
    let n1 = 0;
    for i in 0..KEYS_ALONE {
        ctl_ok(
            &cluster,
            &[n1],
            &["put", &format!("alone/{i:02}"), &format!("v{i}")],
        );
    }

    // n2: the add is accepted at once; writes then need n2 too.
    let n2_port = free_port();
    let n2_id = add_member(&cluster, &[n1], "n2", n2_port);
    let list = member_list(&cluster, &[n1]);
    assert_eq!(list.len(), 2, "{list:?}");
    let unstarted = list
        .iter()
        .find(|member| member.0 == n2_id)
        .expect("n2 listed");
    assert_eq!(unstarted.1, "", "n2 has no name before it starts: {list:?}");
    assert_eq!(unstarted.2, [format!("http://127.0.0.1:{n2_port}")]);
    assert!(!unstarted.4, "n2 is a voter: {list:?}");
    let refused = cluster.etcdctl(
        &[n1],
        REFUSED_WRITE_TIMEOUT,
        &["put", "while-n2-is-down", "x"],
    );
    assert!(
        !refused.status.success(),
        "a write was acknowledged by one of two voters: {}",
        ctl_text(&refused)
    );

    let n2 = cluster.start_joiner("n2", n2_port, &[n1]);
    assert_eq!(cluster.members[n2].id, n2_id);
    cluster.wait_for_leader(&[n1, n2]);
    wait_caught_up(&cluster, n2);
    eventually_succeeds(&cluster, &[n2], &["put", "via/n2", "2"]);
    eventually_succeeds(&cluster, &[n1], &["put", "via/n1", "1"]);
    assert_cluster_status(&cluster, &[n1], 2);

    // n3, added through n2 (a follower forwards the add to the leader, if n2 does not lead).
    let n3_port = free_port();
    let n3_id = add_member(&cluster, &[n2], "n3", n3_port);
    let n3 = cluster.start_joiner("n3", n3_port, &[n1, n2]);
    assert_eq!(cluster.members[n3].id, n3_id);
    let all = cluster.all();
    cluster.wait_for_leader(&all);
    wait_caught_up(&cluster, n3);
    eventually_succeeds(&cluster, &[n3], &["put", "via/n3", "3"]);
    assert_cluster_status(&cluster, &[n3], 3);

    // Every member lists all three, named and with their client urls once they published.
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        let lists: Vec<Vec<Listed>> = all.iter().map(|&i| member_list(&cluster, &[i])).collect();
        let complete = lists.iter().all(|list| {
            list.len() == 3
                && cluster.members.iter().all(|member| {
                    list.iter().any(|listed| {
                        listed.0 == member.id
                            && listed.1 == member.name
                            && listed.2 == [member.advertised_peer_url.clone()]
                            && listed.3 == [member.url()]
                            && !listed.4
                    })
                })
        });
        if complete {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "member lists never agreed on three started voters: {lists:?}"
        );
        std::thread::sleep(POLL);
    }

    // Everything written is everywhere (the refused write may or may not have been committed
    // once n2 joined: it is not looked at).
    let runtime = tokio_runtime();
    let revision = runtime.block_on(async {
        let mut client = cluster.client(n1).await;
        put_eventually(&mut client, "marker", "grown").await
    });
    let dump = runtime.block_on(cluster.wait_converged(&all, revision));
    for i in 0..KEYS_ALONE {
        let value = format!("v{i}");
        assert_eq!(dump.value(&format!("alone/{i:02}")), Some(value.as_bytes()));
    }
    for (key, value) in [("via/n1", "1"), ("via/n2", "2"), ("via/n3", "3")] {
        assert_eq!(dump.value(key), Some(value.as_bytes()), "{key}");
    }

    // n1 restarts with the flags it was first started with (`--initial-cluster` naming only
    // itself): its log, not its flags, says who the members are, and it rejoins them.
    cluster.restart(n1);
    cluster.wait_for_leader(&all);
    eventually_succeeds(&cluster, &[n1], &["put", "after/restart", "r"]);
    let revision = runtime.block_on(async {
        let mut client = cluster.client(n1).await;
        put_eventually(&mut client, "marker", "restarted").await
    });
    let dump = runtime.block_on(cluster.wait_converged(&all, revision));
    assert_eq!(dump.value("after/restart"), Some(b"r".as_slice()));
    assert_eq!(dump.value("via/n3"), Some(b"3".as_slice()));
}

#[test]
fn a_lone_member_without_a_peer_listener_refuses_member_add() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::capstan(dir.path());
    let output = etcdctl(
        &server.endpoint(),
        &[
            "member",
            "add",
            "n2",
            &format!("--peer-urls=http://127.0.0.1:{}", free_port()),
        ],
        None,
    );
    let all = ctl_text(&output);
    assert!(
        !output.status.success() && all.contains("without --listen-peer-urls"),
        "member add on a member without a peer listener: {all}"
    );
    // Still alone, still serving.
    let list = etcdctl_ok(&server.endpoint(), &["member", "list"]);
    assert_eq!(list.lines().count(), 1, "{list}");
    etcdctl_ok(&server.endpoint(), &["put", "still", "serving"]);
}
