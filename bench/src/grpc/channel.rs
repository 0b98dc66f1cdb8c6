//! One HTTP/2 connection to one endpoint, shared by every call made on it.
//!
//! [`Channel::connect`] dials with a timeout, sets TCP_NODELAY (a benchmark must not wait for
//! Nagle) and runs the HTTP/2 connection on its own task; the `Channel` is a cheap clone of the
//! request half. Errors of the connection task surface on the next call.

use super::frame::{self, FrameDecoder};
use super::status::status_of;
use super::stream::{MessageReader, StreamReceiver, StreamSender};
use super::CallError;
use crate::limits::{CONNECTION_WINDOW_BYTES, RESPONSE_MESSAGE_BYTES_MAX, STREAM_WINDOW_BYTES};
use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use h2::SendStream;
use http::{HeaderValue, Method, Request};
use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

const USER_AGENT: &str = concat!("capstan-bench/", env!("CARGO_PKG_VERSION"));

/// The request half of one HTTP/2 connection.
#[derive(Clone)]
pub struct Channel {
    sender: SendRequest<Bytes>,
    authority: Arc<str>,
    /// `http` or `https`, the request URIs' scheme.
    scheme: &'static str,
    token: Option<HeaderValue>,
}

impl Channel {
    /// Dials `authority` (`host:port`) in plaintext and completes the HTTP/2 handshake within
    /// `timeout`.
    pub async fn connect(authority: &str, timeout: Duration) -> Result<Channel, CallError> {
        Channel::connect_tls(authority, None, timeout).await
    }

    /// Dials `authority`, with TLS when `tls` is given, and completes the TLS and HTTP/2
    /// handshakes within `timeout`.
    pub async fn connect_tls(
        authority: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
        timeout: Duration,
    ) -> Result<Channel, CallError> {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let dial = async {
            let tcp = TcpStream::connect(authority)
                .await
                .map_err(|error| CallError::Transport(error.to_string()))?;
            tcp.set_nodelay(true)
                .map_err(|error| CallError::Transport(error.to_string()))?;
            match tls {
                None => http2_over(tcp).await,
                Some(config) => {
                    let name = crate::tls::server_name(authority)
                        .map_err(|error| CallError::Transport(error.to_string()))?;
                    let stream = tokio_rustls::TlsConnector::from(config)
                        .connect(name, tcp)
                        .await
                        .map_err(|error| CallError::Transport(format!("TLS: {error}")))?;
                    http2_over(stream).await
                }
            }
        };
        let sender = tokio::time::timeout(timeout, dial)
            .await
            .map_err(|_| CallError::Timeout(timeout))??;
        Ok(Channel {
            sender,
            authority: Arc::from(authority),
            scheme,
            token: None,
        })
    }

    /// The endpoint this channel talks to.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// Sends `token` (from `Auth/Authenticate`) with every later call, as etcd expects.
    pub fn with_token(mut self, token: &str) -> Result<Channel, CallError> {
        let value = HeaderValue::from_str(token)
            .map_err(|_| CallError::Protocol("auth token is not a valid header".to_string()))?;
        self.token = Some(value);
        Ok(self)
    }

    fn request(&self, path: &str) -> Result<Request<()>, CallError> {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(format!("{}://{}{}", self.scheme, self.authority, path))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("user-agent", USER_AGENT);
        if let Some(token) = &self.token {
            builder = builder.header("token", token.clone());
        }
        builder
            .body(())
            .map_err(|error| CallError::Protocol(format!("request for {path}: {error}")))
    }

    /// Opens a stream for `path`: waits for the connection to accept a new stream and sends
    /// the request headers.
    async fn open(&self, path: &str) -> Result<(ResponseFuture, SendStream<Bytes>), CallError> {
        let request = self.request(path)?;
        let mut sender = self.sender.clone().ready().await?;
        Ok(sender.send_request(request, false)?)
    }

    /// One unary call: one request message, exactly one response message, status 0.
    pub async fn unary<Q, R>(&self, path: &str, request: &Q) -> Result<R, CallError>
    where
        Q: Message,
        R: Message + Default,
    {
        let (response, mut body) = self.open(path).await?;
        body.send_data(frame::encode(request), true)?;
        let mut reader = MessageReader::open(response).await?;
        let Some(message) = reader.next::<R>().await? else {
            return Err(CallError::Protocol(format!(
                "{path}: status 0 but no response message"
            )));
        };
        if reader.next::<R>().await?.is_some() {
            return Err(CallError::Protocol(format!(
                "{path}: more than one response message"
            )));
        }
        Ok(message)
    }

    /// Opens a bidirectional stream. Messages are sent with the returned sender; the receiver
    /// waits for the response headers on its first read.
    pub async fn open_stream<Q, R>(
        &self,
        path: &str,
    ) -> Result<(StreamSender<Q>, StreamReceiver<R>), CallError>
    where
        Q: Message,
        R: Message + Default,
    {
        let (response, body) = self.open(path).await?;
        Ok((StreamSender::new(body), StreamReceiver::new(response)))
    }
}

/// The HTTP/2 handshake over `io`; the connection then runs on its own task until every
/// Channel is dropped or the peer goes away (a failure is reported by the calls using it).
async fn http2_over<T>(io: T) -> Result<SendRequest<Bytes>, CallError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .handshake::<_, Bytes>(io)
        .await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// A decoder with the response size limit.
pub(super) fn response_decoder() -> FrameDecoder {
    FrameDecoder::new(RESPONSE_MESSAGE_BYTES_MAX)
}

/// Reads the outcome of a response that ended: the status from the trailers.
pub(super) fn outcome_from_trailers(trailers: Option<http::HeaderMap>) -> Result<(), CallError> {
    match trailers.as_ref().and_then(status_of) {
        Some(outcome) => outcome,
        None => Err(CallError::Protocol(
            "response ended without grpc-status".to_string(),
        )),
    }
}
