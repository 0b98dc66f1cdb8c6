//! Peer TLS end to end: real capstan processes started with kubeadm's command-line shape
//! (https client and peer urls, mutual TLS on both), certificates made here with rcgen.
//!
//! - a 3-member cluster replicates over peer mTLS; etcdctl 3.4 and 3.6 talk to it over client
//!   mTLS;
//! - strangers on the peer port (plaintext, TLS without a certificate, a certificate from
//!   another CA, garbage, a truncated TLS hello) are closed and the cluster keeps working;
//! - `--peer-cert-allowed-cn` keeps out a member whose certificate has another CN;
//! - a member added with `member add` joins over peer TLS (its cluster query speaks TLS);
//! - `--peer-auto-tls` members talk over self-signed certificates.
//!
//! Member i listens on 127.0.0.(i+1). On loopback every connection comes FROM 127.0.0.1
//! (the kernel's source address for 127/8), so each member's certificate also names
//! 127.0.0.1: etcd's client-SAN check, which capstan applies too, compares the connecting
//! member's certificate with its source address (kubeadm's node IP in production).

mod cluster;
mod common;

use cluster::serial;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const READY_LINE: &str = "ready to serve client requests";
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const PATIENCE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------------

/// A CA that signs member and client certificates into a directory.
struct Authority {
    certificate: rcgen::Certificate,
    key: rcgen::KeyPair,
    dir: PathBuf,
    name: String,
}

/// A certificate and key on disk.
#[derive(Clone)]
struct Pair {
    cert: PathBuf,
    key: PathBuf,
}

impl Authority {
    fn new(dir: &Path, name: &str) -> Authority {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} CA"));
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().expect("ca key");
        let certificate = params.self_signed(&key).expect("ca cert");
        std::fs::write(dir.join(format!("{name}-ca.crt")), certificate.pem()).expect("write ca");
        Authority {
            certificate,
            key,
            dir: dir.to_path_buf(),
            name: name.to_string(),
        }
    }

    /// A CRL of this CA revoking `serial`, written to a file; its path.
    fn revoke(&self, serial: u64) -> PathBuf {
        let params = rcgen::CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2020, 1, 1),
            next_update: rcgen::date_time_ymd(2100, 1, 1),
            crl_number: rcgen::SerialNumber::from(vec![1]),
            issuing_distribution_point: None,
            revoked_certs: vec![rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from(serial.to_be_bytes().to_vec()),
                revocation_time: rcgen::date_time_ymd(2020, 1, 1),
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            }],
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let crl = params
            .signed_by(&self.certificate, &self.key)
            .expect("sign crl");
        let path = self.dir.join(format!("{}.crl", self.name));
        std::fs::write(&path, crl.pem().expect("crl pem")).expect("write crl");
        path
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.join(format!("{}-ca.crt", self.name))
    }

    /// A certificate for both server and client use, with `common_name` and `names` (IPs or
    /// DNS names) as SANs.
    fn issue(&self, file_stem: &str, common_name: &str, names: &[&str]) -> Pair {
        self.issue_with_serial(file_stem, common_name, names, None)
    }

    /// [`issue`](Self::issue) with a chosen serial number (to revoke it later).
    fn issue_with_serial(
        &self,
        file_stem: &str,
        common_name: &str,
        names: &[&str],
        serial: Option<u64>,
    ) -> Pair {
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).expect("params");
        params.serial_number =
            serial.map(|serial| rcgen::SerialNumber::from(serial.to_be_bytes().to_vec()));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
        ];
        let key = rcgen::KeyPair::generate().expect("key");
        let certificate = params
            .signed_by(&key, &self.certificate, &self.key)
            .expect("sign");
        let pair = Pair {
            cert: self.dir.join(format!("{}-{file_stem}.crt", self.name)),
            key: self.dir.join(format!("{}-{file_stem}.key", self.name)),
        };
        std::fs::write(&pair.cert, certificate.pem()).expect("write cert");
        std::fs::write(&pair.key, key.serialize_pem()).expect("write key");
        pair
    }
}

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

/// One capstan process; killed (and reaped) when dropped.
struct Member {
    name: String,
    ip: String,
    client_port: u16,
    peer_port: u16,
    log_path: PathBuf,
    child: Option<Child>,
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Member {
    fn peer_url(&self) -> String {
        format!("https://{}:{}", self.ip, self.peer_port)
    }

    fn client_url(&self) -> String {
        format!("https://{}:{}", self.ip, self.client_port)
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
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("{} exited with {status}; log:\n{}", self.name, self.log());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} not ready; log:\n{}", self.name, self.log());
    }
}

