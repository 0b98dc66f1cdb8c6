//! TLS between members: the peer port of an `https://` `--listen-peer-urls`, and connections to
//! members whose peer url is `https://`. The rustls configurations come from [`crate::tls`]
//! (`--peer-cert-file`, `--peer-trusted-ca-file`, `--peer-crl-file`, ...); this module adds
//! what is peer-specific, as etcd does it (`client/pkg/transport/listener.go`,
//! `listener_tls.go`, `server/embed/config.go`):
//!
//! - **Handshake off the accept loop**: each connection's TLS handshake runs in its own task,
//!   bounded by [`TLS_HANDSHAKE_TIMEOUT`] (etcd's `tlsHandshakeTimeout`).
//! - **Client SAN check** (etcd's `checkSAN`): the certificate a connecting member presents
//!   must name the address it connects from — an IP SAN equal to it, or a DNS SAN resolving to
//!   it; a certificate with no IP or DNS SAN passes. `--peer-skip-client-san-verification`
//!   turns this off.
//! - **Allowed names**: `--peer-cert-allowed-cn` (a comma-separated list: the certificate's CN
//!   must be one of them) or `--peer-cert-allowed-hostname` (the certificate must be valid for
//!   one of the names). etcd installs these as `VerifyPeerCertificate` on the configuration
//!   both sides share, so they apply to the certificates of members we connect to as well as
//!   to those connecting to us; so here.
//! - **Outbound server verification**: the peer's certificate is verified against the CA and
//!   the host of its peer url (IP or DNS name), as Go's HTTP client does for etcd's rafthttp;
//!   the client certificate is `--peer-client-cert-file` or else `--peer-cert-file`.
//! - **`--peer-auto-tls`** without certificate files: a self-signed certificate in
//!   `<data-dir>/fixtures/peer` for the hosts of `--listen-peer-urls`; etcd then replaces the
//!   whole peer TLS setting, so no client certificate is asked for and members do not verify
//!   each other's certificates (encrypted, not authenticated).

use super::stream::PeerStream;
use crate::config::{SecurityConfig, TransportSecurity};
use crate::tls::{AllowedNames, NotAllowed};
use futures_rustls::{TlsAcceptor, TlsConnector};
use glommio::net::TcpStream;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long a TLS handshake on the peer port may take (etcd's `tlsHandshakeTimeout`).
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the TLS handshake of an outbound peer connection may take.
pub const TLS_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a TLS peer connection was refused.
#[derive(Debug, thiserror::Error)]
pub enum PeerTlsError {
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    #[error("no TLS handshake within {0:?}")]
    Timeout(Duration),
    #[error("client certificate is not valid for its address {remote}: {reason}")]
    ClientSan { remote: IpAddr, reason: String },
    #[error("certificate not allowed: {0}")]
    NotAllowed(String),
    #[error("peer url is https but this member has no peer TLS settings (--peer-trusted-ca-file, --peer-auto-tls)")]
    NoClientConfig,
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
}

impl From<PeerTlsError> for std::io::Error {
    fn from(error: PeerTlsError) -> std::io::Error {
        std::io::Error::other(error.to_string())
    }
}

/// Which verified certificates a member accepts beyond its CA (etcd's `AllowedCNs` /
/// `AllowedHostnames`; at most one of the two lists is non-empty).
/// etcd's allowed names of the peer side, applied to the certificate of every peer, inbound
/// and outbound; the refusal as the peer transport words it.
fn check_allowed(
    allowed: &AllowedNames,
    end_entity: &CertificateDer<'_>,
) -> Result<(), PeerTlsError> {
    allowed.check(end_entity).map_err(|refusal| {
        PeerTlsError::NotAllowed(match refusal {
            NotAllowed::CommonName(common_name) => format!(
                "CN {common_name:?} is not one of --peer-cert-allowed-cn {:?}",
                allowed.common_names
            ),
            NotAllowed::Hostname => format!(
                "not valid for any of --peer-cert-allowed-hostname {:?}",
                allowed.hostnames
            ),
            NotAllowed::BadEncoding(reason) => reason,
        })
    })
}

/// The peer side's TLS, ready to use: cheap to clone, shared by the accept loop and the
/// sender tasks.
#[derive(Clone, Default)]
pub struct PeerTls {
    /// Present when `--listen-peer-urls` is https.
    acceptor: Option<TlsAcceptor>,
    /// Present when peer TLS is configured at all; used for https peer urls.
    client: Option<Arc<rustls::ClientConfig>>,
    check_client_san: bool,
    allowed: AllowedNames,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PeerTls")
            .field("serves_tls", &self.acceptor.is_some())
            .field("connects_with_tls", &self.client.is_some())
            .field("check_client_san", &self.check_client_san)
            .field("allowed", &self.allowed)
            .finish()
    }
}

