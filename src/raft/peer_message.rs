//! What raft groups say to each other over the peer transport: raft messages, and the lease
//! questions a follower forwards to the leader (only the leader's lease clock counts).
//!
//! Every transport frame payload starts with one kind byte:
//!
//! ```text
//! kind 0  raft message      | encoded eraftpb.Message ...
//! kind 1  lease keep-alive  | forward id u64 BE | lease id i64 BE           (follower -> leader)
//! kind 2  lease time-to-live| forward id u64 BE | lease id i64 BE           (follower -> leader)
//! kind 3  lease answer      | forward id u64 BE | ttl seconds i64 BE        (leader -> follower)
//! kind 4  not the leader    | forward id u64 BE                            (-> follower retries)
//! kind 5  membership change | forward id u64 BE | capstanpb.MembershipRequest (follower -> leader)
//! kind 6  membership answer | forward id u64 BE | capstanpb.MembershipAnswer  (leader -> follower)
//! kind 7  you were removed  | (nothing)                                    (-> removed member)
//! kind 8  snapshot chunk    | offset u64 BE | total u64 BE | bytes        (leader -> follower)
//! ```
//!
//! A raft `MsgSnapshot` carries the whole applied state, so it is not sent as one kind-0 frame:
//! its encoding is cut into kind-8 chunks (see `snapshot_stream`), each `bytes` starting at
//! `offset` of an encoding `total` bytes long.

use bytes::{BufMut, Bytes, BytesMut};

const KIND_RAFT: u8 = 0;
const KIND_LEASE_KEEP_ALIVE: u8 = 1;
const KIND_LEASE_TIME_TO_LIVE: u8 = 2;
const KIND_LEASE_ANSWER: u8 = 3;
const KIND_NOT_LEADER: u8 = 4;
const KIND_MEMBERSHIP: u8 = 5;
const KIND_MEMBERSHIP_ANSWER: u8 = 6;
const KIND_REMOVED: u8 = 7;
const KIND_SNAPSHOT_CHUNK: u8 = 8;

/// Bytes before a snapshot chunk's data: kind, offset, total.
const SNAPSHOT_CHUNK_HEADER_BYTES: usize = 1 + 8 + 8;

