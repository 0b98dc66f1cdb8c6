//! One Watch stream's queue of responses waiting to be sent, bounded in bytes.

use capstan_proto::etcdserverpb::WatchResponse;
use prost::Message;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// Bytes of event responses one stream may have queued; past it, watchers fall back to
/// catching up from history instead of queueing more.
pub const STREAM_QUEUE_BYTES_MAX: usize = 4 * 1024 * 1024;

#[derive(Default)]
pub struct Outbox {
    queue: RefCell<VecDeque<WatchResponse>>,
    queued_bytes: Cell<usize>,
    waker: RefCell<Option<Waker>>,
    /// The request loop, waiting for the queue to drop under its bound.
    room_waker: RefCell<Option<Waker>>,
    closed: Cell<bool>,
}

impl Outbox {
    /// Whether `bytes` more fit under the bound.
    pub fn has_room_for(&self, bytes: usize) -> bool {
        self.queued_bytes.get() + bytes <= STREAM_QUEUE_BYTES_MAX
    }

    /// Whether the queue is at most half full (catch-up refills only then).
    pub fn is_draining(&self) -> bool {
        self.queued_bytes.get() <= STREAM_QUEUE_BYTES_MAX / 2
    }

    /// Queues a response; control responses (created, canceled, progress) are queued even past
    /// the bound — they are small and bounded by the client's own requests.
    pub fn push(&self, response: WatchResponse) {
        if self.closed.get() {
            return;
        }
        self.queued_bytes
            .set(self.queued_bytes.get() + response.encoded_len());
        self.queue.borrow_mut().push_back(response);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    /// The next response if one is queued, without waiting.
    pub fn try_pop(&self) -> Option<WatchResponse> {
        if self.closed.get() {
            return None;
        }
        let response = self.queue.borrow_mut().pop_front()?;
        self.queued_bytes
            .set(self.queued_bytes.get() - response.encoded_len());
        if self.has_room_for(0) {
            if let Some(waker) = self.room_waker.borrow_mut().take() {
                waker.wake();
            }
        }
        Some(response)
    }

    /// The next response; `None` once closed.
    pub async fn pop(&self) -> Option<WatchResponse> {
        poll_fn(|context| {
            if self.closed.get() {
                return Poll::Ready(None);
            }
            match self.queue.borrow_mut().pop_front() {
                Some(response) => {
                    self.queued_bytes
                        .set(self.queued_bytes.get() - response.encoded_len());
                    if self.has_room_for(0) {
                        if let Some(waker) = self.room_waker.borrow_mut().take() {
                            waker.wake();
                        }
                    }
                    Poll::Ready(Some(response))
                }
                None => {
                    *self.waker.borrow_mut() = Some(context.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Resolves once the queue is within its bound (or closed): the stream's request loop waits
    /// here, so a client that sends requests but never reads answers stops being read too.
    pub async fn wait_for_room(&self) {
        poll_fn(|context| {
            if self.closed.get() || self.has_room_for(0) {
                Poll::Ready(())
            } else {
                *self.room_waker.borrow_mut() = Some(context.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    pub fn close(&self) {
        self.closed.set(true);
        self.queue.borrow_mut().clear();
        self.queued_bytes.set(0);
        for waker in [&self.waker, &self.room_waker] {
            if let Some(waker) = waker.borrow_mut().take() {
                waker.wake();
            }
        }
    }
}
