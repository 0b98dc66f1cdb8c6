//! [`ClientCertPolicy`]: how a listener checks the certificates its clients present —
//! against `--trusted-ca-file`, minus the revoked ones of `--client-crl-file`, and, when set,
//! only certificates valid for one of `--client-cert-allowed-hostname` (a comma-separated
//! list) or with one of the `--peer-cert-allowed-cn` common names.
//!
//! Like etcd, which re-reads the CRL on every connection, the CA bundle and the CRL are
//! reloaded for new handshakes when their files change (checked at most once per
//! [`super::RELOAD_CHECK_INTERVAL`]); a changed file that does not load is logged and the
//! previous one stays in force.
//!
//! No CA names are sent in the CertificateRequest (the hint list is empty, which tells a
//! client to send whatever certificate it has): the hints could not follow a reloaded CA.

use super::allowed::{AllowedNames, NotAllowed};
use super::files::{read_certificates, read_crls};
use super::watched::{Messages, Watched};
use super::TlsError;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore};
use rustls::{Error, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Requires and verifies client certificates (etcd's `RequireAndVerifyClientCert`).
#[derive(Debug)]
pub struct ClientCertPolicy {
    trusted_ca_file: PathBuf,
    crl_file: Option<PathBuf>,
    allowed: AllowedNames,
    provider: Arc<CryptoProvider>,
    inner: Watched<Arc<dyn ClientCertVerifier>>,
}

impl ClientCertPolicy {
    /// Loads the CA bundle (and CRL) now; an error here is a start-up error.
    pub fn new(
        trusted_ca_file: &Path,
        crl_file: Option<&Path>,
        allowed_hostname: Option<String>,
        allowed_cn: Option<String>,
        provider: Arc<CryptoProvider>,
    ) -> Result<ClientCertPolicy, TlsError> {
        let allowed = AllowedNames::parse(allowed_cn.as_deref(), allowed_hostname.as_deref());
        for hostname in &allowed.hostnames {
            ServerName::try_from(hostname.as_str()).map_err(|_| {
                TlsError::Missing(format!(
                    "allowed hostname {hostname:?} is not a host name or IP address"
                ))
            })?;
        }
        let mut files = vec![trusted_ca_file.to_path_buf()];
        files.extend(crl_file.map(Path::to_path_buf));
        let messages = Messages {
            reloaded: "reloaded the trusted CA / CRL; new handshakes use them",
            kept: "the trusted CA or CRL file changed but does not load; keeping the previous one",
        };
        let inner = Watched::new(files, messages, || {
            build_webpki_verifier(trusted_ca_file, crl_file, &provider)
        })?;
        Ok(ClientCertPolicy {
            trusted_ca_file: trusted_ca_file.to_path_buf(),
            crl_file: crl_file.map(Path::to_path_buf),
            allowed,
            provider,
            inner,
        })
    }

    /// The verifier for a new handshake, reloaded first if the files changed.
    fn current(&self) -> Arc<dyn ClientCertVerifier> {
        self.inner.current(|| {
            build_webpki_verifier(
                &self.trusted_ca_file,
                self.crl_file.as_deref(),
                &self.provider,
            )
        })
    }

    /// etcd's `AllowedHostnames` / `AllowedCNs` (see [`AllowedNames`]).
    fn check_allowed_names(&self, end_entity: &CertificateDer<'_>) -> Result<(), Error> {
        match self.allowed.check(end_entity) {
            Ok(()) => Ok(()),
            Err(NotAllowed::BadEncoding(_)) => {
                Err(Error::InvalidCertificate(CertificateError::BadEncoding))
            }
            Err(NotAllowed::Hostname) => {
                tracing::warn!(
                    allowed_hostnames = self.allowed.hostnames.join(","),
                    "rejected a client certificate: not valid for an allowed hostname"
                );
                Err(Error::InvalidCertificate(CertificateError::NotValidForName))
            }
            Err(NotAllowed::CommonName(common_name)) => {
                tracing::warn!(
                    allowed_cns = self.allowed.common_names.join(","),
                    %common_name,
                    "rejected a certificate: its CN is not an allowed CN"
                );
                Err(Error::InvalidCertificate(
                    CertificateError::ApplicationVerificationFailure,
                ))
            }
        }
    }
}

fn build_webpki_verifier(
    trusted_ca_file: &Path,
    crl_file: Option<&Path>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let roots = root_store(trusted_ca_file)?;
    let mut builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
    if let Some(crl_file) = crl_file {
        // etcd checks the serials of the chain against the list; a CRL from another issuer
        // says nothing about a certificate, so an unknown status is not a refusal.
        builder = builder
            .with_crls(read_crls(crl_file)?)
            .allow_unknown_revocation_status();
    }
    builder.build().map_err(|error| {
        TlsError::rustls(
            format!("trusted CA file {}", trusted_ca_file.display()),
            error,
        )
    })
}

/// A root store of every certificate in a CA bundle; a bundle with none usable is an error.
pub(crate) fn root_store(trusted_ca_file: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(read_certificates(trusted_ca_file)?);
    if added == 0 {
        return Err(TlsError::Pem {
            path: trusted_ca_file.to_path_buf(),
            reason: "no usable CA certificate".into(),
        });
    }
    Ok(Arc::new(roots))
}

impl ClientCertVerifier for ClientCertPolicy {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let verified = self
            .current()
            .verify_client_cert(end_entity, intermediates, now)?;
        self.check_allowed_names(end_entity)?;
        Ok(verified)
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