impl PeerTls {
    /// No TLS anywhere: plain `http://` peers only.
    pub fn plain() -> PeerTls {
        PeerTls::default()
    }

    /// The peer TLS of a member from its settings. `listen_tls`: the peer url is https;
    /// `listen_hosts`: the hosts of `--listen-peer-urls` (the SANs of an auto-TLS
    /// certificate). An https peer url without a certificate is an error, as in etcd.
    pub fn from_settings(
        security: &SecurityConfig,
        listen_tls: bool,
        data_dir: &Path,
        listen_hosts: &[String],
    ) -> Result<PeerTls, String> {
        let peer = resolve_auto_tls(&security.peer, security, data_dir, listen_hosts)?;
        // The allowed names are checked here, after each handshake, in both directions (a
        // peer we connect to as well as one that connects to us), not by the `tls` verifier,
        // which only sees the certificates of connecting peers.
        let mut verified_by_ca = peer.clone();
        verified_by_ca.allowed_cn = None;
        verified_by_ca.allowed_hostname = None;
        let acceptor = if listen_tls {
            let config = crate::tls::server_config(&verified_by_ca, security)
                .map_err(|error| format!("peer TLS listener: {error}"))?;
            Some(TlsAcceptor::from(config))
        } else {
            None
        };
        let client = if peer.is_set() {
            match crate::tls::client_config(&verified_by_ca, security) {
                Ok(config) => Some(config),
                Err(error) => {
                    tracing::warn!(
                        %error,
                        "no TLS for connections to https peer urls: they will fail"
                    );
                    None
                }
            }
        } else {
            None
        };
        Ok(PeerTls {
            acceptor,
            client,
            check_client_san: !peer.skip_client_san_verification,
            allowed: AllowedNames::parse(
                peer.allowed_cn.as_deref(),
                peer.allowed_hostname.as_deref(),
            ),
        })
    }

    /// Whether the peer port serves TLS.
    pub fn serves_tls(&self) -> bool {
        self.acceptor.is_some()
    }

    /// The client configuration for https peer urls (also used, blocking, by
    /// [`super::cluster_query`]).
    pub fn client_config(&self) -> Option<Arc<rustls::ClientConfig>> {
        self.client.clone()
    }

    /// Runs the TLS handshake of an accepted connection (plain connections pass through) and
    /// the checks that follow it.
    pub(crate) async fn accept(
        &self,
        stream: TcpStream,
        remote: Option<SocketAddr>,
    ) -> Result<PeerStream, PeerTlsError> {
        let Some(acceptor) = &self.acceptor else {
            return Ok(PeerStream::Plain(stream));
        };
        let handshake = with_timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
        let stream = handshake
            .ok_or(PeerTlsError::Timeout(TLS_HANDSHAKE_TIMEOUT))?
            .map_err(PeerTlsError::Handshake)?;
        let end_entity = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .cloned();
        if let Some(end_entity) = end_entity {
            if self.check_client_san {
                if let Some(remote) = remote {
                    check_client_san(&end_entity, remote.ip()).await?;
                }
            }
            check_allowed(&self.allowed, &end_entity)?;
        }
        Ok(PeerStream::Tls(Box::new(
            futures_rustls::TlsStream::Server(stream),
        )))
    }

