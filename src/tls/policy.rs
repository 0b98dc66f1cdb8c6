//! `--cipher-suites`, `--tls-min-version` and `--tls-max-version`: which protocol versions and
//! cipher suites a handshake may use, checked the way etcd checks them.
//!
//! etcd takes Go's cipher suite names. Like Go, the list restricts TLS 1.2 only: TLS 1.3
//! suites are always all enabled (Go ignores TLS 1.3 names in the list, and so do we). Go names
//! rustls does not implement (CBC, RC4, 3DES, static RSA key exchange) are refused by name
//! rather than silently dropped; names Go does not know are refused as etcd refuses them.

use super::TlsError;
use crate::config::SecurityConfig;
use rustls::crypto::CryptoProvider;
use rustls::{CipherSuite, SupportedCipherSuite, SupportedProtocolVersion};
use std::sync::Arc;

/// etcd's `--tls-min-version` / `--tls-max-version` values.
pub const TLS_VERSION_12: &str = "TLS1.2";
pub const TLS_VERSION_13: &str = "TLS1.3";

/// Go's names of the TLS 1.2 suites rustls implements (Go's short ChaCha20 aliases too).
const SUPPORTED_TLS12_SUITES: &[(&str, CipherSuite)] = &[
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// Go's TLS 1.3 suite names: accepted, without effect (as in Go).
const TLS13_SUITE_NAMES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// Go names etcd accepts that rustls does not implement.
const UNSUPPORTED_GO_SUITE_NAMES: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// The crypto provider (ring, with the allowed suites) and protocol versions of every TLS
/// configuration this member builds.
#[derive(Debug, Clone)]
pub struct CryptoPolicy {
    pub provider: Arc<CryptoProvider>,
    pub versions: Vec<&'static SupportedProtocolVersion>,
}

/// Checks `--cipher-suites`, `--tls-min-version` and `--tls-max-version` and turns them into a
/// [`CryptoPolicy`]. Errors carry etcd's messages.
pub fn crypto_policy(security: &SecurityConfig) -> Result<CryptoPolicy, TlsError> {
    let min = parse_version(security.tls_min_version.as_deref())
        .map_err(|error| TlsError::Policy(format!("tls-min-version is invalid: {error}")))?;
    let max = parse_version(security.tls_max_version.as_deref())
        .map_err(|error| TlsError::Policy(format!("tls-max-version is invalid: {error}")))?;
    if let (Some(min), Some(max)) = (min, max) {
        if min > max {
            return Err(TlsError::Policy(format!(
                "min version ({}) is greater than max version ({})",
                version_name(min),
                version_name(max)
            )));
        }
    }
    if !security.cipher_suites.is_empty() && min == Some(Version::Tls13) {
        return Err(TlsError::Policy(
            "cipher suites cannot be configured when only TLS1.3 is enabled".into(),
        ));
    }
    let min = min.unwrap_or(Version::Tls12);
    let max = max.unwrap_or(Version::Tls13);
    let mut versions = Vec::new();
    if max >= Version::Tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if min <= Version::Tls12 {
        versions.push(&rustls::version::TLS12);
    }
    let mut provider = ring_provider();
    if !security.cipher_suites.is_empty() {
        let allowed_tls12 = tls12_suites_named(&security.cipher_suites)?;
        provider
            .cipher_suites
            .retain(|suite| suite_allowed(suite, &allowed_tls12));
    }
    Ok(CryptoPolicy {
        provider: Arc::new(provider),
        versions,
    })
}

/// rustls's ring provider with its default suites and key exchange groups. ring is the one
/// provider this project compiles in (DESIGN.md: two providers make rustls's defaults panic);
/// rustls 0.23.48 deprecated this constructor only because ring lacks post-quantum key
/// exchange.
#[allow(deprecated)]
pub fn ring_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn suite_allowed(suite: &SupportedCipherSuite, allowed_tls12: &[CipherSuite]) -> bool {
    match suite {
        SupportedCipherSuite::Tls13(_) => true,
        SupportedCipherSuite::Tls12(_) => allowed_tls12.contains(&suite.suite()),
    }
}

/// The rustls TLS 1.2 suites for Go's names, refusing unknown and unimplemented names.
fn tls12_suites_named(names: &[String]) -> Result<Vec<CipherSuite>, TlsError> {
    let mut suites = Vec::new();
    for name in names {
        let name = name.trim();
        if let Some((_, suite)) = SUPPORTED_TLS12_SUITES.iter().find(|(go, _)| *go == name) {
            suites.push(*suite);
        } else if TLS13_SUITE_NAMES.contains(&name) {
            continue;
        } else if UNSUPPORTED_GO_SUITE_NAMES.contains(&name) {
            return Err(TlsError::Policy(format!(
                "cipher suite {name:?} is not supported by Capstan (rustls implements only \
                 ECDHE key exchange with AES-GCM or ChaCha20-Poly1305 for TLS 1.2)"
            )));
        } else {
            return Err(TlsError::Policy(format!(
                "unexpected TLS cipher suite {name:?}"
            )));
        }
    }
    Ok(suites)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Version {
    Tls12,
    Tls13,
}

fn version_name(version: Version) -> &'static str {
    match version {
        Version::Tls12 => TLS_VERSION_12,
        Version::Tls13 => TLS_VERSION_13,
    }
}

/// etcd's `GetTLSVersion`: empty means the default.
fn parse_version(text: Option<&str>) -> Result<Option<Version>, String> {
    match text.unwrap_or("") {
        "" => Ok(None),
        TLS_VERSION_12 => Ok(Some(Version::Tls12)),
        TLS_VERSION_13 => Ok(Some(Version::Tls13)),
        other => Err(format!(
            "unexpected TLS version {other:?} (must be one of: TLS1.2, TLS1.3)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn security(suites: &[&str], min: Option<&str>, max: Option<&str>) -> SecurityConfig {
        SecurityConfig {
            cipher_suites: suites.iter().map(|name| name.to_string()).collect(),
            tls_min_version: min.map(str::to_string),
            tls_max_version: max.map(str::to_string),
            ..SecurityConfig::default()
        }
    }

    fn error_of(security: &SecurityConfig) -> String {
        match crypto_policy(security) {
            Ok(_) => panic!("expected an error"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn default_policy_offers_tls12_and_tls13_with_every_ring_suite() {
        let policy = crypto_policy(&SecurityConfig::default()).expect("default policy");
        assert_eq!(policy.versions.len(), 2);
        assert_eq!(
            policy.provider.cipher_suites.len(),
            ring_provider().cipher_suites.len()
        );
    }

    #[test]
    fn cipher_suites_restrict_tls12_only_and_accept_go_aliases() {
        let policy = crypto_policy(&security(
            &[
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
            ],
            None,
            None,
        ))
        .expect("valid suites");
        let tls12: Vec<CipherSuite> = policy
            .provider
            .cipher_suites
            .iter()
            .filter(|suite| matches!(suite, SupportedCipherSuite::Tls12(_)))
            .map(|suite| suite.suite())
            .collect();
        assert!(tls12.contains(&CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256));
        assert!(tls12.contains(&CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256));
        assert_eq!(tls12.len(), 2);
        assert!(policy
            .provider
            .cipher_suites
            .iter()
            .any(|suite| matches!(suite, SupportedCipherSuite::Tls13(_))));
    }

    #[test]
    fn unknown_and_unimplemented_suites_are_refused_by_name() {
        assert_eq!(
            error_of(&security(&["TLS_NOPE"], None, None)),
            "unexpected TLS cipher suite \"TLS_NOPE\""
        );
        let message = error_of(&security(&["TLS_RSA_WITH_AES_128_CBC_SHA"], None, None));
        assert!(
            message.contains("TLS_RSA_WITH_AES_128_CBC_SHA"),
            "{message}"
        );
    }

    #[test]
    fn versions_are_checked_as_etcd_checks_them() {
        assert_eq!(
            error_of(&security(&[], Some("TLS1.1"), None)),
            "tls-min-version is invalid: unexpected TLS version \"TLS1.1\" (must be one of: \
             TLS1.2, TLS1.3)"
        );
        assert_eq!(
            error_of(&security(&[], Some("TLS1.3"), Some("TLS1.2"))),
            "min version (TLS1.3) is greater than max version (TLS1.2)"
        );
        assert_eq!(
            error_of(&security(
                &["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"],
                Some("TLS1.3"),
                None
            )),
            "cipher suites cannot be configured when only TLS1.3 is enabled"
        );
        let only13 = crypto_policy(&security(&[], Some("TLS1.3"), None)).expect("TLS1.3 only");
        assert_eq!(only13.versions, vec![&rustls::version::TLS13]);
        let only12 = crypto_policy(&security(&[], None, Some("TLS1.2"))).expect("TLS1.2 only");
        assert_eq!(only12.versions, vec![&rustls::version::TLS12]);
    }
}
