//! gRPC message framing: `[compressed: u8][length: u32 big-endian][message]`.
//!
//! The decoder is check → parse → advance: it never allocates for a message before its length
//! has been checked against the receive limit, and it never copies when a message arrives in one
//! chunk.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::VecDeque;

/// Bytes of the gRPC message prefix.
pub const PREFIX_BYTES: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The declared length is over the limit: grpc-go's ResourceExhausted.
    TooLarge {
        declared_bytes: usize,
        limit_bytes: usize,
    },
    /// The compressed flag is set, but no compression was negotiated.
    Compressed,
    /// The stream ended in the middle of a message.
    Truncated,
}

/// Accumulates DATA chunks and yields whole messages.
#[derive(Default)]
pub struct MessageDecoder {
    chunks: VecDeque<Bytes>,
    buffered_bytes: usize,
}

impl MessageDecoder {
    pub fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.buffered_bytes += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.buffered_bytes == 0
    }

    /// The next complete message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self, limit_bytes: usize) -> Result<Option<Bytes>, FrameError> {
        if self.buffered_bytes < PREFIX_BYTES {
            return Ok(None);
        }
        let mut prefix = [0u8; PREFIX_BYTES];
        self.peek(&mut prefix);
        match prefix[0] {
            0 => {}
            _ => return Err(FrameError::Compressed),
        }
        let declared_bytes =
            u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        if declared_bytes > limit_bytes {
            return Err(FrameError::TooLarge {
                declared_bytes,
                limit_bytes,
            });
        }
        if self.buffered_bytes < PREFIX_BYTES + declared_bytes {
            return Ok(None);
        }
        self.advance(PREFIX_BYTES);
        Ok(Some(self.take(declared_bytes)))
    }

    fn peek(&self, out: &mut [u8]) {
        let mut filled = 0;
        for chunk in &self.chunks {
            let n = (out.len() - filled).min(chunk.len());
            out[filled..filled + n].copy_from_slice(&chunk[..n]);
            filled += n;
            if filled == out.len() {
                return;
            }
        }
        assert_eq!(filled, out.len(), "peek past buffered bytes");
    }

    fn advance(&mut self, mut count: usize) {
        self.buffered_bytes -= count;
        while count > 0 {
            let Some(front) = self.chunks.front_mut() else {
                unreachable!("advance past buffered bytes");
            };
            if front.len() <= count {
                count -= front.len();
                self.chunks.pop_front();
            } else {
                front.advance(count);
                count = 0;
            }
        }
    }

    fn take(&mut self, count: usize) -> Bytes {
        if let Some(front) = self.chunks.front_mut() {
            if front.len() >= count {
                let message = front.split_to(count);
                if front.is_empty() {
                    self.chunks.pop_front();
                }
                self.buffered_bytes -= count;
                return message;
            }
        }
        let mut message = BytesMut::with_capacity(count);
        let mut remaining = count;
        while remaining > 0 {
            let Some(mut front) = self.chunks.pop_front() else {
                unreachable!("take past buffered bytes");
            };
            if front.len() <= remaining {
                remaining -= front.len();
                message.put(front);
            } else {
                message.put(front.split_to(remaining));
                remaining = 0;
                self.chunks.push_front(front);
            }
        }
        self.buffered_bytes -= count;
        message.freeze()
    }
}

/// Frames one protobuf message for sending.
pub fn encode_message<M: prost::Message>(message: &M) -> Bytes {
    let length = message.encoded_len();
    let mut out = BytesMut::with_capacity(PREFIX_BYTES + length);
    out.put_u8(0);
    out.put_u32(length as u32);
    // Encoding into a buffer sized by `encoded_len` cannot run out of space.
    message
        .encode(&mut out)
        .unwrap_or_else(|error| unreachable!("encode into sized buffer: {error}"));
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8];
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn decodes_messages_split_at_every_byte() {
        let mut wire = framed(b"hello");
        wire.extend(framed(b""));
        wire.extend(framed(b"world!"));
        for split in 0..wire.len() {
            let mut decoder = MessageDecoder::default();
            decoder.push(Bytes::copy_from_slice(&wire[..split]));
            let mut seen = Vec::new();
            while let Some(message) = decoder.next_message(100).expect("valid") {
                seen.push(message);
            }
            decoder.push(Bytes::copy_from_slice(&wire[split..]));
            while let Some(message) = decoder.next_message(100).expect("valid") {
                seen.push(message);
            }
            assert_eq!(seen, vec![&b"hello"[..], &b""[..], &b"world!"[..]]);
            assert!(decoder.is_empty());
        }
    }

    #[test]
    fn refuses_oversized_before_buffering_it() {
        let mut decoder = MessageDecoder::default();
        decoder.push(Bytes::from_static(&[0, 0, 0, 1, 0]));
        assert_eq!(
            decoder.next_message(255),
            Err(FrameError::TooLarge {
                declared_bytes: 256,
                limit_bytes: 255
            })
        );
        let mut compressed = MessageDecoder::default();
        compressed.push(Bytes::from_static(&[1, 0, 0, 0, 0]));
        assert_eq!(compressed.next_message(10), Err(FrameError::Compressed));
    }
}
