//! Membership changes with Debian etcdctl 3.4 against a 3-member cluster: learners are added
//! (through a follower, which forwards to the leader), refused past `--max-learners`, not
//! promoted before they caught up, updated and removed; a removed voter stops and the rest of
//! the cluster keeps serving. etcd's error strings throughout.
mod cluster;
mod common;

use cluster::*;
use common::*;

fn fails_with(cluster: &Cluster, members: &[usize], args: &[&str], message: &str) {
    let output = cluster.etcdctl(members, CTL_TIMEOUT, args);
    let all = ctl_text(&output);
    assert!(
        !output.status.success() && all.contains(message),
        "etcdctl {args:?} should fail with {message:?}: {all}"
    );
}

/// (id, name, peer urls, is learner) of every member, from `member list -w json`.
fn member_list(cluster: &Cluster, members: &[usize]) -> Vec<(u64, String, Vec<String>, bool)> {
    let stdout = ctl_ok(cluster, members, &["member", "list", "-w", "json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("member list json");
    let mut list: Vec<(u64, String, Vec<String>, bool)> = json["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|member| {
            (
                member["ID"].as_u64().expect("ID"),
                member["name"].as_str().unwrap_or_default().to_string(),
                member["peerURLs"]
                    .as_array()
                    .map(|urls| {
                        urls.iter()
                            .filter_map(|url| url.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                member["isLearner"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    list.sort();
    list
}

#[test]
fn learners_are_added_refused_updated_and_removed_like_etcd() {
    let _serial = serial();
    let mut cluster = Cluster::start_plain(3);
    let leadership = cluster.wait_for_leader(&cluster.all());
    let followers = cluster.others(&[leadership.leader]);
    let follower = [followers[0]];
    let learner_url = format!("http://127.0.0.1:{}", free_port());
    let added = ctl_ok(
        &cluster,
        &follower,
        &[
            "member",
            "add",
            "n4",
            "--learner",
            &format!("--peer-urls={learner_url}"),
        ],
    );
    assert!(
        added.contains("added to cluster")
            && added.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""),
        "member add output: {added}"
    );
    let learner_id =
        capstan::config::member_id_of(std::slice::from_ref(&learner_url), DEFAULT_TOKEN);
    assert!(added.contains(&format!("{learner_id:x}")), "{added}");
    // Every member applied the change.
    for i in cluster.all() {
        let list = member_list(&cluster, &[i]);
        assert_eq!(list.len(), 4, "member {i}: {list:?}");
        let learner = list
            .iter()
            .find(|member| member.0 == learner_id)
            .expect("learner listed");
        assert!(learner.3, "n4 is a learner on member {i}: {list:?}");
        assert_eq!(learner.2, std::slice::from_ref(&learner_url));
    }

    let another_url = format!("http://127.0.0.1:{}", free_port());
    fails_with(
        &cluster,
        &follower,
        &[
            "member",
            "add",
            "n5",
            "--learner",
            &format!("--peer-urls={another_url}"),
        ],
        "etcdserver: too many learner members in cluster",
    );
    fails_with(
        &cluster,
        &follower,
        &["member", "add", "n5", &format!("--peer-urls={learner_url}")],
        "etcdserver: Peer URLs already exists",
    );
    let learner_hex = format!("{learner_id:x}");
    // Never started, so never in sync.
    fails_with(
        &cluster,
        &[leadership.leader],
        &["member", "promote", &learner_hex],
        "etcdserver: can only promote a learner member which is in sync with leader",
    );
    let voter_hex = format!("{:x}", cluster.members[followers[1]].id);
    fails_with(
        &cluster,
        &follower,
        &["member", "promote", &voter_hex],
        "etcdserver: can only promote a learner member",
    );
    fails_with(
        &cluster,
        &follower,
        &["member", "remove", "123456789abcdef"],
        "etcdserver: member not found",
    );

    let moved_url = format!("http://127.0.0.1:{}", free_port());
    let updated = ctl_ok(
        &cluster,
        &follower,
        &[
            "member",
            "update",
            &learner_hex,
            &format!("--peer-urls={moved_url}"),
        ],
    );
    assert!(updated.contains("updated in cluster"), "{updated}");
    let list = member_list(&cluster, &[leadership.leader]);
    let learner = list
        .iter()
        .find(|member| member.0 == learner_id)
        .expect("learner listed");
    assert_eq!(learner.2, [moved_url]);

    let removed = ctl_ok(&cluster, &follower, &["member", "remove", &learner_hex]);
    assert!(removed.contains("removed from cluster"), "{removed}");
    assert_eq!(member_list(&cluster, &cluster.all()).len(), 3);

    // Remove a voter (not the one asked): it stops; the other two keep serving.
    let victim = followers[1];
    let victim_hex = format!("{:x}", cluster.members[victim].id);
    ctl_ok(&cluster, &follower, &["member", "remove", &victim_hex]);
    let status = cluster.wait_exit(victim, EVENTUALLY);
    assert!(
        status.is_some(),
        "the removed member keeps running; log:\n{}",
        cluster.log(victim)
    );
    assert!(
        cluster
            .log(victim)
            .contains("the member has been permanently removed from the cluster"),
        "{}",
        cluster.log(victim)
    );
    let survivors = cluster.others(&[victim]);
    let list = member_list(&cluster, &survivors);
    assert_eq!(list.len(), 2, "{list:?}");
    ctl_ok(&cluster, &survivors, &["put", "after-removal", "ok"]);
    for &i in &survivors {
        let got = ctl_ok(&cluster, &[i], &["get", "after-removal", "--consistency=s"]);
        assert!(got.contains("ok"), "member {i}: {got}");
    }
}

#[test]
fn a_learner_joins_with_existing_state_catches_up_serves_watches_and_is_promoted() {
    let _serial = serial();
    let mut cluster = Cluster::start_plain(3);
    let leadership = cluster.wait_for_leader(&cluster.all());
    let voters = cluster.all();
    for i in 0..20 {
        ctl_ok(
            &cluster,
            &voters,
            &["put", &format!("before/{i:02}"), &format!("v{i}")],
        );
    }
    let peer_port = free_port();
    let learner_url = format!("http://127.0.0.1:{peer_port}");
    ctl_ok(
        &cluster,
        &[leadership.leader],
        &[
            "member",
            "add",
            "n4",
            "--learner",
            &format!("--peer-urls={learner_url}"),
        ],
    );
    let learner = cluster.start_joiner("n4", peer_port, &voters);

    // It caught up: a serializable read on the learner sees every key written before it joined.
    let deadline = std::time::Instant::now() + EVENTUALLY;
    loop {
        let got = cluster.etcdctl(
            &[learner],
            CTL_TIMEOUT,
            &[
                "get",
                "before/",
                "--prefix",
                "--keys-only",
                "--consistency=s",
            ],
        );
        let keys = String::from_utf8_lossy(&got.stdout)
            .matches("before/")
            .count();
        if keys == 20 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "learner has {keys} of 20 keys: {}\n{}",
            ctl_text(&got),
            cluster.log(learner)
        );
        std::thread::sleep(POLL);
    }
    // A learner refuses writes and linearizable reads, as etcd does.
    fails_with(
        &cluster,
        &[learner],
        &["put", "on-learner", "x"],
        "etcdserver: rpc not supported for learner",
    );
    fails_with(
        &cluster,
        &[learner],
        &["get", "before/00"],
        "etcdserver: rpc not supported for learner",
    );
    let status = ctl_ok(&cluster, &[learner], &["endpoint", "status", "-w", "json"]);
    assert!(status.contains("\"isLearner\":true"), "{status}");

    // Watch works on the learner: a write through the leader reaches a watcher there.
    let runtime = tokio_runtime();
    runtime.block_on(async {
        let mut client = cluster.client(learner).await;
        let (_watcher, mut events) = client
            .watch("watched", None)
            .await
            .expect("watch on learner");
        let mut writer = cluster.client(leadership.leader).await;
        writer.put("watched", "1", None).await.expect("put");
        let message = tokio::time::timeout(EVENTUALLY, events.message())
            .await
            .expect("event in time")
            .expect("watch stream")
            .expect("watch open");
        assert_eq!(message.events().len(), 1);
    });

    // Promote once in sync (it is by now; retry while it is not).
    let learner_hex = format!("{:x}", cluster.members[learner].id);
    let deadline = std::time::Instant::now() + EVENTUALLY;
    loop {
        let output = cluster.etcdctl(&voters, CTL_TIMEOUT, &["member", "promote", &learner_hex]);
        if output.status.success() {
            assert!(
                String::from_utf8_lossy(&output.stdout).contains("promoted"),
                "{}",
                ctl_text(&output)
            );
            break;
        }
        assert!(
            ctl_text(&output).contains("in sync with leader")
                && std::time::Instant::now() < deadline,
            "promote: {}",
            ctl_text(&output)
        );
        std::thread::sleep(POLL);
    }
    let list = member_list(&cluster, &voters);
    assert_eq!(list.len(), 4);
    assert!(
        list.iter().all(|member| !member.3),
        "all voters now: {list:?}"
    );
    let promoted = list
        .iter()
        .find(|member| member.1 == "n4")
        .expect("n4 published its name");
    assert_eq!(promoted.0, cluster.members[learner].id);
    // The promoted member takes writes and linearizable reads.
    ctl_ok(&cluster, &[learner], &["put", "on-promoted", "yes"]);
    let got = ctl_ok(&cluster, &[learner], &["get", "on-promoted"]);
    assert!(got.contains("yes"), "{got}");
}

#[test]
fn move_leader_hands_leadership_to_a_voter_only_from_the_leader() {
    let _serial = serial();
    let cluster = Cluster::start_plain(3);
    let leadership = cluster.wait_for_leader(&cluster.all());
    let target = cluster.others(&[leadership.leader])[0];
    let target_hex = format!("{:x}", cluster.members[target].id);
    let moved = ctl_ok(&cluster, &cluster.all(), &["move-leader", &target_hex]);
    assert!(moved.contains("Leadership transferred"), "{moved}");
    let now = cluster.wait_for_leader(&cluster.all());
    assert_eq!(now.leader, target);
    assert!(now.term > leadership.term);
    let runtime = tokio_runtime();
    runtime.block_on(async {
        // On a follower: etcd's "not leader".
        let mut follower = cluster.client(leadership.leader).await;
        let error = follower
            .move_leader(cluster.members[target].id)
            .await
            .expect_err("move-leader on a follower");
        assert!(
            error.to_string().contains("etcdserver: not leader"),
            "{error}"
        );
        // To a non-member: etcd's "bad leader transferee".
        let mut leader = cluster.client(target).await;
        let error = leader
            .move_leader(0x1234)
            .await
            .expect_err("move-leader to a stranger");
        assert!(
            error
                .to_string()
                .contains("etcdserver: bad leader transferee"),
            "{error}"
        );
    });
}
