//! Leases, single node: etcdctl 3.4 and the Rust etcd-client crate against Capstan, with the
//! outputs whose shape does not depend on the (random) lease id compared with etcd 3.4's.
mod common;
use common::*;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Generous bound for "the lease expired": TTL + election timeout + a margin for a busy CI.
const EXPIRY_WAIT: Duration = Duration::from_secs(20);

fn granted_id(output: &str) -> String {
    // "lease 694d77aa9e1c1b04 granted with TTL(10s)"
    let id = output
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("unexpected grant output: {output:?}"));
    id.to_string()
}

/// Replaces the hexadecimal lease id in etcdctl output so two servers' outputs compare.
fn without_id(output: &str, id: &str) -> String {
    output.replace(id, "<ID>")
}

/// Runs the same lease script against `endpoint`; returns the transcript.
fn lease_script(endpoint: &str) -> Vec<String> {
    let mut transcript = Vec::new();
    let grant = etcdctl_ok(endpoint, &["lease", "grant", "600"]);
    let id = granted_id(&grant);
    transcript.push(without_id(&grant, &id));
    transcript.push(etcdctl_ok(endpoint, &["put", "--lease", &id, "a", "1"]));
    transcript.push(etcdctl_ok(endpoint, &["put", "--lease", &id, "b", "2"]));
    let ttl = etcdctl_ok(endpoint, &["lease", "timetolive", "--keys", &id]);
    // remaining(…) depends on timing: keep only the stable parts.
    let stable = without_id(&ttl, &id);
    let stable = stable
        .split("remaining(")
        .map(|part| part.split_once(')').map_or(part, |(_, rest)| rest))
        .collect::<Vec<_>>()
        .join("remaining(N)");
    // etcd lists a lease's keys in map order (unspecified): compare them as a set.
    let stable = match stable.split_once("attached keys([") {
        Some((head, rest)) => match rest.split_once("])") {
            Some((keys, tail)) => {
                let mut keys: Vec<&str> = keys.split(' ').collect();
                keys.sort_unstable();
                format!("{head}attached keys([{}]){tail}", keys.join(" "))
            }
            None => stable,
        },
        None => stable,
    };
    transcript.push(stable);
    transcript.push(without_id(
        &etcdctl_ok(endpoint, &["lease", "keep-alive", "--once", &id]),
        &id,
    ));
    transcript.push(without_id(&etcdctl_ok(endpoint, &["lease", "list"]), &id));
    transcript.push(
        etcdctl_ok(endpoint, &["get", "--prefix", "", "-w", "json"]).replace(
            &format!(
                "\"lease\":{}",
                i64::from_str_radix(&id, 16).expect("hex id")
            ),
            "\"lease\":<ID>",
        ),
    );
    transcript.push(without_id(
        &etcdctl_ok(endpoint, &["lease", "revoke", &id]),
        &id,
    ));
    transcript.push(etcdctl_ok(endpoint, &["get", "--prefix", ""]));
    let gone = etcdctl(endpoint, &["lease", "timetolive", &id], None);
    transcript.push(without_id(&String::from_utf8_lossy(&gone.stdout), &id));
    let revoke_again = etcdctl(endpoint, &["lease", "revoke", &id], None);
    transcript.push(
        String::from_utf8_lossy(&revoke_again.stderr)
            .lines()
            .filter(|line| line.starts_with("Error:"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let bad_put = etcdctl(endpoint, &["put", "--lease", &id, "c", "3"], None);
    transcript.push(
        String::from_utf8_lossy(&bad_put.stderr)
            .lines()
            .filter(|line| line.starts_with("Error:"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    transcript
}

#[test]
fn etcdctl_lease_commands_match_etcd_3_4() {
    require_tool("etcd", "etcd-server");
    let etcd_dir = tempfile::tempdir().expect("tempdir");
    let capstan_dir = tempfile::tempdir().expect("tempdir");
    let etcd = Server::start(Flavor::Etcd, etcd_dir.path(), &[]);
    let capstan = Server::capstan(capstan_dir.path());
    let expected = lease_script(&etcd.endpoint());
    let actual = lease_script(&capstan.endpoint());
    for (step, (want, got)) in expected.iter().zip(&actual).enumerate() {
        assert_eq!(
            got, want,
            "step {step} differs (left Capstan, right etcd 3.4)"
        );
    }
    assert_eq!(actual.len(), expected.len());
}

/// Reads a child's stdout until `needle` appears or the deadline passes.
fn read_until(child: &mut std::process::Child, needle: &str, deadline: Instant) -> String {
    let mut stdout = child.stdout.take().expect("piped stdout");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        // Keep draining after the caller stops listening: a closed pipe would kill etcdctl.
        while let Ok(read) = stdout.read(&mut buffer) {
            if read == 0 {
                break;
            }
            let _listener_gone = sender.send(buffer[..read].to_vec());
        }
    });
    let mut seen = String::new();
    while Instant::now() < deadline && !seen.contains(needle) {
        if let Ok(chunk) = receiver.recv_timeout(Duration::from_millis(100)) {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    seen
}

#[test]
fn a_lease_without_keep_alives_expires_and_watchers_see_the_delete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::capstan(dir.path());
    let endpoint = server.endpoint();
    let mut watcher = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([&format!("--endpoints={endpoint}"), "watch", "ephemeral"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn etcdctl watch");
    std::thread::sleep(Duration::from_millis(500));
    // The lease's clock starts when the grant is applied, after this instant: measuring from
    // here, the key must live at least its TTL however slowly etcdctl starts.
    let granted_at = Instant::now();
    let id = granted_id(&etcdctl_ok(&endpoint, &["lease", "grant", "2"]));
    etcdctl_ok(&endpoint, &["put", "--lease", &id, "ephemeral", "v"]);
    let seen = read_until(
        &mut watcher,
        "DELETE\nephemeral\n",
        granted_at + EXPIRY_WAIT,
    );
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert!(seen.contains("PUT\nephemeral\nv"), "watch output: {seen:?}");
    assert!(
        seen.contains("DELETE\nephemeral"),
        "no DELETE event: {seen:?}"
    );
    assert!(
        granted_at.elapsed() >= Duration::from_secs(2),
        "the key must live at least its TTL"
    );
    assert_eq!(etcdctl_ok(&endpoint, &["get", "ephemeral"]), "");
    let ttl = etcdctl_ok(&endpoint, &["lease", "timetolive", &id]);
    assert!(ttl.contains("already expired"), "{ttl}");
}

#[test]
fn keep_alive_keeps_a_lease_past_its_ttl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::capstan(dir.path());
    let endpoint = server.endpoint();
    let id = granted_id(&etcdctl_ok(&endpoint, &["lease", "grant", "2"]));
    etcdctl_ok(&endpoint, &["put", "--lease", &id, "kept", "v"]);
    let mut keeper = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            &format!("--endpoints={endpoint}"),
            "lease",
            "keep-alive",
            &id,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn etcdctl lease keep-alive");
    let seen = read_until(
        &mut keeper,
        "keepalived with TTL(2)",
        Instant::now() + EXPIRY_WAIT,
    );
    assert!(seen.contains("keepalived with TTL(2)"), "{seen:?}");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        etcdctl_ok(&endpoint, &["get", "kept", "--print-value-only"]),
        "v\n"
    );
    let _ = keeper.kill();
    let _ = keeper.wait();
}

#[test]
fn etcd_client_lease_semantics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::capstan(dir.path());
    let runtime = tokio_runtime();
    runtime.block_on(async {
        use etcd_client::{
            Compare, CompareOp, LeaseGrantOptions, LeaseTimeToLiveOptions, PutOptions, Txn, TxnOp,
        };
        let mut client = connect(&server.endpoint()).await;
        // Client-chosen id, and TTL below the minimum raised to it (2 s by default).
        let granted = client
            .lease_grant(1, Some(LeaseGrantOptions::new().with_id(4242)))
            .await
            .expect("grant");
        assert_eq!((granted.id(), granted.ttl()), (4242, 2));
        let duplicate = client
            .lease_grant(60, Some(LeaseGrantOptions::new().with_id(4242)))
            .await
            .expect_err("duplicate id");
        assert!(
            duplicate
                .to_string()
                .contains("etcdserver: lease already exists"),
            "{duplicate}"
        );
        let too_long = client
            .lease_grant(9_000_000_001, None)
            .await
            .expect_err("too large");
        assert!(
            too_long
                .to_string()
                .contains("etcdserver: too large lease TTL"),
            "{too_long}"
        );
        let other = client.lease_grant(600, None).await.expect("grant").id();
        assert!(other > 0 && other != 4242);

        // Attach, move between leases, detach.
        client
            .put("k", "v", Some(PutOptions::new().with_lease(4242)))
            .await
            .expect("put with lease");
        let ttl = client
            .lease_time_to_live(4242, Some(LeaseTimeToLiveOptions::new().with_keys()))
            .await
            .expect("ttl");
        assert_eq!(ttl.keys(), [b"k".to_vec()]);
        assert_eq!(ttl.granted_ttl(), 2);
        client
            .put("k", "v2", Some(PutOptions::new().with_lease(other)))
            .await
            .expect("move");
        let ttl = client
            .lease_time_to_live(4242, Some(LeaseTimeToLiveOptions::new().with_keys()))
            .await
            .expect("ttl");
        assert!(ttl.keys().is_empty(), "moved away: {:?}", ttl.keys());
        let get = client.get("k", None).await.expect("get");
        assert_eq!(get.kvs()[0].lease(), other);

        // Txn compare on LEASE.
        let txn = Txn::new()
            .when([Compare::lease("k", CompareOp::Equal, other)])
            .and_then([TxnOp::put("matched", "yes", None)]);
        assert!(client.txn(txn).await.expect("txn").succeeded());

        // Unknown lease: TTL -1; put with it: etcd's error.
        let missing = client.lease_time_to_live(777, None).await.expect("ttl");
        assert_eq!(missing.ttl(), -1);
        let bad = client
            .put("x", "y", Some(PutOptions::new().with_lease(777)))
            .await
            .expect_err("unknown lease");
        assert!(
            bad.to_string()
                .contains("etcdserver: requested lease not found"),
            "{bad}"
        );

        // Keep-alive over the stream; list; revoke deletes the attached key.
        let (mut keeper, mut answers) = client.lease_keep_alive(other).await.expect("keepalive");
        keeper.keep_alive().await.expect("send");
        let answer = answers.message().await.expect("recv").expect("answer");
        assert_eq!((answer.id(), answer.ttl()), (other, 600));
        let leases = client.leases().await.expect("list");
        let mut ids: Vec<i64> = leases.leases().iter().map(|lease| lease.id()).collect();
        ids.sort_unstable();
        let mut want = vec![4242, other];
        want.sort_unstable();
        assert_eq!(ids, want);
        let before = client
            .get("k", None)
            .await
            .expect("get")
            .header()
            .map(|h| h.revision());
        client.lease_revoke(other).await.expect("revoke");
        let after = client.get("k", None).await.expect("get");
        assert!(after.kvs().is_empty(), "revoke deletes attached keys");
        assert_eq!(after.header().map(|h| h.revision()), before.map(|r| r + 1));
        keeper.keep_alive().await.expect("send");
        let answer = answers.message().await.expect("recv").expect("answer");
        assert_eq!(answer.ttl(), 0, "a revoked lease keeps alive with TTL 0");
    });
}

#[test]
fn leases_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::capstan(dir.path());
    let endpoint = server.endpoint();
    let id = granted_id(&etcdctl_ok(&endpoint, &["lease", "grant", "600"]));
    etcdctl_ok(&endpoint, &["put", "--lease", &id, "durable", "v"]);
    server.restart();
    let ttl = etcdctl_ok(&server.endpoint(), &["lease", "timetolive", "--keys", &id]);
    assert!(ttl.contains("granted with TTL(600s)"), "{ttl}");
    assert!(ttl.contains("attached keys([durable])"), "{ttl}");
}
