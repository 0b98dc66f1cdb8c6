//! TLS on the client port (issue #13): a real `capstan` with `https://` client URLs,
//! `--cert-file --key-file --trusted-ca-file --client-cert-auth`, certificates made here.
//!
//! - etcdctl 3.4 (Debian), etcdctl 3.6 (`target/tools/etcdctl36`, unpacked from
//!   `../shared/ref/install.sh` when missing; skipped with a note if it cannot be had) and the
//!   Rust `etcd-client` crate put and get over mutual TLS;
//! - no client certificate, one from another CA, an expired one, and plaintext are refused,
//!   and a good client is still served after each;
//! - garbage, a truncated ClientHello, HTTP/1.1 and plaintext HTTP/2 on the TLS port close only
//!   that connection;
//! - a rotated certificate is served to new connections without a restart;
//! - `http://` and `https://` client URLs can be mixed;
//! - the verified client certificate's CN reaches the request path;
//! - https without a certificate is refused at start-up with etcd's message;
//! - `--client-crl-file` refuses a revoked certificate, `--client-cert-allowed-hostname` one
//!   not valid for that name.

#[path = "common/certs.rs"]
mod certs;
mod common;

use certs::{Ca, Files, Issued};
use common::{capstan_binary, free_port, READY_LINE, READY_TIMEOUT};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A capstan process with TLS flags; killed and reaped on drop.
struct TlsServer {
    child: Child,
    port: u16,
    log_path: PathBuf,
}

impl TlsServer {
    /// Starts capstan with `listen` client URLs (`{port}` replaced by a free port) and `args`.
    fn start(dir: &Path, urls: &[&str], args: &[String], env: &[(&str, &str)]) -> TlsServer {
        let port = free_port();
        let urls: Vec<String> = urls
            .iter()
            .map(|url| url.replace("{port}", &port.to_string()))
            .collect();
        let log_path = dir.join("server.log");
        let log = std::fs::File::create(&log_path).expect("log");
        let log_err = log.try_clone().expect("log clone");
        let mut command = Command::new(capstan_binary());
        command
            .arg(format!("--data-dir={}", dir.join("data").display()))
            .arg(format!("--listen-client-urls={}", urls.join(",")))
            .arg(format!("--advertise-client-urls={}", urls[0]))
            .args(args)
            .env_remove("CAPSTAN_LOG")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("start capstan");
        let mut server = TlsServer {
            child,
            port,
            log_path,
        };
        server.wait_ready();
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if self.log().contains(READY_LINE) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("capstan exited with {status}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("capstan not ready; log:\n{}", self.log());
    }

    fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("capstan exited with {status}; log:\n{}", self.log());
        }
    }

    fn https(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The CA, server and client certificates of one test, written under `dir/certs`.
struct Pki {
    ca: Ca,
    ca_file: PathBuf,
    server: Files,
    alice: Issued,
    alice_files: Files,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let certs_dir = dir.join("certs");
        std::fs::create_dir_all(&certs_dir).expect("certs dir");
        let ca = Ca::new("capstan-test-ca");
        let ca_file = certs::write_pem(&certs_dir, "ca.crt", &ca.pem());
        let server = ca.server("server-1").write(&certs_dir, "server");
        let alice = ca.client("client-alice");
        let alice_files = alice.write(&certs_dir, "alice");
        Pki {
            ca,
            ca_file,
            server,
            alice,
            alice_files,
        }
    }

    fn server_args(&self) -> Vec<String> {
        vec![
            format!("--cert-file={}", self.server.cert.display()),
            format!("--key-file={}", self.server.key.display()),
            format!("--trusted-ca-file={}", self.ca_file.display()),
            "--client-cert-auth".to_string(),
        ]
    }

    fn etcdctl_flags(&self, client: &Files) -> Vec<String> {
        vec![
            format!("--cacert={}", self.ca_file.display()),
            format!("--cert={}", client.cert.display()),
            format!("--key={}", client.key.display()),
        ]
    }
}

