//! The raft group's share of leases: answering keep-alives and time-to-live questions on the
//! leader (forwarding them from followers), proposing revokes of expired leases, and
//! checkpointing remaining TTLs so the next leader continues from them.

use super::{RaftGroup, OWNER_ORIGIN};
use crate::lease::{CHECKPOINT_LEASES_MAX, REVOKES_PER_TICK_MAX};
use crate::raft::forwards::Asker;
use crate::raft::peer_message::PeerMessage;
use crate::server::ServerError;
use crate::shard::message::Answer;
use capstan_proto::capstanpb::{
    internal_request, InternalRequest, LeaseCheckpoint, LeaseRemaining,
};
use capstan_proto::etcdserverpb::LeaseRevokeRequest;
use prost::Message;
use raft::StateRole;
use std::time::Instant;

/// A lease question, asked by a shard of this member or forwarded by a follower.
#[derive(Clone, Copy, Debug)]
pub enum LeaseQuestion {
    KeepAlive { lease_id: i64 },
    TimeToLive { lease_id: i64 },
}

impl RaftGroup {
    fn is_leader(&self) -> bool {
        self.node.raft.state == StateRole::Leader
    }

    /// The leader's answer: keep-alive renews and reports the granted TTL (0: gone);
    /// time-to-live reports the seconds left (-1: unknown lease).
    fn answer_on_leader(&mut self, question: LeaseQuestion) -> i64 {
        let now = Instant::now();
        match question {
            LeaseQuestion::KeepAlive { lease_id } => {
                let granted_ttl = self.kv.lease(lease_id).map(|lease| lease.granted_ttl);
                self.lessor.renew(lease_id, granted_ttl, now)
            }
            LeaseQuestion::TimeToLive { lease_id } => match self.kv.lease(lease_id) {
                None => -1,
                Some(_) => self.lessor.remaining_seconds(lease_id, now).unwrap_or(-1),
            },
        }
    }

    /// A question from one of this member's shards: answered here on the leader, forwarded to
    /// the leader otherwise.
    pub(super) fn ask_lease(&mut self, asker: Asker, question: LeaseQuestion) {
        let (origin, id) = asker;
        if self.is_leader() {
            let ttl = self.answer_on_leader(question);
            self.outgoing.push((origin, Answer::LeaseTtl { id, ttl }));
            return;
        }
        let leader = self.node.raft.leader_id;
        if leader == raft::INVALID_ID || leader == self.node.raft.id {
            let error = ServerError::NoLeader;
            self.outgoing.push((origin, Answer::Failed { id, error }));
            return;
        }
        let forward_id = self.lease_forwards.start(asker, Instant::now());
        let message = match question {
            LeaseQuestion::KeepAlive { lease_id } => PeerMessage::LeaseKeepAlive {
                forward_id,
                lease_id,
            },
            LeaseQuestion::TimeToLive { lease_id } => PeerMessage::LeaseTimeToLive {
                forward_id,
                lease_id,
            },
        };
        self.peers.send(leader, message.encode());
    }

    /// A question forwarded by follower `from`.
    pub(super) fn answer_forwarded(&mut self, from: u64, forward_id: u64, question: LeaseQuestion) {
        let reply = if self.is_leader() && self.status.is_serving() {
            PeerMessage::LeaseAnswer {
                forward_id,
                ttl_seconds: self.answer_on_leader(question),
            }
        } else {
            PeerMessage::NotLeader { forward_id }
        };
        self.peers.send(from, reply.encode());
    }

    /// The leader's answer (or refusal) to a question this member forwarded.
    pub(super) fn settle_forwarded(&mut self, forward_id: u64, ttl_seconds: Option<i64>) {
        let Some((origin, id)) = self.lease_forwards.finish(forward_id) else {
            return;
        };
        let answer = match ttl_seconds {
            Some(ttl) => Answer::LeaseTtl { id, ttl },
            // The asking shard retries until its request deadline.
            None => Answer::Failed {
                id,
                error: ServerError::NotLeader,
            },
        };
        self.outgoing.push((origin, answer));
    }

    /// Forwarded questions not answered within an election timeout are refused so the asking
    /// shard retries (by then a new leader may be known).
    pub(super) fn give_up_overdue_forwards(&mut self) {
        let patience = self.lease_extension_on_lead;
        for (origin, id) in self.lease_forwards.take_overdue(Instant::now(), patience) {
            let error = ServerError::NotLeader;
            self.outgoing.push((origin, Answer::Failed { id, error }));
        }
    }

    /// Fails every forwarded question still pending with `error`.
    pub(super) fn fail_forwards(&mut self, error: fn() -> ServerError) {
        let askers = self.lease_forwards.take_all();
        self.fail_askers(askers, error);
    }

    /// Gives every lease this member's tracked deadline (or a full TTL) plus an election
    /// timeout; done when this member starts leading or starts serving.
    pub(super) fn promote_lease_clocks(&mut self) {
        let leases: Vec<(i64, i64)> = self
            .kv
            .lease_ids()
            .into_iter()
            .filter_map(|id| self.kv.lease(id).map(|lease| (id, lease.granted_ttl)))
            .collect();
        self.lessor.promote(
            leases.into_iter(),
            Instant::now(),
            self.lease_extension_on_lead,
        );
    }

    fn propose_owner_request(&mut self, request: internal_request::Request) -> bool {
        let internal = InternalRequest {
            id: 0,
            origin_shard: OWNER_ORIGIN,
            proposer_incarnation: self.incarnation,
            request: Some(request),
        };
        match self.node.propose(Vec::new(), internal.encode_to_vec()) {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, "could not propose a lease request of the leader");
                false
            }
        }
    }

    /// The leader revokes leases past their deadline through raft, a bounded number per tick.
    pub(super) fn propose_expired_revokes(&mut self) {
        if !self.is_leader() || !self.status.is_serving() {
            return;
        }
        for lease_id in self
            .lessor
            .take_expired(Instant::now(), REVOKES_PER_TICK_MAX)
        {
            let revoke =
                internal_request::Request::LeaseRevoke(LeaseRevokeRequest { id: lease_id });
            if self.propose_owner_request(revoke) {
                tracing::debug!(lease_id, "lease expired; revoke proposed");
            } else {
                self.lessor.on_revoked(lease_id);
            }
        }
    }

    /// Every checkpoint interval the leader proposes the remaining TTLs of the leases renewed
    /// since its last checkpoint.
    pub(super) fn propose_lease_checkpoint(&mut self) {
        if !self.is_leader() || !self.status.is_serving() {
            return;
        }
        let now = Instant::now();
        if now.duration_since(self.last_checkpoint_at) < self.lease_checkpoint_interval {
            return;
        }
        self.last_checkpoint_at = now;
        let leases: Vec<LeaseRemaining> = self
            .lessor
            .take_checkpoint(now, CHECKPOINT_LEASES_MAX)
            .into_iter()
            .map(|(id, remaining_ms)| LeaseRemaining { id, remaining_ms })
            .collect();
        if leases.is_empty() {
            return;
        }
        let checkpoint = internal_request::Request::LeaseCheckpoint(LeaseCheckpoint { leases });
        self.propose_owner_request(checkpoint);
    }

    /// An applied checkpoint moves a follower's copy of the clock; the leader's own clock is
    /// already exact (and the authority).
    pub(super) fn apply_lease_checkpoint(&mut self, checkpoint: &LeaseCheckpoint) {
        if self.is_leader() {
            return;
        }
        let now = Instant::now();
        for lease in &checkpoint.leases {
            self.lessor.on_checkpoint(lease.id, lease.remaining_ms, now);
        }
    }
}
