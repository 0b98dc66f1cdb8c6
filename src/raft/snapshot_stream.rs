//! Sending a raft snapshot in chunks, and putting it together again.
//!
//! The leader's `MsgSnapshot` carries the whole applied state. It is encoded once and cut into
//! [`SNAPSHOT_CHUNK_BYTES`] pieces (peer frames of kind 8). The raft group hands out chunks
//! only while the peer's queue holds less than [`SNAPSHOT_QUEUE_BYTES_BELOW`], so a snapshot
//! never crowds raft traffic out of the bounded queue and a slow follower only slows its own
//! stream. The receiver appends chunks in order; a chunk at offset 0 starts over, and a chunk
//! that does not continue the current stream (one was lost when a connection broke or the
//! queue overflowed) abandons it: raft asks for the snapshot again.

use bytes::{Bytes, BytesMut};
use std::collections::HashMap;

/// Bytes of snapshot encoding per peer frame.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;
/// Chunks are queued for a peer only while its queue holds fewer bytes than this.
pub const SNAPSHOT_QUEUE_BYTES_BELOW: usize = 4 * 1024 * 1024;
/// Largest snapshot a follower accepts (memory is taken as chunks arrive, not up front).
pub const SNAPSHOT_BYTES_MAX: u64 = 64 * 1024 * 1024 * 1024;

/// One snapshot on its way to one peer.
pub struct OutgoingSnapshot {
    pub to: u64,
    pub index: u64,
    encoded: Bytes,
    sent_bytes: usize,
}

impl OutgoingSnapshot {
    /// `encoded` is the whole encoded raft message (without the peer frame kind byte).
    pub fn new(to: u64, index: u64, encoded: Bytes) -> OutgoingSnapshot {
        OutgoingSnapshot {
            to,
            index,
            encoded,
            sent_bytes: 0,
        }
    }

    /// The next chunk: `(offset, total, bytes)`, or `None` once everything was handed out.
    pub fn next_chunk(&mut self) -> Option<(u64, u64, Bytes)> {
        if self.is_done() {
            return None;
        }
        let start = self.sent_bytes;
        let end = (start + SNAPSHOT_CHUNK_BYTES).min(self.encoded.len());
        self.sent_bytes = end;
        Some((
            start as u64,
            self.encoded.len() as u64,
            self.encoded.slice(start..end),
        ))
    }

    pub fn is_done(&self) -> bool {
        self.sent_bytes >= self.encoded.len()
    }
}

/// Why a chunk was not taken.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("snapshot of {total} bytes is larger than the {SNAPSHOT_BYTES_MAX} bytes accepted")]
    TooLarge { total: u64 },
    #[error("snapshot chunk at offset {offset} does not continue the stream at {expected}")]
    OutOfOrder { offset: u64, expected: u64 },
    #[error("snapshot chunk overruns the announced total of {total} bytes")]
    Overrun { total: u64 },
}

struct Incoming {
    total: u64,
    received: BytesMut,
}

/// Snapshots being received, one per sending member.
#[derive(Default)]
pub struct IncomingSnapshots {
    by_sender: HashMap<u64, Incoming>,
}

impl IncomingSnapshots {
    /// Takes one chunk from `from`; returns the whole encoding once its last chunk arrived.
    pub fn accept(
        &mut self,
        from: u64,
        offset: u64,
        total: u64,
        data: &[u8],
    ) -> Result<Option<Bytes>, ChunkError> {
        if total > SNAPSHOT_BYTES_MAX {
            self.by_sender.remove(&from);
            return Err(ChunkError::TooLarge { total });
        }
        if offset == 0 {
            self.by_sender.insert(
                from,
                Incoming {
                    total,
                    received: BytesMut::with_capacity(data.len()),
                },
            );
        }
        let Some(incoming) = self.by_sender.get_mut(&from) else {
            return Err(ChunkError::OutOfOrder {
                offset,
                expected: 0,
            });
        };
        let expected = incoming.received.len() as u64;
        if offset != expected || incoming.total != total {
            self.by_sender.remove(&from);
            return Err(ChunkError::OutOfOrder { offset, expected });
        }
        if expected + data.len() as u64 > total {
            self.by_sender.remove(&from);
            return Err(ChunkError::Overrun { total });
        }
        incoming.received.extend_from_slice(data);
        if incoming.received.len() as u64 == total {
            let done = self
                .by_sender
                .remove(&from)
                .map(|done| done.received.freeze());
            return Ok(done);
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoding(len: usize) -> Bytes {
        (0..len)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>()
            .into()
    }

    #[test]
    fn chunks_reassemble_to_the_original() {
        for len in [
            1,
            SNAPSHOT_CHUNK_BYTES - 1,
            SNAPSHOT_CHUNK_BYTES,
            3 * SNAPSHOT_CHUNK_BYTES + 17,
        ] {
            let original = encoding(len);
            let mut outgoing = OutgoingSnapshot::new(2, 9, original.clone());
            let mut incoming = IncomingSnapshots::default();
            let mut result = None;
            let mut chunks = 0;
            while let Some((offset, total, bytes)) = outgoing.next_chunk() {
                chunks += 1;
                assert!(result.is_none(), "complete before the last chunk");
                result = incoming.accept(1, offset, total, &bytes).expect("accepted");
            }
            assert_eq!(chunks, len.div_ceil(SNAPSHOT_CHUNK_BYTES));
            assert_eq!(result, Some(original));
        }
    }

    #[test]
    fn a_lost_chunk_abandons_the_stream_and_offset_zero_starts_over() {
        let original = encoding(3 * SNAPSHOT_CHUNK_BYTES);
        let mut outgoing = OutgoingSnapshot::new(2, 9, original.clone());
        let mut incoming = IncomingSnapshots::default();
        let first = outgoing.next_chunk().expect("first");
        let _lost = outgoing.next_chunk().expect("second");
        let third = outgoing.next_chunk().expect("third");
        assert_eq!(incoming.accept(1, first.0, first.1, &first.2), Ok(None));
        assert!(matches!(
            incoming.accept(1, third.0, third.1, &third.2),
            Err(ChunkError::OutOfOrder { .. })
        ));
        // Without a start, later chunks are refused too.
        assert!(incoming.accept(1, third.0, third.1, &third.2).is_err());
        let mut again = OutgoingSnapshot::new(2, 9, original.clone());
        let mut result = None;
        while let Some((offset, total, bytes)) = again.next_chunk() {
            result = incoming.accept(1, offset, total, &bytes).expect("accepted");
        }
        assert_eq!(result, Some(original));
    }

    #[test]
    fn hostile_totals_and_overruns_are_refused() {
        let mut incoming = IncomingSnapshots::default();
        assert_eq!(
            incoming.accept(1, 0, SNAPSHOT_BYTES_MAX + 1, b"x"),
            Err(ChunkError::TooLarge {
                total: SNAPSHOT_BYTES_MAX + 1
            })
        );
        assert_eq!(
            incoming.accept(1, 0, 2, b"xyz"),
            Err(ChunkError::Overrun { total: 2 })
        );
        // Senders do not disturb each other.
        assert_eq!(incoming.accept(1, 0, 4, b"ab"), Ok(None));
        assert_eq!(
            incoming.accept(2, 0, 2, b"cd"),
            Ok(Some(Bytes::from_static(b"cd")))
        );
        assert_eq!(
            incoming.accept(1, 2, 4, b"ef"),
            Ok(Some(Bytes::from_static(b"abef")))
        );
    }
}
