//! Maintenance: the space quota and the NOSPACE alarm, Alarm, Hash and HashKV, and
//! auto-compaction, through real clients (Debian etcdctl 3.4 and the Rust etcd-client) against
//! real `capstan` processes, with Debian etcd 3.4 as the reference where outputs compare.
//!
//! Sizes: the quota is charged against the size of Capstan's state (48 bytes per retained
//! version plus key and value; Status `dbSize` is the page store file instead); a put costs etcd's 256 bytes plus key and value against the quota. With a quota of
//! 100,000 bytes, three 30,000-byte values fit and the fourth is refused. etcd measures its
//! bbolt file instead, so it refuses a different put: the transcript compares what follows.
//!
//! Every wait polls for a condition with a generous bound; nothing asserts a duration.
//!
//! `SHOW_TRANSCRIPT=1 cargo test --test maintenance nospace_transcript -- --nocapture` prints
//! etcd's side of the NOSPACE transcript.
mod cluster;
mod common;

use bytes::Bytes;
use cluster::{Cluster, ClusterSpec, EVENTUALLY, POLL};
use common::*;
use etcd_client::{
    AlarmAction, AlarmType, Client, CompactionOptions, Compare, CompareOp, GetOptions,
    LeaseGrantOptions, PutOptions, Txn, TxnOp,
};
use prost::Message;
use std::process::Output;
use std::time::{Duration, Instant};

const QUOTA_FLAG: &str = "--quota-backend-bytes=100000";
const NOSPACE: &str = "etcdserver: mvcc: database space exceeded";
const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
/// Puts of [`big_value`] tried before giving up on reaching the quota.
const FILL_PUTS_MAX: usize = 40;
/// Bound of the auto-compaction waits (revision mode checks every 5 s).
const COMPACTION_PATIENCE: Duration = Duration::from_secs(90);

