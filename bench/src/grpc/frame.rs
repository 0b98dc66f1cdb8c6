//! gRPC message framing: `[compressed: u8 = 0][length: u32 big-endian][message]`.
//!
//! The decoder checks the length against its limit as soon as the prefix is complete, before
//! buffering the message, and refuses compressed messages (we never ask for compression).

use super::CallError;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;

/// Bytes before each message: the compression flag and the length.
pub const PREFIX_BYTES: usize = 5;

/// Encodes one message with its prefix.
pub fn encode<M: Message>(message: &M) -> Bytes {
    let length = message.encoded_len();
    let mut buffer = BytesMut::with_capacity(PREFIX_BYTES + length);
    buffer.put_u8(0);
    // A message longer than u32::MAX cannot be built from the workloads' bounded sizes.
    assert!(
        length <= u32::MAX as usize,
        "gRPC message of {length} bytes"
    );
    buffer.put_u32(length as u32);
    // Encoding into a buffer with enough capacity cannot fail.
    message
        .encode(&mut buffer)
        .expect("buffer reserved for the encoded length");
    buffer.freeze()
}

/// Splits a byte stream into gRPC messages.
#[derive(Debug)]
pub struct FrameDecoder {
    buffer: BytesMut,
    message_bytes_max: usize,
}

impl FrameDecoder {
    pub fn new(message_bytes_max: usize) -> FrameDecoder {
        FrameDecoder {
            buffer: BytesMut::new(),
            message_bytes_max,
        }
    }

    /// Appends received bytes. Call [`FrameDecoder::next_message`] after every push so an
    /// oversized length is refused before its body is buffered.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// True when no partial message is buffered.
    pub fn is_empty(&self) -> bool {
        self.buffer.is_empty()
    }

    /// The next complete message, `None` if more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Bytes>, CallError> {
        if self.buffer.len() < PREFIX_BYTES {
            return Ok(None);
        }
        let compressed = self.buffer[0];
        if compressed != 0 {
            return Err(CallError::Protocol(format!(
                "compressed message (flag {compressed}) but no compression was negotiated"
            )));
        }
        let length_bytes = [
            self.buffer[1],
            self.buffer[2],
            self.buffer[3],
            self.buffer[4],
        ];
        let length = u32::from_be_bytes(length_bytes) as usize;
        if length > self.message_bytes_max {
            return Err(CallError::Protocol(format!(
                "message of {length} bytes exceeds the limit of {} bytes",
                self.message_bytes_max
            )));
        }
        if self.buffer.len() < PREFIX_BYTES + length {
            self.buffer
                .reserve(PREFIX_BYTES + length - self.buffer.len());
            return Ok(None);
        }
        self.buffer.advance(PREFIX_BYTES);
        Ok(Some(self.buffer.split_to(length).freeze()))
    }
}

/// Decodes one message body.
pub fn decode<M: Message + Default>(bytes: Bytes) -> Result<M, CallError> {
    M::decode(bytes).map_err(|error| CallError::Protocol(format!("undecodable message: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_proto::etcdserverpb::PutRequest;

    fn sample() -> PutRequest {
        PutRequest {
            key: Bytes::from_static(b"key"),
            value: Bytes::from_static(b"value"),
            ..Default::default()
        }
    }

    #[test]
    fn a_message_survives_any_split() {
        let framed = encode(&sample());
        for split in 0..framed.len() {
            let mut decoder = FrameDecoder::new(1024);
            decoder.push(&framed[..split]);
            assert!(matches!(decoder.next_message(), Ok(None)));
            decoder.push(&framed[split..]);
            let body = decoder.next_message().ok().flatten();
            let decoded: Option<PutRequest> = body.and_then(|b| decode(b).ok());
            assert_eq!(decoded, Some(sample()));
            assert!(decoder.is_empty());
        }
    }

    #[test]
    fn two_messages_in_one_chunk() {
        let mut both = encode(&sample()).to_vec();
        both.extend_from_slice(&encode(&sample()));
        let mut decoder = FrameDecoder::new(1024);
        decoder.push(&both);
        assert!(matches!(decoder.next_message(), Ok(Some(_))));
        assert!(matches!(decoder.next_message(), Ok(Some(_))));
        assert!(matches!(decoder.next_message(), Ok(None)));
    }

    #[test]
    fn oversized_length_is_refused_from_the_prefix_alone() {
        let mut decoder = FrameDecoder::new(16);
        decoder.push(&[0, 0, 0, 0, 17]);
        assert!(matches!(
            decoder.next_message(),
            Err(CallError::Protocol(_))
        ));
    }

    #[test]
    fn compressed_messages_are_refused() {
        let mut decoder = FrameDecoder::new(16);
        decoder.push(&[1, 0, 0, 0, 1, 0]);
        assert!(matches!(
            decoder.next_message(),
            Err(CallError::Protocol(_))
        ));
    }
}
