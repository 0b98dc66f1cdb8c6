//! Accepting HTTP/1.1 connections on a glommio listener, each served by its own task, at most
//! [`MAX_CONNECTIONS_PER_LISTENER`] at a time (further ones wait in the kernel's accept queue
//! until one ends).

use super::connection::{serve_connection, Handler};
use super::MAX_CONNECTIONS_PER_LISTENER;
use crate::shard::Shutdown;
use glommio::net::TcpListener;
use glommio::sync::Semaphore;
use std::rc::Rc;
use std::time::Duration;

/// Pause after a failed accept (e.g. out of file descriptors) before the next one.
const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// Accepts plain-TCP HTTP connections on `listener` until shutdown. `name` tells the listener
/// apart in logs (its url).
pub async fn serve_http_listener<H: Handler + 'static>(
    listener: TcpListener,
    handler: Rc<H>,
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
        glommio::spawn_local(async move {
            serve_connection(stream, handler.as_ref(), &shutdown).await;
            drop(permit);
        })
        .detach();
    }
    tracing::info!(listener = %name, "stopped accepting HTTP connections");
}