fn big_value() -> String {
    "x".repeat(30_000)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// etcdctl's `Error:` line (its retry warnings before it carry timestamps).
fn error_line(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .find(|line| line.starts_with("Error:"))
        .unwrap_or("")
        .to_string()
}

fn describe(output: &Output) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(output),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn status_json(endpoint: &str) -> serde_json::Value {
    let text = etcdctl_ok(endpoint, &["endpoint", "status", "-w", "json"]);
    let parsed: serde_json::Value = serde_json::from_str(text.trim()).expect("status json");
    parsed[0]["Status"].clone()
}

fn member_id(endpoint: &str) -> u64 {
    status_json(endpoint)["header"]["member_id"]
        .as_u64()
        .expect("member id")
}

fn current_revision(endpoint: &str) -> i64 {
    status_json(endpoint)["header"]["revision"]
        .as_i64()
        .expect("revision")
}

/// Puts 30,000-byte values under `k1`, `k2`, ... until one is refused; returns the refusal.
fn fill_until_refused(endpoint: &str) -> Output {
    let value = big_value();
    for i in 1..=FILL_PUTS_MAX {
        let output = etcdctl(endpoint, &["put", &format!("k{i}"), &value], None);
        if !output.status.success() {
            assert!(
                i > 1,
                "the very first put was refused: {}",
                describe(&output)
            );
            return output;
        }
    }
    panic!("{FILL_PUTS_MAX} puts of 30,000 bytes never reached the quota");
}

fn alarm_line(member_id: u64) -> String {
    format!("memberID:{member_id} alarm:NOSPACE ")
}

// ---------------------------------------------------------------------------------------------
// Quota and NOSPACE
// ---------------------------------------------------------------------------------------------

/// The alarm's life on one member: raised by the put that reaches the quota, listed, reads and
/// deletes still served, growing writes refused (also once the store shrank), and writes
/// accepted again once compaction freed space and the alarm is disarmed.
#[test]
fn nospace_refuses_growing_writes_until_disarmed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(Flavor::Capstan, dir.path(), &[QUOTA_FLAG]);
    let endpoint = server.endpoint();
    let id = member_id(&endpoint);

    let refused = fill_until_refused(&endpoint);
    assert_eq!(error_line(&refused), format!("Error: {NOSPACE}"));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("code = ResourceExhausted"));
    assert_eq!(
        etcdctl_ok(&endpoint, &["alarm", "list"]),
        format!("{}\n", alarm_line(id))
    );
    let status = status_json(&endpoint);
    assert_eq!(status["errors"], serde_json::json!([alarm_line(id)]));

    // Small writes are refused too now: the alarm, not the size, decides.
    let small = etcdctl(&endpoint, &["put", "small", "v"], None);
    assert_eq!(error_line(&small), format!("Error: {NOSPACE}"));
    let grant = etcdctl(&endpoint, &["lease", "grant", "100"], None);
    assert_eq!(
        error_line(&grant),
        format!("Error: failed to grant lease ({NOSPACE})")
    );
    let txn_put = etcdctl(&endpoint, &["txn"], Some("\nput t v\n\n\n"));
    assert_eq!(error_line(&txn_put), format!("Error: {NOSPACE}"));

    // Reads, deletes (also in a txn) and compaction are served.
    let keys = etcdctl_ok(&endpoint, &["get", "k1", "--keys-only"]);
    assert_eq!(keys.lines().next(), Some("k1"));
    assert_eq!(
        stdout(&etcdctl(&endpoint, &["txn"], Some("\ndel k1\n\n\n"))),
        "SUCCESS\n\n1\n"
    );
    assert_eq!(etcdctl_ok(&endpoint, &["del", "k2"]), "1\n");
    let revision = current_revision(&endpoint);
    assert_eq!(
        etcdctl_ok(&endpoint, &["compaction", &revision.to_string()]),
        format!("compacted revision {revision}\n")
    );
    let still = etcdctl(&endpoint, &["put", "small", "v"], None);
    assert_eq!(error_line(&still), format!("Error: {NOSPACE}"));
    // Defrag is served under the alarm too (and shrinks the file); the alarm stays raised.
    assert_eq!(
        etcdctl_ok(&endpoint, &["defrag"]),
        format!("Finished defragmenting etcd member[{endpoint}]\n")
    );
    let after_defrag = etcdctl(&endpoint, &["put", "small", "v"], None);
    assert_eq!(error_line(&after_defrag), format!("Error: {NOSPACE}"));

    // The Rust client sees etcd's status code and message.
    let runtime = tokio_runtime();
    runtime.block_on(async {
        let mut client = connect(&endpoint).await;
        match client.put("small", "v", None).await {
            Err(etcd_client::Error::GRpcStatus(status)) => {
                assert_eq!(format!("{:?}", status.code()), "ResourceExhausted");
                assert_eq!(status.message(), NOSPACE);
            }
            other => panic!("put under NOSPACE: {other:?}"),
        }
        let alarms = client
            .alarm(AlarmAction::Get, AlarmType::None, None)
            .await
            .expect("alarm get");
        let listed: Vec<(u64, AlarmType)> = alarms
            .alarms()
            .iter()
            .map(|alarm| (alarm.member_id(), alarm.alarm()))
            .collect();
        assert_eq!(listed, vec![(id, AlarmType::Nospace)]);
    });

    assert_eq!(
        etcdctl_ok(&endpoint, &["alarm", "disarm"]),
        format!("{}\n", alarm_line(id))
    );
    assert_eq!(etcdctl_ok(&endpoint, &["alarm", "list"]), "");
    assert_eq!(status_json(&endpoint).get("errors"), None);
    assert_eq!(etcdctl_ok(&endpoint, &["put", "small", "v"]), "OK\n");
    assert!(etcdctl_ok(&endpoint, &["lease", "grant", "100"]).contains("granted with TTL"));
}

