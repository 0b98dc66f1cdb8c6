//! [`CertificateReloader`]: the certificate and key a listener serves (or a client presents),
//! re-read from their files when they change, so certificates rotate without a restart.
//!
//! Each handshake asks for the current certificate; at most once per
//! [`super::RELOAD_CHECK_INTERVAL`] the reloader stats the two files (inode, size, mtime,
//! ctime) and, when either changed, reads and checks both (the key must match the
//! certificate). A pair that does not load — a half-written file, a key of another
//! certificate — is logged as a warning and the previous certificate stays in service; the
//! files are tried again at the next check.

use super::files::{read_certificates, read_private_key, stamps_of, FileStamp};
use super::{TlsError, RELOAD_CHECK_INTERVAL};
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A certificate chain and key loaded from two PEM files, reloaded when they change.
#[derive(Debug)]
pub struct CertificateReloader {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    state: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    certified_key: Arc<CertifiedKey>,
    stamps: Vec<Option<FileStamp>>,
    checked_at: Instant,
}

impl CertificateReloader {
    /// Loads `cert_file` and `key_file` now; an error here is a start-up error.
    pub fn new(
        cert_file: &Path,
        key_file: &Path,
        provider: Arc<CryptoProvider>,
    ) -> Result<CertificateReloader, TlsError> {
        let stamps = stamps_of(&[cert_file, key_file]);
        let certified_key = load_pair(cert_file, key_file, &provider)?;
        Ok(CertificateReloader {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            provider,
            state: Mutex::new(Loaded {
                certified_key,
                stamps,
                checked_at: Instant::now(),
            }),
        })
    }

    /// The certificate to serve now, reloading the files first if they changed and the last
    /// check is older than [`RELOAD_CHECK_INTERVAL`].
    pub fn current(&self) -> Arc<CertifiedKey> {
        // `Loaded` is only ever replaced by whole loaded values, so a poisoned lock still
        // holds a usable certificate.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.checked_at.elapsed() >= RELOAD_CHECK_INTERVAL {
            state.checked_at = Instant::now();
            let stamps = stamps_of(&[&self.cert_file, &self.key_file]);
            if stamps != state.stamps {
                match load_pair(&self.cert_file, &self.key_file, &self.provider) {
                    Ok(certified_key) => {
                        tracing::info!(
                            cert_file = %self.cert_file.display(),
                            "reloaded the TLS certificate; new handshakes use it"
                        );
                        state.certified_key = certified_key;
                        state.stamps = stamps;
                    }
                    Err(error) => tracing::warn!(
                        %error,
                        "the TLS certificate files changed but do not load; still serving the \
                         previous certificate"
                    ),
                }
            }
        }
        state.certified_key.clone()
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
