//! [`server_config`]: the rustls configuration of a TLS listener (client or peer port).

use super::policy::crypto_policy;
use super::reloader::CertificateReloader;
use super::verifier::ClientCertPolicy;
use super::TlsError;
use crate::config::{SecurityConfig, TransportSecurity};
use std::sync::Arc;

/// ALPN protocols a listener offers: gRPC clients (grpc-go) refuse a TLS server that does not
/// agree on `h2`; `http/1.1` for curl and the HTTP endpoints.
pub const ALPN_PROTOCOLS: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Builds the configuration of a TLS listener from one side's settings (`--cert-file` ... or
/// `--peer-cert-file` ...) and the member-wide cipher/version settings.
///
/// - The certificate and key are served through a [`CertificateReloader`]: rotated files are
///   used by new handshakes without a restart.
/// - As in etcd, a trusted CA file or `client_cert_auth` makes a client certificate required
///   and verified (Go's `RequireAndVerifyClientCert`), with the CRL and the allowed
///   hostname / CN applied; otherwise no client certificate is asked for.
/// - `client_cert_auth` without a trusted CA file is refused: etcd would fall back to the
///   system's roots, which would let any publicly issued certificate in.
pub fn server_config(
    transport: &TransportSecurity,
    security: &SecurityConfig,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let policy = crypto_policy(security)?;
    let (Some(cert_file), Some(key_file)) = (&transport.cert_file, &transport.key_file) else {
        return Err(TlsError::Missing(
            "TLS key/cert (--cert-file, --key-file) must both be provided".into(),
        ));
    };
    let reloader = CertificateReloader::new(cert_file, key_file, policy.provider.clone())?;
    let builder = rustls::ServerConfig::builder_with_provider(policy.provider.clone())
        .with_protocol_versions(&policy.versions)
        .map_err(|error| TlsError::rustls("TLS versions and cipher suites", error))?;
    let builder = match (&transport.trusted_ca_file, transport.client_cert_auth) {
        (Some(trusted_ca_file), _) => {
            builder.with_client_cert_verifier(Arc::new(ClientCertPolicy::new(
                trusted_ca_file,
                transport.crl_file.as_deref(),
                transport.allowed_hostname.clone(),
                transport.allowed_cn.clone(),
                policy.provider.clone(),
            )?))
        }
        (None, true) => {
            return Err(TlsError::Missing(
                "--client-cert-auth (--peer-client-cert-auth) needs --trusted-ca-file \
                 (--peer-trusted-ca-file): the CA that client certificates must be signed by"
                    .into(),
            ))
        }
        (None, false) => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(reloader));
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|name| name.to_vec()).collect();
    Ok(Arc::new(config))
}
