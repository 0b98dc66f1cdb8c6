//! The raft group's share of its shards' writes: proposing them, and answering "etcdserver:
//! request timed out, possibly due to previous leader failure" at once for those a past
//! leadership took and may have lost (see
//! [`crate::raft::proposal_tracker`]), instead of leaving their calls to the request timeout.
//!
//! The member's own publication (its name and client urls) is tracked the same way, under
//! [`PUBLICATION`]: when its leadership ends, or it has not applied within the request timeout,
//! it is proposed again rather than failed. A member that joins a cluster mid-election would
//! otherwise lose it (forwarded to a leader that has just stepped down) and stay "unstarted".

use super::RaftGroup;
use crate::raft::forwards::Asker;
use crate::raft::proposal_tracker::Leadership;
use crate::server::ServerError;
use crate::shard::message::Answer;
use crate::shard::ShardId;
use bytes::Bytes;
use std::time::Instant;

/// The tracker's key for the member's own publication: no shard has this index.
const PUBLICATION: Asker = (ShardId::MAX, 0);

impl RaftGroup {
    /// A write from shard `origin`: handed to raft (forwarded to the leader on a follower),
    /// and remembered with the leadership it was made under.
    pub(super) fn propose_for_shard(&mut self, origin: ShardId, id: u64, data: Bytes) {
        if let Err(error) = self.node.propose(Vec::new(), data.to_vec()) {
            tracing::debug!(%error, "proposal dropped");
            crate::metrics::count(crate::metrics::Counter::ProposalsFailed, 1);
            let error = if self.node.raft.leader_id == raft::INVALID_ID {
                ServerError::NoLeader
            } else {
                ServerError::Stopped
            };
            self.outgoing.push((origin, Answer::Failed { id, error }));
            return;
        }
        self.track((origin, id));
    }

    fn track(&mut self, asker: Asker) {
        let made_under = self.leadership();
        if !self.proposals.record(asker, made_under, Instant::now()) {
            tracing::debug!("proposal tracker full: this proposal waits for the request timeout");
        }
    }

    fn leadership(&self) -> Leadership {
        Leadership {
            leader_id: self.node.raft.leader_id,
            term: self.node.raft.term,
        }
    }

    /// The member's publication was just handed to raft.
    pub(super) fn track_publication(&mut self) {
        self.track(PUBLICATION);
    }

    /// The member's publication applied.
    pub(super) fn settle_publication(&mut self) {
        self.proposals.settle(PUBLICATION);
    }

    /// Takes the publication out of `askers`; if it was there, it is proposed again at the
    /// next tick.
    fn repropose_publication_among(&mut self, askers: &mut Vec<Asker>) {
        let before = askers.len();
        askers.retain(|asker| *asker != PUBLICATION);
        if askers.len() != before {
            self.publication_proposed_at = None;
        }
    }

    /// Answers every proposal made under a leadership that has ended with etcd's error for an
    /// unknown outcome: the proposal may still apply.
    /// Runs after the turn's messages and tick were handed to raft (which is where leadership
    /// changes), before the Ready cycle flushes the answers.
    pub(super) fn fail_proposals_of_past_leaderships(&mut self) {
        let current = self.leadership();
        let mut ended = self.proposals.on_leadership(current);
        if ended.is_empty() {
            return;
        }
        self.repropose_publication_among(&mut ended);
        if ended.is_empty() {
            return;
        }
        tracing::info!(
            proposals = ended.len(),
            leader = format!("{:x}", current.leader_id),
            term = current.term,
            "leadership ended: proposals made under it answered 'possibly due to previous leader \
             failure' (they may still apply)"
        );
        crate::metrics::count(crate::metrics::Counter::ProposalsFailed, ended.len() as u64);
        self.fail_askers(ended, || ServerError::TimedOutDueToLeaderFail);
    }

    /// Every answer about to go out settles its proposal, if it was one.
    pub(super) fn settle_answered_proposals(&mut self) {
        if self.proposals.is_empty() {
            return;
        }
        for (origin, answer) in &self.outgoing {
            self.proposals.settle((*origin, answer.id()));
        }
    }

    /// Forgets proposals whose calls have timed out on their shards (lost without a leader
    /// change, e.g. a dropped message): keeps the tracker's memory bounded.
    pub(super) fn forget_overdue_proposals(&mut self) {
        let mut forgotten = self.proposals.forget_overdue(Instant::now());
        self.repropose_publication_among(&mut forgotten);
        if !forgotten.is_empty() {
            crate::metrics::count(
                crate::metrics::Counter::ProposalsFailed,
                forgotten.len() as u64,
            );
            tracing::debug!(
                forgotten = forgotten.len(),
                "proposals past the request timeout forgotten"
            );
        }
    }

    /// The group stops: every proposal still waiting fails with `error`.
    pub(super) fn fail_all_proposals(&mut self, error: fn() -> ServerError) {
        let mut waiting = self.proposals.take_all();
        waiting.retain(|asker| *asker != PUBLICATION);
        self.fail_askers(waiting, error);
    }
}
