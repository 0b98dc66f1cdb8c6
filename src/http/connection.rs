//! One HTTP/1.1 connection: read a request, answer it, repeat while both sides keep it alive.
//!
//! Generic over any futures `AsyncRead + AsyncWrite` stream (a glommio `TcpStream` today, a
//! `futures_rustls` server stream for an `https://` listener). Requests are answered one at a
//! time in order, so pipelined requests get their responses in order. A request that cannot
//! be read gets Go's answer (400, 431, 501, 505 ...) and the connection closes; a client too
//! slow to send its head ([`REQUEST_HEAD_TIMEOUT`](super::REQUEST_HEAD_TIMEOUT)) or to read
//! its response ([`RESPONSE_WRITE_TIMEOUT`]) is dropped.
//!
//! A response with a [`ChunkedBody`] (the JSON gateway's streams) is written as its pieces
//! come: the head with the first piece (as Go's server sends nothing before the handler's
//! first write), then one chunk per piece, then the last chunk and trailers. Meanwhile the
//! connection reads from the client only to notice that it went away, which ends the stream
//! (dropping it, which ends the call behind it); bytes the client sends meanwhile are dropped
//! and the connection closes after the stream. Shutdown ends a stream as well.

use super::date::http_date_now;
use super::request::{Inbound, ReadOutcome, Request};
use super::response::{ChunkedBody, Response};
use super::{KEEP_ALIVE_IDLE_TIMEOUT, RESPONSE_WRITE_TIMEOUT};
use crate::shard::Shutdown;
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use futures::stream::{LocalBoxStream, StreamExt};
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

    /// The largest request body this handler reads (beyond it: 413 and a close).
    fn body_bytes_max(&self) -> usize {
        super::MAX_REQUEST_BODY_BYTES
    }
}

/// Serves requests on `stream` until the client closes, a request fails, a response says
/// close, or shutdown starts.
pub async fn serve_connection<S, H>(mut stream: S, handler: &H, shutdown: &Shutdown)
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    let mut inbound = Inbound::with_body_limit(handler.body_bytes_max());
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
        let mut close = response.close || !keep_alive || shutdown.is_triggered();
        if let Some(chunked) = response.chunked.clone() {
            // Without chunked framing (HTTP/1.0) the close ends the body.
            close |= minor_version == 0;
            let request = ChunkedRequest {
                minor_version,
                head_only,
                close,
            };
            match write_chunked(&mut stream, &response, &chunked, request, shutdown).await {
                StreamEnd::Sent => {}
                StreamEnd::SentWhileClientWrote => close = true,
                StreamEnd::ClientGone => break,
            }
        } else {
            let bytes = response.encode(minor_version, head_only, close, &http_date_now());
            if !write_within(&mut stream, &bytes).await {
                break;
            }
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

/// How a chunked response ended.
enum StreamEnd {
    /// Every piece and the trailers went out.
    Sent,
    /// Sent, but the client wrote meanwhile: those bytes are gone, so the connection closes.
    SentWhileClientWrote,
    /// The client closed, a write failed or timed out, or shutdown started: nothing more can
    /// be written.
    ClientGone,
}

/// What a chunked response is written for.
#[derive(Clone, Copy)]
struct ChunkedRequest {
    minor_version: u8,
    head_only: bool,
    close: bool,
}

/// What happened first while a stream waited for its next piece.
enum StreamEvent {
    Piece(Option<Vec<u8>>),
    ClientWrote,
    ClientGone,
}

/// Writes `response`, whose body is `chunked`, piece by piece; see the module doc.
async fn write_chunked<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    response: &Response,
    chunked: &ChunkedBody,
    request: ChunkedRequest,
    shutdown: &Shutdown,
) -> StreamEnd {
    let Some(mut pieces) = chunked.take_pieces() else {
        return StreamEnd::ClientGone;
    };
    let framed = request.minor_version > 0;
    let mut client_wrote = false;
    let mut head_sent = false;
    loop {
        let piece = match next_piece(stream, &mut pieces, shutdown).await {
            StreamEvent::ClientGone => return StreamEnd::ClientGone,
            StreamEvent::ClientWrote => {
                client_wrote = true;
                continue;
            }
            StreamEvent::Piece(piece) => piece,
        };
        let mut bytes = Vec::new();
        if !head_sent {
            head_sent = true;
            bytes = response.encode(
                request.minor_version,
                request.head_only,
                request.close,
                &http_date_now(),
            );
        }
        let ended = piece.is_none();
        if !request.head_only {
            match piece {
                Some(piece) if framed => bytes.extend(ChunkedBody::encode_chunk(&piece)),
                Some(piece) => bytes.extend(piece),
                None if framed => bytes.extend(chunked.encode_end()),
                None => {}
            }
        }
        if !bytes.is_empty() && !write_within(stream, &bytes).await {
            return StreamEnd::ClientGone;
        }
        if ended || request.head_only {
            return if client_wrote {
                StreamEnd::SentWhileClientWrote
            } else {
                StreamEnd::Sent
            };
        }
    }
}

/// The next piece of `pieces`, unless the client goes away (or shutdown starts) first.
async fn next_piece<S: AsyncRead + Unpin>(
    stream: &mut S,
    pieces: &mut LocalBoxStream<'static, Vec<u8>>,
    shutdown: &Shutdown,
) -> StreamEvent {
    let mut scratch = [0u8; 1024];
    let piece = async { StreamEvent::Piece(pieces.next().await) };
    let client = async {
        match stream.read(&mut scratch).await {
            Ok(count) if count > 0 => StreamEvent::ClientWrote,
            _ => StreamEvent::ClientGone,
        }
    };
    let stopping = async {
        shutdown.wait().await;
        StreamEvent::ClientGone
    };
    futures_lite::future::or(piece, futures_lite::future::or(client, stopping)).await
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
