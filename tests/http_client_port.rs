//! One client port, two protocols (issue #14): a real `capstan` serves gRPC and HTTP/1.1 on
//! the same `--listen-client-urls` port, as etcd does.
//!
//! - raw HTTP/1.1 requests (`/health`, `/version`, `/livez`, `/readyz`, `/metrics`, 404, 405,
//!   OPTIONS with etcd's CORS headers, redirects, keep-alive) while the Rust `etcd-client`
//!   writes and reads on the same port;
//! - bad HTTP input (garbage, a huge head, slowloris, a silent client, half a preface) is
//!   answered or dropped and never holds up a concurrent `etcd-client` on the same shard;
//! - under TLS, ALPN `h2` gets gRPC and `http/1.1` gets HTTP, and without ALPN the first bytes
//!   decide;
//! - `--listen-client-http-urls` splits the traffic (gRPC only on the client URLs, HTTP only on
//!   the HTTP URLs) and `--enable-grpc-gateway=false` turns `/v3/` off;
//! - gRPC health `Check` of an unknown service is NOT_FOUND `unknown service` and `Watch` of
//!   one sends SERVICE_UNKNOWN, as etcd 3.4 (Debian) answers them;
//! - `https://` `--listen-client-http-urls` offer ALPN `http/1.1` only, the client URLs beside
//!   them `h2` only;
//! - `/health`, `/version` and the error answers compared with Debian's etcd 3.4 and, when
//!   `target/tools/etcd36` exists, etcd 3.6 on their client ports.
#[path = "common/certs.rs"]
mod certs;
mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long any one exchange in these tests may take before it counts as stuck.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// The reference etcd 3.6 binary, when this machine has it.
const ETCD36: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/tools/etcd36");

use common::HttpReply as Reply;

/// Parses one response with a `Content-Length` body from the front of `bytes`; returns it and
/// the bytes after it.
fn parse_reply(bytes: &[u8]) -> (Reply, &[u8]) {
    let head_end = bytes
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(bytes)));
    let head = std::str::from_utf8(&bytes[..head_end]).expect("an ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("a status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(": ").expect("a header line");
            (name.to_string(), value.to_string())
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .map(|(_, value)| value.parse().expect("a numeric Content-Length"))
        .unwrap_or(0);
    let body_start = head_end + 4;
    let body = &bytes[body_start..body_start + length];
    let reply = Reply {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).expect("a UTF-8 body"),
    };
    (reply, &bytes[body_start + length..])
}

/// Sends `bytes` on a new connection and reads until the server closes (or `wait` of
/// silence passes).
fn exchange(port: u16, bytes: &[u8], wait: Duration) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(wait)).expect("read timeout");
    // The server may answer (and close) before it read everything: a failed write is fine.
    let _ = stream.write_all(bytes);
    read_until_closed(&mut stream)
}

fn read_until_closed<S: Read>(stream: &mut S) -> Vec<u8> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return received,
            Ok(count) => received.extend_from_slice(&chunk[..count]),
        }
    }
}

