//! The TLS settings of a member, as etcd's security flags give them (`--cert-file`,
//! `--peer-cert-file`, `--cipher-suites`, ...). `config::flags` fills them in; `tls` turns them
//! into rustls configurations for the client, peer and metrics listeners and for the peer
//! connections this member opens.

use std::path::PathBuf;

/// etcd's default `--self-signed-cert-validity`, in years.
pub const SELF_SIGNED_CERT_VALIDITY_YEARS_DEFAULT: u32 = 1;

/// The settings of one side: clients (`--cert-file` ...) or peers (`--peer-cert-file` ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportSecurity {
    /// `--cert-file` / `--peer-cert-file`: the certificate (chain) this member serves.
    pub cert_file: Option<PathBuf>,
    /// `--key-file` / `--peer-key-file`: its private key.
    pub key_file: Option<PathBuf>,
    /// `--trusted-ca-file` / `--peer-trusted-ca-file`: CA bundle that client (peer)
    /// certificates are checked against.
    pub trusted_ca_file: Option<PathBuf>,
    /// `--client-cert-auth` / `--peer-client-cert-auth`: require a certificate signed by
    /// `trusted_ca_file` from every connecting client (peer).
    pub client_cert_auth: bool,
    /// `--client-crl-file` / `--peer-crl-file`: revoked certificates, refused.
    pub crl_file: Option<PathBuf>,
    /// `--client-cert-allowed-hostname` / `--peer-cert-allowed-hostname`: a verified client
    /// certificate must also be valid for this host name (SAN), when set.
    pub allowed_hostname: Option<String>,
    /// `--peer-cert-allowed-cn` (peers only): a verified peer certificate must have this CN.
    pub allowed_cn: Option<String>,
    /// `--client-cert-file`/`--client-key-file` and `--peer-client-cert-file`/
    /// `--peer-client-key-file`: the certificate this member presents when it connects as a
    /// client (to peers); `cert_file`/`key_file` when unset, as in etcd.
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    /// `--auto-tls` / `--peer-auto-tls`: serve a self-signed certificate generated at start-up
    /// when no `cert_file` is given.
    pub auto_tls: bool,
    /// `--peer-skip-client-san-verification` (peers only).
    pub skip_client_san_verification: bool,
}

impl TransportSecurity {
    /// Whether any setting asks for TLS (a certificate, a CA, client authentication or auto
    /// TLS).
    pub fn is_set(&self) -> bool {
        self.cert_file.is_some()
            || self.key_file.is_some()
            || self.trusted_ca_file.is_some()
            || self.client_cert_auth
            || self.auto_tls
    }
}

/// Every TLS setting of a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityConfig {
    pub client: TransportSecurity,
    pub peer: TransportSecurity,
    /// `--cipher-suites`: etcd's (Go's) names, e.g. `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`;
    /// empty means rustls's defaults.
    pub cipher_suites: Vec<String>,
    /// `--tls-min-version` / `--tls-max-version`: `TLS1.2`, `TLS1.3`, or `None` for the
    /// default (TLS 1.2 minimum, no maximum).
    pub tls_min_version: Option<String>,
    pub tls_max_version: Option<String>,
    /// `--self-signed-cert-validity`, years, for `--auto-tls` / `--peer-auto-tls`.
    pub self_signed_cert_validity_years: u32,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            client: TransportSecurity::default(),
            peer: TransportSecurity::default(),
            cipher_suites: Vec::new(),
            tls_min_version: None,
            tls_max_version: None,
            self_signed_cert_validity_years: SELF_SIGNED_CERT_VALIDITY_YEARS_DEFAULT,
        }
    }
}

/// Whether this side's listeners speak TLS yet. A TLS setting for a side that does not is
/// refused at start-up (never accepted without its effect); the TLS work flips these as each
/// side's listener lands.
pub const CLIENT_TLS_SERVED: bool = true;
pub const PEER_TLS_SERVED: bool = true;

/// Whether settings of `side` have their effect (`Either`: settings shared by both sides).
pub fn tls_served(side: super::table::TlsSide) -> bool {
    use super::table::TlsSide;
    match side {
        TlsSide::Client => CLIENT_TLS_SERVED,
        TlsSide::Peer => PEER_TLS_SERVED,
        TlsSide::Either => CLIENT_TLS_SERVED || PEER_TLS_SERVED,
    }
}
