//! TLS for `https://` endpoints: `--cacert`, `--cert`, `--key` and `--insecure-skip-tls-verify`
//! as etcd's benchmark reads them, with rustls (ring provider only).
//!
//! As in etcd's client, TLS is used for `https://` endpoints and, when any TLS flag is given,
//! for endpoints written without a scheme; `http://` endpoints stay plaintext.

use crate::error::BenchError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;

/// The TLS flags of the command line.
#[derive(Debug, Clone, Default)]
pub struct TlsFlags {
    pub cacert: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub insecure_skip_tls_verify: bool,
}

impl TlsFlags {
    /// Whether any flag asks for TLS.
    pub fn any(&self) -> bool {
        self.cacert.is_some() || self.cert.is_some() || self.key.is_some()
    }
}

/// ring's provider; rustls 0.23.48 deprecated the constructor only for lacking post-quantum
/// key exchange, and ring is the one provider this project compiles in.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_error(what: &str, error: impl std::fmt::Display) -> BenchError {
    BenchError::Usage(format!("TLS: {what}: {error}"))
}

/// The rustls client configuration for the flags (ALPN `h2`).
pub fn client_config(flags: &TlsFlags) -> Result<Arc<rustls::ClientConfig>, BenchError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| tls_error("versions", error))?;
    let builder = match (&flags.cacert, flags.insecure_skip_tls_verify) {
        (_, true) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider()))),
        (Some(cacert), false) => {
            let mut roots = rustls::RootCertStore::empty();
            for certificate in
                CertificateDer::pem_file_iter(cacert).map_err(|error| tls_error(cacert, error))?
            {
                roots
                    .add(certificate.map_err(|error| tls_error(cacert, error))?)
                    .map_err(|error| tls_error(cacert, error))?;
            }
            builder.with_root_certificates(roots)
        }
        (None, false) => {
            return Err(BenchError::Usage(
                "TLS needs --cacert (or --insecure-skip-tls-verify): there are no system roots"
                    .to_string(),
            ))
        }
    };
    let mut config = match (&flags.cert, &flags.key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|items| items.collect::<Result<Vec<_>, _>>())
                .map_err(|error| tls_error(cert, error))?;
            let key_der =
                PrivateKeyDer::from_pem_file(key).map_err(|error| tls_error(key, error))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|error| tls_error("client certificate", error))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(BenchError::Usage(
                "--cert and --key must be given together".to_string(),
            ))
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The server name to verify for `host:port`.
pub fn server_name(authority: &str) -> Result<ServerName<'static>, BenchError> {
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|error| tls_error(authority, error))
}

/// `--insecure-skip-tls-verify`: any server certificate (signatures still checked).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
