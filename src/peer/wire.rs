//! The bytes on a peer connection: the handshake and the frame header (diagrams in the module
//! doc of [`crate::peer`]). Pure encoding and checking, no I/O.

/// First bytes of every peer connection.
pub const HANDSHAKE_MAGIC: [u8; 4] = *b"CPRT";
/// The only protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;
/// Size of the handshake in bytes.
pub const HANDSHAKE_BYTES: usize = 32;
/// Size of a frame header (the big-endian payload length) in bytes.
pub const FRAME_HEADER_BYTES: usize = 4;
/// Largest frame payload in bytes a receiver accepts (and a sender sends). Raft snapshots travel
/// in 1 MiB chunks (`raft::snapshot_stream`), so messages stay far below this.
pub const FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Handshake flag of a member joining an existing cluster (`--initial-cluster-state existing`)
/// that asks which cluster the receiver belongs to: the receiver answers with its own handshake
/// (its cluster id) and closes; no frames follow.
pub const FLAG_CLUSTER_QUERY: u16 = 0x0100;

/// Handshake flag of a restarting member's start-up hash check (etcd's initial corruption
/// check): the requested revision follows the handshake ([`super::hash_wire`]); the receiver
/// answers with one hash answer and closes; no frames follow.
pub const FLAG_HASH_QUERY: u16 = 0x0200;

/// What a connection is for, from its handshake flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Raft frames follow (flags 0).
    Raft,
    /// [`FLAG_CLUSTER_QUERY`].
    ClusterQuery,
    /// [`FLAG_HASH_QUERY`].
    HashQuery,
}

impl Purpose {
    fn flags(self) -> u16 {
        match self {
            Purpose::Raft => 0,
            Purpose::ClusterQuery => FLAG_CLUSTER_QUERY,
            Purpose::HashQuery => FLAG_HASH_QUERY,
        }
    }

    fn of_flags(flags: u16) -> Option<Purpose> {
        [Purpose::Raft, Purpose::ClusterQuery, Purpose::HashQuery]
            .into_iter()
            .find(|purpose| purpose.flags() == flags)
    }
}

/// What a connecting member says about itself before its first frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handshake {
    pub cluster_id: u64,
    pub from_id: u64,
    pub to_id: u64,
}

/// Why a handshake was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("bad magic {0:02x?}: not a capstan peer")]
    Magic([u8; 4]),
    #[error("unsupported peer protocol version {0} (this member speaks {PROTOCOL_VERSION})")]
    Version(u16),
    #[error("reserved handshake flags {0:#06x} are not zero")]
    Flags(u16),
}

/// Why a frame header was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("frame of {length} bytes exceeds the limit of {FRAME_BYTES_MAX} bytes")]
pub struct FrameTooLarge {
    pub length: u64,
}

fn u64_at(bytes: &[u8; HANDSHAKE_BYTES], offset: usize) -> u64 {
    let mut field = [0u8; 8];
    field.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_be_bytes(field)
}

impl Handshake {
    pub fn encode(&self) -> [u8; HANDSHAKE_BYTES] {
        let mut bytes = [0u8; HANDSHAKE_BYTES];
        bytes[0..4].copy_from_slice(&HANDSHAKE_MAGIC);
        bytes[4..6].copy_from_slice(&PROTOCOL_VERSION.to_be_bytes());
        // bytes[6..8]: reserved flags, zero.
        bytes[8..16].copy_from_slice(&self.cluster_id.to_be_bytes());
        bytes[16..24].copy_from_slice(&self.from_id.to_be_bytes());
        bytes[24..32].copy_from_slice(&self.to_id.to_be_bytes());
        bytes
    }

    /// The handshake of a cluster query (see [`FLAG_CLUSTER_QUERY`]).
    pub fn encode_query(&self) -> [u8; HANDSHAKE_BYTES] {
        self.encode_for(Purpose::ClusterQuery)
    }

    /// The handshake of a connection for `purpose` (its flags set accordingly).
    pub fn encode_for(&self, purpose: Purpose) -> [u8; HANDSHAKE_BYTES] {
        let mut bytes = self.encode();
        bytes[6..8].copy_from_slice(&purpose.flags().to_be_bytes());
        bytes
    }

    /// Like [`decode`](Self::decode), also accepting the query flags; says which it is.
    pub fn decode_any(
        bytes: &[u8; HANDSHAKE_BYTES],
    ) -> Result<(Handshake, Purpose), HandshakeError> {
        let flags = u16::from_be_bytes([bytes[6], bytes[7]]);
        let purpose = Purpose::of_flags(flags).ok_or(HandshakeError::Flags(flags))?;
        let mut plain = *bytes;
        plain[6..8].copy_from_slice(&[0, 0]);
        Ok((Handshake::decode(&plain)?, purpose))
    }

