//! Accepting client connections on one shard, and running gRPC (HTTP/2) or HTTP/1.1 on each.
//!
//! Every shard has its own socket on the client port, joined with SO_REUSEPORT (see
//! `shard::listen`), so the kernel spreads connections over the shards and each connection
//! lives, end to end, on the shard that accepted it. A shard accepts only once the member
//! serves; until then the kernel queues connections (see `shard::runtime`).
//!
//! An `https://` listener runs the TLS handshake in the connection's own task (the accept loop
//! never waits on a client), bounded by [`HANDSHAKE_TIMEOUT`]. A failed handshake — garbage,
//! plaintext on a TLS port, a refused client certificate — closes that connection only. The
//! verified client certificate's CN is put into every gRPC request's extensions as a
//! [`ClientIdentity`] (the auth service's user name for certificate-authenticated calls).
//!
//! What a listener serves is its [`Traffic`], as etcd 3.6 splits it: gRPC and HTTP/1.1 on one
//! port (the default), or, once `--listen-client-http-urls` is given, gRPC only on the
//! `--listen-client-urls` and HTTP/1.1 only on the `--listen-client-http-urls`. On a port
//! that serves both, the protocol of a connection is chosen once, before any request:
//!
//! | listener | TLS, ALPN `h2` | TLS, ALPN `http/1.1` | plaintext, or TLS without ALPN |
//! | --- | --- | --- | --- |
//! | gRPC and HTTP | gRPC | HTTP/1.1 | first bytes ([`super::sniff`]) |
//! | gRPC only (ALPN `h2` only) | gRPC | — | gRPC (HTTP/2 handshake, as before) |
//! | HTTP only (ALPN `http/1.1` only) | — | HTTP/1.1 | first bytes; the HTTP/2 preface is closed, as etcd's `cmux` does |
//!
//! Sniffing is bounded by [`HANDSHAKE_TIMEOUT`] too, so a client that connects and sends
//! nothing is dropped. An HTTP/1.1 connection is served by `http::connection` with the
//! client port's routes (`http::ClientRoutes`), in its own task like a gRPC connection: its
//! bad input (huge heads, slowloris, garbage) costs only its own task, bounded in bytes and
//! time there, and never delays gRPC connections on the same shard.

use super::authority::Limits;
use super::authority_io::AuthorityShim;
use super::routes;
use super::sniff::{sniff, Protocol, SniffError};
use crate::http::ClientRoutes;
use crate::shard::{ShardContext, Shutdown};
use crate::tls::ClientIdentity;
use bytes::Bytes;
use futures::io::{AsyncRead, AsyncWrite};
use futures_rustls::TlsAcceptor;
use glommio::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::time::Duration;
use tokio_util::compat::FuturesAsyncReadCompatExt;

/// Per-stream receive window: how much one call may send before we read it.
pub const STREAM_WINDOW_BYTES: u32 = 1024 * 1024;
/// Per-connection receive window: bounds unread request bytes per connection.
pub const CONNECTION_WINDOW_BYTES: u32 = 4 * 1024 * 1024;
/// Largest HTTP/2 frame payload we accept.
pub const FRAME_BYTES_MAX: u32 = 256 * 1024;
/// Concurrent streams per connection (kube-apiserver multiplexes many watches on one).
pub const CONCURRENT_STREAMS_MAX: u32 = 10_000;
/// Largest decoded header block (metadata such as auth tokens is small).
pub const HEADER_LIST_BYTES_MAX: u32 = 64 * 1024;
/// Response bytes buffered per stream before flow control pushes back.
pub const SEND_BUFFER_BYTES_MAX: usize = 1024 * 1024;
/// Streams reset by the client that are still remembered.
pub const RESET_STREAMS_MAX: usize = 64;
/// Streams we reset because of the client's errors before the connection is closed.
pub const LOCAL_ERROR_RESETS_MAX: usize = 1024;
/// Largest HPACK-encoded header block of a client whose `:authority` is being rewritten.
pub const HEADER_BLOCK_BYTES_MAX: usize = 256 * 1024;
/// Time a new connection has to complete the TLS handshake, again to send the first bytes
/// that tell its protocol, and again the HTTP/2 handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// `concurrent_streams_max`: `--max-concurrent-streams`, else `CONCURRENT_STREAMS_MAX`.
fn http2_builder(concurrent_streams_max: u32) -> h2::server::Builder {
    let mut builder = h2::server::Builder::new();
    builder
        .initial_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .max_frame_size(FRAME_BYTES_MAX)
        .max_concurrent_streams(concurrent_streams_max)
        .max_header_list_size(HEADER_LIST_BYTES_MAX)
        .max_send_buffer_size(SEND_BUFFER_BYTES_MAX)
        .max_concurrent_reset_streams(RESET_STREAMS_MAX)
        .max_pending_accept_reset_streams(RESET_STREAMS_MAX)
        .max_local_error_reset_streams(Some(LOCAL_ERROR_RESETS_MAX));
    builder
}