fn run_etcdctl(program: &str, endpoint: &str, flags: &[String], args: &[&str]) -> Output {
    Command::new(program)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--dial-timeout=3s")
        .arg("--command-timeout=5s")
        .args(flags)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("run {program}: {error}"))
}

fn etcdctl_ok(program: &str, endpoint: &str, flags: &[String], args: &[&str]) -> String {
    let output = run_etcdctl(program, endpoint, flags, args);
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn put_get_with_good_client(server: &TlsServer, pki: &Pki, key: &str) {
    let flags = pki.etcdctl_flags(&pki.alice_files);
    etcdctl_ok("etcdctl", &server.https(), &flags, &["put", key, "good"]);
    let out = etcdctl_ok(
        "etcdctl",
        &server.https(),
        &flags,
        &["get", key, "--print-value-only"],
    );
    assert_eq!(out.trim(), "good");
}

#[test]
fn mutual_tls_clients_are_served_and_bad_ones_refused() {
    common::require_tool("etcdctl", "etcd-client");
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(dir.path());
    let mut server = TlsServer::start(
        dir.path(),
        &["https://127.0.0.1:{port}"],
        &pki.server_args(),
        &[("CAPSTAN_LOG", "info,capstan::grpc::routes=debug")],
    );
    let flags = pki.etcdctl_flags(&pki.alice_files);

    // etcdctl 3.4.
    etcdctl_ok("etcdctl", &server.https(), &flags, &["put", "k34", "v34"]);
    let out = etcdctl_ok(
        "etcdctl",
        &server.https(),
        &flags,
        &["get", "k34", "--print-value-only"],
    );
    assert_eq!(out.trim(), "v34");

    // etcdctl 3.6.
    match common::etcdctl36() {
        Some(program) => {
            etcdctl_ok(&program, &server.https(), &flags, &["put", "k36", "v36"]);
            let out = etcdctl_ok(
                &program,
                &server.https(),
                &flags,
                &["get", "k36", "--print-value-only"],
            );
            assert_eq!(out.trim(), "v36");
        }
        None => eprintln!("note: etcdctl36 not found (target/tools, PATH, ../shared/ref); skipped"),
    }

    // The Rust etcd-client crate.
    let runtime = common::tokio_runtime();
    runtime.block_on(async {
        let tls = etcd_client::TlsOptions::new()
            .ca_certificate(etcd_client::Certificate::from_pem(pki.ca.pem()))
            .identity(etcd_client::Identity::from_pem(
                pki.alice.cert_pem.clone(),
                pki.alice.key_pem.clone(),
            ));
        let options = etcd_client::ConnectOptions::new().with_tls(tls);
        let mut client = etcd_client::Client::connect([server.https()], Some(options))
            .await
            .expect("etcd-client connects over TLS");
        client.put("k-rust", "v-rust", None).await.expect("put");
        let got = client.get("k-rust", None).await.expect("get");
        assert_eq!(got.kvs()[0].value(), b"v-rust");
    });

    // The CN of the verified client certificate reached the request path.
    let log = server.log();
    assert!(
        log.lines()
            .any(|line| line.contains("verified client certificate")
                && line.contains("client-alice")),
        "no call logged with the client's CN; log:\n{log}"
    );

    // Refused: no client certificate, another CA's, an expired one, plaintext.
    let certs_dir = dir.path().join("certs");
    let other_ca = Ca::new("other-ca");
    let stranger = other_ca.client("client-stranger");
    let stranger_files = stranger.write(&certs_dir, "stranger");
    let expired = pki.ca.expired_client("client-expired");
    let expired_files = expired.write(&certs_dir, "expired");
    let cases: Vec<(&str, Vec<String>, String)> = vec![
        (
            "no client certificate",
            vec![format!("--cacert={}", pki.ca_file.display())],
            server.https(),
        ),
        (
            "another CA's certificate",
            pki.etcdctl_flags(&stranger_files),
            server.https(),
        ),
        (
            "an expired certificate",
            pki.etcdctl_flags(&expired_files),
            server.https(),
        ),
        (
            "plaintext",
            Vec::new(),
            format!("http://127.0.0.1:{}", server.port),
        ),
    ];
    for (what, case_flags, endpoint) in &cases {
        let output = run_etcdctl("etcdctl", endpoint, case_flags, &["put", "refused", what]);
        assert!(!output.status.success(), "etcdctl with {what} was served");
        server.assert_alive();
        put_get_with_good_client(&server, &pki, "after-refusal");
    }
    // The same refusals at the TLS level: the handshake (or the first read) fails.
    for (what, client) in [
        ("no client certificate", None),
        ("another CA's certificate", Some(&stranger)),
        ("an expired certificate", Some(&expired)),
    ] {
        let probe = certs::probe(server.port, certs::client_config(&pki.ca.pem(), client));
        assert!(!probe.served, "{what}: served: {probe:?}");
    }
    let good = certs::probe(
        server.port,
        certs::client_config(&pki.ca.pem(), Some(&pki.alice)),
    );
    assert!(good.served, "a good client is not served: {good:?}");
    assert_eq!(good.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(good.server_common_name.as_deref(), Some("server-1"));
    let refused = run_etcdctl("etcdctl", &server.https(), &flags, &["get", "refused"]);
    assert!(refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stdout).trim().is_empty(),
        "a refused put was applied"
    );
}

/// Sends `bytes` on a fresh connection to the TLS port, then waits until the server closes it
/// (or `patience` passes); returns what came back.
fn send_and_drain(port: u16, bytes: &[u8], half_close: bool) -> Vec<u8> {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let _ = socket.write_all(bytes);
    if half_close {
        let _ = socket.shutdown(std::net::Shutdown::Write);
    }
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match socket.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(count) => received.extend_from_slice(&buffer[..count]),
        }
    }
    received
}

