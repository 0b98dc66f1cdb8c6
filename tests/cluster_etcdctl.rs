//! etcdctl 3.4's cluster-wide commands against a 3-member cluster: `endpoint status --cluster`,
//! `endpoint health --cluster` and `member list`.
//!
//! With `--cluster`, etcdctl dials every member's advertised client URL, and its grpc-go sends
//! the URL itself (`http://127.0.0.1:PORT`) as `:authority`; h2 alone would reset those streams
//! with PROTOCOL_ERROR (`src/grpc/authority.rs` repairs them). Every check polls until it holds
//! or [`cluster::EVENTUALLY`] passes; only the final answer is asserted.
mod cluster;
mod common;

use cluster::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Output;
use std::time::{Duration, Instant};

/// etcdctl's `--command-timeout`.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

fn text(output: &Output) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn number(value: &Value, field: &str) -> Option<u64> {
    value.get(field)?.as_u64()
}

/// One entry of `endpoint status -w json`.
#[derive(Debug)]
struct Status {
    endpoint: String,
    cluster_id: u64,
    member_id: u64,
    leader: u64,
    raft_term: u64,
    raft_index: u64,
}

fn parse_statuses(stdout: &[u8]) -> Result<Vec<Status>, String> {
    let entries: Vec<Value> = serde_json::from_slice(stdout).map_err(|e| e.to_string())?;
    entries
        .iter()
        .map(|entry| {
            let status = entry.get("Status").ok_or("no Status")?;
            let header = status.get("header").ok_or("no header")?;
            Ok(Status {
                endpoint: entry
                    .get("Endpoint")
                    .and_then(Value::as_str)
                    .ok_or("no Endpoint")?
                    .to_string(),
                cluster_id: number(header, "cluster_id").ok_or("no cluster_id")?,
                member_id: number(header, "member_id").ok_or("no member_id")?,
                leader: number(status, "leader").ok_or("no leader")?,
                raft_term: number(status, "raftTerm").ok_or("no raftTerm")?,
                raft_index: number(status, "raftIndex").ok_or("no raftIndex")?,
            })
        })
        .collect()
}

/// Why `statuses` is not one complete, agreeing answer from every member, if it is not.
fn status_problem(cluster: &Cluster, statuses: &[Status]) -> Option<String> {
    if statuses.len() != cluster.size() {
        return Some(format!(
            "{} statuses for {} members",
            statuses.len(),
            cluster.size()
        ));
    }
    for member in &cluster.members {
        let Some(status) = statuses.iter().find(|s| s.endpoint == member.url()) else {
            return Some(format!("no status for {}", member.url()));
        };
        if status.member_id != member.id {
            return Some(format!(
                "{} answered as member {:x}",
                member.url(),
                status.member_id
            ));
        }
        if status.raft_term == 0 || status.raft_index == 0 {
            return Some(format!(
                "{} has no raft term or index: {status:?}",
                member.url()
            ));
        }
    }
    let leaders: BTreeSet<u64> = statuses.iter().map(|s| s.leader).collect();
    let clusters: BTreeSet<u64> = statuses.iter().map(|s| s.cluster_id).collect();
    let terms: BTreeSet<u64> = statuses.iter().map(|s| s.raft_term).collect();
    if leaders.len() != 1 || clusters.len() != 1 || terms.len() != 1 {
        return Some(format!(
            "members disagree: leaders {leaders:?}, clusters {clusters:?}, terms {terms:?}"
        ));
    }
    let is_leader = statuses.iter().filter(|s| s.leader == s.member_id).count();
    (is_leader != 1).then(|| format!("{is_leader} members report being the leader"))
}

/// Runs etcdctl through `entry` until `check` accepts its output; panics with the last output
/// after [`EVENTUALLY`].
fn eventually<T>(
    cluster: &Cluster,
    entry: usize,
    args: &[&str],
    check: impl Fn(&Output) -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        let output = cluster.etcdctl(&[entry], COMMAND_TIMEOUT, args);
        let problem = if output.status.success() {
            match check(&output) {
                Ok(value) => return value,
                Err(problem) => problem,
            }
        } else {
            "etcdctl failed".to_string()
        };
        assert!(
            Instant::now() < deadline,
            "etcdctl {args:?} via n{}: {problem}\n{}\n{}",
            entry + 1,
            text(&output),
            cluster.log_tails(20)
        );
        std::thread::sleep(POLL);
    }
}

