//! Start-up of the metrics listeners (`--listen-metrics-urls`), kept out of the shard runtime:
//!
//! 1. [`bind_metrics_sockets`], on the main thread before the WAL is replayed (like the client
//!    sockets): from then on probes' connections queue in the kernel instead of being refused;
//!    an `https://` url gets the client TLS settings (`--cert-file`, `--key-file`,
//!    `--trusted-ca-file`, `--client-cert-auth`, as etcd uses for it), ALPN `http/1.1` only;
//! 2. [`start_metrics_listeners`], on the owner shard once the WAL is replayed and the raft
//!    group exists (where etcd starts serving its metrics mux: before the member has a
//!    leader); it returns the slot the shard fills with its context once it serves.

use super::listener::serve_http_listener;
use super::member::{ContextSlot, MemberView};
use super::routes::MetricsRoutes;
use super::METRICS_LISTEN_BACKLOG;
use crate::config::{ClientUrl, ServerConfig};
use crate::shard::listen::{listener_on_this_shard, PORT_RELEASE_WAIT};
use crate::shard::Shutdown;
use futures_rustls::TlsAcceptor;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pause between attempts to bind a metrics port a previous run still holds.
const BIND_RETRY_PAUSE: Duration = Duration::from_millis(50);

/// The bound metrics sockets and the TLS acceptor of the `https://` ones.
pub struct MetricsSockets {
    sockets: Vec<(ClientUrl, Socket)>,
    tls: Option<TlsAcceptor>,
}

/// Binds one socket per `--listen-metrics-urls` entry (exclusively: a second process cannot
/// share it). Errors name the url.
pub fn bind_metrics_sockets(config: &ServerConfig) -> Result<MetricsSockets, String> {
    let tls = if config.listen_metrics_urls.iter().any(|url| url.tls) {
        Some(metrics_tls(config)?)
    } else {
        None
    };
    let mut sockets = Vec::new();
    for url in &config.listen_metrics_urls {
        let socket = bind_exclusive(url.address)
            .map_err(|error| format!("listen on {}: {error}", url.original))?;
        tracing::info!(address = %url.address, tls = url.tls, "listening for metrics and health probes");
        sockets.push((url.clone(), socket));
    }
    Ok(MetricsSockets { sockets, tls })
}

/// The TLS acceptor of `https://` metrics urls: the client certificate settings, as etcd uses
/// them there, with ALPN `http/1.1` only (nothing here speaks HTTP/2).
fn metrics_tls(config: &ServerConfig) -> Result<TlsAcceptor, String> {
    let client = &config.security.client;
    if client.cert_file.is_none() || client.key_file.is_none() {
        let url = config
            .listen_metrics_urls
            .iter()
            .find(|url| url.tls)
            .map(|url| url.original.as_str())
            .unwrap_or_default();
        return Err(format!(
            "cannot listen on TLS for {url}: KeyFile and CertFile are not presented"
        ));
    }
    let shared = crate::tls::server_config(client, &config.security)
        .map_err(|error| format!("metrics TLS: {error}"))?;
    let mut server_config = rustls::ServerConfig::clone(&shared);
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server_config)))
}

/// Binds a listening socket with SO_REUSEADDR but not SO_REUSEPORT, retrying for a while when
/// the port is still held (a killed previous run's sockets outlive it briefly).
fn bind_exclusive(address: std::net::SocketAddr) -> std::io::Result<Socket> {
    let deadline = Instant::now() + PORT_RELEASE_WAIT;
    loop {
        let socket = Socket::new(
            Domain::for_address(address),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        match socket.bind(&SockAddr::from(address)) {
            Ok(()) => {
                socket.listen(METRICS_LISTEN_BACKLOG)?;
                return Ok(socket);
            }
            Err(error)
                if error.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline =>
            {
                std::thread::sleep(BIND_RETRY_PAUSE);
            }
            Err(error) => return Err(error),
        }
    }
}

/// Serves every metrics socket on the calling shard until shutdown. The returned slot is to be
/// filled with the shard's context once it serves (linearizable probe reads wait for it).
pub fn start_metrics_listeners(
    sockets: MetricsSockets,
    member: MemberView,
    shutdown: &Shutdown,
) -> Rc<ContextSlot> {
    let slot = member.context.clone();
    let routes = Rc::new(MetricsRoutes {
        member: Rc::new(member),
    });
    for (url, socket) in sockets.sockets {
        let tls = if url.tls { sockets.tls.clone() } else { None };
        glommio::spawn_local(serve_http_listener(
            listener_on_this_shard(socket),
            routes.clone(),
            tls,
            shutdown.clone(),
            url.original,
        ))
        .detach();
    }
    slot
}
