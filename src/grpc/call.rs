//! One gRPC call on one h2 stream: decode the request, run the handler under the call's
//! deadline (and, for unary calls, until the client cancels), send the response and the
//! `grpc-status` trailers.

use super::frame::{encode_message, FrameError, MessageDecoder, PREFIX_BYTES};
use super::{Code, Status};
use crate::metrics::{CallTally, MethodId};
use bytes::Bytes;
use futures::future::poll_fn;
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::{HeaderMap, HeaderValue, Response};
use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::rc::Rc;
use std::time::Duration;

/// Limits that apply to one call.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    /// Largest request message accepted (etcd: `--max-request-bytes` + 512 KiB).
    pub receive_bytes_max: usize,
    /// From `grpc-timeout`; `None` when the client set no deadline.
    pub deadline: Option<Duration>,
    /// The method's row in the `grpc_server_*` series (`None`: not counted).
    pub method: Option<MethodId>,
}

fn response_head() -> Response<()> {
    let mut response = Response::new(());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

fn status_headers(status: &Status, headers: &mut HeaderMap) {
    headers.insert("grpc-status", HeaderValue::from(status.code as u8 as u16));
    if !status.message.is_empty() {
        // The percent-encoded message is visible ASCII, always a valid header value.
        if let Ok(value) = HeaderValue::from_str(&status.encoded_message()) {
            headers.insert("grpc-message", value);
        }
    }
}

/// A "trailers-only" response: the status travels in the only HEADERS frame.
pub fn send_status_only(mut respond: SendResponse<Bytes>, status: &Status) {
    let mut response = response_head();
    status_headers(status, response.headers_mut());
    if let Err(error) = respond.send_response(response, true) {
        tracing::debug!(%error, "could not send status: stream gone");
    }
}

/// A plain HTTP status for requests that are not gRPC at all.
pub fn send_http_status(mut respond: SendResponse<Bytes>, code: http::StatusCode) {
    let mut response = Response::new(());
    *response.status_mut() = code;
    if let Err(error) = respond.send_response(response, true) {
        tracing::debug!(%error, "could not send http status: stream gone");
    }
}

async fn with_deadline<T>(
    deadline: Option<Duration>,
    work: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    match deadline {
        None => work.await,
        Some(deadline) => {
            futures_lite::future::or(work, async move {
                glommio::timer::sleep(deadline).await;
                Err(Status::deadline_exceeded())
            })
            .await
        }
    }
}

/// Reads request messages off an h2 stream, releasing flow-control capacity as bytes are taken.
pub struct RequestStream<Req> {
    body: RecvStream,
    decoder: MessageDecoder,
    receive_bytes_max: usize,
    ended: bool,
    method: Option<MethodId>,
    _request: PhantomData<Req>,
}

impl<Req: prost::Message + Default> RequestStream<Req> {
    pub fn new(body: RecvStream, receive_bytes_max: usize, method: Option<MethodId>) -> Self {
        RequestStream {
            body,
            decoder: MessageDecoder::default(),
            receive_bytes_max,
            ended: false,
            method,
            _request: PhantomData,
        }
    }

    /// The next request; `None` once the client half-closed after a whole message.
    pub async fn next(&mut self) -> Option<Result<Req, Status>> {
        loop {
            match self.decoder.next_message(self.receive_bytes_max) {
                Err(error) => return Some(Err(error.into())),
                Ok(Some(message)) => {
                    CallTally::received(self.method, message.len());
                    return Some(Req::decode(message).map_err(Status::malformed_request));
                }
                Ok(None) if self.ended => {
                    if self.decoder.is_empty() {
                        return None;
                    }
                    return Some(Err(FrameError::Truncated.into()));
                }
                Ok(None) => {}
            }
            match self.body.data().await {
                None => self.ended = true,
                Some(Err(error)) => {
                    return Some(Err(Status::new(
                        Code::Cancelled,
                        format!("stream error: {error}"),
                    )))
                }
                Some(Ok(chunk)) => {
                    let consumed = chunk.len();
                    self.decoder.push(chunk);
                    if let Err(error) = self.body.flow_control().release_capacity(consumed) {
                        tracing::debug!(%error, "release_capacity failed");
                    }
                }
            }
        }
    }
}

/// Sends response messages on an h2 stream, waiting for flow-control capacity so a client that
/// stops reading holds at most one message of buffered data per stream.
pub struct ResponseSink<Resp> {
    stream: Rc<RefCell<SendStream<Bytes>>>,
    method: Option<MethodId>,
    _response: PhantomData<Resp>,
}

impl<Resp> Clone for ResponseSink<Resp> {
    fn clone(&self) -> Self {
        ResponseSink {
            stream: self.stream.clone(),
            method: self.method,
            _response: PhantomData,
        }
    }
}

fn stream_gone(error: h2::Error) -> Status {
    Status::new(Code::Cancelled, format!("stream closed: {error}"))
}

impl<Resp: prost::Message> ResponseSink<Resp> {
    pub async fn send(&self, message: &Resp) -> Result<(), Status> {
        let encoded = encode_message(message);
        CallTally::sent(self.method, 1, encoded.len() - PREFIX_BYTES);
        self.send_encoded(encoded).await
    }

    /// Sends several messages as one write (gRPC allows many messages per DATA frame), which
    /// saves HTTP/2 framing work when a stream has a backlog.
    pub async fn send_batch(&self, messages: &[Resp]) -> Result<(), Status> {
        let mut buffer = bytes::BytesMut::new();
        let mut message_bytes = 0;
        for message in messages {
            let encoded = encode_message(message);
            message_bytes += encoded.len() - PREFIX_BYTES;
            buffer.extend_from_slice(&encoded);
        }
        CallTally::sent(self.method, messages.len() as u64, message_bytes);
        self.send_encoded(buffer.freeze()).await
    }

    async fn send_encoded(&self, mut data: Bytes) -> Result<(), Status> {
        while !data.is_empty() {
            let available = {
                let mut stream = self.stream.borrow_mut();
                stream.reserve_capacity(data.len());
                stream.capacity()
            };
            let granted = if available > 0 {
                available
            } else {
                match poll_fn(|cx| self.stream.borrow_mut().poll_capacity(cx)).await {
                    None => return Err(Status::new(Code::Cancelled, "stream closed")),
                    Some(Err(error)) => return Err(stream_gone(error)),
                    Some(Ok(granted)) => granted,
                }
            };
            if granted == 0 {
                continue;
            }
            let chunk = data.split_to(granted.min(data.len()));
            self.stream
                .borrow_mut()
                .send_data(chunk, false)
                .map_err(stream_gone)?;
        }
        Ok(())
    }

    /// Resolves when the client resets the stream or the connection goes away.
    pub async fn closed(&self) {
        let _reason = poll_fn(|cx| self.stream.borrow_mut().poll_reset(cx)).await;
    }

    fn finish(&self, status: &Status) {
        let mut trailers = HeaderMap::new();
        status_headers(status, &mut trailers);
        if let Err(error) = self.stream.borrow_mut().send_trailers(trailers) {
            tracing::debug!(%error, "could not send trailers: stream gone");
        }
    }
}

/// A unary call: one request message in, one response message (or a status) out. The handler's
/// future is dropped if the deadline passes or the client resets the stream.
pub async fn unary<Req, Resp, Handler, Work>(
    body: RecvStream,
    mut respond: SendResponse<Bytes>,
    limits: CallLimits,
    handler: Handler,
) where
    Req: prost::Message + Default,
    Resp: prost::Message,
    Handler: FnOnce(Req) -> Work,
    Work: Future<Output = Result<Resp, Status>>,
{
    let tally = CallTally::start(limits.method);
    let work = with_deadline(limits.deadline, async move {
        let mut requests = RequestStream::<Req>::new(body, limits.receive_bytes_max, limits.method);
        let request = match requests.next().await {
            Some(request) => request?,
            None => {
                return Err(Status::new(
                    Code::Internal,
                    "grpc: the client sent no request message",
                ))
            }
        };
        handler(request).await.map(Some)
    });
    // A client that resets the stream (cancels the call) or goes away ends the handler's
    // work, as a cancelled context does in etcd; nobody is left to answer.
    let client_gone = async {
        let _reason = poll_fn(|cx| respond.poll_reset(cx)).await;
        Ok(None)
    };
    let outcome = futures_lite::future::or(work, client_gone).await;
    match outcome {
        Ok(None) => {
            tally.handled(Code::Cancelled as u8);
            tracing::debug!("client cancelled the call");
        }
        Err(status) => {
            tally.handled(status.code as u8);
            send_status_only(respond, &status);
        }
        Ok(Some(response)) => {
            let encoded = encode_message(&response);
            CallTally::sent(limits.method, 1, encoded.len() - PREFIX_BYTES);
            tally.handled(Code::Ok as u8);
            let mut stream = match respond.send_response(response_head(), false) {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::debug!(%error, "client went away before the response");
                    return;
                }
            };
            if let Err(error) = stream.send_data(encoded, false) {
                tracing::debug!(%error, "client went away during the response");
                return;
            }
            let mut trailers = HeaderMap::new();
            status_headers(&Status::new(Code::Ok, ""), &mut trailers);
            if let Err(error) = stream.send_trailers(trailers) {
                tracing::debug!(%error, "client went away before the trailers");
            }
        }
    }
}