#[test]
fn garbage_and_plaintext_on_the_tls_port_close_only_that_connection() {
    common::require_tool("etcdctl", "etcd-client");
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(dir.path());
    let mut server = TlsServer::start(
        dir.path(),
        &["https://127.0.0.1:{port}"],
        &pki.server_args(),
        &[],
    );
    // A ClientHello cut short: a real one's first bytes.
    let mut hello = Vec::new();
    {
        let config = certs::client_config(&pki.ca.pem(), Some(&pki.alice));
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
        let mut connection = rustls::ClientConnection::new(config, name).expect("client");
        connection.write_tls(&mut hello).expect("client hello");
    }
    assert!(hello.len() > 40);
    let h2_preface =
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00".to_vec();
    let inputs: Vec<(&str, Vec<u8>, bool)> = vec![
        (
            "garbage",
            (0..2048u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
            true,
        ),
        (
            "truncated ClientHello (half-closed)",
            hello[..hello.len() / 2].to_vec(),
            true,
        ),
        (
            "plain HTTP/1.1",
            b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            true,
        ),
        ("plaintext HTTP/2 (gRPC)", h2_preface, false),
        (
            "a TLS record header claiming 16 KiB",
            vec![0x16, 0x03, 0x01, 0x40, 0x00, 0x01],
            true,
        ),
    ];
    for (what, bytes, half_close) in &inputs {
        let received = send_and_drain(server.port, bytes, *half_close);
        // An HTTP/1.1 answer, or an HTTP/2 SETTINGS frame header (length < 64 KiB, type 4).
        let answered_in_plaintext = received.starts_with(b"HTTP/")
            || (received.len() >= 4 && received[0] == 0 && received[3] == 0x04);
        assert!(
            !answered_in_plaintext,
            "{what}: the TLS port answered in plaintext: {received:?}"
        );
        server.assert_alive();
        put_get_with_good_client(&server, &pki, "after-garbage");
    }
    // A truncated ClientHello left open: the handshake timeout closes it, and others are
    // served meanwhile.
    let mut stalled = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    stalled.write_all(&hello[..10]).expect("partial hello");
    put_get_with_good_client(&server, &pki, "while-stalled");
    drop(stalled);
    server.assert_alive();
}

#[test]
fn plaintext_urls_speak_plaintext_beside_tls_ones() {
    common::require_tool("etcdctl", "etcd-client");
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(dir.path());
    let plain_port = free_port();
    let plain = format!("http://127.0.0.1:{plain_port}");
    let server = TlsServer::start(
        dir.path(),
        &["https://127.0.0.1:{port}", &plain],
        &pki.server_args(),
        &[],
    );
    put_get_with_good_client(&server, &pki, "mixed");
    let out = etcdctl_ok(
        "etcdctl",
        &plain,
        &[],
        &["get", "mixed", "--print-value-only"],
    );
    assert_eq!(out.trim(), "good");
    etcdctl_ok("etcdctl", &plain, &[], &["put", "from-plain", "p"]);
    let flags = pki.etcdctl_flags(&pki.alice_files);
    let out = etcdctl_ok(
        "etcdctl",
        &server.https(),
        &flags,
        &["get", "from-plain", "--print-value-only"],
    );
    assert_eq!(out.trim(), "p");
    // etcd's warning: client-cert-auth does not apply to the http URL.
    assert!(
        server
            .log()
            .contains("ignoring client cert auth for this URL"),
        "{}",
        server.log()
    );
}

#[test]
fn a_rotated_certificate_is_served_to_new_connections_without_restart() {
    common::require_tool("etcdctl", "etcd-client");
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(dir.path());
    let mut server = TlsServer::start(
        dir.path(),
        &["https://127.0.0.1:{port}"],
        &pki.server_args(),
        &[],
    );
    // A fresh client configuration per probe: one shared would resume its TLS session, and a
    // resumed session shows the certificate of the session it resumes.
    let config = || certs::client_config(&pki.ca.pem(), Some(&pki.alice));
    assert_eq!(
        certs::probe(server.port, config())
            .server_common_name
            .as_deref(),
        Some("server-1")
    );
    // An etcd-client connection made before the rotation keeps working after it.
    let runtime = common::tokio_runtime();
    let mut client = runtime.block_on(async {
        let tls = etcd_client::TlsOptions::new()
            .ca_certificate(etcd_client::Certificate::from_pem(pki.ca.pem()))
            .identity(etcd_client::Identity::from_pem(
                pki.alice.cert_pem.clone(),
                pki.alice.key_pem.clone(),
            ));
        etcd_client::Client::connect(
            [server.https()],
            Some(etcd_client::ConnectOptions::new().with_tls(tls)),
        )
        .await
        .expect("connect")
    });
    let rotated = pki.ca.server("server-2");
    std::fs::write(&pki.server.key, &rotated.key_pem).expect("rotate key");
    std::fs::write(&pki.server.cert, &rotated.cert_pem).expect("rotate cert");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let probe = certs::probe(server.port, config());
        if probe.server_common_name.as_deref() == Some("server-2") {
            assert!(probe.served, "{probe:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rotated certificate is not served: {probe:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    runtime.block_on(async { client.put("old-connection", "ok", None).await.expect("put") });
    // A bad new file is not taken: the last good certificate stays in service.
    std::fs::write(
        &pki.server.cert,
        "-----BEGIN CERTIFICATE-----\nnot base64\n",
    )
    .expect("corrupt");
    std::thread::sleep(Duration::from_millis(1200));
    let probe = certs::probe(server.port, config());
    assert_eq!(
        probe.server_common_name.as_deref(),
        Some("server-2"),
        "{probe:?}"
    );
    assert!(probe.served);
    server.assert_alive();
    assert!(server
        .log()
        .contains("still serving the previous certificate"));
}

#[test]
fn https_without_a_certificate_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let output = Command::new(capstan_binary())
        .arg(format!("--data-dir={}", dir.path().join("data").display()))
        .arg(format!("--listen-client-urls={url}"))
        .arg(format!("--advertise-client-urls={url}"))
        .output()
        .expect("run capstan");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "TLS key/cert (--cert-file, --key-file) must be provided for client url {url} with HTTPS scheme"
        )),
        "{stderr}"
    );
    let output = Command::new(capstan_binary())
        .arg(format!("--data-dir={}", dir.path().join("data").display()))
        .arg("--cipher-suites=TLS_RSA_WITH_RC4_128_SHA")
        .output()
        .expect("run capstan");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("TLS_RSA_WITH_RC4_128_SHA"));
}