/// A port free on `ip` now and never handed out before by this process: the kernel may give
/// the same ephemeral port to two probes in a row, and a member's peer and metrics ports must
/// differ.
fn free_port(ip: &str) -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let listener = TcpListener::bind((ip, 0)).expect("probe bind");
        let port = listener.local_addr().expect("probe address").port();
        let mut given = GIVEN
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// The files and addresses of a test cluster.
struct Setup {
    dir: tempfile::TempDir,
    ca: Authority,
    /// etcdctl's client certificate.
    client: Pair,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = Authority::new(dir.path(), "etcd");
        let client = ca.issue("etcdctl", "root", &["127.0.0.1", "localhost"]);
        Setup { dir, ca, client }
    }

    /// Member `index` (listening on 127.0.0.(index+1)), not started.
    fn member(&self, index: usize) -> Member {
        let name = format!("n{}", index + 1);
        let ip = format!("127.0.0.{}", index + 1);
        Member {
            client_port: free_port(&ip),
            peer_port: free_port(&ip),
            log_path: self.dir.path().join(format!("{name}.log")),
            name,
            ip,
            child: None,
        }
    }

    /// A member's server/peer certificate: CN `common_name`, SANs its IP, 127.0.0.1 and
    /// localhost (as kubeadm's name the node's IP, hostname and localhost).
    fn member_pair(&self, member: &Member, common_name: &str) -> Pair {
        self.ca.issue(
            &member.name,
            common_name,
            &[&member.ip, "127.0.0.1", "localhost"],
        )
    }

    /// kubeadm's command line (ETCD_FACTS §2.2) for `member`, with `pair` as both its client
    /// and peer certificate, plus `extra` flags. Its metrics url is on the member's own IP
    /// (kubeadm: 127.0.0.1:2381 on each node).
    fn kubeadm_args(
        &self,
        member: &Member,
        pair: &Pair,
        initial_cluster: &str,
        extra: &[String],
    ) -> Vec<String> {
        let ca = self.ca.ca_file().display().to_string();
        let data_dir = self.dir.path().join(format!("{}.data", member.name));
        let mut args = vec![
            format!("--name={}", member.name),
            "--feature-gates=InitialCorruptCheck=true".to_string(),
            format!(
                "--listen-client-urls=https://127.0.0.1:{},{}",
                free_port("127.0.0.1"),
                member.client_url()
            ),
            format!("--advertise-client-urls={}", member.client_url()),
            format!("--listen-peer-urls={}", member.peer_url()),
            format!("--initial-advertise-peer-urls={}", member.peer_url()),
            format!("--data-dir={}", data_dir.display()),
            format!("--cert-file={}", pair.cert.display()),
            format!("--key-file={}", pair.key.display()),
            format!("--trusted-ca-file={ca}"),
            "--client-cert-auth=true".to_string(),
            format!("--peer-cert-file={}", pair.cert.display()),
            format!("--peer-key-file={}", pair.key.display()),
            format!("--peer-trusted-ca-file={ca}"),
            "--peer-client-cert-auth=true".to_string(),
            "--snapshot-count=10000".to_string(),
            format!(
                "--listen-metrics-urls=http://{}:{}",
                member.ip,
                free_port(&member.ip)
            ),
            "--watch-progress-notify-interval=5s".to_string(),
            format!("--initial-cluster={initial_cluster}"),
            "--shards=1".to_string(),
        ];
        args.extend(extra.iter().cloned());
        args
    }

    /// Kills `member` and starts it again with the command line it ran with (read from
    /// `/proc`), then waits for its ready line.
    fn relaunch(&self, member: &mut Member) {
        let mut child = member.child.take().expect("running");
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.id())).expect("cmdline");
        let args: Vec<String> = cmdline
            .split(|byte| *byte == 0)
            .filter(|arg| !arg.is_empty())
            .skip(1)
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect();
        let _ = child.kill();
        let _ = child.wait();
        self.launch(member, &args);
        member.wait_ready();
    }

    fn launch(&self, member: &mut Member, args: &[String]) {
        let log = std::fs::File::create(&member.log_path).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_capstan"))
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn capstan");
        member.child = Some(child);
    }

    /// Starts `count` members with kubeadm's flags; `extra(i)` adds flags and `common_name(i)`
    /// names member i's certificate. Waits for the members in `wait`.
    fn start(
        &self,
        count: usize,
        common_name: impl Fn(usize) -> String,
        extra: impl Fn(usize) -> Vec<String>,
        wait: &[usize],
    ) -> Vec<Member> {
        self.start_with_serials(count, common_name, |_| None, extra, wait)
    }

    /// [`start`](Self::start), member i's certificate with serial `serial(i)` when given.
    fn start_with_serials(
        &self,
        count: usize,
        common_name: impl Fn(usize) -> String,
        serial: impl Fn(usize) -> Option<u64>,
        extra: impl Fn(usize) -> Vec<String>,
        wait: &[usize],
    ) -> Vec<Member> {
        let mut members: Vec<Member> = (0..count).map(|i| self.member(i)).collect();
        let initial_cluster = initial_cluster(&members);
        for (i, member) in members.iter_mut().enumerate() {
            let pair = self.ca.issue_with_serial(
                &member.name,
                &common_name(i),
                &[&member.ip, "127.0.0.1", "localhost"],
                serial(i),
            );
            let args = self.kubeadm_args(member, &pair, &initial_cluster, &extra(i));
            self.launch(member, &args);
        }
        for &i in wait {
            members[i].wait_ready();
        }
        members
    }

    /// etcdctl 3.4 over client mTLS against `endpoints`.
    fn etcdctl(&self, endpoints: &[&Member], args: &[&str]) -> Output {
        self.etcdctl_program("etcdctl", endpoints, args)
    }

    /// `program` (etcdctl 3.4 or 3.6) over client mTLS against `endpoints`.
    fn etcdctl_program(&self, program: &str, endpoints: &[&Member], args: &[&str]) -> Output {
        let endpoints: Vec<String> = endpoints.iter().map(|member| member.client_url()).collect();
        Command::new(program)
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", endpoints.join(",")))
            .arg(format!("--cacert={}", self.ca.ca_file().display()))
            .arg(format!("--cert={}", self.client.cert.display()))
            .arg(format!("--key={}", self.client.key.display()))
            .arg("--dial-timeout=2s")
            .arg("--command-timeout=5s")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run etcdctl")
    }

    /// Runs etcdctl until it succeeds (a member may still be electing); its stdout.
    fn etcdctl_ok(&self, endpoints: &[&Member], args: &[&str]) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let output = self.etcdctl(endpoints, args);
            if output.status.success() {
                return String::from_utf8_lossy(&output.stdout).into_owned();
            }
            assert!(
                Instant::now() < deadline,
                "etcdctl {args:?} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Puts `key` through `writer`, then reads it back from every member of `readers`.
    fn put_and_read_everywhere(
        &self,
        writer: &Member,
        readers: &[&Member],
        key: &str,
        value: &str,
    ) {
        self.etcdctl_ok(&[writer], &["put", key, value]);
        for reader in readers {
            let text = self.etcdctl_ok(&[reader], &["get", key]);
            assert_eq!(
                text.lines().collect::<Vec<_>>(),
                vec![key, value],
                "{} answered {text:?}",
                reader.name
            );
        }
    }
}

