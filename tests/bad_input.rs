//! Oversized messages, garbage frames, unknown methods and malformed protobuf each get a gRPC
//! error or a closed connection, never a crash; other clients are unaffected.
mod common;
use common::*;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io::{Read, Write};
use std::net::TcpStream as StdTcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Generous upper bound for the server to close a connection it does not like (it gives a
/// silent client 10 s to finish the HTTP/2 handshake).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Generous upper bound for one call.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const KV_RANGE: &str = "/etcdserverpb.KV/Range";
const KV_PUT: &str = "/etcdserverpb.KV/Put";

// ---------------------------------------------------------------------------------------------
// Liveness checks
// ---------------------------------------------------------------------------------------------

/// The server process exists and is not a zombie.
fn assert_alive(server: &Server, after: &str) {
    let pid = server.pid().expect("server has a process");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|error| panic!("after {after}: server process {pid} is gone: {error}"));
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next())
        .expect("process state");
    assert!(
        state != 'Z' && state != 'X',
        "after {after}: the server died; log:\n{}",
        server.log()
    );
}

/// A normal client on its own connection can still write and read.
fn assert_serving(server: &Server, runtime: &tokio::runtime::Runtime, after: &str) {
    assert_alive(server, after);
    let key = format!("alive/{}", after.replace(' ', "-"));
    runtime.block_on(async {
        let work = async {
            let mut client = connect(&server.endpoint()).await;
            client
                .put(key.clone(), "yes", None)
                .await
                .unwrap_or_else(|error| panic!("after {after}: put failed: {error}"));
            let response = client
                .get(key.clone(), None)
                .await
                .unwrap_or_else(|error| panic!("after {after}: get failed: {error}"));
            assert_eq!(response.kvs().len(), 1, "after {after}");
            assert_eq!(response.kvs()[0].value(), b"yes", "after {after}");
        };
        tokio::time::timeout(CALL_TIMEOUT, work)
            .await
            .unwrap_or_else(|_| panic!("after {after}: a normal client timed out"));
    });
    let output = etcdctl_ok(&server.endpoint(), &["get", &key]);
    assert_eq!(
        output,
        format!("{key}\nyes\n"),
        "after {after}: etcdctl get"
    );
}

// ---------------------------------------------------------------------------------------------
// Raw TCP
// ---------------------------------------------------------------------------------------------

/// Writes `bytes` (ignoring errors: the server may close early), optionally half-closes, then
/// waits until the server closes the connection. Returns what the server sent.
fn send_raw_and_expect_close(
    server: &Server,
    bytes: &[u8],
    half_close: bool,
    what: &str,
) -> Vec<u8> {
    let mut stream = StdTcpStream::connect(server.endpoint()).expect("connect");
    let _ = stream.write_all(bytes);
    if half_close {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
    let deadline = Instant::now() + CLOSE_TIMEOUT;
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "{what}: the server kept the connection open for {CLOSE_TIMEOUT:?}"
        );
        stream.set_read_timeout(Some(left)).expect("read timeout");
        match stream.read(&mut buffer) {
            Ok(0) => return received,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(error)
                if error.kind() == std::io::ErrorKind::WouldBlock
                    || error.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!("{what}: the server kept the connection open for {CLOSE_TIMEOUT:?}")
            }
            // Reset by the server: closed too.
            Err(_) => return received,
        }
    }
}

/// An HTTP/2 frame.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn preface_and_settings() -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    out
}

