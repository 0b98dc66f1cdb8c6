//! `--auto-tls` / `--peer-auto-tls`: a self-signed certificate made at start-up, as etcd's
//! `SelfCert` makes one: an ECDSA P-256 key, organization `etcd`, valid from now for
//! `--self-signed-cert-validity` years, with the listen URLs' hosts as SANs, written as
//! `cert.pem` and `key.pem` under `<data-dir>/fixtures/client` (or `.../peer`). Files already
//! there are reused, as etcd reuses them, so a restarted member keeps its certificate.

use super::TlsError;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Seconds in one year of a certificate's validity (365 days, as Go's `AddDate(years, 0, 0)`
/// is close enough to for a self-signed certificate).
const SECONDS_PER_YEAR: u64 = 365 * 24 * 60 * 60;

/// The certificate and key files of a self-signed certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfSignedFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// The directory etcd keeps the client (`side = "client"`) or peer self-signed certificate in.
pub fn fixtures_dir(data_dir: &Path, side: &str) -> PathBuf {
    data_dir.join("fixtures").join(side)
}

/// Makes (or reuses) a self-signed certificate in `dir` for `hosts` (host names or IP
/// addresses, e.g. the hosts of the listen URLs).
pub fn self_signed_certificate(
    dir: &Path,
    hosts: &[String],
    validity_years: u32,
) -> Result<SelfSignedFiles, TlsError> {
    let files = SelfSignedFiles {
        cert_file: dir.join("cert.pem"),
        key_file: dir.join("key.pem"),
    };
    if files.cert_file.exists() && files.key_file.exists() {
        tracing::info!(dir = %dir.display(), "auto-tls: reusing the self-signed certificate");
        return Ok(files);
    }
    std::fs::create_dir_all(dir)
        .map_err(|error| TlsError::SelfSigned(format!("create {}: {error}", dir.display())))?;
    let mut unique_hosts: Vec<String> = Vec::new();
    for host in hosts {
        if !unique_hosts.contains(host) {
            unique_hosts.push(host.clone());
        }
    }
    let mut params = rcgen::CertificateParams::new(unique_hosts)
        .map_err(|error| TlsError::SelfSigned(format!("certificate hosts: {error}")))?;
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::OrganizationName, "etcd");
    params.distinguished_name = name;
    let now = SystemTime::now();
    params.not_before = now.into();
    params.not_after = (now
        + Duration::from_secs(SECONDS_PER_YEAR.saturating_mul(u64::from(validity_years.max(1)))))
    .into();
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = rcgen::KeyPair::generate()
        .map_err(|error| TlsError::SelfSigned(format!("generate key: {error}")))?;
    let certificate = params
        .self_signed(&key)
        .map_err(|error| TlsError::SelfSigned(format!("sign: {error}")))?;
    write_private(&files.key_file, key.serialize_pem().as_bytes())?;
    write_private(&files.cert_file, certificate.pem().as_bytes())?;
    tracing::info!(
        dir = %dir.display(),
        validity_years,
        "auto-tls: made a self-signed certificate"
    );
    Ok(files)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|error| TlsError::SelfSigned(format!("write {}: {error}", path.display())))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|error| TlsError::SelfSigned(format!("write {}: {error}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_a_loadable_certificate_once_and_reuses_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hosts = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let files = self_signed_certificate(dir.path(), &hosts, 1).expect("self-signed");
        let first = std::fs::read(&files.cert_file).expect("cert");
        let provider = std::sync::Arc::new(super::super::ring_provider());
        super::super::CertificateReloader::new(&files.cert_file, &files.key_file, provider)
            .expect("the pair loads");
        let again = self_signed_certificate(dir.path(), &hosts, 1).expect("reused");
        assert_eq!(again, files);
        assert_eq!(std::fs::read(&files.cert_file).expect("cert"), first);
    }
}