/// What a client listener speaks: plaintext (`http://`) or TLS (`https://`).
#[derive(Clone)]
pub enum ListenerSecurity {
    Plaintext,
    Tls(TlsAcceptor),
}

/// What a client listener serves (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// gRPC and HTTP/1.1 on one port: `--listen-client-urls` without
    /// `--listen-client-http-urls`.
    GrpcAndHttp,
    /// `--listen-client-urls` beside `--listen-client-http-urls`.
    GrpcOnly,
    /// `--listen-client-http-urls`.
    HttpOnly,
}

impl Traffic {
    /// etcd's name of it in its `serving client traffic` log lines.
    pub fn etcd_name(self) -> &'static str {
        match self {
            Traffic::GrpcAndHttp => "grpc+http",
            Traffic::GrpcOnly => "grpc",
            Traffic::HttpOnly => "http",
        }
    }

    /// The ALPN protocols a TLS listener of this kind offers, in preference order.
    pub fn alpn_protocols(self) -> Vec<Vec<u8>> {
        match self {
            Traffic::GrpcAndHttp => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            Traffic::GrpcOnly => vec![b"h2".to_vec()],
            Traffic::HttpOnly => vec![b"http/1.1".to_vec()],
        }
    }

    /// How a connection is served, given the ALPN protocol its TLS handshake agreed on
    /// (`None`: plaintext, or no ALPN).
    fn choose(self, alpn: Option<&[u8]>) -> Choice {
        match (self, alpn) {
            (Traffic::GrpcOnly, _) => Choice::Grpc,
            (Traffic::GrpcAndHttp, Some(b"h2")) => Choice::Grpc,
            (_, Some(b"http/1.1")) => Choice::Http,
            _ => Choice::Sniff,
        }
    }

    /// What a sniffed connection gets; `None`: it is closed.
    fn after_sniffing(self, protocol: Protocol) -> Option<Choice> {
        match (self, protocol) {
            (Traffic::HttpOnly, Protocol::Http2) => None,
            (_, Protocol::Http2) => Some(Choice::Grpc),
            (_, Protocol::Http1) => Some(Choice::Http),
        }
    }
}

/// The server one connection gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    Grpc,
    Http,
    /// Decided by the first bytes.
    Sniff,
}

/// One client listener of a shard: its socket, security and traffic, and the routes its
/// HTTP/1.1 connections get.
pub struct ClientListener {
    pub listener: TcpListener,
    pub security: ListenerSecurity,
    pub traffic: Traffic,
    pub http_routes: Rc<ClientRoutes>,
}

/// Accepts connections until shutdown, spawning one task per connection.
pub async fn serve_listener(
    context: Rc<ShardContext>,
    client_listener: ClientListener,
    shutdown: Shutdown,
) {
    let shard = context.shard_id;
    let ClientListener {
        listener,
        security,
        traffic,
        http_routes,
    } = client_listener;
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            shutdown.wait().await;
            None
        })
        .await;
        let stream = match accepted {
            None => break,
            Some(Ok(stream)) => stream,
            Some(Err(error)) => {
                tracing::warn!(shard, %error, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if tracing::enabled!(tracing::Level::DEBUG) {
            let peer = stream
                .peer_addr()
                .map(|address| address.to_string())
                .unwrap_or_else(|_| "unknown".to_string());
            tracing::debug!(shard, %peer, ?traffic, "accepted client connection");
        }
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(shard, %error, "set_nodelay failed");
        }
        let served = Served {
            context: context.clone(),
            traffic,
            http_routes: http_routes.clone(),
            shutdown: shutdown.clone(),
        };
        glommio::spawn_local(served.accepted(stream, security.clone())).detach();
    }
    tracing::info!(shard, "stopped accepting client connections");
}

/// What one accepted connection is served with.
struct Served {
    context: Rc<ShardContext>,
    traffic: Traffic,
    http_routes: Rc<ClientRoutes>,
    shutdown: Shutdown,
}

