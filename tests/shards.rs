//! Connections are served by every shard (visible in a log line per shard); one shard works;
//! a second server on the same port refuses to start.
mod common;
use common::*;

use bytes::Bytes;
use capstan_proto::etcdserverpb::{PutRequest, RangeRequest, RangeResponse};
use prost::Message;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Generous upper bound for one call or for a log line to appear.
const TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn connections_are_served_by_every_shard() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_logging_connections(dir.path(), &["--shards", "2"]);
    assert!(
        server.log().contains("\"shards\":2"),
        "start-up line reports 2 shards:\n{}",
        server.log()
    );
    etcdctl_ok(&server.endpoint(), &["put", "sharded", "value"]);
    // 32 separate etcdctl processes, one connection each (more only if the kernel's hash put
    // all of them on one shard, which has probability 2^-31).
    let mut calls = 0;
    while calls < 32 || (shards_seen(&server).len() < 2 && calls < 128) {
        assert_eq!(
            etcdctl_ok(&server.endpoint(), &["get", "sharded"]),
            "sharded\nvalue\n",
            "etcdctl get #{calls}"
        );
        calls += 1;
    }
    let accepted = accepted_connections(&server);
    let seen = shards_seen(&server);
    println!("{calls} etcdctl calls; connections per shard: {:?}", {
        let mut counts = BTreeMap::new();
        for (shard, _) in &accepted {
            *counts.entry(*shard).or_insert(0) += 1;
        }
        counts
    });
    assert!(accepted.len() > calls, "one accepted line per connection");
    assert_eq!(
        seen,
        BTreeSet::from([0, 1]),
        "accepted-connection lines name both shards:\n{}",
        server.log()
    );
}

// ---------------------------------------------------------------------------------------------
// Raw h2 connections whose shard is known from the log (by their local port)
// ---------------------------------------------------------------------------------------------

struct Connection {
    client: h2::client::SendRequest<Bytes>,
    local: SocketAddr,
}

async fn h2_connect(endpoint: &str) -> Connection {
    let tcp = tokio::net::TcpStream::connect(endpoint)
        .await
        .expect("tcp connect");
    let local = tcp.local_addr().expect("local addr");
    let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Connection { client, local }
}

fn framed<M: Message>(message: &M) -> Bytes {
    let body = message.encode_to_vec();
    let mut out = vec![0u8];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Bytes::from(out)
}

