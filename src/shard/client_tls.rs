//! The TLS side of the client listeners, settled once at start-up: which `--listen-client-urls`
//! entries speak TLS (the `https://` ones) and the rustls configuration they share.
//!
//! As etcd does:
//! - `--auto-tls` without `--cert-file` makes a self-signed certificate under
//!   `<data-dir>/fixtures/client` for the listen URLs' hosts; with a certificate given it is
//!   ignored (with a warning);
//! - an `http://` URL is served in plaintext even when certificates are configured, and a
//!   warning says that `--client-cert-auth` does not apply to it (etcd's words);
//! - an `https://` URL without a certificate was refused at flag parsing already.

use crate::config::{ServerConfig, TransportSecurity};
use crate::grpc::connection::ListenerSecurity;
use std::sync::Arc;

/// The shared TLS configuration of the https client listeners; `None` when every client URL
/// is plaintext.
pub fn client_tls_config(
    config: &ServerConfig,
) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
    let client = &config.security.client;
    for url in config.listen_client_urls.iter().filter(|url| !url.tls) {
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
    if !config.listen_client_urls.iter().any(|url| url.tls) {
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
    let hosts: Vec<String> = config
        .listen_client_urls
        .iter()
        .map(|url| url.address.ip().to_string())
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

/// The security of each client listener, in `--listen-client-urls` order.
pub fn listener_securities(
    config: &ServerConfig,
    client_tls: Option<&Arc<rustls::ServerConfig>>,
) -> Vec<ListenerSecurity> {
    config
        .listen_client_urls
        .iter()
        .map(|url| match (url.tls, client_tls) {
            (true, Some(server_config)) => ListenerSecurity::Tls(server_config.clone().into()),
            _ => ListenerSecurity::Plaintext,
        })
        .collect()
}