fn initial_cluster(members: &[Member]) -> String {
    members
        .iter()
        .map(|member| format!("{}={}", member.name, member.peer_url()))
        .collect::<Vec<_>>()
        .join(",")
}

fn require_etcdctl() {
    let found = Command::new("etcdctl")
        .arg("version")
        .env("ETCDCTL_API", "3")
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(found, "etcdctl is needed: apt-get install etcd-client");
}

fn wait_for_log(member: &Member, text: &str) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if member.log().contains(text) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

// ---------------------------------------------------------------------------------------------
// Strangers
// ---------------------------------------------------------------------------------------------

/// A rustls client configuration trusting `ca_file`, presenting `pair` if given.
fn client_config(ca_file: &Path, pair: Option<&Pair>) -> Arc<rustls::ClientConfig> {
    // The same provider the server uses (`tls::crypto_policy`): ring only.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca_file).expect("read ca");
    for certificate in rustls_pemfile_certs(&pem) {
        roots.add(certificate).expect("add root");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match pair {
        None => builder.with_no_client_auth(),
        Some(pair) => {
            let certs = rustls_pemfile_certs(&std::fs::read(&pair.cert).expect("cert"));
            let key = {
                use rustls::pki_types::pem::PemObject;
                rustls::pki_types::PrivateKeyDer::from_pem_file(&pair.key).expect("key")
            };
            builder
                .with_client_auth_cert(certs, key)
                .expect("client auth")
        }
    };
    Arc::new(config)
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .expect("certificates")
}

/// What became of a connection a stranger opened to a peer port.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The far end closed it (EOF, reset, or a TLS alert).
    Closed,
    /// Still open after the wait: the stranger was let in.
    StillOpen,
}

