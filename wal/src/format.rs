//! Byte layout of segment headers and records (see `FORMAT.md`).

/// Magic bytes at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"CPSTNWAL";
/// On-disk format version written into every segment header.
pub const FORMAT_VERSION: u32 = 1;
/// Size of the segment header; the first record starts at this offset.
pub const SEGMENT_HEADER_BYTES: u64 = 64;
/// Bytes of the header that the header checksum covers.
const SEGMENT_HEADER_CRC_COVERED_BYTES: usize = 32;
/// Size of a record header (crc, length, kind, reserved).
pub const RECORD_HEADER_BYTES: usize = 12;
/// Every record starts at a multiple of this.
pub const RECORD_ALIGN_BYTES: u64 = 8;
/// Largest payload of one record.
pub const RECORD_PAYLOAD_BYTES_MAX: usize = 16 * 1024 * 1024;
/// The O_DIRECT unit used for every read and write.
pub const BLOCK_BYTES: u64 = 4096;
/// Default size of one segment file.
pub const SEGMENT_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;
/// Smallest accepted segment size.
pub const SEGMENT_BYTES_MIN: u64 = 16 * 1024;
/// Largest accepted segment size.
pub const SEGMENT_BYTES_MAX: u64 = 1024 * 1024 * 1024;
/// Record kind 0 is never valid: an all-zero header marks the end of data.
pub const KIND_INVALID: u8 = 0;
/// Kinds from this value up to 0xFF are reserved for the WAL itself.
pub const KIND_RESERVED_MIN: u8 = 0xF0;

/// Rounds `v` up to a multiple of `to` (a power of two).
pub fn align_up(v: u64, to: u64) -> u64 {
    debug_assert!(to.is_power_of_two());
    (v + to - 1) & !(to - 1)
}

/// Rounds `v` down to a multiple of `to` (a power of two).
pub fn align_down(v: u64, to: u64) -> u64 {
    debug_assert!(to.is_power_of_two());
    v & !(to - 1)
}

/// Bytes one record with a payload of `payload_len` bytes occupies on disk.
pub fn encoded_len(payload_len: usize) -> u64 {
    align_up(
        RECORD_HEADER_BYTES as u64 + payload_len as u64,
        RECORD_ALIGN_BYTES,
    )
}

/// True for kinds a caller may append.
pub fn is_caller_kind(kind: u8) -> bool {
    kind != KIND_INVALID && kind < KIND_RESERVED_MIN
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Encodes a segment header into `out` (at least `SEGMENT_HEADER_BYTES` long).
pub fn encode_segment_header(out: &mut [u8], seq: u64, segment_bytes: u64) {
    let header = &mut out[..SEGMENT_HEADER_BYTES as usize];
    header.fill(0);
    header[0..8].copy_from_slice(&SEGMENT_MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[16..24].copy_from_slice(&seq.to_le_bytes());
    header[24..32].copy_from_slice(&segment_bytes.to_le_bytes());
    let crc = crc32fast::hash(&header[..SEGMENT_HEADER_CRC_COVERED_BYTES]);
    header[32..36].copy_from_slice(&crc.to_le_bytes());
}

/// Why a segment header was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer bytes than a header.
    Short,
    /// Valid checksum but a version this code does not read.
    Version(u32),
    /// Anything else; the string is the reason.
    Bad(String),
}

/// Decodes and checks a segment header; returns its `segment_bytes`.
pub fn decode_segment_header(bytes: &[u8], expected_seq: u64) -> Result<u64, HeaderError> {
    if bytes.len() < SEGMENT_HEADER_BYTES as usize {
        return Err(HeaderError::Short);
    }
    if bytes[0..8] != SEGMENT_MAGIC {
        return Err(HeaderError::Bad("segment header: bad magic".into()));
    }
    let crc = read_u32(bytes, 32);
    if crc32fast::hash(&bytes[..SEGMENT_HEADER_CRC_COVERED_BYTES]) != crc {
        return Err(HeaderError::Bad("segment header: checksum mismatch".into()));
    }
    let version = read_u32(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(HeaderError::Version(version));
    }
    let seq = read_u64(bytes, 16);
    if seq != expected_seq {
        return Err(HeaderError::Bad(format!(
            "segment header: seq {seq} does not match the file name's seq {expected_seq}"
        )));
    }
    let segment_bytes = read_u64(bytes, 24);
    if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&segment_bytes)
        || segment_bytes % BLOCK_BYTES != 0
    {
        return Err(HeaderError::Bad(format!(
            "segment header: implausible segment size {segment_bytes} bytes"
        )));
    }
    Ok(segment_bytes)
}