    /// Runs the client side of the TLS handshake on a connection to an https peer url whose
    /// host is `host`, then checks the allowed names on the peer's certificate.
    pub(crate) async fn connect(
        &self,
        stream: TcpStream,
        host: &str,
    ) -> Result<PeerStream, PeerTlsError> {
        let config = self.client.clone().ok_or(PeerTlsError::NoClientConfig)?;
        let name = server_name(host)?;
        let connector = TlsConnector::from(config);
        let stream = with_timeout(TLS_CONNECT_TIMEOUT, connector.connect(name, stream))
            .await
            .ok_or(PeerTlsError::Timeout(TLS_CONNECT_TIMEOUT))?
            .map_err(PeerTlsError::Handshake)?;
        if let Some(end_entity) = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
        {
            check_allowed(&self.allowed, end_entity)?;
        }
        Ok(PeerStream::Tls(Box::new(
            futures_rustls::TlsStream::Client(stream),
        )))
    }
}

/// The TLS server name of a peer url's host (a DNS name or an IP address).
pub fn server_name(host: &str) -> Result<ServerName<'static>, PeerTlsError> {
    ServerName::try_from(host.to_string()).map_err(|_| PeerTlsError::ServerName(host.to_string()))
}

/// The host of a url such as `https://10.0.0.1:2380` or `https://[::1]:2380` (no brackets).
pub fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => host,
        _ => authority,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

/// etcd's `PeerSelfCert`: with `--peer-auto-tls` and no certificate files, a self-signed
/// certificate replaces the whole peer TLS setting.
fn resolve_auto_tls(
    peer: &TransportSecurity,
    security: &SecurityConfig,
    data_dir: &Path,
    listen_hosts: &[String],
) -> Result<TransportSecurity, String> {
    if !peer.auto_tls {
        return Ok(peer.clone());
    }
    if peer.cert_file.is_some() || peer.key_file.is_some() {
        tracing::warn!("ignoring peer auto TLS since certs given");
        return Ok(peer.clone());
    }
    let files = crate::tls::self_signed_certificate(
        &crate::tls::fixtures_dir(data_dir, "peer"),
        listen_hosts,
        security.self_signed_cert_validity_years,
    )
    .map_err(|error| format!("--peer-auto-tls: {error}"))?;
    Ok(TransportSecurity {
        cert_file: Some(files.cert_file.clone()),
        key_file: Some(files.key_file.clone()),
        client_cert_file: Some(files.cert_file),
        client_key_file: Some(files.key_file),
        auto_tls: true,
        ..TransportSecurity::default()
    })
}

async fn with_timeout<T>(limit: Duration, work: impl std::future::Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(work.await) }, async {
        glommio::timer::sleep(limit).await;
        None
    })
    .await
}

/// etcd's `checkCertSAN`: the connecting member's certificate must be valid for the address
/// it connects from — an IP SAN equal to it, or a DNS SAN that resolves to it. A certificate
/// with neither kind of SAN passes.
async fn check_client_san(
    end_entity: &CertificateDer<'_>,
    remote: IpAddr,
) -> Result<(), PeerTlsError> {
    let refuse = |reason: String| PeerTlsError::ClientSan { remote, reason };
    let certificate =
        webpki::EndEntityCert::try_from(end_entity).map_err(|error| refuse(error.to_string()))?;
    let presented = match certificate.verify_is_valid_for_subject_name(&ServerName::from(remote)) {
        Ok(()) => return Ok(()),
        Err(webpki::Error::CertNotValidForName(context)) => context.presented,
        Err(error) => return Err(refuse(error.to_string())),
    };
    // webpki lists the presented names in its Debug form: `DnsName("...")`, `IpAddress(...)`,
    // `DirectoryName`, `UniformResourceIdentifier("...")`, `Unsupported(0x..)`. A form this
    // code does not know (another webpki version) refuses the peer rather than let it pass as
    // a certificate without SANs; `san_forms_are_read` pins the forms.
    if let Some(unknown) = presented.iter().find(|name| !is_known_san_form(name)) {
        return Err(refuse(format!(
            "its subject alternative name {unknown} could not be read"
        )));
    }
    let all_dns_names: Vec<&str> = presented
        .iter()
        .filter_map(|name| name.strip_prefix("DnsName(\"")?.strip_suffix("\")"))
        .collect();
    // etcd matches wildcard names only through a reverse lookup of the address, which this
    // check does not do: a certificate with only wildcard DNS names is refused (fail closed).
    let dns_names: Vec<String> = all_dns_names
        .iter()
        .filter(|name| !name.starts_with("*."))
        .map(|name| name.to_string())
        .collect();
    let has_ip = presented.iter().any(|name| name.starts_with("IpAddress("));
    if all_dns_names.is_empty() {
        return if has_ip {
            Err(refuse(format!("its IP SANs are {presented:?}")))
        } else {
            Ok(())
        };
    }
    let names = dns_names.clone();
    // Name resolution blocks: off the reactor.
    let resolves_to_remote = glommio::executor()
        .spawn_blocking(move || {
            names.iter().any(|name| {
                (name.as_str(), 0)
                    .to_socket_addrs()
                    .is_ok_and(|mut addresses| addresses.any(|address| address.ip() == remote))
            })
        })
        .await;
    if resolves_to_remote {
        Ok(())
    } else {
        Err(refuse(format!(
            "none of its names {presented:?} resolves to it"
        )))
    }
}

