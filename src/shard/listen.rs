//! The client port: one listening socket per shard, joined in one SO_REUSEPORT group (and
//! likewise for every `--listen-client-urls` and `--listen-client-http-urls` entry).
//!
//! Sockets are made here rather than by glommio so they also carry SO_REUSEADDR: connections
//! accepted by a previous run inherit the listener's options, and their TIME-WAIT leftovers
//! must not keep a restarted server off its own port for a minute.
//!
//! The client sockets are bound first thing at start-up, before the page store and the WAL are
//! read ([`bind_client_socket`], on the main thread), as etcd binds its listeners before it
//! replays: from then on a client's connection is queued by the kernel instead of refused, so
//! it does not fall into its client library's reconnect backoff (grpc-go waits a second or
//! more after a refusal). Each shard turns its socket into a glommio listener on its own
//! executor ([`listener_on_this_shard`]) and accepts once the member serves (see
//! `shard::runtime`); until then connections wait in the kernel's queue, up to
//! [`LISTEN_BACKLOG`] per shard.

use crate::config::{ClientUrl, ServerConfig};
use crate::grpc::connection::Traffic;
use glommio::net::TcpListener;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::time::Duration;

/// Pending connections the kernel queues per shard's listening socket.
pub const LISTEN_BACKLOG: i32 = 1024;
/// How long start-up waits for a listener of a previous (killed) run to go away: its sockets
/// can outlive the process briefly while io_uring tears down.
pub const PORT_RELEASE_WAIT: Duration = Duration::from_secs(3);
const PORT_PROBE_INTERVAL: Duration = Duration::from_millis(50);
const PORT_PROBE_TIMEOUT: Duration = Duration::from_millis(200);

/// Whether other sockets may bind the same port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortSharing {
    /// SO_REUSEPORT: every shard listens on the client port.
    AcrossShards,
    /// One listener only (the peer port): a second process binding it fails.
    Exclusive,
}

/// Every client listener with what it serves, as etcd 3.6 splits them: the
/// `--listen-client-urls` serve gRPC and HTTP/1.1, or gRPC only once
/// `--listen-client-http-urls` (HTTP/1.1 only) are given. This order is the order of each
/// shard's client sockets.
pub fn client_listener_urls(config: &ServerConfig) -> Vec<(&ClientUrl, Traffic)> {
    let grpc_traffic = if config.listen_client_http_urls.is_empty() {
        Traffic::GrpcAndHttp
    } else {
        Traffic::GrpcOnly
    };
    config
        .listen_client_urls
        .iter()
        .map(|url| (url, grpc_traffic))
        .chain(
            config
                .listen_client_http_urls
                .iter()
                .map(|url| (url, Traffic::HttpOnly)),
        )
        .collect()
}

/// Binds one shard's listening socket on the client port. Any thread may call it; the socket
/// queues connections (up to [`LISTEN_BACKLOG`]) until its shard accepts them.
pub fn bind_client_socket(address: SocketAddr) -> std::io::Result<Socket> {
    bind_socket(address, PortSharing::AcrossShards, LISTEN_BACKLOG)
}

/// Turns a socket from [`bind_client_socket`] into a listener of the calling shard's executor.
/// Must run on that executor.
pub fn listener_on_this_shard(socket: Socket) -> TcpListener {
    let fd = socket.into_raw_fd();
    // SAFETY: `fd` is a bound, listening TCP socket we own (taken out of `socket`, which no
    // longer closes it); glommio's listener takes over ownership and closes it on drop.
    unsafe { TcpListener::from_raw_fd(fd) }
}

/// Binds a listening socket with SO_REUSEADDR (so TIME-WAIT leftovers of a previous run never
/// keep a restarted server off its port), sharing the port as `sharing` says. Must run on the
/// executor that will accept on it.
pub fn bind_listener(
    address: SocketAddr,
    sharing: PortSharing,
    backlog: i32,
) -> std::io::Result<TcpListener> {
    bind_socket(address, sharing, backlog).map(listener_on_this_shard)
}

fn bind_socket(address: SocketAddr, sharing: PortSharing, backlog: i32) -> std::io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(sharing == PortSharing::AcrossShards)?;
    socket.bind(&SockAddr::from(address))?;
    socket.listen(backlog)?;
    Ok(socket)
}

/// Waits until nothing accepts connections on `address`. SO_REUSEPORT would otherwise let a
/// second server quietly share a live server's port (and split its connections).
pub fn wait_until_port_is_free(address: SocketAddr) -> Result<(), String> {
    let probe_address = if address.ip().is_unspecified() {
        SocketAddr::new(
            if address.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            },
            address.port(),
        )
    } else {
        address
    };
    let deadline = std::time::Instant::now() + PORT_RELEASE_WAIT;
    loop {
        if TcpStream::connect_timeout(&probe_address, PORT_PROBE_TIMEOUT).is_err() {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err("Address already in use: another process accepts connections on it".into());
        }
        std::thread::sleep(PORT_PROBE_INTERVAL);
    }
}