/// A streaming call (client, server or bidi): the handler reads requests and sends responses
/// until it returns the call's final status, or until `abort` resolves with one.
pub async fn streaming<Req, Resp, Handler, Work>(
    body: RecvStream,
    mut respond: SendResponse<Bytes>,
    limits: CallLimits,
    abort: impl Future<Output = Status>,
    handler: Handler,
) where
    Req: prost::Message + Default,
    Resp: prost::Message,
    Handler: FnOnce(RequestStream<Req>, ResponseSink<Resp>) -> Work,
    Work: Future<Output = Result<(), Status>>,
{
    let tally = CallTally::start(limits.method);
    let stream = match respond.send_response(response_head(), false) {
        Ok(stream) => stream,
        Err(error) => {
            tally.handled(Code::Cancelled as u8);
            tracing::debug!(%error, "client went away before the response headers");
            return;
        }
    };
    let sink = ResponseSink {
        stream: Rc::new(RefCell::new(stream)),
        method: limits.method,
        _response: PhantomData,
    };
    let requests = RequestStream::<Req>::new(body, limits.receive_bytes_max, limits.method);
    let work = with_deadline(limits.deadline, handler(requests, sink.clone()));
    let aborted = async { Err(abort.await) };
    let status = match futures_lite::future::or(work, aborted).await {
        Ok(()) => Status::new(Code::Ok, ""),
        Err(status) => status,
    };
    tally.handled(status.code as u8);
    sink.finish(&status);
}