/// Maintenance.Alarm through the Rust client: ACTIVATE answers with the alarm, raised alarms
/// refuse what etcd's appliers refuse (CORRUPT every write, with etcd's DataLoss status),
/// DEACTIVATE answers with what it cleared and nothing for an alarm that is not raised.
#[test]
fn alarm_activate_and_deactivate_through_the_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(Flavor::Capstan, dir.path(), &[]);
    let endpoint = server.endpoint();
    let runtime = tokio_runtime();
    runtime.block_on(async {
        let mut client = connect(&endpoint).await;
        client.put("a", "1", None).await.expect("put");
        let alarm = |member: u64| {
            let mut options = etcd_client::AlarmOptions::new();
            options.with_member(member);
            Some(options)
        };
        let listed = |response: etcd_client::AlarmResponse| -> Vec<(u64, AlarmType)> {
            response
                .alarms()
                .iter()
                .map(|alarm| (alarm.member_id(), alarm.alarm()))
                .collect()
        };
        let raised = client
            .alarm(AlarmAction::Activate, AlarmType::Corrupt, alarm(42))
            .await
            .expect("activate");
        assert_eq!(listed(raised), vec![(42, AlarmType::Corrupt)]);
        match client.delete("a", None).await {
            Err(etcd_client::Error::GRpcStatus(status)) => {
                assert_eq!(format!("{:?}", status.code()), "DataLoss");
                assert_eq!(status.message(), "etcdserver: corrupt cluster");
            }
            other => panic!("delete under CORRUPT: {other:?}"),
        }
        let read = client.get("a", None).await.expect("reads are served");
        assert_eq!(read.kvs()[0].value(), b"1");
        let nothing = client
            .alarm(AlarmAction::Deactivate, AlarmType::Corrupt, alarm(7))
            .await
            .expect("deactivate");
        assert_eq!(listed(nothing), vec![]);
        let cleared = client
            .alarm(AlarmAction::Deactivate, AlarmType::Corrupt, alarm(42))
            .await
            .expect("deactivate");
        assert_eq!(listed(cleared), vec![(42, AlarmType::Corrupt)]);
        let all = client
            .alarm(AlarmAction::Get, AlarmType::None, None)
            .await
            .expect("get");
        assert_eq!(listed(all), vec![]);
        client.delete("a", None).await.expect("writes again");
    });
}

/// An alarm is applied state: it is still raised after a kill -9 and a restart (replayed from
/// the log), and so is its disarming.
#[test]
fn nospace_alarm_survives_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(Flavor::Capstan, dir.path(), &[QUOTA_FLAG]);
    let endpoint = server.endpoint();
    let id = member_id(&endpoint);
    fill_until_refused(&endpoint);
    assert_eq!(
        etcdctl_ok(&endpoint, &["alarm", "list"]),
        format!("{}\n", alarm_line(id))
    );

    server.restart();
    assert_eq!(
        etcdctl_ok(&endpoint, &["alarm", "list"]),
        format!("{}\n", alarm_line(id))
    );
    assert_eq!(
        status_json(&endpoint)["errors"],
        serde_json::json!([alarm_line(id)])
    );
    let refused = etcdctl(&endpoint, &["put", "small", "v"], None);
    assert_eq!(error_line(&refused), format!("Error: {NOSPACE}"));

    // Free space and disarm, then restart again: the alarm stays gone.
    assert_eq!(etcdctl_ok(&endpoint, &["del", "k", "--prefix"]).trim(), "3");
    let revision = current_revision(&endpoint);
    etcdctl_ok(&endpoint, &["compaction", &revision.to_string()]);
    etcdctl_ok(&endpoint, &["alarm", "disarm"]);
    server.restart();
    assert_eq!(etcdctl_ok(&endpoint, &["alarm", "list"]), "");
    assert_eq!(etcdctl_ok(&endpoint, &["put", "small", "v"]), "OK\n");
}