#[test]
fn endpoint_status_cluster_reaches_every_member() {
    let _serial = serial();
    let cluster = Cluster::start(ClusterSpec::new(3));
    let leadership = cluster.wait_for_leader(&cluster.all());
    for entry in cluster.all() {
        let statuses = eventually(
            &cluster,
            entry,
            &["endpoint", "status", "--cluster", "-w", "json"],
            |output| {
                let statuses = parse_statuses(&output.stdout)?;
                if !output.stderr.is_empty() {
                    return Err("etcdctl reported errors".to_string());
                }
                status_problem(&cluster, &statuses).map_or(Ok(statuses), Err)
            },
        );
        let leader = statuses
            .iter()
            .find(|s| s.leader == s.member_id)
            .expect("a leader");
        // Election safety: one leader per term.
        if leader.raft_term == leadership.term {
            assert_eq!(leader.member_id, leadership.leader_id);
        }
    }
    // The table form, as a person would run it.
    let table = eventually(
        &cluster,
        0,
        &["endpoint", "status", "--cluster", "-w", "table"],
        |output| {
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            let rows_ok = cluster.members.iter().all(|member| {
                stdout.contains(&member.url()) && stdout.contains(&format!("{:x}", member.id))
            });
            if rows_ok && output.stderr.is_empty() {
                Ok(stdout)
            } else {
                Err("a member is missing from the table".to_string())
            }
        },
    );
    // IS LEADER is true in one row; IS LEARNER is false in all.
    assert_eq!(
        table.matches(" true |").count(),
        1,
        "exactly one leader row:\n{table}"
    );
}

#[test]
fn endpoint_health_cluster_reaches_every_member() {
    let _serial = serial();
    let cluster = Cluster::start(ClusterSpec::new(3));
    cluster.wait_for_leader(&cluster.all());
    eventually(
        &cluster,
        1,
        &["endpoint", "health", "--cluster", "-w", "json"],
        |output| {
            let entries: Vec<Value> =
                serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
            let healthy: BTreeSet<String> = entries
                .iter()
                .filter(|entry| entry.get("health").and_then(Value::as_bool) == Some(true))
                .filter_map(|entry| Some(entry.get("endpoint")?.as_str()?.to_string()))
                .collect();
            let expected: BTreeSet<String> = cluster.members.iter().map(|m| m.url()).collect();
            if healthy == expected && entries.len() == expected.len() {
                Ok(())
            } else {
                Err(format!("healthy {healthy:?}, expected {expected:?}"))
            }
        },
    );
    // The plain form prints one "is healthy" line per member.
    eventually(
        &cluster,
        2,
        &["endpoint", "health", "--cluster"],
        |output| {
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            let healthy = cluster
                .members
                .iter()
                .filter(|member| all.contains(&format!("{} is healthy", member.url())))
                .count();
            (healthy == cluster.size() && !all.contains("unhealthy"))
                .then_some(())
                .ok_or_else(|| format!("{healthy} healthy members"))
        },
    );
}

/// Why `members` (from `member list -w json`) does not list `cluster` exactly, if it does not.
fn member_list_problem(cluster: &Cluster, members: &[Value]) -> Option<String> {
    if members.len() != cluster.size() {
        return Some(format!("{} members listed", members.len()));
    }
    let urls = |listed: &Value, field: &str| -> Vec<String> {
        listed
            .get(field)
            .and_then(Value::as_array)
            .map(|urls| {
                urls.iter()
                    .filter_map(|u| Some(u.as_str()?.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    for member in &cluster.members {
        let Some(listed) = members
            .iter()
            .find(|listed| number(listed, "ID") == Some(member.id))
        else {
            return Some(format!("{} ({:x}) not listed", member.name, member.id));
        };
        // A member's name and client URLs appear once it has published them (as in etcd).
        if listed.get("name").and_then(Value::as_str) != Some(member.name.as_str())
            || urls(listed, "clientURLs") != [member.url()]
            || urls(listed, "peerURLs") != [member.advertised_peer_url.clone()]
        {
            return Some(format!("{} listed as {listed}", member.name));
        }
    }
    None
}

#[test]
fn member_list_shows_every_member() {
    let _serial = serial();
    let cluster = Cluster::start(ClusterSpec::new(3));
    cluster.wait_for_leader(&cluster.all());
    for entry in cluster.all() {
        eventually(
            &cluster,
            entry,
            &["member", "list", "-w", "json"],
            |output| {
                let list: Value =
                    serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
                let members = list
                    .get("members")
                    .and_then(Value::as_array)
                    .ok_or("no members")?;
                member_list_problem(&cluster, members).map_or(Ok(()), Err)
            },
        );
    }
}
