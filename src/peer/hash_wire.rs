//! The bytes of a hash query (etcd's `/members/hashkv` peer request, used by the initial
//! corruption check) and of its answer. Pure encoding and checking, no I/O; the diagrams are in
//! the module doc of [`crate::peer`].

use super::wire::{Handshake, Purpose, HANDSHAKE_BYTES};

/// Bytes after the handshake of a hash query: the revision asked for (i64 big-endian).
pub const HASH_QUERY_BODY_BYTES: usize = 8;
/// Bytes of a whole hash query as the asking member sends it.
pub const HASH_QUERY_BYTES: usize = HANDSHAKE_BYTES + HASH_QUERY_BODY_BYTES;
/// First bytes of every hash answer.
pub const HASH_ANSWER_MAGIC: [u8; 4] = *b"CPHK";
/// Size of a hash answer in bytes.
pub const HASH_ANSWER_BYTES: usize = 48;

const STATUS_HASH: u8 = 0;
const STATUS_COMPACTED: u8 = 1;
const STATUS_FUTURE_REVISION: u8 = 2;
const STATUS_CLUSTER_MISMATCH: u8 = 3;
const STATUS_UNAVAILABLE: u8 = 4;

/// What the asked member says about the revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashReply {
    /// etcd's HashKV at the revision.
    Hash {
        hash: u32,
        compact_revision: i64,
        hash_revision: i64,
    },
    /// The revision is below the member's last compaction (etcd's `ErrCompacted`).
    Compacted { compact_revision: i64 },
    /// The revision is past the member's current one (etcd's `ErrFutureRev`).
    FutureRevision,
    /// The query named another cluster (etcd's `ErrClusterIDMismatch`).
    ClusterMismatch,
    /// The member cannot hash now (too many queries at once, or no state to hash from).
    Unavailable,
}

/// One hash answer: who answered, at which current revision, and what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashAnswer {
    pub member_id: u64,
    /// The answering member's current revision (etcd's response header revision).
    pub current_revision: i64,
    pub reply: HashReply,
}

/// Why a hash answer was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HashAnswerError {
    #[error("bad magic {0:02x?}: not a capstan hash answer")]
    Magic([u8; 4]),
    #[error("unknown hash answer status {0}")]
    Status(u8),
    #[error("reserved bytes of a hash answer are not zero")]
    Reserved,
}

/// The whole query: the handshake with [`Purpose::HashQuery`], then the revision.
pub fn encode_hash_query(handshake: &Handshake, revision: i64) -> [u8; HASH_QUERY_BYTES] {
    let mut bytes = [0u8; HASH_QUERY_BYTES];
    bytes[..HANDSHAKE_BYTES].copy_from_slice(&handshake.encode_for(Purpose::HashQuery));
    bytes[HANDSHAKE_BYTES..].copy_from_slice(&revision.to_be_bytes());
    bytes
}

/// The revision in the bytes that follow a hash query's handshake. Any value is a revision
/// (etcd's HashKV takes 0 or less to mean the current one).
pub fn decode_hash_query_body(bytes: [u8; HASH_QUERY_BODY_BYTES]) -> i64 {
    i64::from_be_bytes(bytes)
}

fn i64_at(bytes: &[u8; HASH_ANSWER_BYTES], offset: usize) -> i64 {
    let mut field = [0u8; 8];
    field.copy_from_slice(&bytes[offset..offset + 8]);
    i64::from_be_bytes(field)
}

impl HashAnswer {
    pub fn encode(&self) -> [u8; HASH_ANSWER_BYTES] {
        let (status, hash, compact_revision, hash_revision) = match self.reply {
            HashReply::Hash {
                hash,
                compact_revision,
                hash_revision,
            } => (STATUS_HASH, hash, compact_revision, hash_revision),
            HashReply::Compacted { compact_revision } => (STATUS_COMPACTED, 0, compact_revision, 0),
            HashReply::FutureRevision => (STATUS_FUTURE_REVISION, 0, 0, 0),
            HashReply::ClusterMismatch => (STATUS_CLUSTER_MISMATCH, 0, 0, 0),
            HashReply::Unavailable => (STATUS_UNAVAILABLE, 0, 0, 0),
        };
        let mut bytes = [0u8; HASH_ANSWER_BYTES];
        bytes[0..4].copy_from_slice(&HASH_ANSWER_MAGIC);
        bytes[4] = status;
        // bytes[5..8]: reserved, zero.
        bytes[8..16].copy_from_slice(&self.member_id.to_be_bytes());
        bytes[16..24].copy_from_slice(&self.current_revision.to_be_bytes());
        bytes[24..28].copy_from_slice(&hash.to_be_bytes());
        // bytes[28..32]: reserved, zero.
        bytes[32..40].copy_from_slice(&compact_revision.to_be_bytes());
        bytes[40..48].copy_from_slice(&hash_revision.to_be_bytes());
        bytes
    }