/// Bytes of a lease frame: kind, forward id, one 64-bit value.
const LEASE_FRAME_BYTES: usize = 1 + 8 + 8;
/// Bytes of a "not the leader" frame: kind, forward id.
const NOT_LEADER_FRAME_BYTES: usize = 1 + 8;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerMessage {
    /// An encoded `eraftpb.Message`.
    Raft(Bytes),
    LeaseKeepAlive {
        forward_id: u64,
        lease_id: i64,
    },
    LeaseTimeToLive {
        forward_id: u64,
        lease_id: i64,
    },
    /// The leader's answer to a forwarded lease question: keep-alive answers carry the granted
    /// TTL (0: the lease is gone), time-to-live answers the seconds left (-1: unknown lease).
    LeaseAnswer {
        forward_id: u64,
        ttl_seconds: i64,
    },
    /// The member asked is not the leader (any more): the follower asks again.
    NotLeader {
        forward_id: u64,
    },
    /// An encoded `capstanpb.MembershipRequest`.
    Membership {
        forward_id: u64,
        request: Bytes,
    },
    /// An encoded `capstanpb.MembershipAnswer`.
    MembershipAnswer {
        forward_id: u64,
        answer: Bytes,
    },
    /// The receiver has been removed from the cluster (the members that removed it no longer
    /// send it raft messages, so it could not learn of its removal from its log).
    Removed,
    /// Bytes `offset..offset + data.len()` of an encoded `MsgSnapshot` of `total` bytes.
    SnapshotChunk {
        offset: u64,
        total: u64,
        data: Bytes,
    },
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerMessageError {
    #[error("empty peer message")]
    Empty,
    #[error("unknown peer message kind {0}")]
    UnknownKind(u8),
    #[error("peer message of kind {kind} has {bytes} bytes, expected {expected}")]
    Length {
        kind: u8,
        bytes: usize,
        expected: usize,
    },
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    let mut field = [0u8; 8];
    field.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_be_bytes(field)
}

fn lease_frame(kind: u8, forward_id: u64, value: i64) -> Bytes {
    let mut out = BytesMut::with_capacity(LEASE_FRAME_BYTES);
    out.put_u8(kind);
    out.put_u64(forward_id);
    out.put_i64(value);
    out.freeze()
}

impl PeerMessage {
    /// Frames an `eraftpb.Message` without an extra copy of its encoding.
    pub fn encode_raft(message: &raft::eraftpb::Message) -> Result<Bytes, protobuf::ProtobufError> {
        let mut out = Vec::with_capacity(1 + protobuf::Message::compute_size(message) as usize);
        out.push(KIND_RAFT);
        protobuf::Message::write_to_vec(message, &mut out)?;
        Ok(out.into())
    }

    pub fn encode(&self) -> Bytes {
        let with_payload = |kind: u8, forward_id: u64, payload: &Bytes| {
            let mut out = BytesMut::with_capacity(NOT_LEADER_FRAME_BYTES + payload.len());
            out.put_u8(kind);
            out.put_u64(forward_id);
            out.put_slice(payload);
            out.freeze()
        };
        match self {
            PeerMessage::Removed => Bytes::from_static(&[KIND_REMOVED]),
            PeerMessage::SnapshotChunk {
                offset,
                total,
                data,
            } => {
                let mut out = BytesMut::with_capacity(SNAPSHOT_CHUNK_HEADER_BYTES + data.len());
                out.put_u8(KIND_SNAPSHOT_CHUNK);
                out.put_u64(*offset);
                out.put_u64(*total);
                out.put_slice(data);
                out.freeze()
            }
            PeerMessage::Membership {
                forward_id,
                request,
            } => with_payload(KIND_MEMBERSHIP, *forward_id, request),
            PeerMessage::MembershipAnswer { forward_id, answer } => {
                with_payload(KIND_MEMBERSHIP_ANSWER, *forward_id, answer)
            }
            PeerMessage::Raft(data) => {
                let mut out = BytesMut::with_capacity(1 + data.len());
                out.put_u8(KIND_RAFT);
                out.put_slice(data);
                out.freeze()
            }
            PeerMessage::LeaseKeepAlive {
                forward_id,
                lease_id,
            } => lease_frame(KIND_LEASE_KEEP_ALIVE, *forward_id, *lease_id),
            PeerMessage::LeaseTimeToLive {
                forward_id,
                lease_id,
            } => lease_frame(KIND_LEASE_TIME_TO_LIVE, *forward_id, *lease_id),
            PeerMessage::LeaseAnswer {
                forward_id,
                ttl_seconds,
            } => lease_frame(KIND_LEASE_ANSWER, *forward_id, *ttl_seconds),
            PeerMessage::NotLeader { forward_id } => {
                let mut out = BytesMut::with_capacity(NOT_LEADER_FRAME_BYTES);
                out.put_u8(KIND_NOT_LEADER);
                out.put_u64(*forward_id);
                out.freeze()
            }
        }
    }

    pub fn decode(data: Bytes) -> Result<PeerMessage, PeerMessageError> {
        let Some(&kind) = data.first() else {
            return Err(PeerMessageError::Empty);
        };
        let expect = |expected: usize| {
            if data.len() == expected {
                Ok(())
            } else {
                Err(PeerMessageError::Length {
                    kind,
                    bytes: data.len(),
                    expected,
                })
            }
        };
        match kind {
            KIND_RAFT => Ok(PeerMessage::Raft(data.slice(1..))),
            KIND_LEASE_KEEP_ALIVE | KIND_LEASE_TIME_TO_LIVE | KIND_LEASE_ANSWER => {
                expect(LEASE_FRAME_BYTES)?;
                let forward_id = u64_at(&data, 1);
                let value = u64_at(&data, 9) as i64;
                Ok(match kind {
                    KIND_LEASE_KEEP_ALIVE => PeerMessage::LeaseKeepAlive {
                        forward_id,
                        lease_id: value,
                    },
                    KIND_LEASE_TIME_TO_LIVE => PeerMessage::LeaseTimeToLive {
                        forward_id,
                        lease_id: value,
                    },
                    _ => PeerMessage::LeaseAnswer {
                        forward_id,
                        ttl_seconds: value,
                    },
                })
            }
            KIND_NOT_LEADER => {
                expect(NOT_LEADER_FRAME_BYTES)?;
                Ok(PeerMessage::NotLeader {
                    forward_id: u64_at(&data, 1),
                })
            }
            KIND_MEMBERSHIP | KIND_MEMBERSHIP_ANSWER => {
                if data.len() < NOT_LEADER_FRAME_BYTES {
                    return Err(PeerMessageError::Length {
                        kind,
                        bytes: data.len(),
                        expected: NOT_LEADER_FRAME_BYTES,
                    });
                }
                let forward_id = u64_at(&data, 1);
                let payload = data.slice(NOT_LEADER_FRAME_BYTES..);
                Ok(if kind == KIND_MEMBERSHIP {
                    PeerMessage::Membership {
                        forward_id,
                        request: payload,
                    }
                } else {
                    PeerMessage::MembershipAnswer {
                        forward_id,
                        answer: payload,
                    }
                })
            }
            KIND_REMOVED => {
                expect(1)?;
                Ok(PeerMessage::Removed)
            }
            KIND_SNAPSHOT_CHUNK => {
                if data.len() < SNAPSHOT_CHUNK_HEADER_BYTES {
                    return Err(PeerMessageError::Length {
                        kind,
                        bytes: data.len(),
                        expected: SNAPSHOT_CHUNK_HEADER_BYTES,
                    });
                }
                Ok(PeerMessage::SnapshotChunk {
                    offset: u64_at(&data, 1),
                    total: u64_at(&data, 9),
                    data: data.slice(SNAPSHOT_CHUNK_HEADER_BYTES..),
                })
            }
            other => Err(PeerMessageError::UnknownKind(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips() {
        let messages = [
            PeerMessage::Raft(Bytes::from_static(b"\x08\x01raft")),
            PeerMessage::LeaseKeepAlive {
                forward_id: 7,
                lease_id: i64::MAX,
            },
            PeerMessage::LeaseTimeToLive {
                forward_id: u64::MAX,
                lease_id: 1,
            },
            PeerMessage::LeaseAnswer {
                forward_id: 3,
                ttl_seconds: -1,
            },
            PeerMessage::NotLeader { forward_id: 9 },
            PeerMessage::Membership {
                forward_id: 4,
                request: Bytes::from_static(b"\x0a\x00"),
            },
            PeerMessage::MembershipAnswer {
                forward_id: 5,
                answer: Bytes::new(),
            },
            PeerMessage::Removed,
            PeerMessage::SnapshotChunk {
                offset: 1 << 20,
                total: 3 << 20,
                data: Bytes::from_static(b"chunk"),
            },
        ];
        for message in messages {
            assert_eq!(PeerMessage::decode(message.encode()), Ok(message.clone()));
        }
    }

    #[test]
    fn raft_framing_matches_the_generic_encoding() {
        let mut message = raft::eraftpb::Message::default();
        message.set_from(1);
        message.set_to(2);
        message.set_term(5);
        let framed = PeerMessage::encode_raft(&message).expect("encodes");
        let Ok(PeerMessage::Raft(inner)) = PeerMessage::decode(framed) else {
            panic!("not a raft message");
        };
        let decoded: raft::eraftpb::Message =
            protobuf::Message::parse_from_bytes(&inner).expect("decodes");
        assert_eq!(decoded, message);
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        assert_eq!(
            PeerMessage::decode(Bytes::new()),
            Err(PeerMessageError::Empty)
        );
        assert_eq!(
            PeerMessage::decode(Bytes::from_static(&[9, 0])),
            Err(PeerMessageError::UnknownKind(9))
        );
        for kind in [KIND_LEASE_KEEP_ALIVE, KIND_LEASE_ANSWER, KIND_NOT_LEADER] {
            for length in [1, 5, 16, 18] {
                let mut data = vec![0u8; length];
                data[0] = kind;
                assert!(matches!(
                    PeerMessage::decode(Bytes::from(data)),
                    Err(PeerMessageError::Length { .. })
                ));
            }
        }
    }
}
