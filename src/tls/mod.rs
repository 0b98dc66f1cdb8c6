//! TLS for the client and peer listeners and for the connections this member opens, with
//! rustls (ring provider only) over glommio's streams through `futures-rustls`.
//!
//! # API
//!
//! - [`server_config`]`(&TransportSecurity, &SecurityConfig) -> Result<Arc<rustls::ServerConfig>, TlsError>`:
//!   a listener's configuration (ALPN `h2`, `http/1.1`); with a trusted CA file or
//!   `client_cert_auth`, client certificates are required and verified (etcd's rule), with the
//!   CRL, allowed hostname and allowed CN applied. Wrap it in `futures_rustls::TlsAcceptor`.
//! - [`client_config`]`(&TransportSecurity, &SecurityConfig) -> Result<Arc<rustls::ClientConfig>, TlsError>`:
//!   for outbound connections (peers): CA bundle, optional client certificate
//!   (`client_cert_file`/`client_key_file`, else `cert_file`/`key_file`). Use with
//!   `futures_rustls::TlsConnector`.
//! - [`CertificateReloader`]: a certificate/key pair re-read when its files change (new
//!   handshakes use the new one; a bad new pair is logged and the old one kept). Both configs
//!   above use it; it is also a `ResolvesServerCert` / `ResolvesClientCert` of its own.
//! - [`crypto_policy`]`(&SecurityConfig)`: checks `--cipher-suites`, `--tls-min-version`,
//!   `--tls-max-version` with etcd's messages (config parsing calls it, so a bad value is an
//!   exit-2 start-up error).
//! - [`self_signed_certificate`] and [`fixtures_dir`]: `--auto-tls` / `--peer-auto-tls`.
//! - [`ClientIdentity`] / [`common_name_of`]: the CN of a verified client certificate; the
//!   client listener puts a `ClientIdentity` into each request's `http::Extensions`.
//!
//! Rotation: certificates, the CA bundle and the CRL are checked for changes at most once per
//! [`RELOAD_CHECK_INTERVAL`], on the handshake path (a few `stat` calls).

mod allowed;
mod auto;
mod client;
mod error;
mod files;
mod identity;
mod policy;
mod reloader;
mod server;
mod verifier;
mod watched;

pub use allowed::{AllowedNames, NotAllowed};
pub use auto::{fixtures_dir, self_signed_certificate, SelfSignedFiles};
pub use client::client_config;
pub use error::TlsError;
pub use identity::{common_name_of, ClientIdentity};
pub use policy::{crypto_policy, ring_provider, CryptoPolicy, TLS_VERSION_12, TLS_VERSION_13};
pub use reloader::CertificateReloader;
pub use server::{server_config, ALPN_PROTOCOLS};
pub use verifier::ClientCertPolicy;

/// How often, at most, a handshake checks whether certificate, key, CA or CRL files changed.
pub const RELOAD_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