/// Whether `name` is one of webpki's Debug forms of a presented subject alternative name.
fn is_known_san_form(name: &str) -> bool {
    let quoted = |prefix: &str| {
        name.strip_prefix(prefix)
            .is_some_and(|rest| rest.ends_with("\")"))
    };
    quoted("DnsName(\"")
        || quoted("UniformResourceIdentifier(\"")
        || (name.starts_with("IpAddress(") && name.ends_with(')'))
        || (name.starts_with("Unsupported(") && name.ends_with(')'))
        || name == "DirectoryName"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(dns: &[&str], ips: &[&str]) -> CertificateDer<'static> {
        let mut names: Vec<String> = dns.iter().map(|name| name.to_string()).collect();
        names.extend(ips.iter().map(|ip| ip.to_string()));
        let params = rcgen::CertificateParams::new(names).expect("params");
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("certificate").der().clone()
    }

    fn check(end_entity: CertificateDer<'static>, remote: &str) -> Result<(), String> {
        let remote: IpAddr = remote.parse().expect("ip");
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                check_client_san(&end_entity, remote)
                    .await
                    .map_err(|error| error.to_string())
            })
            .expect("executor starts")
            .join()
            .expect("executor finished")
    }

    /// The client-SAN check reads webpki's list of presented names: these cases fail if a
    /// webpki upgrade changes its forms (an unknown form refuses, never passes).
    #[test]
    fn san_forms_are_read() {
        assert!(check(certificate(&[], &["127.0.0.1"]), "127.0.0.1").is_ok());
        assert!(check(certificate(&[], &["127.0.0.2"]), "127.0.0.1").is_err());
        assert!(check(certificate(&["localhost"], &["127.0.0.2"]), "127.0.0.1").is_ok());
        assert!(check(certificate(&["localhost"], &[]), "10.9.9.9").is_err());
        assert!(check(certificate(&["*.example"], &[]), "127.0.0.1").is_err());
        assert!(
            check(certificate(&[], &[]), "127.0.0.1").is_ok(),
            "no SANs pass, as in etcd"
        );
        assert!(is_known_san_form("DnsName(\"a.example\")"));
        assert!(is_known_san_form("IpAddress(127.0.0.1)"));
        assert!(!is_known_san_form("Dns(\"a.example\")"));
    }

    #[test]
    fn url_hosts() {
        assert_eq!(url_host("https://127.0.0.1:2380"), "127.0.0.1");
        assert_eq!(url_host("https://etcd-0.example:2380/"), "etcd-0.example");
        assert_eq!(url_host("https://[::1]:2380"), "::1");
        assert_eq!(url_host("http://localhost"), "localhost");
    }

    #[test]
    fn allowed_names_split_etcds_comma_lists() {
        let peer = TransportSecurity {
            allowed_cn: Some("etcd-a, etcd-b".to_string()),
            ..TransportSecurity::default()
        };
        let allowed =
            AllowedNames::parse(peer.allowed_cn.as_deref(), peer.allowed_hostname.as_deref());
        assert_eq!(allowed.common_names, vec!["etcd-a", "etcd-b"]);
        assert!(allowed.hostnames.is_empty());
    }
}