/// The newest raft snapshot index in `data_dir`, from the file names
/// (`{term:016x}-{index:016x}.snap`).
fn newest_snapshot_index(data_dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(data_dir.join("member").join("snap")) else {
        return 0;
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter_map(|name| {
            let stem = name.strip_suffix(".snap")?;
            let (_, index) = stem.split_once('-')?;
            u64::from_str_radix(index, 16).ok()
        })
        .max()
        .unwrap_or(0)
}

/// Alarms are part of a raft snapshot: a restart that restores the state from a snapshot
/// taken after the alarm (so the alarm's log entry is not replayed) still has it.
#[test]
fn nospace_alarm_survives_restart_from_a_raft_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(
        Flavor::Capstan,
        dir.path(),
        &[QUOTA_FLAG, "--snapshot-count=5"],
    );
    let endpoint = server.endpoint();
    let id = member_id(&endpoint);
    fill_until_refused(&endpoint);
    let alarm_applied_by = status_json(&endpoint)["raftAppliedIndex"]
        .as_u64()
        .expect("applied index");
    // Entries that change nothing, until a snapshot past the alarm is on disk.
    let deadline = Instant::now() + COMPACTION_PATIENCE;
    let mut i = 0;
    while newest_snapshot_index(&server.data_dir) <= alarm_applied_by {
        assert!(
            Instant::now() < deadline,
            "no snapshot after index {alarm_applied_by}"
        );
        etcdctl_ok(&endpoint, &["del", &format!("absent{i}")]);
        i += 1;
    }
    server.restart();
    assert!(server.log().contains("state restored from snapshot"));
    assert_eq!(
        etcdctl_ok(&endpoint, &["alarm", "list"]),
        format!("{}\n", alarm_line(id))
    );
    let refused = etcdctl(&endpoint, &["put", "small", "v"], None);
    assert_eq!(error_line(&refused), format!("Error: {NOSPACE}"));
}

/// In a cluster the alarm one member raises is everyone's: listed by every member, and
/// growing writes sent to any member are refused until it is disarmed (from any member).
#[test]
fn nospace_alarm_is_cluster_wide() {
    let _serial = cluster::serial();
    let cluster = Cluster::start(ClusterSpec::new(3).flags(&[QUOTA_FLAG]));
    cluster.wait_for_leader(&cluster.all());
    let raiser = cluster.endpoint(0);
    let raiser_id = member_id(&raiser);
    let refused = fill_until_refused(&raiser);
    assert_eq!(error_line(&refused), format!("Error: {NOSPACE}"));
    for i in [1, 2] {
        let endpoint = cluster.endpoint(i);
        assert_eq!(
            etcdctl_ok(&endpoint, &["alarm", "list"]),
            format!("{}\n", alarm_line(raiser_id))
        );
        let small = etcdctl(&endpoint, &["put", "small", "v"], None);
        assert_eq!(
            error_line(&small),
            format!("Error: {NOSPACE}"),
            "member n{}",
            i + 1
        );
        assert_eq!(
            status_json(&endpoint)["errors"],
            serde_json::json!([alarm_line(raiser_id)])
        );
    }
    let other = cluster.endpoint(2);
    etcdctl_ok(&other, &["del", "k", "--prefix"]);
    let revision = current_revision(&other);
    etcdctl_ok(&other, &["compaction", &revision.to_string()]);
    assert_eq!(
        etcdctl_ok(&cluster.endpoint(1), &["alarm", "disarm"]),
        format!("{}\n", alarm_line(raiser_id))
    );
    for i in cluster.all() {
        let endpoint = cluster.endpoint(i);
        assert_eq!(etcdctl_ok(&endpoint, &["alarm", "list"]), "");
        assert_eq!(etcdctl_ok(&endpoint, &["put", "small", "v"]), "OK\n");
    }
}

