//! One client port, two protocols: telling a gRPC (HTTP/2) connection from an HTTP/1.1 one by
//! its first bytes, and handing the bytes read to decide back to whichever server takes it.
//!
//! etcd does this with `cmux` on a plaintext port and with ALPN under TLS; Capstan does the
//! same (the TLS side is in `grpc::connection`). This module is the plaintext side, and the
//! fallback for a TLS client that negotiated no ALPN protocol:
//!
//! - [`sniff`] reads at most the 24 bytes of the HTTP/2 client preface
//!   (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, RFC 9113 §3.4), comparing each read as it arrives:
//!   the first byte that differs decides HTTP/1.1 (for a request that is the very first byte,
//!   `G` of `GET` against `P`), all 24 equal decide HTTP/2. Nothing is buffered beyond those 24
//!   bytes, and a client that sends nothing, or trickles the preface, is dropped after the
//!   caller's timeout: no connection holds a decision open forever.
//! - [`Prefixed`] replays the bytes [`sniff`] read, then reads straight from the stream. On
//!   the HTTP/2 path that costs one comparison per read once the preface is replayed (no copy),
//!   so gRPC runs as fast as without the sniffing.

use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// The HTTP/2 client connection preface.
pub const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a connection's first bytes say it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// It sent the whole HTTP/2 preface (gRPC).
    Http2,
    /// Anything else; the HTTP/1.1 server answers it (garbage gets Go's `400 Bad Request`).
    Http1,
}

/// Why no protocol was decided.
#[derive(Debug)]
pub enum SniffError {
    /// The client closed before the decision.
    Closed,
    /// The client did not decide within the timeout.
    TimedOut,
    Io(io::Error),
}

/// Reads the first bytes of `stream` (at most [`HTTP2_PREFACE`]'s length) until they decide
/// its protocol, within `timeout`. The stream returned replays what was read.
pub async fn sniff<S: AsyncRead + Unpin>(
    mut stream: S,
    timeout: Duration,
) -> Result<(Protocol, Prefixed<S>), SniffError> {
    let mut seen = [0u8; HTTP2_PREFACE.len()];
    let mut seen_bytes = 0;
    let decided = futures_lite::future::or(
        async {
            loop {
                let count = stream
                    .read(&mut seen[seen_bytes..])
                    .await
                    .map_err(SniffError::Io)?;
                if count == 0 {
                    return Err(SniffError::Closed);
                }
                let before = seen_bytes;
                seen_bytes += count;
                if let Some(protocol) = decide(&seen[before..seen_bytes], before) {
                    return Ok(protocol);
                }
            }
        },
        async {
            glommio::timer::sleep(timeout).await;
            Err(SniffError::TimedOut)
        },
    )
    .await?;
    Ok((decided, Prefixed::new(seen[..seen_bytes].to_vec(), stream)))
}

/// The decision after `fresh` arrived at offset `offset` of the connection, if it is made.
fn decide(fresh: &[u8], offset: usize) -> Option<Protocol> {
    let end = offset + fresh.len();
    if HTTP2_PREFACE.get(offset..end) != Some(fresh) {
        Some(Protocol::Http1)
    } else if end == HTTP2_PREFACE.len() {
        Some(Protocol::Http2)
    } else {
        None
    }
}

/// A stream whose first reads return `prefix` (bytes already taken from `inner`).
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    /// Bytes of `prefix` already returned.
    replayed: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: Vec<u8>, inner: S) -> Prefixed<S> {
        Prefixed {
            prefix,
            replayed: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.replayed < this.prefix.len() && !buffer.is_empty() {
            let rest = &this.prefix[this.replayed..];
            let count = rest.len().min(buffer.len());
            buffer[..count].copy_from_slice(&rest[..count]);
            this.replayed += count;
            if this.replayed == this.prefix.len() {
                this.prefix = Vec::new();
                this.replayed = 0;
            }
            return Poll::Ready(Ok(count));
        }
        Pin::new(&mut this.inner).poll_read(context, buffer)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(context, bytes)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(context, buffers)
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(context)
    }

    fn poll_close(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decides_at_the_first_differing_byte() {
        assert_eq!(decide(b"G", 0), Some(Protocol::Http1));
        assert_eq!(decide(b"GET / HTTP/1.1\r\n", 0), Some(Protocol::Http1));
        assert_eq!(decide(b"PRI", 0), None);
        assert_eq!(decide(b" * HTTP/2.0\r\n\r\nSM\r\n\r", 3), None);
        assert_eq!(decide(b"\n", 23), Some(Protocol::Http2));
        assert_eq!(decide(HTTP2_PREFACE, 0), Some(Protocol::Http2));
        assert_eq!(
            decide(b"PRI * HTTP/2.0\r\n\r\nSX", 0),
            Some(Protocol::Http1)
        );
        assert_eq!(decide(b"\x16\x03\x01", 0), Some(Protocol::Http1));
    }

    #[test]
    fn prefixed_replays_then_reads_through() {
        futures::executor::block_on(async {
            let inner: &[u8] = b" rest";
            let mut stream = Prefixed::new(b"first".to_vec(), inner);
            let mut small = [0u8; 3];
            assert_eq!(stream.read(&mut small).await.ok(), Some(3));
            assert_eq!(&small, b"fir");
            let mut all = Vec::new();
            stream.read_to_end(&mut all).await.expect("reads");
            assert_eq!(all, b"st rest");
        });
    }
}