/// Reads until the far end closes `stream` (EOF, reset, TLS alert), or its read timeout
/// ([`PATIENCE`]) passes. A TLS alert sent before closing is read and skipped.
fn outcome_of(mut stream: impl Read) -> Outcome {
    let mut buffer = [0u8; 256];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return Outcome::Closed,
            Ok(_) => continue,
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Outcome::StillOpen
            }
            Err(_) => return Outcome::Closed,
        }
    }
}

/// A TCP connection to `address` with a read timeout (so a stranger let in is noticed).
fn tcp(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&address, Duration::from_secs(2)).expect("connect");
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("read timeout");
    stream
}

/// The 32-byte peer handshake (see `src/peer/mod.rs`) of a would-be member.
fn handshake(cluster_id: u64, from_id: u64, to_id: u64) -> Vec<u8> {
    let mut bytes = b"CPRT".to_vec();
    bytes.extend_from_slice(&1u16.to_be_bytes());
    bytes.extend_from_slice(&0u16.to_be_bytes());
    bytes.extend_from_slice(&cluster_id.to_be_bytes());
    bytes.extend_from_slice(&from_id.to_be_bytes());
    bytes.extend_from_slice(&to_id.to_be_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 3, 1, 2, 3]);
    bytes
}

/// Connects over TLS with `config` and sends a handshake: the connection must be closed.
fn tls_stranger(address: SocketAddr, host: &str, config: Arc<rustls::ClientConfig>) -> Outcome {
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).expect("name");
    let connection = rustls::ClientConnection::new(config, name).expect("connection");
    let mut stream = rustls::StreamOwned::new(connection, tcp(address));
    // The handshake happens on this write; the server's refusal shows on the read.
    if stream.write_all(&handshake(1, 0x5742, 1)).is_err() {
        return Outcome::Closed;
    }
    outcome_of(stream)
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn kubeadm_command_line_cluster_replicates_over_peer_mtls() {
    let _serial = serial();
    require_etcdctl();
    let setup = Setup::new();
    let members = setup.start(3, |i| format!("n{}", i + 1), |_| Vec::new(), &[0, 1, 2]);
    let readers: Vec<&Member> = members.iter().collect();
    for round in 0..3 {
        let writer = &members[round % 3];
        setup.put_and_read_everywhere(
            writer,
            &readers,
            &format!("/k{round}"),
            &format!("v{round}"),
        );
    }
    for member in &members {
        let log = member.log();
        assert!(
            log.contains("accepted peer connection") && log.contains("\"tls\":true"),
            "{} has no TLS peer connection; log:\n{log}",
            member.name
        );
        assert!(!log.contains("closing peer connection"), "{log}");
    }
    // etcdctl 3.6 with --cacert --cert --key too.
    match common::etcdctl36() {
        Some(program) => {
            let put = setup.etcdctl_program(&program, &readers, &["put", "/k36", "v36"]);
            assert!(put.status.success(), "etcdctl 3.6 put: {put:?}");
            for reader in &readers {
                let got = setup.etcdctl_program(
                    &program,
                    &[reader],
                    &["get", "/k36", "--print-value-only"],
                );
                assert!(got.status.success(), "etcdctl 3.6 get: {got:?}");
                assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "v36");
            }
        }
        None => eprintln!("note: etcdctl36 not found (target/tools, PATH, ../shared/ref); skipped"),
    }
    // The status every member reports agrees on one leader.
    let status = setup.etcdctl_ok(&readers, &["endpoint", "status", "-w", "json"]);
    assert_eq!(status.matches("\"leader\":").count(), 3, "{status}");
    // kubeadm's probes have their listener.
    for member in &members {
        let log = member.log();
        assert!(
            log.contains("listening for metrics and health probes"),
            "{log}"
        );
    }

    // Restarted, a member compares its hash with both others, asked over peer mTLS.
    let mut members = members;
    setup.relaunch(&mut members[0]);
    let log = members[0].log();
    assert!(
        log.contains("initial corruption checking passed; no corruption")
            && log.contains("\"peers-compared\":2"),
        "{log}"
    );
    assert!(!log.contains("failed hash kv request"), "{log}");
    let readers: Vec<&Member> = members.iter().collect();
    setup.put_and_read_everywhere(&members[0], &readers, "/after-restart", "4");
}