/// The same etcdctl session against etcd 3.4 and Capstan, each with a 100,000-byte quota,
/// from the refused put on (the put that reaches the quota differs: see the module doc).
/// Member ids are replaced by `<id>` and revisions by `<rev>`.
fn nospace_transcript(flavor: Flavor) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(flavor, dir.path(), &[QUOTA_FLAG]);
    let endpoint = server.endpoint();
    let id = member_id(&endpoint).to_string();
    let normalize = |text: String| -> String { text.replace(&id, "<id>") };
    let mut transcript = Vec::new();
    let mut record = |step: &str, text: String| transcript.push((step.to_string(), text));
    record("refused put", error_line(&fill_until_refused(&endpoint)));
    record(
        "alarm list",
        normalize(etcdctl_ok(&endpoint, &["alarm", "list"])),
    );
    record(
        "status errors",
        normalize(status_json(&endpoint)["errors"].to_string()),
    );
    let small = etcdctl(&endpoint, &["put", "small", "v"], None);
    record("small put", error_line(&small));
    let grant = etcdctl(&endpoint, &["lease", "grant", "100"], None);
    record("lease grant", error_line(&grant));
    let txn_put = etcdctl(&endpoint, &["txn"], Some("\nput t v\n\n\n"));
    record("txn with a put", error_line(&txn_put));
    let txn_delete = etcdctl(&endpoint, &["txn"], Some("\ndel k1\n\n\n"));
    record("txn with a delete", stdout(&txn_delete));
    record("delete", etcdctl_ok(&endpoint, &["del", "k2"]));
    let revision = current_revision(&endpoint).to_string();
    record(
        "compaction",
        etcdctl_ok(&endpoint, &["compaction", &revision]).replace(&revision, "<rev>"),
    );
    let after = etcdctl(&endpoint, &["put", "small", "v"], None);
    record("put after compaction", error_line(&after));
    record(
        "alarm disarm",
        normalize(etcdctl_ok(&endpoint, &["alarm", "disarm"])),
    );
    record(
        "alarm list after disarm",
        etcdctl_ok(&endpoint, &["alarm", "list"]),
    );
    transcript
}

#[test]
fn nospace_transcript_matches_etcd() {
    require_tool("etcd", "etcd-server");
    let etcd = nospace_transcript(Flavor::Etcd);
    let capstan = nospace_transcript(Flavor::Capstan);
    if std::env::var_os("SHOW_TRANSCRIPT").is_some() {
        eprintln!("etcd 3.4 transcript:\n{etcd:#?}");
    }
    for (expected, actual) in etcd.iter().zip(&capstan) {
        assert_eq!(actual, expected, "etcd:\n{etcd:#?}\ncapstan:\n{capstan:#?}");
    }
    assert_eq!(capstan.len(), etcd.len());
    // The session really went through the alarm.
    assert_eq!(etcd[0].1, format!("Error: {NOSPACE}"));
    assert_eq!(etcd[1].1, "memberID:<id> alarm:NOSPACE \n");
}

/// A quota of 100 GiB is taken as given (64-bit sizes) and reported by Status.
#[test]
fn large_quota_is_accepted_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hundred_gib: i64 = 100 * 1024 * 1024 * 1024;
    let flag = format!("--quota-backend-bytes={hundred_gib}");
    let server = Server::start(Flavor::Capstan, dir.path(), &[&flag]);
    let endpoint = server.endpoint();
    assert_eq!(etcdctl_ok(&endpoint, &["put", "k", &big_value()]), "OK\n");
    let runtime = tokio_runtime();
    let reply = runtime.block_on(raw_unary(
        &endpoint,
        capstan_proto::method::MAINTENANCE_STATUS,
        capstan_proto::etcdserverpb::StatusRequest {}.encode_to_vec(),
    ));
    let quota = capstan_proto::etcdserverpb::StatusResponse::decode(reply.as_slice())
        .expect("status response")
        .db_size_quota;
    assert_eq!(quota, hundred_gib);
}

// ---------------------------------------------------------------------------------------------
// Hash and HashKV
// ---------------------------------------------------------------------------------------------

/// One unary gRPC call over a bare h2 connection; the response message's bytes. (etcd-client
/// 0.17 does not expose `HashKVResponse.hash_revision` or `StatusResponse.dbSizeQuota`.)
async fn raw_unary(endpoint: &str, path: &str, message: Vec<u8>) -> Vec<u8> {
    let tcp = tokio::net::TcpStream::connect(endpoint)
        .await
        .expect("tcp connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{endpoint}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request");
    let mut ready = client.ready().await.expect("h2 ready");
    let (response, mut send) = ready.send_request(request, false).expect("send request");
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    send.send_data(Bytes::from(frame), true).expect("send body");
    let response = response.await.expect("response");
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("body chunk");
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.expect("trailers").unwrap_or_default();
    let status = trailers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    assert_eq!(status, "0", "{path}: {trailers:?}");
    assert!(bytes.len() >= 5, "{path}: short body {bytes:?}");
    bytes.split_off(5)
}

