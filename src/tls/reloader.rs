//! [`CertificateReloader`]: the certificate and key a listener serves (or a client presents),
//! re-read from their files when they change, so certificates rotate without a restart.
//!
//! Each handshake asks for the current certificate; the files are watched by
//! [`super::watched::Watched`] (checked at most once per [`super::RELOAD_CHECK_INTERVAL`]; the
//! key must match the certificate; a pair that does not load is logged and the previous
//! certificate stays in service).

use super::files::{read_certificates, read_private_key};
use super::watched::{Messages, Watched};
use super::TlsError;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A certificate chain and key loaded from two PEM files, reloaded when they change.
#[derive(Debug)]
pub struct CertificateReloader {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    pair: Watched<Arc<CertifiedKey>>,
}

impl CertificateReloader {
    /// Loads `cert_file` and `key_file` now; an error here is a start-up error.
    pub fn new(
        cert_file: &Path,
        key_file: &Path,
        provider: Arc<CryptoProvider>,
    ) -> Result<CertificateReloader, TlsError> {
        let pair = Watched::new(
            vec![cert_file.to_path_buf(), key_file.to_path_buf()],
            Messages {
                reloaded: "reloaded the TLS certificate; new handshakes use it",
                kept: "the TLS certificate files changed but do not load; still serving the \
                       previous certificate",
            },
            || load_pair(cert_file, key_file, &provider),
        )?;
        Ok(CertificateReloader {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            provider,
            pair,
        })
    }

    /// The certificate to serve now, reloading the files first if they changed and the last
    /// check is older than [`super::RELOAD_CHECK_INTERVAL`].
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.pair
            .current(|| load_pair(&self.cert_file, &self.key_file, &self.provider))
    }
}

fn load_pair(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = read_certificates(cert_file)?;
    let key = read_private_key(key_file)?;
    let certified_key = CertifiedKey::from_der(chain, key, provider).map_err(|error| {
        TlsError::rustls(
            format!(
                "certificate {} with key {}",
                cert_file.display(),
                key_file.display()
            ),
            error,
        )
    })?;
    Ok(Arc::new(certified_key))
}

impl ResolvesServerCert for CertificateReloader {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for CertificateReloader {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
