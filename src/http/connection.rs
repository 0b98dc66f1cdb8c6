//! One HTTP/1.1 connection: read a request, answer it, repeat while both sides keep it alive.
//!
//! Generic over any futures `AsyncRead + AsyncWrite` stream (a glommio `TcpStream` today, a
//! `futures_rustls` server stream for an `https://` listener). Requests are answered one at a
//! time in order, so pipelined requests get their responses in order. A request that cannot
//! be read gets Go's answer (400, 431, 501, 505 ...) and the connection closes; a client too
//! slow to send its head ([`REQUEST_HEAD_TIMEOUT`](super::REQUEST_HEAD_TIMEOUT)) or to read
//! its response ([`RESPONSE_WRITE_TIMEOUT`]) is dropped.

use super::date::http_date_now;
use super::request::{Inbound, ReadOutcome, Request};
use super::response::Response;
use super::{KEEP_ALIVE_IDLE_TIMEOUT, RESPONSE_WRITE_TIMEOUT};
use crate::shard::Shutdown;
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::future::Future;
use std::time::{Duration, Instant};

/// After the last response, how long the client's further bytes are read and dropped before
/// the socket closes (Go's `closeWriteAndWait`): closing with unread input makes the kernel
/// send a reset, which can destroy the response before the client read it.
const CLOSE_LINGER: Duration = Duration::from_millis(500);
/// Most bytes read and dropped while lingering.
const CLOSE_LINGER_BYTES_MAX: usize = 4 << 20;

/// Answers requests; the routes of one kind of listener.
pub trait Handler {
    fn respond(&self, request: Request) -> impl Future<Output = Response>;
}

/// Serves requests on `stream` until the client closes, a request fails, a response says
/// close, or shutdown starts.
pub async fn serve_connection<S, H>(mut stream: S, handler: &H, shutdown: &Shutdown)
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    let mut inbound = Inbound::default();
    let mut linger = false;
    loop {
        let outcome = futures_lite::future::or(
            inbound.next_request(&mut stream, KEEP_ALIVE_IDLE_TIMEOUT),
            async {
                shutdown.wait().await;
                ReadOutcome::Closed
            },
        )
        .await;
        let request = match outcome {
            ReadOutcome::Request(request) => request,
            ReadOutcome::Closed => break,
            ReadOutcome::Failed(error) => {
                tracing::debug!(?error, "unreadable HTTP request");
                if let Some(response) = Response::for_request_error(&error) {
                    let bytes = response.encode(1, false, true, &http_date_now());
                    linger = write_within(&mut stream, &bytes).await;
                }
                break;
            }
        };
        let minor_version = request.minor_version;
        let head_only = request.is_head();
        let keep_alive = request.keeps_alive();
        let response = handler.respond(request).await;
        let close = response.close || !keep_alive || shutdown.is_triggered();
        let bytes = response.encode(minor_version, head_only, close, &http_date_now());
        if !write_within(&mut stream, &bytes).await {
            break;
        }
        if close {
            linger = true;
            break;
        }
    }
    // Shuts the sending side (a TLS stream sends its close_notify).
    let closed = futures_lite::future::or(async { stream.close().await.is_ok() }, async {
        glommio::timer::sleep(RESPONSE_WRITE_TIMEOUT).await;
        false
    })
    .await;
    if linger && closed {
        drain(&mut stream).await;
    }
}

/// Reads and drops what the client still sends, until it closes, [`CLOSE_LINGER`] passes or
/// [`CLOSE_LINGER_BYTES_MAX`] arrived.
async fn drain<S: AsyncRead + Unpin>(stream: &mut S) {
    let deadline = Instant::now() + CLOSE_LINGER;
    let mut scratch = vec![0u8; 16 * 1024];
    let mut drained = 0;
    while drained < CLOSE_LINGER_BYTES_MAX {
        let read =
            futures_lite::future::or(async { stream.read(&mut scratch).await.ok() }, async {
                glommio::timer::sleep(deadline.saturating_duration_since(Instant::now())).await;
                None
            })
            .await;
        match read {
            Some(count) if count > 0 => drained += count,
            _ => return,
        }
    }
}

/// Writes and flushes `bytes`; false if that failed or took longer than
/// [`RESPONSE_WRITE_TIMEOUT`].
async fn write_within<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> bool {
    futures_lite::future::or(
        async { stream.write_all(bytes).await.is_ok() && stream.flush().await.is_ok() },
        async {
            glommio::timer::sleep(RESPONSE_WRITE_TIMEOUT).await;
            false
        },
    )
    .await
}