async fn hash_kv_raw(endpoint: &str, revision: i64) -> capstan_proto::etcdserverpb::HashKvResponse {
    let request = capstan_proto::etcdserverpb::HashKvRequest { revision };
    let reply = raw_unary(
        endpoint,
        capstan_proto::method::MAINTENANCE_HASH_KV,
        request.encode_to_vec(),
    )
    .await;
    capstan_proto::etcdserverpb::HashKvResponse::decode(reply.as_slice()).expect("hashkv response")
}

/// A history with overwrites, deletes, a multi-op txn, leased keys, a compaction that lands
/// on a delete, and a revoke; returns the revision of every acknowledged write, in order.
async fn write_history(client: &mut Client) -> Vec<i64> {
    let mut revisions = Vec::new();
    for (key, value) in [("a", "1"), ("b", "1"), ("a", "2"), ("c", "1")] {
        let response = client.put(key, value, None).await.expect("put");
        revisions.push(response.header().expect("header").revision());
    }
    let response = client.delete("b", None).await.expect("delete");
    revisions.push(response.header().expect("header").revision());
    let txn = Txn::new()
        .when([Compare::version("a", CompareOp::Equal, 2)])
        .and_then([
            TxnOp::put("a", "3", None),
            TxnOp::put("d", "1", None),
            TxnOp::delete("c", None),
        ]);
    let response = client.txn(txn).await.expect("txn");
    assert!(response.succeeded());
    revisions.push(response.header().expect("header").revision());
    let compact_at = *revisions.last().expect("revisions");
    let lease = 0x1234;
    client
        .lease_grant(600, Some(LeaseGrantOptions::new().with_id(lease)))
        .await
        .expect("lease grant");
    for key in ["e", "f"] {
        let options = PutOptions::new().with_lease(lease);
        let response = client.put(key, "1", Some(options)).await.expect("put");
        revisions.push(response.header().expect("header").revision());
    }
    let response = client.put("g", "1", None).await.expect("put");
    revisions.push(response.header().expect("header").revision());
    client
        .compact(compact_at, Some(CompactionOptions::new().with_physical()))
        .await
        .expect("compact");
    let response = client.put("a", "4", None).await.expect("put");
    revisions.push(response.header().expect("header").revision());
    let response = client.delete("g", None).await.expect("delete");
    revisions.push(response.header().expect("header").revision());
    let response = client.lease_revoke(lease).await.expect("revoke");
    revisions.push(response.header().expect("header").revision());
    let response = client.put("b", "2", None).await.expect("put");
    revisions.push(response.header().expect("header").revision());
    revisions
}