impl Served {
    /// Runs one accepted connection: the TLS handshake first on a TLS listener, then gRPC or
    /// HTTP/1.1.
    async fn accepted(self, stream: TcpStream, security: ListenerSecurity) {
        let acceptor = match security {
            ListenerSecurity::Plaintext => {
                let choice = self.traffic.choose(None);
                return self.choose(stream, None, choice).await;
            }
            ListenerSecurity::Tls(acceptor) => acceptor,
        };
        let shard = self.context.shard_id;
        let handshaken = within(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
        let stream = match handshaken {
            Some(Ok(stream)) => stream,
            Some(Err(error)) => {
                tracing::debug!(shard, %error, "TLS handshake failed; closing the connection");
                return;
            }
            None => {
                tracing::debug!(shard, "TLS handshake timed out; closing the connection");
                return;
            }
        };
        let session = stream.get_ref().1;
        let identity = session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(ClientIdentity::of_certificate);
        let choice = self.traffic.choose(session.alpn_protocol());
        self.choose(stream, identity, choice).await;
    }

    /// Serves `stream` as `choice` says, sniffing its first bytes when that is the choice.
    async fn choose<S>(self, stream: S, identity: Option<ClientIdentity>, choice: Choice)
    where
        S: AsyncRead + AsyncWrite + Unpin + 'static,
    {
        match choice {
            Choice::Grpc => serve_connection(self.context, stream, identity, self.shutdown).await,
            Choice::Http => {
                crate::http::connection::serve_connection(
                    stream,
                    self.http_routes.as_ref(),
                    &self.shutdown,
                )
                .await
            }
            Choice::Sniff => {
                let shard = self.context.shard_id;
                let (protocol, stream) = match sniff(stream, HANDSHAKE_TIMEOUT).await {
                    Ok(sniffed) => sniffed,
                    Err(SniffError::TimedOut) => {
                        tracing::debug!(
                            shard,
                            "no request within the handshake timeout; closing the connection"
                        );
                        return;
                    }
                    Err(SniffError::Closed) => return,
                    Err(SniffError::Io(error)) => {
                        tracing::debug!(shard, %error, "reading a new connection failed");
                        return;
                    }
                };
                match self.traffic.after_sniffing(protocol) {
                    Some(Choice::Grpc) => {
                        serve_connection(self.context, stream, identity, self.shutdown).await
                    }
                    Some(_) => {
                        crate::http::connection::serve_connection(
                            stream,
                            self.http_routes.as_ref(),
                            &self.shutdown,
                        )
                        .await
                    }
                    None => tracing::debug!(
                        shard,
                        "HTTP/2 on an HTTP-only listener; closing the connection"
                    ),
                }
            }
        }
    }
}

/// HTTP/2 over one connection's stream (TCP or TLS); `identity` is the verified client
/// certificate's, handed to every request.
async fn serve_connection<S>(
    context: Rc<ShardContext>,
    stream: S,
    identity: Option<ClientIdentity>,
    shutdown: Shutdown,
) where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let shard = context.shard_id;
    // grpc-go clients of etcd 3.4 may send a URL as :authority, which h2 rejects.
    let stream = AuthorityShim::new(
        stream,
        Limits {
            frame_bytes_max: FRAME_BYTES_MAX as usize,
            header_block_bytes_max: HEADER_BLOCK_BYTES_MAX,
            header_list_bytes_max: HEADER_LIST_BYTES_MAX as usize,
        },
    );
    let concurrent_streams_max = context
        .config
        .max_concurrent_streams
        .unwrap_or(CONCURRENT_STREAMS_MAX);
    let handshake = http2_builder(concurrent_streams_max).handshake::<_, Bytes>(stream.compat());
    let handshaken = within(HANDSHAKE_TIMEOUT, handshake).await;
    let mut connection = match handshaken {
        Some(Ok(connection)) => connection,
        Some(Err(error)) => {
            tracing::debug!(shard, %error, "http/2 handshake failed; closing the connection");
            return;
        }
        None => {
            tracing::debug!(shard, "http/2 handshake timed out; closing the connection");
            return;
        }
    };
    let mut shutting_down = false;
    loop {
        let next = if shutting_down {
            connection.accept().await.map(Some)
        } else {
            futures_lite::future::or(async { connection.accept().await.map(Some) }, async {
                shutdown.wait().await;
                Some(None)
            })
            .await
        };
        match next {
            None => break,
            Some(None) => {
                shutting_down = true;
                connection.graceful_shutdown();
            }
            Some(Some(Ok((mut request, respond)))) => {
                if let Some(identity) = &identity {
                    request.extensions_mut().insert(identity.clone());
                }
                glommio::spawn_local(routes::dispatch(context.clone(), request, respond)).detach();
            }
            Some(Some(Err(error))) => {
                tracing::debug!(shard, %error, "http/2 connection error; closing it");
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_listener_serves_what_etcd_serves_on_it() {
        let h2: Option<&[u8]> = Some(b"h2");
        let http1: Option<&[u8]> = Some(b"http/1.1");
        assert_eq!(Traffic::GrpcAndHttp.choose(h2), Choice::Grpc);
        assert_eq!(Traffic::GrpcAndHttp.choose(http1), Choice::Http);
        assert_eq!(Traffic::GrpcAndHttp.choose(None), Choice::Sniff);
        assert_eq!(Traffic::GrpcOnly.choose(None), Choice::Grpc);
        assert_eq!(Traffic::GrpcOnly.choose(http1), Choice::Grpc);
        assert_eq!(Traffic::HttpOnly.choose(http1), Choice::Http);
        assert_eq!(Traffic::HttpOnly.choose(None), Choice::Sniff);
        assert_eq!(Traffic::HttpOnly.after_sniffing(Protocol::Http2), None);
        assert_eq!(
            Traffic::HttpOnly.after_sniffing(Protocol::Http1),
            Some(Choice::Http)
        );
        assert_eq!(
            Traffic::GrpcAndHttp.after_sniffing(Protocol::Http2),
            Some(Choice::Grpc)
        );
    }
}

/// `future`'s output, or `None` once `duration` passed without it.
async fn within<T>(duration: Duration, future: impl std::future::Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(future.await) }, async {
        glommio::timer::sleep(duration).await;
        None
    })
    .await
}