    /// Checks magic, status and the reserved bytes; the ids and revisions are the caller's to
    /// judge.
    pub fn decode(bytes: &[u8; HASH_ANSWER_BYTES]) -> Result<HashAnswer, HashAnswerError> {
        let magic = [bytes[0], bytes[1], bytes[2], bytes[3]];
        if magic != HASH_ANSWER_MAGIC {
            return Err(HashAnswerError::Magic(magic));
        }
        if bytes[5..8] != [0, 0, 0] || bytes[28..32] != [0, 0, 0, 0] {
            return Err(HashAnswerError::Reserved);
        }
        let mut member_id = [0u8; 8];
        member_id.copy_from_slice(&bytes[8..16]);
        let hash = u32::from_be_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]);
        let compact_revision = i64_at(bytes, 32);
        let reply = match bytes[4] {
            STATUS_HASH => HashReply::Hash {
                hash,
                compact_revision,
                hash_revision: i64_at(bytes, 40),
            },
            STATUS_COMPACTED => HashReply::Compacted { compact_revision },
            STATUS_FUTURE_REVISION => HashReply::FutureRevision,
            STATUS_CLUSTER_MISMATCH => HashReply::ClusterMismatch,
            STATUS_UNAVAILABLE => HashReply::Unavailable,
            other => return Err(HashAnswerError::Status(other)),
        };
        Ok(HashAnswer {
            member_id: u64::from_be_bytes(member_id),
            current_revision: i64_at(bytes, 16),
            reply,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(reply: HashReply) -> HashAnswer {
        HashAnswer {
            member_id: 0x8e9e_05c5_2164_694d,
            current_revision: 1_234,
            reply,
        }
    }

    #[test]
    fn query_layout() {
        let handshake = Handshake {
            cluster_id: 0xcdf8_1819_4e3a_8c32,
            from_id: 1,
            to_id: 2,
        };
        let bytes = encode_hash_query(&handshake, 77);
        let mut head = [0u8; HANDSHAKE_BYTES];
        head.copy_from_slice(&bytes[..HANDSHAKE_BYTES]);
        assert_eq!(
            Handshake::decode_any(&head),
            Ok((handshake, Purpose::HashQuery))
        );
        assert_eq!(&bytes[HANDSHAKE_BYTES..], &[0, 0, 0, 0, 0, 0, 0, 77]);
        let mut body = [0u8; HASH_QUERY_BODY_BYTES];
        body.copy_from_slice(&bytes[HANDSHAKE_BYTES..]);
        assert_eq!(decode_hash_query_body(body), 77);
        assert_eq!(decode_hash_query_body((-1i64).to_be_bytes()), -1);
    }

    #[test]
    fn every_reply_round_trips() {
        for reply in [
            HashReply::Hash {
                hash: 0xdead_beef,
                compact_revision: -1,
                hash_revision: 1_200,
            },
            HashReply::Hash {
                hash: 0,
                compact_revision: 5,
                hash_revision: i64::MAX,
            },
            HashReply::Compacted {
                compact_revision: 900,
            },
            HashReply::FutureRevision,
            HashReply::ClusterMismatch,
            HashReply::Unavailable,
        ] {
            let bytes = answer(reply).encode();
            assert_eq!(&bytes[0..4], b"CPHK");
            assert_eq!(HashAnswer::decode(&bytes), Ok(answer(reply)));
        }
    }

    #[test]
    fn answer_layout_is_big_endian_at_fixed_offsets() {
        let bytes = answer(HashReply::Hash {
            hash: 0x0102_0304,
            compact_revision: 6,
            hash_revision: 7,
        })
        .encode();
        assert_eq!(bytes[4], 0);
        assert_eq!(&bytes[8..16], &0x8e9e_05c5_2164_694du64.to_be_bytes());
        assert_eq!(&bytes[16..24], &1_234i64.to_be_bytes());
        assert_eq!(&bytes[24..28], &[1, 2, 3, 4]);
        assert_eq!(&bytes[32..40], &6i64.to_be_bytes());
        assert_eq!(&bytes[40..48], &7i64.to_be_bytes());
    }

    #[test]
    fn bad_answers_are_refused() {
        let good = answer(HashReply::FutureRevision).encode();
        let mut bad = good;
        bad[0] = b'X';
        assert!(matches!(
            HashAnswer::decode(&bad),
            Err(HashAnswerError::Magic(_))
        ));
        let mut bad = good;
        bad[4] = 5;
        assert_eq!(HashAnswer::decode(&bad), Err(HashAnswerError::Status(5)));
        for reserved in [5, 6, 7, 28, 29, 30, 31] {
            let mut bad = good;
            bad[reserved] = 1;
            assert_eq!(HashAnswer::decode(&bad), Err(HashAnswerError::Reserved));
        }
        // Any other bytes decode to something the caller then judges; nothing panics.
        let mut state = 0x1234_5678_9abc_def0u64;
        for _ in 0..10_000 {
            let mut bytes = [0u8; HASH_ANSWER_BYTES];
            for byte in bytes.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *byte = state as u8;
            }
            if state % 2 == 0 {
                bytes[0..4].copy_from_slice(&HASH_ANSWER_MAGIC);
            }
            let _ = HashAnswer::decode(&bytes);
        }
    }
}