#[test]
fn strangers_on_the_peer_port_are_closed_and_the_cluster_keeps_working() {
    let _serial = serial();
    require_etcdctl();
    let setup = Setup::new();
    let members = setup.start(3, |i| format!("n{}", i + 1), |_| Vec::new(), &[0, 1, 2]);
    let readers: Vec<&Member> = members.iter().collect();
    setup.put_and_read_everywhere(&members[0], &readers, "/before", "1");

    let target = &members[0];
    let address: SocketAddr = format!("{}:{}", target.ip, target.peer_port)
        .parse()
        .expect("address");
    let ca = setup.ca.ca_file();

    // Plaintext: a well-formed capstan handshake without TLS.
    let mut plain = tcp(address);
    plain.write_all(&handshake(1, 0x5742, 1)).expect("write");
    assert_eq!(outcome_of(plain), Outcome::Closed, "plaintext");

    // TLS without a client certificate.
    assert_eq!(
        tls_stranger(address, &target.ip, client_config(&ca, None)),
        Outcome::Closed,
        "no certificate"
    );

    // TLS with a certificate from another CA (that names the right addresses).
    let other = Authority::new(setup.dir.path(), "other");
    let foreign = other.issue("n9", "n9", &["127.0.0.9", "127.0.0.1", "localhost"]);
    assert_eq!(
        tls_stranger(address, &target.ip, client_config(&ca, Some(&foreign))),
        Outcome::Closed,
        "certificate from another CA"
    );

    // Garbage, and a TLS hello cut short.
    let mut garbage = tcp(address);
    garbage
        .write_all(b"GET /members HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    assert_eq!(outcome_of(garbage), Outcome::Closed, "garbage");
    let mut truncated = tcp(address);
    truncated
        .write_all(&[0x16, 0x03, 0x01, 0x02])
        .expect("write");
    drop(truncated);

    // Nobody crashed, the members still replicate, and the refusals were logged once each
    // at most (rate-limited), with their reasons.
    for member in &members {
        let pid = member.child.as_ref().map(Child::id);
        assert!(pid.is_some(), "{} is gone", member.name);
    }
    setup.put_and_read_everywhere(&members[0], &readers, "/after", "2");
    let log = target.log();
    assert!(log.contains("closing peer connection"), "{log}");
    assert!(
        log.matches("closing peer connection").count() <= 5,
        "refusals flood the log:\n{log}"
    );
}

#[test]
fn peer_cert_allowed_cn_keeps_out_a_member_with_another_cn() {
    let _serial = serial();
    require_etcdctl();
    let setup = Setup::new();
    // n1 and n2 are "etcd-peer"; n3 is signed by the same CA but named "intruder". Every member
    // allows "etcd-peer" or "other" (etcd 3.6 takes a comma-separated list).
    let members = setup.start(
        3,
        |i| if i == 2 { "intruder" } else { "etcd-peer" }.to_string(),
        |_| vec!["--peer-cert-allowed-cn=etcd-peer,other".to_string()],
        &[0, 1],
    );
    setup.put_and_read_everywhere(&members[0], &[&members[0], &members[1]], "/k", "v");
    assert!(
        wait_for_log(&members[0], "is not one of --peer-cert-allowed-cn"),
        "n1 did not refuse the intruder; log:\n{}",
        members[0].log()
    );
    // The intruder never got anything: it cannot serve a linearizable read.
    let output = setup.etcdctl(&[&members[2]], &["get", "/k"]);
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("/k"),
        "the intruder has the data"
    );
}

