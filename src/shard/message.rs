//! Messages between shards. Everything here is `Send`: it crosses cores through glommio's
//! shared channels.

use super::ShardId;
use crate::mvcc::{MvccError, WriteResponse};
use crate::server::ServerError;
use crate::watch::EventBatch;
use bytes::Bytes;
use capstan_proto::capstanpb::{MembershipAnswer, MembershipRequest};
use std::sync::Arc;

/// From any shard to the raft group's owner shard.
#[derive(Debug)]
pub enum ToOwner {
    /// A write: `data` is an encoded `capstanpb.InternalRequest` that carries `id` and `origin`.
    Propose {
        origin: ShardId,
        id: u64,
        data: Bytes,
    },
    /// A linearizable read wants a read index; answered with `ReadReady` once applied >= it.
    ReadIndex { origin: ShardId, id: u64 },
    /// A peer message (`raft::peer_message`) from member `from`, still encoded (decoded on
    /// the owner).
    Peer { from: u64, data: Bytes },
    /// A keep-alive: the leader moves the lease's deadline; answered with `LeaseTtl` (a
    /// follower forwards it to the leader; `Failed(NotLeader)` asks the shard to retry).
    LeaseKeepAlive {
        origin: ShardId,
        id: u64,
        lease_id: i64,
    },
    /// A Cluster-service write; answered with `Membership` once applied (or refused).
    Membership {
        origin: ShardId,
        id: u64,
        request: MembershipRequest,
    },
    /// Maintenance.MoveLeader on the leader; answered with `Done` once `target` leads.
    MoveLeader {
        origin: ShardId,
        id: u64,
        target: u64,
    },
    /// How long a lease has left, by the leader's clock; answered with `LeaseTtl`.
    LeaseTimeToLive {
        origin: ShardId,
        id: u64,
        lease_id: i64,
    },
}

/// The result of an applied write, as the originating shard needs it for the response header.
#[derive(Debug)]
pub struct WriteOutcome {
    pub response: WriteResponse,
    /// The store's revision right after this write.
    pub revision: i64,
    pub raft_term: u64,
}

/// From the owner shard to every shard.
#[derive(Debug)]
pub enum ToShard {
    /// The answer to one call of this shard.
    Answer(Answer),
    /// Everything one raft turn applied, in revision order, for the shard's watch hub. Sent
    /// after the read view that includes it was published.
    Events(Arc<EventBatch>),
}

/// The answer to a proposal or read-index request.
#[derive(Debug)]
pub enum Answer {
    Applied {
        id: u64,
        outcome: Result<WriteOutcome, MvccError>,
    },
    ReadReady {
        id: u64,
    },
    /// Seconds of life the lease has (keep-alive: its granted TTL), 0 or -1 when unknown.
    LeaseTtl {
        id: u64,
        ttl: i64,
    },
    Failed {
        id: u64,
        error: ServerError,
    },
    /// A request without a payload in its answer completed (MoveLeader).
    Done {
        id: u64,
    },
    /// The leader's answer to a membership change (`code` 0: applied).
    Membership {
        id: u64,
        answer: MembershipAnswer,
    },
}

impl Answer {
    pub fn id(&self) -> u64 {
        match self {
            Answer::Applied { id, .. }
            | Answer::ReadReady { id }
            | Answer::LeaseTtl { id, .. }
            | Answer::Failed { id, .. }
            | Answer::Membership { id, .. }
            | Answer::Done { id } => *id,
        }
    }
}
