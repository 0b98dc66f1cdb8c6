//! [`AllowedNames`]: etcd's `AllowedCNs` / `AllowedHostnames` — after a certificate is
//! verified against the CA, it must also have one of the allowed common names, or be valid for
//! one of the allowed host names (`--client-cert-allowed-hostname`,
//! `--peer-cert-allowed-cn`, `--peer-cert-allowed-hostname`; comma-separated lists). Used by
//! the client listener's [`super::ClientCertPolicy`] and by the peer transport, which applies
//! it in both directions.

use super::identity::common_name_of;
use rustls::pki_types::{CertificateDer, ServerName};

/// The allowed names of one side; empty lists restrict nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedNames {
    pub common_names: Vec<String>,
    pub hostnames: Vec<String>,
}

/// Why a verified certificate is not allowed.
#[derive(Debug, PartialEq, Eq)]
pub enum NotAllowed {
    /// Its CN (empty when it has none) is not an allowed one.
    CommonName(String),
    /// It is valid for none of the allowed host names.
    Hostname,
    /// It does not parse as an end-entity certificate.
    BadEncoding(String),
}

impl AllowedNames {
    /// From etcd's comma-separated lists.
    pub fn parse(common_names: Option<&str>, hostnames: Option<&str>) -> AllowedNames {
        AllowedNames {
            common_names: split_names(common_names),
            hostnames: split_names(hostnames),
        }
    }

    /// Whether `end_entity` (already verified against the CA) is allowed.
    pub fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), NotAllowed> {
        if !self.common_names.is_empty() {
            let common_name = common_name_of(end_entity).unwrap_or_default();
            if !self.common_names.contains(&common_name) {
                return Err(NotAllowed::CommonName(common_name));
            }
        }
        if !self.hostnames.is_empty() {
            let certificate = webpki::EndEntityCert::try_from(end_entity)
                .map_err(|error| NotAllowed::BadEncoding(error.to_string()))?;
            let valid_for_one = self.hostnames.iter().any(|hostname| {
                ServerName::try_from(hostname.as_str())
                    .is_ok_and(|name| certificate.verify_is_valid_for_subject_name(&name).is_ok())
            });
            if !valid_for_one {
                return Err(NotAllowed::Hostname);
            }
        }
        Ok(())
    }
}

/// A comma-separated list of names (the config keeps etcd's lists joined with commas).
fn split_names(names: Option<&str>) -> Vec<String> {
    names
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_on_commas_and_blanks_are_dropped() {
        let allowed = AllowedNames::parse(Some("etcd-a, etcd-b,,"), None);
        assert_eq!(allowed.common_names, vec!["etcd-a", "etcd-b"]);
        assert!(allowed.hostnames.is_empty());
        assert_eq!(AllowedNames::parse(None, None), AllowedNames::default());
    }
}