/// The garbage sent by raw connections: (name, bytes, half-close after sending).
fn garbage_inputs(rng: &mut StdRng) -> Vec<(&'static str, Vec<u8>, bool)> {
    let random: Vec<u8> = (0..4096).map(|_| rng.gen()).collect();
    let mut inputs = vec![
        ("random bytes", random.clone(), false),
        // The client port serves HTTP/1.1 too (tests/http_client_port.rs): these are
        // answered, then closed because they ask for it (or fail to parse).
        (
            "an HTTP/1.1 request",
            b"GET /v3/kv/range HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                .to_vec(),
            false,
        ),
        (
            "an HTTP/1.1 POST with a body",
            b"POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nContent-Length: 19\r\nConnection: close\r\n\r\n{\"key\":\"a\",\"v\":1}xx"
                .to_vec(),
            false,
        ),
        (
            "an HTTP/1.1 request line of garbage",
            b"\x80\x81 garbage \xff\r\n\r\n".to_vec(),
            false,
        ),
        ("a truncated preface, then EOF", PREFACE[..10].to_vec(), true),
        ("a wrong preface", b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n".to_vec(), false),
        ("an empty connection, then EOF", Vec::new(), true),
    ];
    let mut after_preface = |name: &'static str, tail: Vec<u8>| {
        let mut bytes = preface_and_settings();
        bytes.extend(tail);
        inputs.push((name, bytes, false));
    };
    after_preface("random bytes after the preface", random[..512].to_vec());
    // DATA on a stream that was never opened: PROTOCOL_ERROR.
    after_preface("DATA on an idle stream", frame(0x0, 0x1, 1, b"hello"));
    // A frame far larger than the server's SETTINGS_MAX_FRAME_SIZE: FRAME_SIZE_ERROR.
    let mut huge = vec![0xff, 0xff, 0xff, 0x0, 0x0, 0, 0, 0, 1];
    huge.extend(std::iter::repeat_n(0u8, 1024));
    after_preface("a 16 MiB frame header", huge);
    // A HEADERS block that is not HPACK: COMPRESSION_ERROR.
    after_preface(
        "HEADERS with a garbage header block",
        frame(
            0x1,
            0x4 | 0x1,
            1,
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x80],
        ),
    );
    // SETTINGS with a length that is not a multiple of 6: FRAME_SIZE_ERROR.
    after_preface(
        "a SETTINGS frame of 5 bytes",
        frame(0x4, 0, 0, &[0, 1, 2, 3, 4]),
    );
    // SETTINGS on a stream: PROTOCOL_ERROR.
    after_preface("SETTINGS on stream 3", frame(0x4, 0, 3, &[]));
    // WINDOW_UPDATE of 0 on the connection: PROTOCOL_ERROR.
    after_preface("a zero WINDOW_UPDATE", frame(0x8, 0, 0, &[0, 0, 0, 0]));
    // WINDOW_UPDATE overflowing the connection window: FLOW_CONTROL_ERROR.
    after_preface(
        "an overflowing WINDOW_UPDATE",
        [
            frame(0x8, 0, 0, &[0x7f, 0xff, 0xff, 0xff]),
            frame(0x8, 0, 0, &[0x7f, 0xff, 0xff, 0xff]),
        ]
        .concat(),
    );
    // PING with a bad length: FRAME_SIZE_ERROR.
    after_preface("a 3-byte PING", frame(0x6, 0, 0, &[1, 2, 3]));
    // A stream id going backwards / even (client streams are odd): PROTOCOL_ERROR.
    after_preface(
        "HEADERS on an even stream",
        frame(0x1, 0x4 | 0x1, 2, &[0x83, 0x86]),
    );
    // CONTINUATION without HEADERS: PROTOCOL_ERROR.
    after_preface("a stray CONTINUATION", frame(0x9, 0x4, 1, &[0x82]));
    inputs
}

#[test]
fn garbage_bytes_get_the_connection_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::capstan(dir.path());
    let runtime = tokio_runtime();
    let seed = 0x5eed_0001;
    println!("seed = {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    for (what, bytes, half_close) in garbage_inputs(&mut rng) {
        let started = Instant::now();
        let received = send_raw_and_expect_close(&server, &bytes, half_close, what);
        println!(
            "{what}: closed after {:?} ({} bytes received)",
            started.elapsed(),
            received.len()
        );
        assert_serving(&server, &runtime, what);
    }
    // A client that sends half a preface and then nothing is dropped (handshake timeout).
    let received =
        send_raw_and_expect_close(&server, &PREFACE[..16], false, "a silent half preface");
    println!(
        "silent half preface: closed ({} bytes received)",
        received.len()
    );
    assert_serving(&server, &runtime, "a silent half preface");
}