/// One unary call; returns the response message bytes (asserting grpc-status 0).
async fn unary(connection: &Connection, endpoint: &str, path: &str, body: Bytes) -> Vec<u8> {
    let work = async {
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("http://{endpoint}{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .expect("request");
        let mut client = connection.client.clone().ready().await.expect("ready");
        let (response, mut send) = client.send_request(request, false).expect("send request");
        send.send_data(body, true).expect("send data");
        let response = response.await.expect("response");
        assert_eq!(response.status(), 200);
        let headers = response.headers().clone();
        let mut stream = response.into_body();
        let mut data = Vec::new();
        while let Some(chunk) = stream.data().await {
            let chunk = chunk.expect("data");
            let _ = stream.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
        }
        let trailers = stream.trailers().await.expect("trailers");
        let status = trailers
            .as_ref()
            .and_then(|trailers| trailers.get("grpc-status"))
            .or_else(|| headers.get("grpc-status"))
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        assert_eq!(
            status.as_deref(),
            Some("0"),
            "{path}: {headers:?} {trailers:?}"
        );
        assert!(data.len() >= 5, "{path}: no response message");
        data[5..].to_vec()
    };
    tokio::time::timeout(TIMEOUT, work)
        .await
        .unwrap_or_else(|_| panic!("{path}: no reply within {TIMEOUT:?}"))
}

async fn put(connection: &Connection, endpoint: &str, key: &str, value: &str) {
    let request = PutRequest {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Bytes::copy_from_slice(value.as_bytes()),
        ..Default::default()
    };
    unary(
        connection,
        endpoint,
        "/etcdserverpb.KV/Put",
        framed(&request),
    )
    .await;
}

async fn get(connection: &Connection, endpoint: &str, key: &str) -> Option<Vec<u8>> {
    let request = RangeRequest {
        key: Bytes::copy_from_slice(key.as_bytes()),
        ..Default::default()
    };
    let bytes = unary(
        connection,
        endpoint,
        "/etcdserverpb.KV/Range",
        framed(&request),
    )
    .await;
    let response = RangeResponse::decode(bytes.as_slice()).expect("RangeResponse");
    response.kvs.first().map(|kv| kv.value.to_vec())
}

/// The shard that logged accepting `local` (the client's address is the server's peer).
fn shard_of(server: &Server, local: SocketAddr) -> usize {
    let peer = local.to_string();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some((shard, _)) = accepted_connections(server)
            .into_iter()
            .find(|(_, logged)| *logged == peer)
        {
            return shard;
        }
        assert!(
            Instant::now() < deadline,
            "no accepted-connection line for {peer}:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_write_on_one_shard_is_read_on_the_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_logging_connections(dir.path(), &["--shards=2"]);
    let endpoint = server.endpoint();
    let runtime = tokio_runtime();
    runtime.block_on(async {
        let mut by_shard: BTreeMap<usize, Vec<Connection>> = BTreeMap::new();
        let mut opened = 0;
        while opened < 16 || (by_shard.len() < 2 && opened < 128) {
            let connection = h2_connect(&endpoint).await;
            // A first call makes sure the connection was accepted.
            get(&connection, &endpoint, "warm-up").await;
            let shard = shard_of(&server, connection.local);
            by_shard.entry(shard).or_default().push(connection);
            opened += 1;
        }
        assert_eq!(
            by_shard.keys().copied().collect::<Vec<_>>(),
            vec![0, 1],
            "connections landed on both shards"
        );
        let zero = &by_shard[&0];
        let one = &by_shard[&1];
        // Read-your-writes across shards, both ways, many times.
        for round in 0..50 {
            let (writer, reader) = if round % 2 == 0 {
                (&zero[round % zero.len()], &one[round % one.len()])
            } else {
                (&one[round % one.len()], &zero[round % zero.len()])
            };
            let key = format!("cross/{}", round % 5);
            let value = format!("round-{round}");
            put(writer, &endpoint, &key, &value).await;
            assert_eq!(
                get(reader, &endpoint, &key).await.as_deref(),
                Some(value.as_bytes()),
                "round {round}: a write acknowledged on one shard is visible on the other"
            );
        }
    });
    // And etcd-client sees the same.
    runtime.block_on(async {
        let mut client = connect(&endpoint).await;
        let response = client.get("cross/4", None).await.expect("get");
        assert_eq!(response.kvs()[0].value(), b"round-49");
    });
}

#[test]
fn one_shard_serves_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = start_logging_connections(dir.path(), &["--shards", "1"]);
    let endpoint = server.endpoint();
    assert!(
        server.log().contains("\"shards\":1"),
        "log:\n{}",
        server.log()
    );
    assert_eq!(etcdctl_ok(&endpoint, &["put", "one", "1"]).trim(), "OK");
    for _ in 0..8 {
        assert_eq!(etcdctl_ok(&endpoint, &["get", "one"]), "one\n1\n");
    }
    let txn = "value(\"one\") = \"1\"\n\nput two 2\nput three 3\n\nput failed yes\n\n";
    let output = etcdctl(&endpoint, &["txn"], Some(txn));
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("SUCCESS"));
    let runtime = tokio_runtime();
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for writer in 0..8 {
            let endpoint = endpoint.clone();
            tasks.push(tokio::spawn(async move {
                let mut client = connect(&endpoint).await;
                for i in 0..20 {
                    let key = format!("many/{writer}/{i}");
                    client.put(key.clone(), "v", None).await.expect("put");
                    let response = client.get(key, None).await.expect("get");
                    assert_eq!(response.kvs()[0].value(), b"v");
                }
            }));
        }
        for task in tasks {
            task.await.expect("client");
        }
        let mut client = connect(&endpoint).await;
        let response = client
            .get("many/", Some(etcd_client::GetOptions::new().with_prefix()))
            .await
            .expect("get");
        assert_eq!(response.kvs().len(), 160);
    });
    assert_eq!(
        shards_seen(&server),
        BTreeSet::from([0]),
        "with one shard every connection is on shard 0"
    );
    server.restart();
    assert_eq!(
        etcdctl_ok(&server.endpoint(), &["get", "three"]),
        "three\n3\n"
    );
    let status = server.stop().expect("running");
    assert!(status.success(), "SIGTERM exit status {status}");
}

/// Runs `capstan` on `port` with its own data dir; returns (exit status, stderr) if it exits.
fn run_capstan_expecting_exit(
    data_dir: &std::path::Path,
    url: &str,
) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(capstan_binary())
        .arg(format!("--data-dir={}", data_dir.display()))
        .arg(format!("--listen-client-urls={url}"))
        .arg(format!("--advertise-client-urls={url}"))
        .env_remove("CAPSTAN_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn capstan");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            let output = child.wait_with_output().expect("output");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            return (output.status, text);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "a second server on {url} kept running; its output:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_second_server_on_the_same_port_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_logging_connections(dir.path(), &["--shards=2"]);
    etcdctl_ok(&server.endpoint(), &["put", "first", "server"]);
    let second = tempfile::tempdir().expect("tempdir");
    let (status, output) = run_capstan_expecting_exit(&second.path().join("data"), &server.url());
    println!("second server: {status}\n{output}");
    assert!(!status.success(), "second server exit status {status}");
    assert!(
        output.contains(&server.endpoint()),
        "the error names the address {}:\n{output}",
        server.endpoint()
    );
    assert!(
        !output.contains(READY_LINE),
        "second server became ready:\n{output}"
    );
    // The first server is untouched and keeps every connection.
    for _ in 0..16 {
        assert_eq!(
            etcdctl_ok(&server.endpoint(), &["get", "first"]),
            "first\nserver\n"
        );
    }

    // A port held by some other program is refused the same way.
    let other = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = other.local_addr().expect("addr").port();
    let third = tempfile::tempdir().expect("tempdir");
    let url = format!("http://127.0.0.1:{port}");
    let (status, output) = run_capstan_expecting_exit(&third.path().join("data"), &url);
    assert!(!status.success(), "exit status {status}");
    assert!(
        output.contains(&format!("127.0.0.1:{port}")),
        "the error names the address:\n{output}"
    );
    drop(other);
}
