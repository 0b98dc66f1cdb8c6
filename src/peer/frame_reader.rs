//! Cutting length-prefixed frames out of a byte stream.
//!
//! Each length is checked against [`FRAME_BYTES_MAX`] before any room is made for its payload,
//! and the buffer then grows only as the payload's bytes actually arrive (at most
//! [`READ_CALL_BYTES_MAX`] per read), so a peer announcing a huge frame and sending nothing
//! costs nothing. Frames are handed out as [`Bytes`] slices of the read buffer, without a copy.

use super::wire::{frame_length, FrameTooLarge, FRAME_HEADER_BYTES};
use bytes::{Buf, Bytes, BytesMut};
use futures_lite::io::{AsyncRead, AsyncReadExt};
use std::io;

/// Bytes asked for per read when no large frame is pending (several small frames per read).
pub const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Most bytes asked for in one read while a large frame's payload arrives.
pub const READ_CALL_BYTES_MAX: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    TooLarge(#[from] FrameTooLarge),
    #[error("connection closed in the middle of a frame ({buffered} bytes buffered)")]
    Truncated { buffered: usize },
}

#[derive(Default)]
pub struct FrameReader {
    buffer: BytesMut,
}

impl FrameReader {
    /// The next frame's payload; `None` when the stream ends cleanly between frames.
    pub async fn next<R: AsyncRead + Unpin>(
        &mut self,
        stream: &mut R,
    ) -> Result<Option<Bytes>, FrameError> {
        loop {
            let missing = match self.complete_frame()? {
                Ok(frame) => return Ok(Some(frame)),
                Err(missing) => missing,
            };
            let want = missing.clamp(READ_CHUNK_BYTES, READ_CALL_BYTES_MAX);
            let start = self.buffer.len();
            self.buffer.resize(start + want, 0);
            let read = stream.read(&mut self.buffer[start..]).await;
            let count = match read {
                Ok(count) => count,
                Err(error) => {
                    self.buffer.truncate(start);
                    return Err(error.into());
                }
            };
            self.buffer.truncate(start + count);
            if count == 0 {
                if self.buffer.is_empty() {
                    return Ok(None);
                }
                return Err(FrameError::Truncated {
                    buffered: self.buffer.len(),
                });
            }
        }
    }

    /// A whole buffered frame, or how many more bytes are needed for one.
    fn complete_frame(&mut self) -> Result<Result<Bytes, usize>, FrameTooLarge> {
        if self.buffer.len() < FRAME_HEADER_BYTES {
            return Ok(Err(FRAME_HEADER_BYTES - self.buffer.len()));
        }
        let mut header = [0u8; FRAME_HEADER_BYTES];
        header.copy_from_slice(&self.buffer[..FRAME_HEADER_BYTES]);
        let length = frame_length(header)?;
        let total = FRAME_HEADER_BYTES + length;
        if self.buffer.len() < total {
            return Ok(Err(total - self.buffer.len()));
        }
        self.buffer.advance(FRAME_HEADER_BYTES);
        Ok(Ok(self.buffer.split_to(length).freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::wire::{append_frame, FRAME_BYTES_MAX};
    use futures_lite::future::block_on;

    /// A reader that hands out its bytes a few at a time.
    struct Trickle {
        bytes: Vec<u8>,
        position: usize,
        step: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            out: &mut [u8],
        ) -> std::task::Poll<io::Result<usize>> {
            let count = self
                .step
                .min(out.len())
                .min(self.bytes.len() - self.position);
            let position = self.position;
            out[..count].copy_from_slice(&self.bytes[position..position + count]);
            self.position += count;
            std::task::Poll::Ready(Ok(count))
        }
    }

    #[test]
    fn frames_come_out_whole_whatever_the_read_sizes() {
        let payloads: Vec<Vec<u8>> = vec![
            b"first".to_vec(),
            Vec::new(),
            vec![7u8; READ_CHUNK_BYTES * 3 + 5],
            b"last".to_vec(),
        ];
        let mut bytes = Vec::new();
        for payload in &payloads {
            append_frame(&mut bytes, payload);
        }
        for step in [1, 3, 4096, usize::MAX] {
            let mut stream = Trickle {
                bytes: bytes.clone(),
                position: 0,
                step,
            };
            let mut reader = FrameReader::default();
            for payload in &payloads {
                let frame = block_on(reader.next(&mut stream)).expect("frame");
                assert_eq!(frame.as_deref(), Some(payload.as_slice()));
            }
            assert!(matches!(block_on(reader.next(&mut stream)), Ok(None)));
        }
    }

    #[test]
    fn oversized_length_is_refused_before_reading_the_payload() {
        let mut stream = Trickle {
            bytes: ((FRAME_BYTES_MAX + 1) as u32).to_be_bytes().to_vec(),
            position: 0,
            step: usize::MAX,
        };
        let mut reader = FrameReader::default();
        let result = block_on(reader.next(&mut stream));
        assert!(matches!(result, Err(FrameError::TooLarge(_))));
        assert!(reader.buffer.capacity() <= READ_CHUNK_BYTES + FRAME_HEADER_BYTES);
    }

    #[test]
    fn eof_inside_a_frame_is_an_error() {
        let mut stream = Trickle {
            bytes: vec![0, 0, 0, 9, 1, 2],
            position: 0,
            step: usize::MAX,
        };
        let mut reader = FrameReader::default();
        let result = block_on(reader.next(&mut stream));
        assert!(matches!(result, Err(FrameError::Truncated { buffered: 6 })));
    }
}