#[test]
fn unknown_frame_types_are_ignored() {
    // RFC 9113 §4.1: unknown frame types MUST be ignored, so the connection stays usable.
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::capstan(dir.path());
    let mut stream = StdTcpStream::connect(server.endpoint()).expect("connect");
    let mut bytes = preface_and_settings();
    bytes.extend(frame(0xfa, 0xff, 0, b"unknown frame payload"));
    bytes.extend(frame(0x6, 0, 0, b"pingpong"));
    stream.write_all(&bytes).expect("write");
    stream
        .set_read_timeout(Some(CALL_TIMEOUT))
        .expect("read timeout");
    // Read until the PING ack (type 6, flag ACK, payload "pingpong") arrives.
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let ack = frame(0x6, 0x1, 0, b"pingpong");
    while !received
        .windows(ack.len())
        .any(|window| window == ack.as_slice())
    {
        let n = stream.read(&mut buffer).expect("read (the server closed?)");
        assert!(
            n > 0,
            "the server closed the connection over an unknown frame type"
        );
        received.extend_from_slice(&buffer[..n]);
    }
    drop(stream);
    let runtime = tokio_runtime();
    assert_serving(&server, &runtime, "an unknown frame type");
}

// ---------------------------------------------------------------------------------------------
// gRPC over h2
// ---------------------------------------------------------------------------------------------

/// What came back for one h2 request.
#[derive(Debug)]
struct Reply {
    http_status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
    trailers: Option<http::HeaderMap>,
}

impl Reply {
    /// `grpc-status` from the trailers, or from the headers of a trailers-only response.
    fn grpc_status(&self) -> Option<u32> {
        let value = self
            .trailers
            .as_ref()
            .and_then(|trailers| trailers.get("grpc-status"))
            .or_else(|| self.headers.get("grpc-status"))?;
        value.to_str().ok()?.parse().ok()
    }

    fn grpc_message(&self) -> String {
        self.trailers
            .as_ref()
            .and_then(|trailers| trailers.get("grpc-message"))
            .or_else(|| self.headers.get("grpc-message"))
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_string()
    }
}

type H2Client = h2::client::SendRequest<Bytes>;

