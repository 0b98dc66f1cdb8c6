//! Reading PEM files: certificate chains, private keys, CA bundles and CRLs, plus a cheap
//! "has this file changed?" stamp used by the reloaders.
//!
//! Files are small (a few KiB) and read whole with `std::fs`; a reload happens at most once per
//! [`super::RELOAD_CHECK_INTERVAL`] per listener, so the short blocking read on the reactor is
//! acceptable (etcd reads them on every handshake).

use super::TlsError;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// What identifies one version of a file without reading it: inode, size and modification time.
/// A file overwritten in place, renamed over, or re-linked (Kubernetes secret volumes swap a
/// symlink) gets a new stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    device: u64,
    inode: u64,
    size_bytes: u64,
    modified_ns: i128,
    changed_ns: i128,
}

impl FileStamp {
    /// The stamp of `path` now (following symlinks); `None` if it cannot be stat'ed.
    pub fn of(path: &Path) -> Option<FileStamp> {
        let metadata = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            device: metadata.dev(),
            inode: metadata.ino(),
            size_bytes: metadata.size(),
            modified_ns: i128::from(metadata.mtime()) * 1_000_000_000
                + i128::from(metadata.mtime_nsec()),
            changed_ns: i128::from(metadata.ctime()) * 1_000_000_000
                + i128::from(metadata.ctime_nsec()),
        })
    }
}

/// Stamps of a set of files, compared as a whole.
pub fn stamps_of(paths: &[&Path]) -> Vec<Option<FileStamp>> {
    paths.iter().map(|path| FileStamp::of(path)).collect()
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        path: path.to_path_buf(),
        reason: error.to_string(),
    })
}

/// Every `CERTIFICATE` block of a PEM file, in order (end entity first for a chain).
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::Pem {
            path: path.to_path_buf(),
            reason: format!("malformed PEM: {error}"),
        })?;
    if certificates.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            reason: "no certificate found".into(),
        });
    }
    Ok(certificates)
}

/// The first private key (PKCS#8, PKCS#1 RSA or SEC1 EC) of a PEM file.
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|error| TlsError::Pem {
        path: path.to_path_buf(),
        reason: format!("no private key found: {error}"),
    })
}

/// Every `X509 CRL` block of a PEM file (etcd also accepts DER: a file that is not PEM is
/// taken as one DER CRL).
pub fn read_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::Pem {
            path: path.to_path_buf(),
            reason: format!("malformed PEM: {error}"),
        })?;
    if crls.is_empty() && bytes.first() == Some(&0x30) {
        return Ok(vec![CertificateRevocationListDer::from(bytes)]);
    }
    Ok(crls)
}
