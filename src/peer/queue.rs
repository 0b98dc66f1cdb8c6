//! One peer's outbound queue: bounded in messages and bytes, never blocking the producer.
//!
//! When a new message would overflow either bound, the OLDEST queued messages are dropped to
//! make room: after a long disconnection the stale heartbeats and appends are the ones worth
//! least, and raft retransmits whatever the follower turns out to be missing. A message larger
//! than the whole byte bound is dropped itself. Every drop is counted.

use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// Messages one peer's queue holds at most.
pub const PEER_QUEUE_MESSAGES_MAX: usize = 4_096;
/// Payload bytes one peer's queue holds at most.
pub const PEER_QUEUE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// What became of a pushed message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Queued; this many older messages were dropped to make room.
    Queued { dropped_oldest: usize },
    /// Dropped: larger than [`PEER_QUEUE_BYTES_MAX`] on its own, or the queue is closed.
    Refused,
}

#[derive(Default)]
pub struct PeerQueue {
    messages: RefCell<VecDeque<Bytes>>,
    bytes: Cell<usize>,
    dropped: Cell<u64>,
    closed: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl PeerQueue {
    pub fn push(&self, message: Bytes) -> Pushed {
        if self.closed.get() || message.len() > PEER_QUEUE_BYTES_MAX {
            self.count_dropped(1);
            return Pushed::Refused;
        }
        let mut dropped_oldest = 0;
        {
            let mut messages = self.messages.borrow_mut();
            let mut bytes = self.bytes.get();
            while messages.len() >= PEER_QUEUE_MESSAGES_MAX
                || bytes + message.len() > PEER_QUEUE_BYTES_MAX
            {
                match messages.pop_front() {
                    Some(oldest) => {
                        bytes -= oldest.len();
                        dropped_oldest += 1;
                    }
                    None => break,
                }
            }
            self.bytes.set(bytes + message.len());
            messages.push_back(message);
        }
        self.count_dropped(dropped_oldest);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
        Pushed::Queued { dropped_oldest }
    }

    fn count_dropped(&self, count: usize) {
        self.dropped
            .set(self.dropped.get().saturating_add(count as u64));
    }

    /// Takes every queued message, oldest first.
    pub fn take_all(&self) -> VecDeque<Bytes> {
        self.bytes.set(0);
        std::mem::take(&mut *self.messages.borrow_mut())
    }

    pub fn len(&self) -> usize {
        self.messages.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.borrow().is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes.get()
    }

    /// Messages dropped so far (overflow, oversize, or pushed after close).
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    /// Refuses further messages, drops the queued ones and wakes the waiting sender.
    pub fn close(&self) {
        self.closed.set(true);
        self.bytes.set(0);
        self.messages.borrow_mut().clear();
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Resolves once a message is queued or the queue is closed. One waiter at a time (the
    /// peer's sender task).
    pub async fn ready(&self) {
        poll_fn(|context| {
            if self.closed.get() || !self.messages.borrow().is_empty() {
                Poll::Ready(())
            } else {
                self.waker.set(Some(context.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_drops_the_oldest_messages() {
        let queue = PeerQueue::default();
        for index in 0..PEER_QUEUE_MESSAGES_MAX + 3 {
            let pushed = queue.push(Bytes::from((index as u32).to_be_bytes().to_vec()));
            let expected = usize::from(index >= PEER_QUEUE_MESSAGES_MAX);
            assert_eq!(
                pushed,
                Pushed::Queued {
                    dropped_oldest: expected
                }
            );
        }
        assert_eq!(queue.len(), PEER_QUEUE_MESSAGES_MAX);
        assert_eq!(queue.dropped(), 3);
        let taken = queue.take_all();
        assert_eq!(taken[0].as_ref(), &3u32.to_be_bytes());
        assert!(queue.is_empty());
        assert_eq!(queue.bytes(), 0);
    }

    #[test]
    fn byte_bound_drops_oldest_and_refuses_giants() {
        let queue = PeerQueue::default();
        let quarter = PEER_QUEUE_BYTES_MAX / 4;
        for _ in 0..4 {
            queue.push(Bytes::from(vec![0u8; quarter]));
        }
        assert_eq!(queue.bytes(), 4 * quarter);
        assert_eq!(
            queue.push(Bytes::from_static(b"x")),
            Pushed::Queued { dropped_oldest: 1 }
        );
        assert_eq!(queue.bytes(), 3 * quarter + 1);
        assert_eq!(
            queue.push(Bytes::from(vec![0u8; PEER_QUEUE_BYTES_MAX + 1])),
            Pushed::Refused
        );
        assert_eq!(queue.dropped(), 2);
        assert_eq!(queue.len(), 4);
    }

    #[test]
    fn closed_queue_refuses() {
        let queue = PeerQueue::default();
        queue.push(Bytes::from_static(b"a"));
        queue.close();
        assert!(queue.is_empty());
        assert_eq!(queue.push(Bytes::from_static(b"b")), Pushed::Refused);
        assert_eq!(queue.dropped(), 1);
    }
}