async fn h2_connect(endpoint: &str) -> H2Client {
    let tcp = tokio::net::TcpStream::connect(endpoint)
        .await
        .expect("tcp connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A gRPC-style frame: `[flag][u32 length][bytes]`.
fn grpc_frame(compressed: bool, declared: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![u8::from(compressed)];
    out.extend_from_slice(&declared.to_be_bytes());
    out.extend_from_slice(bytes);
    out
}

/// Hand-encoded protobuf: a length-delimited field.
fn pb_bytes(field: u8, bytes: &[u8]) -> Vec<u8> {
    assert!(bytes.len() < 128);
    let mut out = vec![(field << 3) | 2, bytes.len() as u8];
    out.extend_from_slice(bytes);
    out
}

fn range_request(key: &str) -> Vec<u8> {
    let message = pb_bytes(1, key.as_bytes());
    grpc_frame(false, message.len() as u32, &message)
}

fn put_request(key: &str, value: &str) -> Vec<u8> {
    let message = [pb_bytes(1, key.as_bytes()), pb_bytes(2, value.as_bytes())].concat();
    grpc_frame(false, message.len() as u32, &message)
}

/// Sends one request: `body` in one DATA frame (`end_stream` tells whether the request ends
/// there) and returns the whole reply.
async fn call(
    client: &mut H2Client,
    endpoint: &str,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
    end_stream: bool,
) -> Result<Reply, h2::Error> {
    let request = http::Request::builder()
        .method(method)
        .uri(format!("http://{endpoint}{path}"))
        .header("content-type", content_type)
        .header("te", "trailers")
        .body(())
        .expect("request");
    let mut ready = client.clone().ready().await?;
    let (response, mut send) = ready.send_request(request, false)?;
    // The server may answer and reset the stream before taking every byte: ignore send errors.
    let _ = send.send_data(Bytes::from(body), end_stream);
    let response = response.await?;
    let http_status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body_stream = response.into_body();
    let mut body = Vec::new();
    let mut trailers = None;
    if !body_stream.is_end_stream() {
        while let Some(chunk) = body_stream.data().await {
            let chunk = chunk?;
            let _ = body_stream.flow_control().release_capacity(chunk.len());
            body.extend_from_slice(&chunk);
        }
        trailers = body_stream.trailers().await?;
    }
    drop(send);
    Ok(Reply {
        http_status,
        headers,
        body,
        trailers,
    })
}

async fn grpc_call(
    client: &mut H2Client,
    endpoint: &str,
    path: &str,
    body: Vec<u8>,
    end_stream: bool,
) -> Reply {
    tokio::time::timeout(
        CALL_TIMEOUT,
        call(
            client,
            endpoint,
            "POST",
            path,
            "application/grpc",
            body,
            end_stream,
        ),
    )
    .await
    .unwrap_or_else(|_| panic!("{path}: no reply within {CALL_TIMEOUT:?}"))
    .unwrap_or_else(|error| panic!("{path}: h2 error: {error}"))
}

/// A valid Put then Range on the same h2 connection work.
async fn assert_connection_usable(client: &mut H2Client, endpoint: &str, key: &str) {
    let reply = grpc_call(client, endpoint, KV_PUT, put_request(key, "ok"), true).await;
    assert_eq!(
        reply.grpc_status(),
        Some(0),
        "put on the same connection: {reply:?}"
    );
    let reply = grpc_call(client, endpoint, KV_RANGE, range_request(key), true).await;
    assert_eq!(
        reply.grpc_status(),
        Some(0),
        "range on the same connection: {reply:?}"
    );
    assert!(
        reply
            .body
            .windows(key.len())
            .any(|window| window == key.as_bytes()),
        "the range reply holds the key: {reply:?}"
    );
}

/// One abusive call on a fresh h2 connection; checks the status and that both that
/// connection and other clients keep working.
struct Abuse {
    what: &'static str,
    method: &'static str,
    path: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    end_stream: bool,
    /// Expected grpc-status; `None` means any non-zero one.
    grpc_status: Option<u32>,
    /// Expected HTTP status: 200 for gRPC replies, 415 for a bad content-type; 400 stands for
    /// "any 4xx".
    http_status: u16,
}

fn abuses() -> Vec<Abuse> {
    let grpc = |what, path, body, end_stream, grpc_status| Abuse {
        what,
        method: "POST",
        path,
        content_type: "application/grpc",
        body,
        end_stream,
        grpc_status,
        http_status: 200,
    };
    let hundred_mib = 100 * 1024 * 1024;
    vec![
        grpc(
            "an unknown method",
            "/etcdserverpb.KV/NoSuchMethod",
            range_request("x"),
            true,
            Some(12),
        ),
        grpc(
            "an unknown service",
            "/no.such.Service/Call",
            range_request("x"),
            true,
            Some(12),
        ),
        grpc(
            "a path that is not a method",
            "/",
            Vec::new(),
            true,
            Some(12),
        ),
        grpc(
            "malformed protobuf for Range",
            KV_RANGE,
            grpc_frame(false, 3, &[0xff, 0xff, 0xff]),
            true,
            Some(13),
        ),
        grpc(
            "malformed protobuf for Put (truncated field)",
            KV_PUT,
            grpc_frame(false, 4, &[0x0a, 0x7f, b'a', b'b']),
            true,
            Some(13),
        ),
        grpc(
            "protobuf with the wrong wire type for a field",
            KV_RANGE,
            grpc_frame(false, 2, &[0x08 | 0x5, 0x01]),
            true,
            None,
        ),
        grpc(
            "a declared 100 MiB message (prefix only, stream left open)",
            KV_RANGE,
            grpc_frame(false, hundred_mib, &[0u8; 64 * 1024]),
            false,
            Some(8),
        ),
        grpc(
            "a declared 4 GiB message",
            KV_PUT,
            grpc_frame(false, u32::MAX, &[1, 2, 3]),
            true,
            Some(8),
        ),
        grpc(
            "a real 3 MiB message",
            KV_PUT,
            grpc_frame(false, 3 * 1024 * 1024, &vec![0x0a; 3 * 1024 * 1024]),
            true,
            Some(8),
        ),
        grpc(
            "a compressed-flag message",
            KV_RANGE,
            grpc_frame(true, 3, &[0x0a, 0x01, b'k']),
            true,
            None,
        ),
        grpc(
            "half a message, then END_STREAM",
            KV_RANGE,
            grpc_frame(false, 10, &[0x0a, 0x08, b'k']),
            true,
            None,
        ),
        grpc(
            "half a prefix, then END_STREAM",
            KV_PUT,
            vec![0, 0],
            true,
            None,
        ),
        grpc("no message at all", KV_RANGE, Vec::new(), true, None),
        Abuse {
            what: "a non-gRPC content-type",
            method: "POST",
            path: KV_RANGE,
            content_type: "application/json",
            body: br#"{"key":"eA=="}"#.to_vec(),
            end_stream: true,
            grpc_status: None,
            http_status: 415,
        },
        Abuse {
            what: "a GET request",
            method: "GET",
            path: KV_RANGE,
            content_type: "application/grpc",
            body: Vec::new(),
            end_stream: true,
            grpc_status: None,
            http_status: 400,
        },
    ]
}

#[test]
fn bad_grpc_requests_get_errors_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::capstan(dir.path());
    let runtime = tokio_runtime();
    let endpoint = server.endpoint();
    for (index, abuse) in abuses().into_iter().enumerate() {
        let what = abuse.what;
        let reply = runtime.block_on(async {
            let mut client = h2_connect(&endpoint).await;
            let reply = tokio::time::timeout(
                CALL_TIMEOUT,
                call(
                    &mut client,
                    &endpoint,
                    abuse.method,
                    abuse.path,
                    abuse.content_type,
                    abuse.body,
                    abuse.end_stream,
                ),
            )
            .await
            .unwrap_or_else(|_| panic!("{what}: no reply within {CALL_TIMEOUT:?}"))
            .unwrap_or_else(|error| panic!("{what}: h2 error instead of a reply: {error}"));
            // The same connection still carries good calls.
            assert_connection_usable(&mut client, &endpoint, &format!("same-conn/{index}")).await;
            reply
        });
        println!(
            "{what}: HTTP {} grpc-status {:?} {:?}",
            reply.http_status,
            reply.grpc_status(),
            reply.grpc_message()
        );
        if abuse.http_status == 400 {
            assert!(
                (400..500).contains(&reply.http_status),
                "{what}: expected a 4xx: {reply:?}"
            );
        } else {
            assert_eq!(reply.http_status, abuse.http_status, "{what}: {reply:?}");
        }
        if abuse.http_status == 200 {
            let status = reply
                .grpc_status()
                .unwrap_or_else(|| panic!("{what}: no grpc-status: {reply:?}"));
            match abuse.grpc_status {
                Some(expected) => assert_eq!(status, expected, "{what}: {reply:?}"),
                None => assert_ne!(status, 0, "{what}: {reply:?}"),
            }
            assert!(
                reply.body.is_empty(),
                "{what}: an error carries no response message: {reply:?}"
            );
        }
        assert_serving(&server, &runtime, what);
    }
}

#[test]
fn oversized_message_is_refused_before_it_is_received() {
    // The status for a declared 100 MiB message arrives while the client has sent only 5 bytes
    // of it and keeps the stream open: the server did not wait to buffer the message.
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::capstan(dir.path());
    let runtime = tokio_runtime();
    let endpoint = server.endpoint();
    runtime.block_on(async {
        let mut client = h2_connect(&endpoint).await;
        let reply = grpc_call(
            &mut client,
            &endpoint,
            KV_PUT,
            grpc_frame(false, 100 * 1024 * 1024, &[]),
            false,
        )
        .await;
        assert_eq!(reply.grpc_status(), Some(8), "{reply:?}");
        assert!(
            reply.grpc_message().contains("larger than max"),
            "{reply:?}"
        );
    });
    // Through etcd-client: a 3 MiB value is over the 2 MiB receive limit.
    runtime.block_on(async {
        let mut client = connect(&endpoint).await;
        let error = client
            .put("big", vec![b'v'; 3 * 1024 * 1024], None)
            .await
            .expect_err("a 3 MiB put must be refused");
        match &error {
            etcd_client::Error::GRpcStatus(status) => {
                assert_eq!(status.code() as i32, 8, "{error}")
            }
            other => panic!("expected a gRPC status, got {other}"),
        }
    });
    assert_serving(&server, &runtime, "oversized messages");
}

#[test]
fn many_streams_of_abuse_on_one_connection() {
    // 300 bad calls multiplexed on one connection, then good calls on it.
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::capstan(dir.path());
    let runtime = tokio_runtime();
    let endpoint = server.endpoint();
    runtime.block_on(async {
        let client = h2_connect(&endpoint).await;
        let mut tasks = Vec::new();
        for i in 0..300u32 {
            let mut client = client.clone();
            let endpoint = endpoint.clone();
            tasks.push(tokio::spawn(async move {
                let body = match i % 3 {
                    0 => grpc_frame(false, 3, &[0xff, 0xff, 0xff]),
                    1 => grpc_frame(true, 1, &[0]),
                    _ => grpc_frame(false, 50, &[0x0a]),
                };
                grpc_call(&mut client, &endpoint, KV_RANGE, body, true).await
            }));
        }
        for task in tasks {
            let reply = task.await.expect("task");
            assert_ne!(reply.grpc_status(), Some(0), "{reply:?}");
            assert!(reply.grpc_status().is_some(), "{reply:?}");
        }
        let mut client = client;
        assert_connection_usable(&mut client, &endpoint, "after-300-bad-streams").await;
    });
    assert_serving(&server, &runtime, "300 bad streams");
}

#[test]
fn two_hundred_garbage_connections_do_not_disturb_a_normal_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::capstan(dir.path());
    let runtime = tokio_runtime();
    let endpoint = server.endpoint();
    let seed = 0x5eed_0200;
    println!("seed = {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let inputs: Vec<(&'static str, Vec<u8>)> = garbage_inputs(&mut rng)
        .into_iter()
        .map(|(what, bytes, _)| (what, bytes))
        .filter(|(_, bytes)| !bytes.is_empty())
        .collect();
    let (normal_ops, closed) = runtime.block_on(async {
        let garbage_done = Arc::new(AtomicBool::new(false));
        let normal = {
            let endpoint = endpoint.clone();
            let garbage_done = garbage_done.clone();
            tokio::spawn(async move {
                let mut client = connect(&endpoint).await;
                let mut ops = 0usize;
                // Keep working until every garbage connection is done, and at least 20 times.
                while ops < 20 || !garbage_done.load(Ordering::SeqCst) {
                    let key = format!("normal/{}", ops % 10);
                    let value = ops.to_string();
                    tokio::time::timeout(
                        CALL_TIMEOUT,
                        client.put(key.clone(), value.clone(), None),
                    )
                    .await
                    .expect("normal put timed out")
                    .expect("normal put");
                    let response = tokio::time::timeout(CALL_TIMEOUT, client.get(key, None))
                        .await
                        .expect("normal get timed out")
                        .expect("normal get");
                    assert_eq!(response.kvs()[0].value(), value.as_bytes());
                    ops += 1;
                }
                ops
            })
        };
        let closed = Arc::new(AtomicUsize::new(0));
        let mut garbage = Vec::new();
        for i in 0..200 {
            let (what, bytes) = inputs[i % inputs.len()].clone();
            let endpoint = endpoint.clone();
            let closed = closed.clone();
            garbage.push(tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut stream = tokio::net::TcpStream::connect(&endpoint)
                    .await
                    .expect("connect");
                let _ = stream.write_all(&bytes).await;
                let mut buffer = [0u8; 4096];
                let outcome = tokio::time::timeout(CLOSE_TIMEOUT, async {
                    loop {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                    }
                })
                .await;
                assert!(outcome.is_ok(), "connection {i} ({what}) was not closed");
                closed.fetch_add(1, Ordering::SeqCst);
            }));
        }
        for task in garbage {
            task.await.expect("garbage connection");
        }
        garbage_done.store(true, Ordering::SeqCst);
        let ops = normal.await.expect("normal client");
        (ops, closed.load(Ordering::SeqCst))
    });
    println!("normal client did {normal_ops} put+get while 200 garbage connections were closed");
    assert_eq!(closed, 200);
    assert_serving(&server, &runtime, "200 garbage connections");
}

