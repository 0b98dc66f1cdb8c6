//! The TLS side of the client listeners, settled once at start-up: which `--listen-client-urls`
//! and `--listen-client-http-urls` entries speak TLS (the `https://` ones), the rustls
//! configuration they share, and the ALPN protocols each offers.
//!
//! As etcd does:
//! - `--auto-tls` without `--cert-file` makes a self-signed certificate under
//!   `<data-dir>/fixtures/client` for the listen URLs' hosts; with a certificate given it is
//!   ignored (with a warning);
//! - an `http://` URL is served in plaintext even when certificates are configured, and a
//!   warning says that `--client-cert-auth` does not apply to it (etcd's words);
//! - an `https://` URL without a certificate was refused at flag parsing already.

use super::listen::client_listener_urls;
use crate::config::{ServerConfig, TransportSecurity};
use crate::grpc::connection::ListenerSecurity;
use std::sync::Arc;

/// The shared TLS configuration of the https client listeners; `None` when every client URL
/// is plaintext.
pub fn client_tls_config(
    config: &ServerConfig,
) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
    let client = &config.security.client;
    let urls = client_listener_urls(config);
    for (url, _) in urls.iter().filter(|(url, _)| !url.tls) {
        if client.cert_file.is_some() || client.key_file.is_some() {
            tracing::warn!(
                client_url = %url.original,
                "scheme is HTTP while key and cert files are present; ignoring key and cert files"
            );
        }
        if client.client_cert_auth {
            tracing::warn!(
                client_url = %url.original,
                "scheme is http or unix while --client-cert-auth is enabled; ignoring client \
                 cert auth for this URL"
            );
        }
    }
    if !urls.iter().any(|(url, _)| url.tls) {
        return Ok(None);
    }
    let transport = with_auto_tls_certificate(config, client)?;
    let server_config = crate::tls::server_config(&transport, &config.security)
        .map_err(|error| format!("client TLS: {error}"))?;
    tracing::info!(
        cert_file = %transport.cert_file.as_deref().map(|path| path.display().to_string()).unwrap_or_default(),
        client_cert_auth = transport.client_cert_auth || transport.trusted_ca_file.is_some(),
        "client TLS configured"
    );
    Ok(Some(server_config))
}

/// `client`, with the self-signed certificate's files filled in when `--auto-tls` asks for
/// one and no certificate is given.
fn with_auto_tls_certificate(
    config: &ServerConfig,
    client: &TransportSecurity,
) -> Result<TransportSecurity, String> {
    let mut transport = client.clone();
    if !client.auto_tls {
        return Ok(transport);
    }
    if client.cert_file.is_some() && client.key_file.is_some() {
        tracing::warn!("ignoring client auto TLS since certs given");
        return Ok(transport);
    }
    let hosts: Vec<String> = client_listener_urls(config)
        .iter()
        .map(|(url, _)| url.address.ip().to_string())
        .collect();
    let files = crate::tls::self_signed_certificate(
        &crate::tls::fixtures_dir(&config.data_dir, "client"),
        &hosts,
        config.security.self_signed_cert_validity_years,
    )
    .map_err(|error| error.to_string())?;
    transport.cert_file = Some(files.cert_file);
    transport.key_file = Some(files.key_file);
    Ok(transport)
}

/// The security of each client listener, in [`client_listener_urls`] order: a TLS listener
/// offers the ALPN protocols of what it serves (`h2` and `http/1.1`, `h2` alone for gRPC
/// only, `http/1.1` alone for HTTP only), as etcd's do.
pub fn listener_securities(
    config: &ServerConfig,
    client_tls: Option<&Arc<rustls::ServerConfig>>,
) -> Vec<ListenerSecurity> {
    client_listener_urls(config)
        .into_iter()
        .map(|(url, traffic)| match (url.tls, client_tls) {
            (true, Some(server_config)) => {
                let mut server_config = rustls::ServerConfig::clone(server_config);
                server_config.alpn_protocols = traffic.alpn_protocols();
                ListenerSecurity::Tls(Arc::new(server_config).into())
            }
            _ => ListenerSecurity::Plaintext,
        })
        .collect()
}