fn record_crc(seq: u64, covered: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(covered);
    h.finalize()
}

/// Appends one encoded record (header, payload, zero padding) to `out`.
/// The caller has checked the kind and the payload length.
pub fn encode_record(out: &mut Vec<u8>, seq: u64, kind: u8, payload: &[u8]) {
    assert!(payload.len() <= RECORD_PAYLOAD_BYTES_MAX);
    let start = out.len();
    let total = encoded_len(payload.len()) as usize;
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&[kind, 0, 0, 0]);
    out.extend_from_slice(payload);
    out.resize(start + total, 0);
    let crc = record_crc(
        seq,
        &out[start + 4..start + RECORD_HEADER_BYTES + payload.len()],
    );
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Result of decoding the bytes at one record position.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A valid record; `next` is the offset right after it.
    Record {
        kind: u8,
        payload: &'a [u8],
        next: u64,
    },
    /// All-zero header, or too little room left for a header: end of data.
    End,
    /// Not a valid record; the string is the reason.
    Invalid(&'static str),
}

/// Decodes the record at `offset` of `data` (a segment's bytes, starting at
/// file offset 0) belonging to segment `seq`.
pub fn decode_record(data: &[u8], offset: u64, seq: u64) -> Decoded<'_> {
    let Ok(at) = usize::try_from(offset) else {
        return Decoded::End;
    };
    if at.saturating_add(RECORD_HEADER_BYTES) > data.len() {
        return Decoded::End;
    }
    let header = &data[at..at + RECORD_HEADER_BYTES];
    if header.iter().all(|b| *b == 0) {
        return Decoded::End;
    }
    let len = read_u32(header, 4) as usize;
    let kind = header[8];
    if header[9..12] != [0, 0, 0] {
        return Decoded::Invalid("non-zero reserved bytes in record header");
    }
    if kind == KIND_INVALID {
        return Decoded::Invalid("record kind 0");
    }
    if len > RECORD_PAYLOAD_BYTES_MAX {
        return Decoded::Invalid("record length exceeds RECORD_PAYLOAD_BYTES_MAX");
    }
    let end = at + RECORD_HEADER_BYTES + len;
    if end > data.len() {
        return Decoded::Invalid("record runs past the end of the segment");
    }
    if record_crc(seq, &data[at + 4..end]) != read_u32(header, 0) {
        return Decoded::Invalid("checksum mismatch");
    }
    if kind >= KIND_RESERVED_MIN {
        return Decoded::Invalid("checksummed record with a reserved kind");
    }
    Decoded::Record {
        kind,
        payload: &data[at + RECORD_HEADER_BYTES..end],
        next: offset + encoded_len(len),
    }
}

/// True if a valid record starts at `offset` (used to tell a torn tail
/// from corruption).
pub fn is_valid_record_at(data: &[u8], offset: u64, seq: u64) -> bool {
    matches!(decode_record(data, offset, seq), Decoded::Record { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_roundtrip_and_padding() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 7, 3, b"hello");
        assert_eq!(buf.len() as u64, encoded_len(5));
        assert_eq!(buf.len() % 8, 0);
        match decode_record(&buf, 0, 7) {
            Decoded::Record {
                kind,
                payload,
                next,
            } => {
                assert_eq!(kind, 3);
                assert_eq!(payload, b"hello");
                assert_eq!(next, buf.len() as u64);
            }
            other => panic!("unexpected {other:?}"),
        }
        // Wrong segment seq does not validate.
        assert_eq!(
            decode_record(&buf, 0, 8),
            Decoded::Invalid("checksum mismatch")
        );
        assert!(is_valid_record_at(&buf, 0, 7));
    }

    #[test]
    fn zeros_are_end() {
        let z = [0u8; 64];
        assert_eq!(decode_record(&z, 0, 1), Decoded::End);
        assert_eq!(decode_record(&z, 60, 1), Decoded::End);
    }

    #[test]
    fn header_roundtrip() {
        let mut h = [0u8; 64];
        encode_segment_header(&mut h, 5, SEGMENT_BYTES_MIN);
        assert_eq!(decode_segment_header(&h, 5), Ok(SEGMENT_BYTES_MIN));
        assert!(matches!(
            decode_segment_header(&h, 6),
            Err(HeaderError::Bad(_))
        ));
        h[40] = 1; // outside the checksummed part, still reserved: ignored
        h[3] ^= 1;
        assert!(matches!(
            decode_segment_header(&h, 5),
            Err(HeaderError::Bad(_))
        ));
    }
}