/// Peak resident memory of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[test]
fn many_declared_huge_messages_do_not_grow_the_server() {
    // 50 concurrent calls each declaring 100 MiB (5 GB in all) get ResourceExhausted and the
    // server's peak memory does not grow by anything like one of them.
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::capstan(dir.path());
    let pid = server.pid().expect("pid");
    let runtime = tokio_runtime();
    let endpoint = server.endpoint();
    let before = peak_rss_kib(pid);
    runtime.block_on(async {
        let client = h2_connect(&endpoint).await;
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let mut client = client.clone();
            let endpoint = endpoint.clone();
            tasks.push(tokio::spawn(async move {
                let body = grpc_frame(false, 100 * 1024 * 1024, &[0x0a; 1024]);
                grpc_call(&mut client, &endpoint, KV_PUT, body, false).await
            }));
        }
        for task in tasks {
            let reply = task.await.expect("task");
            assert_eq!(reply.grpc_status(), Some(8), "{reply:?}");
        }
    });
    let after = peak_rss_kib(pid);
    println!("server peak RSS: {before} KiB before, {after} KiB after");
    assert!(
        after < before + 100 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB"
    );
    assert_serving(&server, &runtime, "50 declared 100 MiB messages");
}

#[test]
fn rapid_reset_streams_do_not_hurt_the_server() {
    // HTTP/2 "rapid reset": open streams and cancel them at once, thousands of times. The server
    // may close that connection (GOAWAY) but must keep serving everyone else.
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::capstan(dir.path());
    let runtime = tokio_runtime();
    let endpoint = server.endpoint();
    let (sent, refused) = runtime.block_on(async {
        let mut client = h2_connect(&endpoint).await;
        let mut sent = 0;
        let mut refused = false;
        for _ in 0..5000 {
            let request = http::Request::builder()
                .method("POST")
                .uri(format!("http://{endpoint}{KV_RANGE}"))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(())
                .expect("request");
            let ready = tokio::time::timeout(CALL_TIMEOUT, client.clone().ready()).await;
            let Ok(Ok(mut ready)) = ready else {
                refused = true;
                break;
            };
            match ready.send_request(request, false) {
                Ok((response, stream)) => {
                    // Dropping both halves resets the stream (RST_STREAM CANCEL).
                    drop(stream);
                    drop(response);
                    sent += 1;
                }
                Err(_) => {
                    refused = true;
                    break;
                }
            }
            client = ready;
        }
        (sent, refused)
    });
    println!("{sent} streams opened and reset; connection refused further streams: {refused}");
    assert!(sent > 0);
    assert_serving(&server, &runtime, "rapid reset");
}