#[test]
fn auto_tls_serves_a_self_signed_certificate_under_the_data_dir() {
    common::require_tool("etcdctl", "etcd-client");
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TlsServer::start(
        dir.path(),
        &["https://127.0.0.1:{port}"],
        &["--auto-tls".to_string()],
        &[],
    );
    let fixtures = dir.path().join("data").join("fixtures").join("client");
    assert!(fixtures.join("cert.pem").exists() && fixtures.join("key.pem").exists());
    let ca_pem = std::fs::read_to_string(fixtures.join("cert.pem")).expect("self-signed cert");
    let probe = certs::probe(server.port, certs::client_config(&ca_pem, None));
    assert!(
        probe.served,
        "the self-signed certificate does not verify for 127.0.0.1: {probe:?}"
    );
    etcdctl_ok(
        "etcdctl",
        &server.https(),
        &[
            // etcdctl 3.4 speaks plaintext to an https endpoint without TLS flags unless
            // told otherwise.
            "--insecure-transport=false".to_string(),
            "--insecure-skip-tls-verify".to_string(),
        ],
        &["put", "auto", "tls"],
    );
}

/// `--client-crl-file` keeps out a certificate of the trusted CA whose serial it revokes, and
/// `--client-cert-allowed-hostname` one that is not valid for the allowed name; in both cases
/// an acceptable client is still served.
#[test]
fn crl_and_allowed_hostname_refuse_certificates_of_the_trusted_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(dir.path());
    let certs_dir = dir.path().join("certs");
    const REVOKED_SERIAL: u64 = 0x5eed_0001;
    let revoked = pki.ca.client_with_serial("client-revoked", REVOKED_SERIAL);
    let crl_file = certs::write_pem(&certs_dir, "ca.crl", &pki.ca.crl_pem(&[REVOKED_SERIAL]));
    let mut args = pki.server_args();
    args.push(format!("--client-crl-file={}", crl_file.display()));
    let mut server = TlsServer::start(dir.path(), &["https://127.0.0.1:{port}"], &args, &[]);
    let probe = certs::probe(
        server.port,
        certs::client_config(&pki.ca.pem(), Some(&revoked)),
    );
    assert!(!probe.served, "a revoked certificate was served: {probe:?}");
    server.assert_alive();
    let good = certs::probe(
        server.port,
        certs::client_config(&pki.ca.pem(), Some(&pki.alice)),
    );
    assert!(
        good.served,
        "a certificate the CRL does not name was refused: {good:?}"
    );
    drop(server);

    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(dir.path());
    let mut args = pki.server_args();
    args.push("--client-cert-allowed-hostname=client.allowed.example".to_string());
    let mut server = TlsServer::start(dir.path(), &["https://127.0.0.1:{port}"], &args, &[]);
    let allowed = pki
        .ca
        .client_with_sans("client-allowed", &["client.allowed.example"]);
    let other = pki
        .ca
        .client_with_sans("client-other", &["client.other.example"]);
    let refused = certs::probe(
        server.port,
        certs::client_config(&pki.ca.pem(), Some(&other)),
    );
    assert!(
        !refused.served,
        "a certificate for another host name was served: {refused:?}"
    );
    let no_san = certs::probe(
        server.port,
        certs::client_config(&pki.ca.pem(), Some(&pki.alice)),
    );
    assert!(
        !no_san.served,
        "a certificate without the allowed name was served: {no_san:?}"
    );
    server.assert_alive();
    let served = certs::probe(
        server.port,
        certs::client_config(&pki.ca.pem(), Some(&allowed)),
    );
    assert!(
        served.served,
        "the allowed host name was refused: {served:?}"
    );
}
