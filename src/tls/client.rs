//! [`client_config`]: the rustls configuration for connections this member opens as a client
//! (to its peers), from one side's settings.

use super::policy::crypto_policy;
use super::reloader::CertificateReloader;
use super::verifier::root_store;
use super::TlsError;
use crate::config::{SecurityConfig, TransportSecurity};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, Error, SignatureScheme};
use std::sync::Arc;

/// Builds a client configuration:
///
/// - the server's certificate is verified against `trusted_ca_file`; with `auto_tls` and no
///   CA file it is not verified (etcd's `InsecureSkipVerify` for self-signed members),
///   otherwise a missing CA file is an error (there are no system roots here);
/// - the client certificate is `client_cert_file`/`client_key_file`, or `cert_file`/
///   `key_file` when those are unset (as in etcd), reloaded when the files change; none when
///   neither pair is set.
///
/// No ALPN protocol is set; a caller that needs one sets `alpn_protocols` on a clone.
pub fn client_config(
    transport: &TransportSecurity,
    security: &SecurityConfig,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let policy = crypto_policy(security)?;
    let builder = rustls::ClientConfig::builder_with_provider(policy.provider.clone())
        .with_protocol_versions(&policy.versions)
        .map_err(|error| TlsError::rustls("TLS versions and cipher suites", error))?;
    let builder = match (&transport.trusted_ca_file, transport.auto_tls) {
        (Some(trusted_ca_file), _) => builder.with_root_certificates(root_store(trusted_ca_file)?),
        (None, true) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SelfSignedPeers {
                provider: policy.provider.clone(),
            })),
        (None, false) => {
            return Err(TlsError::Missing(
                "a trusted CA file (--trusted-ca-file / --peer-trusted-ca-file) is needed to \
                 verify the servers this member connects to"
                    .into(),
            ))
        }
    };
    let client_pair = match (
        &transport.client_cert_file,
        &transport.client_key_file,
        &transport.cert_file,
        &transport.key_file,
    ) {
        (Some(cert), Some(key), _, _) | (None, None, Some(cert), Some(key)) => Some((cert, key)),
        (None, None, None, None) => None,
        _ => {
            return Err(TlsError::Missing(
                "a client certificate needs both its certificate and its key file".into(),
            ))
        }
    };
    let config = match client_pair {
        Some((cert_file, key_file)) => builder.with_client_cert_resolver(Arc::new(
            CertificateReloader::new(cert_file, key_file, policy.provider.clone())?,
        )),
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Accepts any server certificate whose handshake signature is valid: only for `--auto-tls`
/// members without a CA, whose certificates are self-signed and unknown in advance (etcd does
/// the same with `InsecureSkipVerify`). The connection is encrypted, not authenticated.
#[derive(Debug)]
struct SelfSignedPeers {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for SelfSignedPeers {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
