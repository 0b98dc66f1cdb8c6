//! [`AuthorityShim`]: a client connection as h2 reads it, with [`AuthorityRewriter`] on the
//! bytes from the client.
//!
//! Until the rewriter reaches Passthrough, reads go through an input buffer, the rewriter and
//! an output buffer. From Passthrough on (for ordinary clients: right after the first request's
//! header block), the rewriter and both buffers are dropped once the output is drained, and
//! every read goes straight to the socket. Writes always go straight to the socket.

use super::authority::{AuthorityRewriter, Limits, Mode};
use bytes::{Buf, BytesMut};
use futures::io::{AsyncRead, AsyncWrite};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Bytes read from the socket at a time while the rewriter is active.
pub const READ_CHUNK_BYTES: usize = 16 * 1024;

struct Active {
    rewriter: AuthorityRewriter,
    /// Client bytes not yet consumed by the rewriter (an incomplete frame).
    input: BytesMut,
    /// Bytes for h2 not yet read by it.
    output: BytesMut,
    /// The client closed its side.
    eof: bool,
    /// The rewriter refused the stream: every later read fails.
    failed: bool,
}

/// Wraps a client connection; see the module doc.
pub struct AuthorityShim<S> {
    inner: S,
    /// `None` once the connection is plain passthrough.
    active: Option<Box<Active>>,
}

impl<S> AuthorityShim<S> {
    pub fn new(inner: S, limits: Limits) -> AuthorityShim<S> {
        AuthorityShim {
            inner,
            active: Some(Box::new(Active {
                rewriter: AuthorityRewriter::new(limits),
                input: BytesMut::new(),
                output: BytesMut::new(),
                eof: false,
                failed: false,
            })),
        }
    }

    /// True once reads go straight to the socket.
    pub fn is_passthrough(&self) -> bool {
        self.active.is_none()
    }
}

fn refused() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "malformed HTTP/2 from a client whose :authority is being rewritten",
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityShim<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            let Some(active) = this.active.as_mut() else {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            };
            if !active.output.is_empty() {
                let count = buf.len().min(active.output.len());
                buf[..count].copy_from_slice(&active.output[..count]);
                active.output.advance(count);
                return Poll::Ready(Ok(count));
            }
            if active.failed {
                return Poll::Ready(Err(refused()));
            }
            if active.rewriter.mode() == Mode::Passthrough {
                this.active = None;
                continue;
            }
            if active.eof || buf.is_empty() {
                return Poll::Ready(Ok(0));
            }
            let start = active.input.len();
            active.input.resize(start + READ_CHUNK_BYTES, 0);
            let read = Pin::new(&mut this.inner).poll_read(cx, &mut active.input[start..]);
            let count = match &read {
                Poll::Ready(Ok(count)) => *count,
                _ => 0,
            };
            active.input.truncate(start + count);
            match read {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Ready(Ok(0)) => active.eof = true,
                Poll::Ready(Ok(_)) => {
                    if let Err(fault) = active
                        .rewriter
                        .process(&mut active.input, &mut active.output)
                    {
                        tracing::debug!(%fault, "closing a connection whose :authority is rewritten");
                        active.failed = true;
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityShim<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}
