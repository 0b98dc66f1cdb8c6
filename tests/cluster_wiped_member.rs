//! A member whose data directory was wiped, restarted with the same flags (so the same member
//! id): the leader knows it acknowledged entries its new, empty log does not have. raft-rs
//! panics on the first heartbeat of such a leader ("to_commit N is out of range"); the member
//! must instead refuse to go on with a clear message, and the rest of the cluster keeps
//! serving. etcd refuses this case too: its member must be removed and added again.
mod cluster;
mod common;

use cluster::*;
use common::*;

use std::time::Duration;

/// Writes acknowledged by every member before the wipe.
const WRITES: usize = 20;
/// How long the wiped member may take to notice (a heartbeat interval, plus start-up).
const REFUSAL_WITHIN: Duration = Duration::from_secs(30);

#[test]
fn a_member_restarted_with_a_wiped_data_directory_is_refused_and_the_others_keep_serving() {
    let _serial = serial();
    let runtime = tokio_runtime();
    let mut cluster = Cluster::start(ClusterSpec::new(3));
    let all = cluster.all();
    let leadership = cluster.wait_for_leader(&all);
    let revision = runtime.block_on(async {
        let mut client = cluster.client(leadership.leader).await;
        let mut revision = 0;
        for i in 0..WRITES {
            revision = put_eventually(&mut client, &format!("wiped/{i:02}"), "v").await;
        }
        revision
    });
    runtime.block_on(cluster.wait_converged(&all, revision));

    let victim = cluster.others(&[leadership.leader])[0];
    cluster.kill9(victim);
    let data_dir = cluster.members[victim].data_dir.clone();
    std::fs::remove_dir_all(&data_dir).expect("wipe the data directory");
    let log_before = cluster.members[victim].log().len();
    let status = match cluster.restart_with_env(victim, &[]) {
        Err(status) => status,
        Ok(()) => cluster
            .wait_exit(victim, REFUSAL_WITHIN)
            .unwrap_or_else(|| {
                panic!(
                    "the wiped member kept running; its log:\n{}",
                    &cluster.members[victim].log()[log_before..]
                )
            }),
    };
    let log = cluster.members[victim].log()[log_before..].to_string();
    assert!(
        !status.success(),
        "the wiped member exited with {status:?}; its log:\n{log}"
    );
    assert!(
        log.contains("lost its raft log") && log.contains("member remove"),
        "no clear refusal in the wiped member's log:\n{log}"
    );
    assert!(
        !log.contains("panicked"),
        "the wiped member panicked:\n{log}"
    );

    // The other two still form a quorum and serve writes and reads.
    let survivors = cluster.others(&[victim]);
    let after = runtime.block_on(async {
        let mut client = cluster.client(survivors[0]).await;
        put_eventually(&mut client, "wiped/after", "still serving").await
    });
    let dump = runtime.block_on(cluster.wait_converged(&survivors, after));
    assert_eq!(dump.value("wiped/after"), Some(&b"still serving"[..]));
    assert_eq!(dump.value("wiped/00"), Some(&b"v"[..]));
}