fn request_bytes(method: &str, target: &str) -> Vec<u8> {
    format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

/// One request on a fresh connection.
fn request(port: u16, method: &str, target: &str) -> Reply {
    let bytes = exchange(port, &request_bytes(method, target), EXCHANGE_TIMEOUT);
    parse_reply(&bytes).0
}

fn get(port: u16, target: &str) -> Reply {
    request(port, "GET", target)
}

/// The keys of a flat JSON object, sorted.
fn json_keys(body: &str) -> Vec<String> {
    let value: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|error| panic!("{body:?}: {error}"));
    let mut keys: Vec<String> = value
        .as_object()
        .expect("a JSON object")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

fn assert_cors(reply: &Reply) {
    assert_eq!(
        reply.header("Access-Control-Allow-Origin"),
        Some("*"),
        "{reply:?}"
    );
    assert_eq!(
        reply.header("Access-Control-Allow-Methods"),
        Some("POST, GET, OPTIONS, PUT, DELETE")
    );
    assert_eq!(
        reply.header("Access-Control-Allow-Headers"),
        Some("accept, content-type, authorization")
    );
}

/// Puts and reads back `count` keys through `etcd-client` on `endpoint`, each call bounded.
async fn puts_and_gets(client: &mut etcd_client::Client, prefix: &str, count: usize) {
    for index in 0..count {
        let key = format!("{prefix}-{index}");
        tokio::time::timeout(EXCHANGE_TIMEOUT, client.put(key.as_str(), "v", None))
            .await
            .unwrap_or_else(|_| panic!("put {key} stuck"))
            .expect("put");
        let got = tokio::time::timeout(EXCHANGE_TIMEOUT, client.get(key.as_str(), None))
            .await
            .unwrap_or_else(|_| panic!("get {key} stuck"))
            .expect("get");
        assert_eq!(got.kvs()[0].value(), b"v");
    }
}

#[test]
fn grpc_and_http_share_one_port() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::capstan(dir.path());
    let port = server.port;
    let runtime = tokio_runtime();
    let mut client = runtime.block_on(connect(&server.endpoint()));
    runtime.block_on(puts_and_gets(&mut client, "before", 5));

    // HTTP on a thread while gRPC writes on the same port.
    let http = std::thread::spawn(move || {
        let mut replies = Vec::new();
        for _ in 0..5 {
            replies.push(get(port, "/health"));
            replies.push(get(port, "/version"));
        }
        replies
    });
    runtime.block_on(puts_and_gets(&mut client, "during", 20));
    for reply in http.join().expect("HTTP thread") {
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_cors(&reply);
    }

    let health = get(port, "/health");
    assert_eq!(health.body, r#"{"health":"true","reason":""}"#);
    assert_eq!(
        health.header("Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    let version = get(port, "/version");
    assert_eq!(version.header("Content-Type"), Some("application/json"));
    assert_eq!(
        json_keys(&version.body),
        ["etcdcluster", "etcdserver", "storage"]
    );
    let livez = get(port, "/livez");
    assert_eq!((livez.status, livez.body.as_str()), (200, "ok\n"));
    let readyz = get(port, "/readyz?verbose");
    assert_eq!(readyz.status, 200, "{readyz:?}");
    assert!(
        readyz.body.contains("[+]linearizable_read ok\n"),
        "{readyz:?}"
    );
    let readyz_one = get(port, "/readyz/non_learner");
    assert_eq!(readyz_one.status, 200, "{readyz_one:?}");
    let metrics = get(port, "/metrics");
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .header("Content-Type")
        .is_some_and(|value| value.starts_with("text/plain; version=0.0.4")));
    assert!(metrics.body.contains("# TYPE "), "{metrics:?}");

    let missing = get(port, "/nope");
    assert_eq!(
        (missing.status, missing.body.as_str()),
        (404, "404 page not found\n")
    );
    assert_cors(&missing);
    let post = request(port, "POST", "/health");
    assert_eq!((post.status, post.header("Allow")), (405, Some("GET")));
    assert_eq!(post.body, "Method Not Allowed\n");
    let options = request(port, "OPTIONS", "/anything");
    assert_eq!((options.status, options.body.as_str()), (200, ""));
    assert_cors(&options);
    let unclean = get(port, "//health");
    assert_eq!(
        (unclean.status, unclean.header("Location")),
        (307, Some("/health"))
    );
    // The gateway's subtree root, redirected as Go's ServeMux does.
    let v3 = get(port, "/v3");
    assert_eq!((v3.status, v3.header("Location")), (307, Some("/v3/")));

    // Keep-alive: two pipelined requests on one connection, answered in order.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(EXCHANGE_TIMEOUT))
        .expect("timeout");
    stream
        .write_all(
            b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n\
              GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .expect("send");
    let bytes = read_until_closed(&mut stream);
    let (first, rest) = parse_reply(&bytes);
    let (second, _) = parse_reply(rest);
    assert!(first.body.starts_with(r#"{"health""#), "{first:?}");
    assert!(second.body.starts_with(r#"{"etcdserver""#), "{second:?}");

    // The gRPC connection opened first still works.
    runtime.block_on(puts_and_gets(&mut client, "after", 5));
    assert!(
        !server.log().contains("accepted client connection"),
        "per-connection lines are debug"
    );
}

/// A connection sending `first`, then one byte of `drip` (cycled) per `pause` (slowloris), on
/// its own thread; returns whether the server closed it before `give_up`.
fn trickle(
    port: u16,
    first: &'static [u8],
    drip: &'static [u8],
    pause: Duration,
    give_up: Duration,
) -> std::thread::JoinHandle<bool> {
    std::thread::spawn(move || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        stream.write_all(first).expect("first bytes");
        let started = Instant::now();
        let mut scratch = [0u8; 1024];
        for byte in drip.iter().cycle() {
            if started.elapsed() > give_up {
                return false;
            }
            if stream.write_all(&[*byte]).is_err() {
                return true;
            }
            let waited = Instant::now();
            while waited.elapsed() < pause {
                match stream.read(&mut scratch) {
                    Ok(0) => return true,
                    Ok(_) => {}
                    Err(error)
                        if error.kind() == std::io::ErrorKind::WouldBlock
                            || error.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => return true,
                }
            }
        }
        false
    })
}

/// What a connection that sent some bytes and then nothing got back.
#[derive(Debug)]
struct Silent {
    received: Vec<u8>,
    /// The server closed it (rather than `give_up` passing).
    closed: bool,
}

/// Opens a connection that sends `bytes` and nothing more, on its own thread.
fn silent(port: u16, bytes: &'static [u8], give_up: Duration) -> std::thread::JoinHandle<Silent> {
    std::thread::spawn(move || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(give_up)).expect("timeout");
        let _ = stream.write_all(bytes);
        let mut received = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => {
                    return Silent {
                        received,
                        closed: true,
                    }
                }
                Ok(count) => received.extend_from_slice(&chunk[..count]),
                Err(error)
                    if error.kind() == std::io::ErrorKind::WouldBlock
                        || error.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return Silent {
                        received,
                        closed: false,
                    }
                }
                Err(_) => {
                    return Silent {
                        received,
                        closed: true,
                    }
                }
            }
        }
    })
}

#[test]
fn bad_http_input_does_not_hold_up_grpc_on_the_same_port() {
    let dir = tempfile::tempdir().expect("tempdir");
    // One shard: the bad connections and the gRPC client share one executor.
    let server = Server::start(Flavor::Capstan, dir.path(), &["--shards=1"]);
    let port = server.port;
    let give_up = Duration::from_secs(60);

    let slowloris_head = trickle(
        port,
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ",
        b"a",
        Duration::from_secs(1),
        give_up,
    );
    // A slowloris that has not decided its protocol yet: the HTTP/2 preface, a byte a second.
    let slowloris_preface = trickle(
        port,
        b"P",
        b"RI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        Duration::from_secs(1),
        give_up,
    );
    let nothing = silent(port, b"", give_up);
    let half_preface = silent(port, b"PRI * HTTP/2.0\r\n", give_up);
    let mut garbage: Vec<u8> = (0..4096)
        .map(|index| (index * 7 % 251) as u8 | 0x80)
        .collect();
    garbage.extend_from_slice(b"\r\n\r\n");
    let garbage = silent(port, Box::leak(garbage.into_boxed_slice()), give_up);
    let mut huge = b"GET /health HTTP/1.1\r\nHost: x\r\n".to_vec();
    for index in 0..40_000 {
        huge.extend_from_slice(format!("X-Header-{index}: {}\r\n", "v".repeat(40)).as_bytes());
    }
    huge.extend_from_slice(b"\r\n");
    let huge = silent(port, Box::leak(huge.into_boxed_slice()), give_up);

    // Meanwhile, gRPC on the same port and shard works.
    let runtime = tokio_runtime();
    runtime.block_on(async {
        let mut client = connect(&server.endpoint()).await;
        puts_and_gets(&mut client, "k", 30).await;
    });

    let garbage = garbage.join().expect("garbage thread");
    assert!(
        garbage
            .received
            .starts_with(b"HTTP/1.1 400 Bad Request\r\n")
            && garbage.closed,
        "{garbage:?}"
    );
    let huge = huge.join().expect("huge thread");
    assert!(
        huge.received
            .starts_with(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{:?}",
        String::from_utf8_lossy(&huge.received)
    );
    for (what, thread) in [
        ("a silent client", nothing),
        ("half a preface", half_preface),
    ] {
        let outcome = thread.join().expect("silent thread");
        assert!(
            outcome.closed && outcome.received.is_empty(),
            "{what} is closed without an answer: {outcome:?}"
        );
    }
    assert!(
        slowloris_head.join().expect("slowloris thread"),
        "a slowloris head is cut off"
    );
    assert!(
        slowloris_preface.join().expect("slowloris thread"),
        "a slowloris preface is cut off"
    );
    let health = get(port, "/health");
    assert_eq!(health.status, 200, "{health:?}");
}

/// The CA and server certificate of one TLS test.
struct Pki {
    ca_pem: String,
    ca_file: PathBuf,
    server: certs::Files,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let certs_dir = dir.join("certs");
        std::fs::create_dir_all(&certs_dir).expect("certs dir");
        let ca = certs::Ca::new("capstan-test-ca");
        let ca_file = certs::write_pem(&certs_dir, "ca.crt", &ca.pem());
        let server = ca.server("server-1").write(&certs_dir, "server");
        Pki {
            ca_pem: ca.pem(),
            ca_file,
            server,
        }
    }
}

/// A TLS connection with `alpn` offered; returns it and the negotiated protocol.
fn tls_connect(
    port: u16,
    ca_pem: &str,
    alpn: &[&[u8]],
) -> (
    rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    Option<Vec<u8>>,
) {
    let mut config = rustls::ClientConfig::clone(&certs::client_config(ca_pem, None));
    config.alpn_protocols = alpn.iter().map(|name| name.to_vec()).collect();
    let mut socket = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    socket
        .set_read_timeout(Some(EXCHANGE_TIMEOUT))
        .expect("timeout");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let mut connection = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    while connection.is_handshaking() {
        connection.complete_io(&mut socket).expect("TLS handshake");
    }
    let negotiated = connection.alpn_protocol().map(<[u8]>::to_vec);
    (rustls::StreamOwned::new(connection, socket), negotiated)
}

/// `GET /health` over TLS with `alpn` offered.
fn https_health(port: u16, ca_pem: &str, alpn: &[&[u8]]) -> (Reply, Option<Vec<u8>>) {
    let (mut stream, negotiated) = tls_connect(port, ca_pem, alpn);
    stream
        .write_all(&request_bytes("GET", "/health"))
        .expect("send");
    let bytes = read_until_closed(&mut stream);
    (parse_reply(&bytes).0, negotiated)
}

/// Sends the HTTP/2 preface over TLS; true if the server answered with HTTP/2 SETTINGS.
fn https_preface_served(port: u16, ca_pem: &str, alpn: &[&[u8]]) -> bool {
    let (mut stream, _) = tls_connect(port, ca_pem, alpn);
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .expect("send the preface");
    let mut frame_head = [0u8; 9];
    // A SETTINGS frame: type 4 in the fourth byte.
    stream.read_exact(&mut frame_head).is_ok() && frame_head[3] == 4
}

#[test]
fn tls_port_chooses_by_alpn_and_by_first_bytes_without_it() {
    require_tool("etcdctl", "etcd-client");
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(dir.path());
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let log_path = dir.path().join("server.log");
    let _server = Process::spawn(
        capstan_binary(),
        &[
            format!("--data-dir={}", dir.path().join("data").display()),
            format!("--listen-client-urls={url}"),
            format!("--advertise-client-urls={url}"),
            format!("--cert-file={}", pki.server.cert.display()),
            format!("--key-file={}", pki.server.key.display()),
        ],
        &log_path,
    );
    let ca = pki.ca_pem.as_str();

    let (reply, negotiated) = https_health(port, ca, &[b"http/1.1"]);
    assert_eq!(negotiated.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(reply.body, r#"{"health":"true","reason":""}"#);
    assert_cors(&reply);
    // The server prefers h2 when both are offered (as Go's does).
    let (_, negotiated) = tls_connect(port, ca, &[b"http/1.1", b"h2"]);
    assert_eq!(negotiated.as_deref(), Some(&b"h2"[..]));
    assert!(https_preface_served(port, ca, &[b"h2"]));
    // Without ALPN the first bytes decide.
    let (reply, negotiated) = https_health(port, ca, &[]);
    assert_eq!(negotiated, None);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(https_preface_served(port, ca, &[]));

    // gRPC clients over TLS on the same port.
    let flags = [format!("--cacert={}", pki.ca_file.display())];
    let etcdctl = |args: &[&str]| {
        let output = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={url}"))
            .arg("--dial-timeout=5s")
            .args(&flags)
            .args(args)
            .output()
            .expect("run etcdctl");
        assert!(
            output.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    etcdctl(&["put", "tls-key", "tls-value"]);
    assert_eq!(
        etcdctl(&["get", "tls-key", "--print-value-only"]).trim(),
        "tls-value"
    );
}

/// A server process (Capstan with flags the harness does not take, or etcd 3.6); killed and
/// reaped on drop.
struct Process {
    child: Child,
    log_path: PathBuf,
}

impl Process {
    /// Starts `program` with `args` and waits for its ready line.
    fn spawn(program: &str, args: &[String], log_path: &Path) -> Process {
        let log = std::fs::File::create(log_path).expect("log");
        let log_err = log.try_clone().expect("log clone");
        let child = Command::new(program)
            .args(args)
            .env("ETCD_UNSUPPORTED_ARCH", "")
            .env_remove("CAPSTAN_LOG")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|error| panic!("start {program}: {error}"));
        let mut process = Process {
            child,
            log_path: log_path.to_path_buf(),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        while !process.log().contains(READY_LINE) {
            if let Ok(Some(status)) = process.child.try_wait() {
                panic!("{program} exited with {status}: {}", process.log());
            }
            assert!(
                Instant::now() < deadline,
                "{program} not ready: {}",
                process.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        process
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn client_http_urls_split_grpc_from_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let http_port = free_port();
    let http_url = format!("--listen-client-http-urls=http://127.0.0.1:{http_port}");
    let server = Server::start(
        Flavor::Capstan,
        dir.path(),
        &[http_url.as_str(), "--enable-grpc-gateway=false"],
    );
    let grpc_port = server.port;

    // The client URL serves gRPC only: HTTP/1.1 gets no HTTP answer (the server's HTTP/2
    // SETTINGS, then a closed connection, as etcd's grpc-go server does).
    let runtime = tokio_runtime();
    runtime.block_on(async {
        let mut client = connect(&server.endpoint()).await;
        puts_and_gets(&mut client, "split", 3).await;
    });
    let answer = exchange(
        grpc_port,
        &request_bytes("GET", "/health"),
        EXCHANGE_TIMEOUT,
    );
    assert!(
        !answer.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );

    // The HTTP URL serves HTTP only: the probes and /version, the gateway is off, and the
    // HTTP/2 preface is closed without a byte (etcd's cmux matches nothing for it).
    let health = get(http_port, "/health");
    assert_eq!(
        (health.status, health.body.as_str()),
        (200, r#"{"health":"true","reason":""}"#)
    );
    assert_eq!(get(http_port, "/version").status, 200);
    for path in ["/v3/kv/range", "/v3beta/kv/range", "/v3"] {
        let reply = request(http_port, "POST", path);
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (404, "404 page not found\n"),
            "{path}"
        );
    }
    let preface = exchange(
        http_port,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
        EXCHANGE_TIMEOUT,
    );
    assert_eq!(preface, b"");
    let refused = runtime.block_on(async {
        let endpoint = format!("http://127.0.0.1:{http_port}");
        let options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(2));
        match etcd_client::Client::connect([endpoint], Some(options)).await {
            Err(_) => true,
            Ok(mut client) => client.put("nope", "v", None).await.is_err(),
        }
    });
    assert!(refused, "gRPC on the HTTP-only URL must fail");
    // etcd's start-up lines name each listener's traffic.
    for (traffic, port) in [("http", http_port), ("grpc", grpc_port)] {
        let line = format!(r#""traffic":"{traffic}","address":"127.0.0.1:{port}""#);
        assert!(server.log().contains(&line), "{line} in {}", server.log());
    }
}

/// One gRPC health call (`Check` or `Watch`) of `service` over a raw HTTP/2 connection: the
/// first serving status sent (if any), then for `Check` `grpc-status` and `grpc-message` (a
/// `Watch` is left after its first message: both empty).
async fn health_call(port: u16, method: &str, service: &str) -> (Option<u8>, String, String) {
    let socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (client, connection) = h2::client::handshake(socket).await.expect("h2 handshake");
    tokio::spawn(connection);
    let mut client = client.ready().await.expect("h2 ready");
    let request = http::Request::builder()
        .method("POST")
        .uri(format!(
            "http://127.0.0.1:{port}/grpc.health.v1.Health/{method}"
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request");
    let (response, mut body) = client.send_request(request, false).expect("send");
    // HealthCheckRequest { service = 1 }, in one gRPC frame.
    let mut message = vec![0x0a, service.len() as u8];
    message.extend_from_slice(service.as_bytes());
    let mut frame = vec![0, 0, 0, 0, message.len() as u8];
    frame.extend_from_slice(&message);
    body.send_data(bytes::Bytes::from(frame), true)
        .expect("send body");
    let response = response.await.expect("response");
    let headers = response.headers().clone();
    let mut stream = response.into_body();
    let mut received = Vec::new();
    while let Some(chunk) = stream.data().await {
        let chunk = chunk.expect("body chunk");
        let _ = stream.flow_control().release_capacity(chunk.len());
        received.extend_from_slice(&chunk);
        if method == "Watch" && received.len() >= 7 {
            return (Some(received[6]), String::new(), String::new());
        }
    }
    let trailers = stream.trailers().await.expect("trailers");
    // A trailers-only answer carries the status in its headers.
    let fields = trailers.unwrap_or(headers);
    let text = |name: &str| {
        fields
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    // HealthCheckResponse { status = 1 } is [0x08, status] after the 5-byte prefix.
    let status = (received.len() == 7).then(|| received[6]);
    (status, text("grpc-status"), text("grpc-message"))
}

#[test]
fn grpc_health_of_an_unknown_service_is_not_found_as_in_etcd() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["capstan", "etcd", "etcd34"] {
        std::fs::create_dir_all(dir.path().join(name)).expect("server dir");
    }
    let capstan = Server::capstan(&dir.path().join("capstan"));
    let etcd = Server::start(Flavor::Etcd, &dir.path().join("etcd"), &[]);
    let runtime = tokio_runtime();
    for server in [&capstan, &etcd] {
        let (all, unknown) = runtime.block_on(async {
            (
                health_call(server.port, "Check", "").await,
                health_call(server.port, "Check", "etcdserverpb.KV").await,
            )
        });
        let (watch_all, watch_unknown) = runtime.block_on(async {
            (
                health_call(server.port, "Watch", "").await,
                health_call(server.port, "Watch", "etcdserverpb.KV").await,
            )
        });
        // SERVING, and SERVICE_UNKNOWN (the stream stays open).
        assert_eq!(watch_all.0, Some(1), "{:?}", server.flavor);
        assert_eq!(watch_unknown.0, Some(3), "{:?}", server.flavor);
        assert_eq!(
            all,
            (Some(1), "0".to_string(), String::new()),
            "{:?}",
            server.flavor
        );
        assert_eq!(
            unknown,
            (None, "5".to_string(), "unknown service".to_string()),
            "{:?}",
            server.flavor
        );
    }
}

/// What is compared between two servers' answers on the client port.
#[derive(Debug, PartialEq, Eq)]
struct Shape {
    status: u16,
    content_type: Option<String>,
    cors_origin: Option<String>,
    /// The JSON keys of a JSON body, else the body itself.
    body: String,
}

fn shape(reply: &Reply, json: bool) -> Shape {
    Shape {
        status: reply.status,
        content_type: reply.header("Content-Type").map(str::to_string),
        cors_origin: reply
            .header("Access-Control-Allow-Origin")
            .map(str::to_string),
        body: if json {
            json_keys(&reply.body).join(",")
        } else {
            reply.body.clone()
        },
    }
}

/// The requests compared, and whether their bodies are JSON.
const COMPARED: [(&str, &str, bool); 6] = [
    ("GET", "/health", true),
    ("GET", "/version", true),
    ("POST", "/version", false),
    ("POST", "/health", false),
    ("GET", "/nope", false),
    ("OPTIONS", "/health", false),
];

#[test]
fn client_port_answers_match_etcd() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["capstan", "etcd", "etcd34"] {
        std::fs::create_dir_all(dir.path().join(name)).expect("server dir");
    }
    let capstan = Server::capstan(&dir.path().join("capstan"));
    let etcd34 = Server::start(Flavor::Etcd, &dir.path().join("etcd34"), &[]);
    for (method, target, json) in COMPARED {
        let ours = shape(&request(capstan.port, method, target), json);
        let theirs = shape(&request(etcd34.port, method, target), json);
        if json {
            // etcd 3.6 added `reason` to /health and `storage` to /version; 3.4's keys are a
            // subset of ours, the rest is equal.
            let our_keys: Vec<&str> = ours.body.split(',').collect();
            for key in theirs.body.split(',') {
                assert!(
                    our_keys.contains(&key),
                    "{target}: {key} missing in {ours:?}"
                );
            }
            assert_eq!(
                (ours.status, &ours.content_type, &ours.cors_origin),
                (theirs.status, &theirs.content_type, &theirs.cors_origin),
                "{method} {target}"
            );
        } else {
            assert_eq!(ours, theirs, "{method} {target}");
        }
    }
    if !Path::new(ETCD36).exists() {
        eprintln!("note: {ETCD36} not found; the comparison with etcd 3.6 is skipped");
        return;
    }
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let etcd36_dir = dir.path().join("etcd36");
    std::fs::create_dir_all(&etcd36_dir).expect("etcd36 dir");
    let _etcd36 = Process::spawn(
        ETCD36,
        &[
            format!("--data-dir={}", etcd36_dir.join("data").display()),
            format!("--listen-client-urls={url}"),
            format!("--advertise-client-urls={url}"),
            format!("--listen-peer-urls=http://127.0.0.1:{}", free_port()),
        ],
        &etcd36_dir.join("server.log"),
    );
    for (method, target, json) in COMPARED {
        let ours = shape(&request(capstan.port, method, target), json);
        let theirs = shape(&request(port, method, target), json);
        assert_eq!(ours, theirs, "{method} {target} (etcd 3.6)");
    }
    for target in ["/livez", "/readyz", "/livez/serializable_read", "/v3"] {
        let ours = shape(&get(capstan.port, target), false);
        let theirs = shape(&get(port, target), false);
        assert_eq!(ours, theirs, "GET {target} (etcd 3.6)");
    }
}

#[test]
fn https_client_http_urls_offer_http1_only_and_the_client_urls_h2_only() {
    require_tool("etcdctl", "etcd-client");
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(dir.path());
    let (grpc_port, http_port) = (free_port(), free_port());
    let grpc_url = format!("https://127.0.0.1:{grpc_port}");
    let _server = Process::spawn(
        capstan_binary(),
        &[
            format!("--data-dir={}", dir.path().join("data").display()),
            format!("--listen-client-urls={grpc_url}"),
            format!("--advertise-client-urls={grpc_url}"),
            format!("--listen-client-http-urls=https://127.0.0.1:{http_port}"),
            format!("--cert-file={}", pki.server.cert.display()),
            format!("--key-file={}", pki.server.key.display()),
        ],
        &dir.path().join("server.log"),
    );
    let ca = pki.ca_pem.as_str();
    let (reply, negotiated) = https_health(http_port, ca, &[b"h2", b"http/1.1"]);
    assert_eq!(negotiated.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(reply.status, 200, "{reply:?}");
    let (_, negotiated) = tls_connect(grpc_port, ca, &[b"http/1.1", b"h2"]);
    assert_eq!(negotiated.as_deref(), Some(&b"h2"[..]));
    let output = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={grpc_url}"))
        .arg(format!("--cacert={}", pki.ca_file.display()))
        .args(["put", "split-tls", "v"])
        .output()
        .expect("run etcdctl");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
