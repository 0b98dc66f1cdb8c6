//! The one error type of the `tls` layer. Messages name the file or the setting at fault, in
//! etcd's words where etcd has them.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate, key, CA or CRL file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    /// A file was read but holds no usable PEM item of the kind wanted.
    #[error("{path}: {reason}")]
    Pem { path: PathBuf, reason: String },
    /// `--cipher-suites`, `--tls-min-version` or `--tls-max-version` is not acceptable.
    #[error("{0}")]
    Policy(String),
    /// A setting that needs another one: a key without a certificate, https without a
    /// certificate, client-cert-auth without a CA.
    #[error("{0}")]
    Missing(String),
    /// rustls refused the configuration (a key that does not match its certificate, a CA file
    /// with no usable certificate, ...).
    #[error("{context}: {reason}")]
    Rustls { context: String, reason: String },
    /// `--auto-tls`: the self-signed certificate could not be made or written.
    #[error("auto-tls: {0}")]
    SelfSigned(String),
}

impl TlsError {
    pub(crate) fn rustls(context: impl Into<String>, error: impl std::fmt::Display) -> TlsError {
        TlsError::Rustls {
            context: context.into(),
            reason: error.to_string(),
        }
    }
}
