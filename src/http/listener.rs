//! Accepting HTTP/1.1 connections on a glommio listener, each served by its own task, at most
//! [`MAX_CONNECTIONS_PER_LISTENER`] at a time (further ones wait in the kernel's accept queue
//! until one ends). On an `https://` listener the TLS handshake runs in the connection's task,
//! bounded by [`TLS_HANDSHAKE_TIMEOUT`]; a failed one closes that connection only.

use super::connection::{serve_connection, Handler};
use super::MAX_CONNECTIONS_PER_LISTENER;
use crate::shard::Shutdown;
use futures_rustls::TlsAcceptor;
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::Semaphore;
use std::rc::Rc;
use std::time::Duration;

/// Pause after a failed accept (e.g. out of file descriptors) before the next one.
const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(10);
/// Time a new connection of an `https://` listener has to complete its TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts HTTP connections on `listener` until shutdown, over TLS when `tls` is given.
/// `name` tells the listener apart in logs (its url).
pub async fn serve_http_listener<H: Handler + 'static>(
    listener: TcpListener,
    handler: Rc<H>,
    tls: Option<TlsAcceptor>,
    shutdown: Shutdown,
    name: String,
) {
    let permits = Rc::new(Semaphore::new(MAX_CONNECTIONS_PER_LISTENER as u64));
    loop {
        let accepted = futures_lite::future::or(
            async {
                let Ok(permit) = permits.acquire_static_permit(1).await else {
                    return None;
                };
                Some((permit, listener.accept().await))
            },
            async {
                shutdown.wait().await;
                None
            },
        )
        .await;
        let (permit, stream) = match accepted {
            None => break,
            Some((permit, Ok(stream))) => (permit, stream),
            Some((_, Err(error))) => {
                tracing::warn!(listener = %name, %error, "accept failed");
                glommio::timer::sleep(ACCEPT_RETRY_PAUSE).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        glommio::spawn_local(async move {
            serve_accepted(stream, handler.as_ref(), tls, &shutdown).await;
            drop(permit);
        })
        .detach();
    }
    tracing::info!(listener = %name, "stopped accepting HTTP connections");
}

/// One accepted connection: the TLS handshake first when the listener speaks TLS.
async fn serve_accepted<H: Handler>(
    stream: TcpStream,
    handler: &H,
    tls: Option<TlsAcceptor>,
    shutdown: &Shutdown,
) {
    let Some(acceptor) = tls else {
        return serve_connection(stream, handler, shutdown).await;
    };
    let handshaken =
        futures_lite::future::or(async { Some(acceptor.accept(stream).await) }, async {
            glommio::timer::sleep(TLS_HANDSHAKE_TIMEOUT).await;
            None
        })
        .await;
    match handshaken {
        Some(Ok(stream)) => serve_connection(stream, handler, shutdown).await,
        Some(Err(error)) => tracing::debug!(%error, "TLS handshake failed; closing the connection"),
        None => tracing::debug!("TLS handshake timed out; closing the connection"),
    }
}
