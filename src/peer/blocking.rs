//! One request and one fixed-size answer over a blocking std socket, TLS (blocking rustls)
//! when the peer's url is `https://`: the exchanges a member makes before its executors start
//! ([`super::cluster_query`], [`super::hash_query`]). The TLS client configuration is the peer
//! transport's, so `--peer-*` certificates and checks apply exactly as on raft connections.

use super::tls::server_name;
use super::transport::PeerAddress;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

/// How long each step may take.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// The TCP connect.
    pub connect: Duration,
    /// Each read and write after it (the TLS handshake included).
    pub answer: Duration,
}

/// Connects to `peer`, sends `request` and reads exactly `answer.len()` bytes back.
pub fn exchange(
    peer: &PeerAddress,
    tls: Option<&Arc<rustls::ClientConfig>>,
    timeouts: Timeouts,
    request: &[u8],
    answer: &mut [u8],
) -> io::Result<()> {
    let stream = TcpStream::connect_timeout(&peer.address, timeouts.connect)?;
    stream.set_read_timeout(Some(timeouts.answer))?;
    stream.set_write_timeout(Some(timeouts.answer))?;
    match &peer.tls_host {
        None => send_and_read(stream, request, answer),
        Some(host) => {
            let config = tls.cloned().ok_or_else(|| {
                io::Error::other(
                    "peer url is https but this member has no peer TLS settings \
                     (--peer-trusted-ca-file, --peer-auto-tls)",
                )
            })?;
            let connection = rustls::ClientConnection::new(config, server_name(host)?)
                .map_err(io::Error::other)?;
            send_and_read(
                rustls::StreamOwned::new(connection, stream),
                request,
                answer,
            )
        }
    }
}

/// Sends the request and reads the answer (the TLS handshake, if any, happens on the write).
fn send_and_read(
    mut stream: impl Read + Write,
    request: &[u8],
    answer: &mut [u8],
) -> io::Result<()> {
    stream.write_all(request)?;
    stream.flush()?;
    stream.read_exact(answer)
}
