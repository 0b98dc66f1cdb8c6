//! Certificates made in a test with rcgen: a CA, server and client certificates signed by it,
//! expired ones, and a rustls client to look at what a TLS port does.
//!
//! Included with `#[path = "common/certs.rs"] mod certs;` by the TLS tests only.
#![allow(dead_code)]

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// A certificate authority that issues certificates for a test.
pub struct Ca {
    certificate: rcgen::Certificate,
    key: rcgen::KeyPair,
}

/// A certificate and its key, as PEM.
#[derive(Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Paths of a written certificate and key.
#[derive(Clone)]
pub struct Files {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Ca {
    pub fn new(common_name: &str) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name = name(common_name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().expect("CA key");
        let certificate = params.self_signed(&key).expect("CA certificate");
        Ca { certificate, key }
    }

    pub fn pem(&self) -> String {
        self.certificate.pem()
    }

    /// A server certificate for 127.0.0.1 and localhost.
    pub fn server(&self, common_name: &str) -> Issued {
        self.issue(common_name, &["127.0.0.1", "localhost"], false, true)
    }

    /// A client certificate (no SANs, like kube-apiserver's etcd client certificate).
    pub fn client(&self, common_name: &str) -> Issued {
        self.issue(common_name, &[], false, false)
    }

    /// A client certificate that expired yesterday.
    pub fn expired_client(&self, common_name: &str) -> Issued {
        self.issue(common_name, &[], true, false)
    }

    /// A client certificate with the given SANs.
    pub fn client_with_sans(&self, common_name: &str, sans: &[&str]) -> Issued {
        self.issue(common_name, sans, false, false)
    }

    /// A client certificate with serial number `serial` (to be revoked by [`Ca::crl_pem`]).
    pub fn client_with_serial(&self, common_name: &str, serial: u64) -> Issued {
        self.issue_with(common_name, &[], false, false, Some(serial))
    }

    /// A CRL of this CA, as PEM, revoking the certificates with these serial numbers.
    pub fn crl_pem(&self, revoked_serials: &[u64]) -> String {
        let params = rcgen::CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2020, 1, 1),
            next_update: rcgen::date_time_ymd(2100, 1, 1),
            crl_number: rcgen::SerialNumber::from(vec![1]),
            issuing_distribution_point: None,
            revoked_certs: revoked_serials
                .iter()
                .map(|serial| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(serial.to_be_bytes().to_vec()),
                    revocation_time: rcgen::date_time_ymd(2020, 1, 1),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        params
            .signed_by(&self.certificate, &self.key)
            .expect("sign crl")
            .pem()
            .expect("crl pem")
    }

    fn issue(&self, common_name: &str, sans: &[&str], expired: bool, server: bool) -> Issued {
        self.issue_with(common_name, sans, expired, server, None)
    }

    fn issue_with(
        &self,
        common_name: &str,
        sans: &[&str],
        expired: bool,
        server: bool,
        serial: Option<u64>,
    ) -> Issued {
        let sans: Vec<String> = sans.iter().map(|san| san.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(sans).expect("params");
        params.distinguished_name = name(common_name);
        if let Some(serial) = serial {
            params.serial_number = Some(rcgen::SerialNumber::from(serial.to_be_bytes().to_vec()));
        }
        let now = SystemTime::now();
        if expired {
            params.not_before = (now - 30 * DAY).into();
            params.not_after = (now - DAY).into();
        } else {
            params.not_before = (now - DAY).into();
            params.not_after = (now + 365 * DAY).into();
        }
        params.extended_key_usages = if server {
            vec![
                rcgen::ExtendedKeyUsagePurpose::ServerAuth,
                rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            ]
        } else {
            vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth]
        };
        let key = rcgen::KeyPair::generate().expect("key");
        let certificate = params
            .signed_by(&key, &self.certificate, &self.key)
            .expect("sign");
        Issued {
            cert_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

fn name(common_name: &str) -> rcgen::DistinguishedName {
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::CommonName, common_name);
    name
}

impl Issued {
    /// Writes `<stem>.crt` and `<stem>.key` in `dir`.
    pub fn write(&self, dir: &Path, stem: &str) -> Files {
        let files = Files {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
        };
        std::fs::write(&files.cert, &self.cert_pem).expect("write cert");
        std::fs::write(&files.key, &self.key_pem).expect("write key");
        files
    }
}

/// Writes `pem` to `dir/<file>` and returns the path.
pub fn write_pem(dir: &Path, file: &str, pem: &str) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, pem).expect("write pem");
    path
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(capstan::tls::ring_provider())
}

/// A rustls client configuration trusting `ca_pem`, presenting `client` when given.
pub fn client_config(ca_pem: &str, client: Option<&Issued>) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(certificate.expect("CA pem")).expect("add root");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let mut config = match client {
        Some(issued) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .expect("client cert pem"),
                PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).expect("client key"),
            )
            .expect("client auth"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// What a TLS connection to a port came to.
#[derive(Debug)]
pub struct Probe {
    /// The CN of the certificate the server presented (when the handshake got that far).
    pub server_common_name: Option<String>,
    /// The negotiated ALPN protocol.
    pub alpn: Option<Vec<u8>>,
    /// Whether the server answered the HTTP/2 preface with bytes (its SETTINGS): the
    /// connection was accepted, client certificate included.
    pub served: bool,
    /// The error that ended it, if any.
    pub error: Option<String>,
}

/// Connects with TLS, sends the HTTP/2 preface and an empty SETTINGS frame, and reports
/// whether the server answered.
pub fn probe(port: u16, config: Arc<rustls::ClientConfig>) -> Probe {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let server_name = ServerName::try_from("127.0.0.1").expect("name");
    let mut connection = rustls::ClientConnection::new(config, server_name).expect("client");
    let mut probe = Probe {
        server_common_name: None,
        alpn: None,
        served: false,
        error: None,
    };
    while connection.is_handshaking() {
        if let Err(error) = connection.complete_io(&mut socket) {
            probe.error = Some(error.to_string());
            return probe;
        }
    }
    probe.server_common_name = connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(capstan::tls::common_name_of);
    probe.alpn = connection.alpn_protocol().map(<[u8]>::to_vec);
    let mut stream = rustls::Stream::new(&mut connection, &mut socket);
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    if let Err(error) = stream.write_all(preface) {
        probe.error = Some(error.to_string());
        return probe;
    }
    let mut buffer = [0u8; 64];
    match stream.read(&mut buffer) {
        Ok(0) => probe.error = Some("closed".into()),
        Ok(_) => probe.served = true,
        Err(error) => probe.error = Some(error.to_string()),
    }
    probe
}