#[test]
fn member_added_with_member_add_joins_over_peer_tls() {
    let _serial = serial();
    require_etcdctl();
    let setup = Setup::new();
    let mut members = setup.start(3, |i| format!("n{}", i + 1), |_| Vec::new(), &[0, 1, 2]);
    setup.put_and_read_everywhere(
        &members[0],
        &members.iter().collect::<Vec<_>>(),
        "/before-join",
        "1",
    );
    let mut joiner = setup.member(3);
    let added = setup.etcdctl_ok(
        &[&members[0]],
        &[
            "member",
            "add",
            &joiner.name,
            &format!("--peer-urls={}", joiner.peer_url()),
        ],
    );
    assert!(added.contains("added"), "{added}");
    let mut everyone: Vec<&Member> = members.iter().collect();
    everyone.push(&joiner);
    let initial = initial_cluster_of(&everyone);
    let pair = setup.member_pair(&joiner, &joiner.name.clone());
    let args = setup.kubeadm_args(
        &joiner,
        &pair,
        &initial,
        &["--initial-cluster-state=existing".to_string()],
    );
    setup.launch(&mut joiner, &args);
    joiner.wait_ready();
    assert!(
        joiner.log().contains("joining an existing cluster"),
        "{}",
        joiner.log()
    );
    let text = setup.etcdctl_ok(&[&joiner], &["get", "/before-join"]);
    assert_eq!(text.lines().collect::<Vec<_>>(), vec!["/before-join", "1"]);
    members.push(joiner);
    let readers: Vec<&Member> = members.iter().collect();
    setup.put_and_read_everywhere(&members[3], &readers, "/after-join", "2");
    let list = setup.etcdctl_ok(&[&members[0]], &["member", "list"]);
    assert!(list.matches("https://127.0.0.").count() >= 4, "{list}");
}

fn initial_cluster_of(members: &[&Member]) -> String {
    members
        .iter()
        .map(|member| format!("{}={}", member.name, member.peer_url()))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn peer_auto_tls_members_talk_over_self_signed_certificates() {
    let _serial = serial();
    require_etcdctl();
    let setup = Setup::new();
    let mut members: Vec<Member> = (0..3).map(|i| setup.member(i)).collect();
    let initial = initial_cluster(&members);
    for member in members.iter_mut() {
        let data_dir = setup.dir.path().join(format!("{}.data", member.name));
        let client = format!("http://{}:{}", member.ip, member.client_port);
        let args = vec![
            format!("--name={}", member.name),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={}", member.peer_url()),
            format!("--initial-advertise-peer-urls={}", member.peer_url()),
            format!("--initial-cluster={initial}"),
            format!("--data-dir={}", data_dir.display()),
            "--peer-auto-tls".to_string(),
            "--shards=1".to_string(),
        ];
        setup.launch(member, &args);
    }
    for member in members.iter_mut() {
        member.wait_ready();
    }
    for member in &members {
        let fixture = setup
            .dir
            .path()
            .join(format!("{}.data", member.name))
            .join("fixtures/peer/cert.pem");
        assert!(fixture.exists(), "{} has no self-signed cert", member.name);
        assert!(member.log().contains("\"tls\":true"), "{}", member.log());
    }
    // Plain client urls: put through n1, read from n3.
    let run = |member: &Member, args: &[&str]| -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let output = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .arg(format!(
                    "--endpoints=http://{}:{}",
                    member.ip, member.client_port
                ))
                .arg("--command-timeout=5s")
                .args(args)
                .output()
                .expect("etcdctl");
            if output.status.success() {
                return String::from_utf8_lossy(&output.stdout).into_owned();
            }
            assert!(Instant::now() < deadline, "{output:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    run(&members[0], &["put", "/auto", "tls"]);
    assert_eq!(
        run(&members[2], &["get", "/auto"])
            .lines()
            .collect::<Vec<_>>(),
        vec!["/auto", "tls"]
    );
}

#[test]
fn peer_crl_file_keeps_out_a_revoked_member() {
    let _serial = serial();
    require_etcdctl();
    let setup = Setup::new();
    const REVOKED: u64 = 0x0bad_5e41;
    let crl = setup.ca.revoke(REVOKED);
    let members = setup.start_with_serials(
        3,
        |i| format!("n{}", i + 1),
        |i| (i == 2).then_some(REVOKED),
        |_| vec![format!("--peer-crl-file={}", crl.display())],
        &[0, 1],
    );
    setup.put_and_read_everywhere(&members[0], &[&members[0], &members[1]], "/k", "v");
    assert!(
        wait_for_log(&members[0], "Revoked"),
        "n1 did not refuse the revoked member; log:\n{}",
        members[0].log()
    );
    let output = setup.etcdctl(&[&members[2]], &["get", "/k"]);
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("/k"),
        "the revoked member has the data"
    );
}
