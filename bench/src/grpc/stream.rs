//! Reading response messages (unary and streaming alike) and the two halves of a
//! bidirectional stream.

use super::channel::{outcome_from_trailers, response_decoder};
use super::frame::{self, FrameDecoder};
use super::status::status_of;
use super::CallError;
use bytes::Bytes;
use h2::client::ResponseFuture;
use h2::{RecvStream, SendStream};
use http::StatusCode;
use prost::Message;
use std::marker::PhantomData;

/// The response side of one call: headers checked, then messages until the trailers.
pub struct MessageReader {
    body: RecvStream,
    decoder: FrameDecoder,
    finished: bool,
}

impl MessageReader {
    /// Waits for the response headers. A trailers-only answer (`grpc-status` among the headers)
    /// with a non-zero status is returned as the error.
    pub async fn open(response: ResponseFuture) -> Result<MessageReader, CallError> {
        let response = response.await?;
        let (parts, body) = response.into_parts();
        let trailers_only = status_of(&parts.headers);
        if let Some(Err(error)) = trailers_only {
            return Err(error);
        }
        if parts.status != StatusCode::OK {
            return Err(CallError::Protocol(format!(
                "HTTP status {} instead of 200",
                parts.status
            )));
        }
        Ok(MessageReader {
            body,
            decoder: response_decoder(),
            finished: trailers_only.is_some(),
        })
    }

    /// The next message, or `None` once the call ended with status 0.
    pub async fn next<M: Message + Default>(&mut self) -> Result<Option<M>, CallError> {
        loop {
            if let Some(bytes) = self.decoder.next_message()? {
                return frame::decode(bytes).map(Some);
            }
            if self.finished {
                return Ok(None);
            }
            match self.body.data().await {
                Some(chunk) => {
                    let chunk = chunk?;
                    // Give the window back at once: the decoder bounds what we buffer.
                    let _ = self.body.flow_control().release_capacity(chunk.len());
                    self.decoder.push(&chunk);
                }
                None => {
                    self.finished = true;
                    let trailers = self.body.trailers().await?;
                    outcome_from_trailers(trailers)?;
                    if !self.decoder.is_empty() {
                        return Err(CallError::Protocol(
                            "response ended inside a message".to_string(),
                        ));
                    }
                }
            }
        }
    }
}

/// The sending half of a bidirectional stream.
pub struct StreamSender<Q> {
    body: SendStream<Bytes>,
    _messages: PhantomData<fn(Q)>,
}

impl<Q: Message> StreamSender<Q> {
    pub(super) fn new(body: SendStream<Bytes>) -> StreamSender<Q> {
        StreamSender {
            body,
            _messages: PhantomData,
        }
    }

    /// Queues one message (h2 buffers it until the peer's window allows sending).
    pub fn send(&mut self, message: &Q) -> Result<(), CallError> {
        Ok(self.body.send_data(frame::encode(message), false)?)
    }

    /// Half-closes the stream: no more messages from us.
    pub fn finish(&mut self) -> Result<(), CallError> {
        Ok(self.body.send_data(Bytes::new(), true)?)
    }
}

enum ReceiverState {
    Waiting(ResponseFuture),
    Open(MessageReader),
    Ended,
}

/// The receiving half of a bidirectional stream.
pub struct StreamReceiver<R> {
    state: ReceiverState,
    _messages: PhantomData<fn() -> R>,
}

impl<R: Message + Default> StreamReceiver<R> {
    pub(super) fn new(response: ResponseFuture) -> StreamReceiver<R> {
        StreamReceiver {
            state: ReceiverState::Waiting(response),
            _messages: PhantomData,
        }
    }

    /// The next message; `None` once the server ended the stream with status 0.
    pub async fn message(&mut self) -> Result<Option<R>, CallError> {
        loop {
            match &mut self.state {
                ReceiverState::Ended => return Ok(None),
                ReceiverState::Open(reader) => {
                    let next = reader.next::<R>().await;
                    if !matches!(next, Ok(Some(_))) {
                        self.state = ReceiverState::Ended;
                    }
                    return next;
                }
                ReceiverState::Waiting(_) => {
                    let ReceiverState::Waiting(response) =
                        std::mem::replace(&mut self.state, ReceiverState::Ended)
                    else {
                        unreachable!("state checked by the match arm");
                    };
                    self.state = ReceiverState::Open(MessageReader::open(response).await?);
                }
            }
        }
    }
}