    /// Checks magic, version and flags; the ids are the caller's to judge.
    pub fn decode(bytes: &[u8; HANDSHAKE_BYTES]) -> Result<Handshake, HandshakeError> {
        let magic = [bytes[0], bytes[1], bytes[2], bytes[3]];
        if magic != HANDSHAKE_MAGIC {
            return Err(HandshakeError::Magic(magic));
        }
        let version = u16::from_be_bytes([bytes[4], bytes[5]]);
        if version != PROTOCOL_VERSION {
            return Err(HandshakeError::Version(version));
        }
        let flags = u16::from_be_bytes([bytes[6], bytes[7]]);
        if flags != 0 {
            return Err(HandshakeError::Flags(flags));
        }
        Ok(Handshake {
            cluster_id: u64_at(bytes, 8),
            from_id: u64_at(bytes, 16),
            to_id: u64_at(bytes, 24),
        })
    }
}

/// Appends one frame (header and payload) to `out`. The caller keeps payloads within
/// [`FRAME_BYTES_MAX`], so the length always fits the 4-byte header.
pub fn append_frame(out: &mut Vec<u8>, payload: &[u8]) {
    debug_assert!(payload.len() <= FRAME_BYTES_MAX);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
}

/// The payload length announced by a frame header, checked against [`FRAME_BYTES_MAX`].
pub fn frame_length(header: [u8; FRAME_HEADER_BYTES]) -> Result<usize, FrameTooLarge> {
    let length = u32::from_be_bytes(header);
    match usize::try_from(length) {
        Ok(length) if length <= FRAME_BYTES_MAX => Ok(length),
        _ => Err(FrameTooLarge {
            length: u64::from(length),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_round_trips() {
        let handshake = Handshake {
            cluster_id: 0xdead_beef_0000_0001,
            from_id: 7,
            to_id: u64::MAX,
        };
        let bytes = handshake.encode();
        assert_eq!(&bytes[0..4], b"CPRT");
        assert_eq!(&bytes[4..8], &[0, 1, 0, 0]);
        assert_eq!(Handshake::decode(&bytes), Ok(handshake));
    }

    #[test]
    fn handshake_refuses_bad_magic_version_and_flags() {
        let good = Handshake {
            cluster_id: 1,
            from_id: 2,
            to_id: 3,
        }
        .encode();
        let mut bad = good;
        bad[0] = b'X';
        assert!(matches!(
            Handshake::decode(&bad),
            Err(HandshakeError::Magic(_))
        ));
        let mut bad = good;
        bad[5] = 2;
        assert_eq!(Handshake::decode(&bad), Err(HandshakeError::Version(2)));
        let mut bad = good;
        bad[7] = 1;
        assert_eq!(Handshake::decode(&bad), Err(HandshakeError::Flags(1)));
    }

    #[test]
    fn query_flags_round_trip_and_unknown_flags_are_refused() {
        let handshake = Handshake {
            cluster_id: 9,
            from_id: 2,
            to_id: 3,
        };
        for purpose in [Purpose::Raft, Purpose::ClusterQuery, Purpose::HashQuery] {
            let bytes = handshake.encode_for(purpose);
            assert_eq!(Handshake::decode_any(&bytes), Ok((handshake, purpose)));
        }
        assert_eq!(&handshake.encode_for(Purpose::HashQuery)[6..8], &[2, 0]);
        let mut bad = handshake.encode();
        bad[6..8].copy_from_slice(&0x0300u16.to_be_bytes());
        assert_eq!(
            Handshake::decode_any(&bad),
            Err(HandshakeError::Flags(0x0300))
        );
    }

    #[test]
    fn frame_length_is_checked() {
        let mut out = Vec::new();
        append_frame(&mut out, b"abc");
        assert_eq!(out, [0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(frame_length([0, 0, 0, 3]), Ok(3));
        assert_eq!(
            frame_length((FRAME_BYTES_MAX as u32).to_be_bytes()),
            Ok(FRAME_BYTES_MAX)
        );
        assert_eq!(
            frame_length((FRAME_BYTES_MAX as u32 + 1).to_be_bytes()),
            Err(FrameTooLarge {
                length: FRAME_BYTES_MAX as u64 + 1
            })
        );
        assert!(frame_length([0xff; 4]).is_err());
    }
}