/// HashKV of Capstan equals etcd 3.4's for the same history: the same checksum over the same
/// records (see `src/mvcc/hash.rs`), at the current revision and at every revision after the
/// compaction.
#[test]
fn hashkv_equals_etcd_for_the_same_history() {
    require_tool("etcd", "etcd-server");
    let runtime = tokio_runtime();
    let run = |flavor: Flavor| -> (Vec<i64>, Vec<(i64, u32, i64)>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start(flavor, dir.path(), &[]);
        runtime.block_on(async {
            let mut client = connect(&server.endpoint()).await;
            let revisions = write_history(&mut client).await;
            let mut hashes = Vec::new();
            for revision in [0, 8, 9, 10, 11, 12, 13, 14] {
                let hashed = client.hash_kv(revision).await.expect("hashkv");
                let at = hashed.header().expect("header").revision();
                hashes.push((revision, hashed.hash(), hashed.compact_version()));
                assert_eq!(at, 14, "{flavor:?} header revision");
            }
            (revisions, hashes)
        })
    };
    let (etcd_revisions, etcd_hashes) = run(Flavor::Etcd);
    let (revisions, hashes) = run(Flavor::Capstan);
    assert_eq!(revisions, etcd_revisions);
    assert_eq!(revisions, vec![2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
    assert_eq!(hashes, etcd_hashes);
    assert!(hashes.iter().all(|(_, _, compacted)| *compacted == 7));
}

/// `etcdctl endpoint hashkv --cluster` shows one hash on every member of a 3-member cluster,
/// and the same one after a member restarts and after the whole cluster restarts. HashKV at an
/// older revision, Hash and `hash_revision` agree as well.
#[test]
fn hashkv_agrees_across_a_cluster_and_restarts() {
    let _serial = cluster::serial();
    let mut cluster = Cluster::start(ClusterSpec::new(3));
    cluster.wait_for_leader(&cluster.all());
    let runtime = tokio_runtime();
    let revisions = runtime.block_on(async {
        let mut client = cluster.client(0).await;
        write_history(&mut client).await
    });
    let last = *revisions.last().expect("revisions");
    runtime.block_on(cluster.wait_converged(&cluster.all(), last));

    // `--cluster` asks for the member list first: a member that has not yet published its
    // client URLs after a (re)start is not in it, so this polls until all three answer.
    let hashes = |cluster: &Cluster| -> Vec<(String, u64, i64, i64)> {
        let deadline = Instant::now() + EVENTUALLY;
        loop {
            let output = cluster.etcdctl(
                &[0],
                Duration::from_secs(10),
                &["endpoint", "hashkv", "--cluster", "-w", "json"],
            );
            let parsed: serde_json::Value =
                serde_json::from_str(stdout(&output).trim()).unwrap_or_default();
            let mut rows: Vec<(String, u64, i64, i64)> = parsed
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(|entry| {
                    let hash = &entry["HashKV"];
                    Some((
                        entry["Endpoint"].as_str()?.to_string(),
                        hash["hash"].as_u64()?,
                        hash["compact_revision"].as_i64()?,
                        hash["header"]["revision"].as_i64()?,
                    ))
                })
                .collect();
            if output.status.success() && rows.len() == 3 {
                rows.sort();
                return rows;
            }
            assert!(
                Instant::now() < deadline,
                "endpoint hashkv --cluster never answered for 3 members: {}",
                describe(&output)
            );
            std::thread::sleep(POLL);
        }
    };
    let agreed = |rows: &[(String, u64, i64, i64)]| -> (u64, i64, i64) {
        assert_eq!(rows.len(), 3, "{rows:?}");
        let first = (rows[0].1, rows[0].2, rows[0].3);
        for row in rows {
            assert_eq!((row.1, row.2, row.3), first, "members disagree: {rows:?}");
        }
        first
    };
    let before = agreed(&hashes(&cluster));
    assert_eq!((before.1, before.2), (7, last));
    let older_and_whole = |cluster: &Cluster| -> Vec<(u32, i64, i64, u32)> {
        runtime.block_on(async {
            let mut rows = Vec::new();
            for i in cluster.all() {
                let older = hash_kv_raw(&cluster.endpoint(i), 10).await;
                let mut client = cluster.client(i).await;
                let whole = client.hash().await.expect("hash").hash();
                rows.push((
                    older.hash,
                    older.compact_revision,
                    older.hash_revision,
                    whole,
                ));
            }
            rows
        })
    };
    let older = older_and_whole(&cluster);
    assert!(older.iter().all(|row| *row == older[0]), "{older:?}");
    assert_eq!((older[0].1, older[0].2), (7, 10));

    cluster.restart(1);
    runtime.block_on(cluster.wait_converged(&cluster.all(), last));
    assert_eq!(agreed(&hashes(&cluster)), before);
    let everyone = cluster.all();
    cluster.restart_together(&everyone);
    cluster.wait_for_leader(&cluster.all());
    runtime.block_on(cluster.wait_converged(&cluster.all(), last));
    assert_eq!(agreed(&hashes(&cluster)), before);
    assert_eq!(older_and_whole(&cluster), older);
}

// ---------------------------------------------------------------------------------------------
// Auto-compaction
// ---------------------------------------------------------------------------------------------

/// Polls until a linearizable get at `revision` fails as compacted.
async fn wait_compacted(client: &mut Client, revision: i64) {
    let deadline = Instant::now() + COMPACTION_PATIENCE;
    loop {
        let options = GetOptions::new().with_revision(revision);
        match client.get("k", Some(options)).await {
            Err(etcd_client::Error::GRpcStatus(status)) if status.message() == COMPACTED => return,
            other => assert!(
                Instant::now() < deadline,
                "revision {revision} not compacted within {COMPACTION_PATIENCE:?}: {other:?}"
            ),
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn put_many(client: &mut Client, count: usize) -> i64 {
    let mut revision = 0;
    for i in 0..count {
        let response = client.put("k", format!("v{i}"), None).await.expect("put");
        revision = response.header().expect("header").revision();
    }
    revision
}

/// Revision mode keeps the newest N revisions: with N = 10 and the store at revision 31, the
/// leader compacts at 21 (reads at 20 fail with etcd's error, at 21 they work).
#[test]
fn auto_compaction_revision_mode_keeps_the_newest_revisions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(
        Flavor::Capstan,
        dir.path(),
        &[
            "--auto-compaction-mode=revision",
            "--auto-compaction-retention=10",
        ],
    );
    let endpoint = server.endpoint();
    let runtime = tokio_runtime();
    runtime.block_on(async {
        let mut client = connect(&endpoint).await;
        let last = put_many(&mut client, 30).await;
        assert_eq!(last, 31);
        wait_compacted(&mut client, 20).await;
        let kept = client
            .get("k", Some(GetOptions::new().with_revision(21)))
            .await
            .expect("revision 21 is kept");
        assert_eq!(kept.kvs()[0].value(), b"v19");
        assert_eq!(
            client.hash_kv(0).await.expect("hashkv").compact_version(),
            21
        );
    });
    let old = etcdctl(&endpoint, &["get", "k", "--rev=5"], None);
    assert_eq!(error_line(&old), format!("Error: {COMPACTED}"));
}

/// Periodic mode with a one-second retention: once writes stop, the newest revision sampled
/// over a second ago is compacted, so everything before the last write becomes unreadable.
#[test]
fn auto_compaction_periodic_mode_compacts_old_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(
        Flavor::Capstan,
        dir.path(),
        &["--auto-compaction-retention=1s"],
    );
    let runtime = tokio_runtime();
    runtime.block_on(async {
        let mut client = connect(&server.endpoint()).await;
        let last = put_many(&mut client, 10).await;
        wait_compacted(&mut client, last - 1).await;
        let kept = client
            .get("k", Some(GetOptions::new().with_revision(last)))
            .await
            .expect("the newest revision is kept");
        assert_eq!(kept.kvs()[0].value(), b"v9");
    });
}

/// In a cluster only the leader proposes auto-compactions; every member ends up compacted.
#[test]
fn auto_compaction_is_proposed_by_the_leader_only() {
    let _serial = cluster::serial();
    let cluster = Cluster::start(ClusterSpec::new(3).flags(&[
        "--auto-compaction-mode=revision",
        "--auto-compaction-retention=5",
    ]));
    let leadership = cluster.wait_for_leader(&cluster.all());
    let runtime = tokio_runtime();
    runtime.block_on(async {
        let mut client = cluster.client(leadership.leader).await;
        let last = put_many(&mut client, 20).await;
        for i in cluster.all() {
            let mut member = cluster.client(i).await;
            wait_compacted(&mut member, last - 6).await;
        }
    });
    let after = cluster.wait_for_leader(&cluster.all());
    if after != leadership {
        eprintln!("leadership changed during the test; not checking who proposed");
        return;
    }
    for i in cluster.all() {
        let proposed = cluster.log(i).contains("starting auto-compaction");
        assert_eq!(
            proposed,
            i == leadership.leader,
            "member n{} (leader n{}) proposed: {proposed}",
            i + 1,
            leadership.leader + 1
        );
    }
}

#[test]
fn auto_compaction_flags_are_validated_like_etcd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = std::process::Command::new(capstan_binary())
        .arg(format!("--data-dir={}", dir.path().join("data").display()))
        .arg("--auto-compaction-mode=hourly")
        .arg("--auto-compaction-retention=1")
        .output()
        .expect("run capstan");
    assert!(!output.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("unknown auto-compaction-mode \"hourly\""),
        "{text}"
    );
}
