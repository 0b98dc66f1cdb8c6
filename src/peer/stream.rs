//! [`PeerStream`]: one peer connection, plain TCP or TLS over it, behind one type so the
//! handshake, frame and cluster-query code never cares which.

use futures_lite::io::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A peer connection after its TLS handshake (if any).
pub(crate) enum PeerStream {
    Plain(TcpStream),
    /// Boxed: a rustls connection state is a few KiB, the plain stream a few words.
    Tls(Box<futures_rustls::TlsStream<TcpStream>>),
}

impl PeerStream {
    /// Whether the connection speaks TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, PeerStream::Tls(_))
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            PeerStream::Plain(stream) => Pin::new(stream).poll_read(context, buffer),
            PeerStream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(context, buffer),
        }
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            PeerStream::Plain(stream) => Pin::new(stream).poll_write(context, bytes),
            PeerStream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(context, bytes),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PeerStream::Plain(stream) => Pin::new(stream).poll_flush(context),
            PeerStream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(context),
        }
    }

    fn poll_close(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PeerStream::Plain(stream) => Pin::new(stream).poll_close(context),
            PeerStream::Tls(stream) => Pin::new(stream.as_mut()).poll_close(context),
        }
    }
}
