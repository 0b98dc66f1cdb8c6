//! Accepting client connections on one shard and running HTTP/2 on each of them.
//!
//! Every shard has its own socket on the client port, joined with SO_REUSEPORT (see
//! `shard::listen`), so the kernel spreads connections over the shards and each connection
//! lives, end to end, on the shard that accepted it. A shard accepts only once the member
//! serves; until then the kernel queues connections (see `shard::runtime`).
//!
//! An `https://` listener runs the TLS handshake in the connection's own task (the accept loop
//! never waits on a client), bounded by [`HANDSHAKE_TIMEOUT`]; then the same HTTP/2 path runs
//! over the TLS stream. A failed handshake — garbage, plaintext on a TLS port, a refused client
//! certificate — closes that connection only. The verified client certificate's CN is put into
//! every request's extensions as a [`ClientIdentity`] (the auth service's user name for
//! certificate-authenticated calls).

use super::authority::Limits;
use super::authority_io::AuthorityShim;
use super::routes;
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
/// Time a new connection has to complete the TLS handshake, and again the HTTP/2 handshake.
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

/// Accepts connections until shutdown, spawning one task per connection.
pub async fn serve_listener(
    context: Rc<ShardContext>,
    listener: TcpListener,
    security: ListenerSecurity,
    shutdown: Shutdown,
) {
    let shard = context.shard_id;
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
        let peer = stream
            .peer_addr()
            .map(|address| address.to_string())
            .unwrap_or_else(|_| "unknown".to_string());
        tracing::info!(shard, %peer, "accepted client connection");
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(shard, %error, "set_nodelay failed");
        }
        glommio::spawn_local(serve_accepted(
            context.clone(),
            stream,
            security.clone(),
            shutdown.clone(),
        ))
        .detach();
    }
    tracing::info!(shard, "stopped accepting client connections");
}

/// Runs one accepted connection: the TLS handshake first on a TLS listener, then HTTP/2.
async fn serve_accepted(
    context: Rc<ShardContext>,
    stream: TcpStream,
    security: ListenerSecurity,
    shutdown: Shutdown,
) {
    match security {
        ListenerSecurity::Plaintext => serve_connection(context, stream, None, shutdown).await,
        ListenerSecurity::Tls(acceptor) => {
            let shard = context.shard_id;
            let handshaken =
                futures_lite::future::or(async { Some(acceptor.accept(stream).await) }, async {
                    glommio::timer::sleep(HANDSHAKE_TIMEOUT).await;
                    None
                })
                .await;
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
            let identity = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(ClientIdentity::of_certificate);
            serve_connection(context, stream, identity, shutdown).await;
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
    let handshaken = futures_lite::future::or(async { Some(handshake.await) }, async {
        glommio::timer::sleep(HANDSHAKE_TIMEOUT).await;
        None
    })
    .await;
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
