//! The raft group's share of membership: the leader validates Cluster-service writes (its own
//! shards' and those forwarded by followers), proposes them as conf changes (MemberUpdate as a
//! log entry), and answers once they apply; every member applies committed changes to raft's
//! configuration, its member list and the peer transport.

use super::{RaftGroup, RaftGroupError, OWNER_ORIGIN};
use crate::config::ClientUrl;
use crate::grpc::Status;
use crate::membership::change::{plan, Planned, Replication};
use crate::raft::forwards::Asker;
use crate::raft::peer_message::PeerMessage;
use crate::server::ServerError;
use crate::shard::message::Answer;
use bytes::Bytes;
use capstan_proto::capstanpb::{
    internal_request, ConfChangeContext, InternalRequest, MemberUpdate, MembershipAnswer,
    MembershipRequest,
};
use capstan_proto::etcdserverpb::Member;
use prost::Message;
use raft::eraftpb::{ConfChange, ConfChangeType, Entry};
use raft::StateRole;
use std::sync::Arc;
use std::time::Instant;

/// Election timeouts a forwarded membership change may wait for the leader's answer.
const FORWARD_PATIENCE_ELECTION_TIMEOUTS: u32 = 10;
/// Election timeouts the transport keeps a removed member, to tell it of its removal.
const REMOVED_PEER_LINGER_ELECTION_TIMEOUTS: u32 = 5;

/// Who waits for a membership change the leader proposed.
#[derive(Clone, Copy, Debug)]
pub enum MembershipAsker {
    /// A call on one of the leader's own shards.
    Local(Asker),
    /// A follower that forwarded the call.
    Remote { from: u64, forward_id: u64 },
}

fn refusal(error: ServerError) -> MembershipAnswer {
    let status: Status = error.into();
    MembershipAnswer {
        code: status.code as u32,
        message: status.message,
        ..MembershipAnswer::default()
    }
}

impl RaftGroup {
    /// A Cluster-service write from one of this member's shards.
    pub(super) fn request_membership(&mut self, asker: Asker, request: MembershipRequest) {
        if self.node.raft.state == StateRole::Leader {
            self.change_membership(MembershipAsker::Local(asker), request);
            return;
        }
        let leader = self.node.raft.leader_id;
        if leader == raft::INVALID_ID || leader == self.node.raft.id {
            let (origin, id) = asker;
            let error = ServerError::NoLeader;
            self.outgoing.push((origin, Answer::Failed { id, error }));
            return;
        }
        let forward_id = self.membership_forwards.start(asker, Instant::now());
        let request = Bytes::from(request.encode_to_vec());
        let message = PeerMessage::Membership {
            forward_id,
            request,
        };
        self.peers.send(leader, message.encode());
    }

    /// A change forwarded by follower `from`.
    pub(super) fn on_forwarded_membership(&mut self, from: u64, forward_id: u64, request: Bytes) {
        let asker = MembershipAsker::Remote { from, forward_id };
        match MembershipRequest::decode(request) {
            Ok(request) if self.node.raft.state == StateRole::Leader => {
                self.change_membership(asker, request)
            }
            Ok(_) => self.answer_membership(asker, refusal(ServerError::NotLeader)),
            Err(error) => {
                tracing::warn!(from = format!("{from:x}"), %error, "undecodable membership request");
                self.answer_membership(asker, refusal(ServerError::Stopped));
            }
        }
    }

    /// The leader's answer to a change this member forwarded.
    pub(super) fn on_membership_answer(&mut self, forward_id: u64, answer: Bytes) {
        let Some((origin, id)) = self.membership_forwards.finish(forward_id) else {
            return;
        };
        let answer = match MembershipAnswer::decode(answer) {
            Ok(answer) => Answer::Membership { id, answer },
            Err(error) => {
                tracing::warn!(%error, "undecodable membership answer");
                let error = ServerError::Stopped;
                Answer::Failed { id, error }
            }
        };
        self.outgoing.push((origin, answer));
    }

    fn answer_membership(&mut self, asker: MembershipAsker, answer: MembershipAnswer) {
        match asker {
            MembershipAsker::Local((origin, id)) => self
                .outgoing
                .push((origin, Answer::Membership { id, answer })),
            MembershipAsker::Remote { from, forward_id } => {
                let answer = Bytes::from(answer.encode_to_vec());
                let message = PeerMessage::MembershipAnswer { forward_id, answer };
                self.peers.send(from, message.encode());
            }
        }
    }

    /// What the leader's progress tracker says about replication.
    fn replication(&self) -> Replication {
        let own_id = self.node.raft.id;
        let progress = self.node.raft.prs();
        Replication {
            leader_id: own_id,
            matched: progress.iter().map(|(id, pr)| (*id, pr.matched)).collect(),
            active: progress
                .iter()
                .filter(|(id, pr)| pr.recent_active || **id == own_id)
                .map(|(id, _)| *id)
                .collect(),
        }
    }

    /// On the leader: validate, propose, and remember who waits.
    fn change_membership(&mut self, asker: MembershipAsker, request: MembershipRequest) {
        let Some(request) = request.request else {
            let error = ServerError::Remote {
                code: crate::grpc::Code::InvalidArgument as u32,
                message: "capstan: empty membership request".to_string(),
            };
            self.answer_membership(asker, refusal(error));
            return;
        };
        if self.node.raft.has_pending_conf() {
            // raft-rs would silently turn a second concurrent conf change into an empty entry;
            // etcd's caller would time out waiting for it.
            self.answer_membership(asker, refusal(ServerError::TimedOut));
            return;
        }
        let planned = match plan(
            &self.members,
            &self.change_rules,
            &self.replication(),
            &request,
        ) {
            Ok(planned) => planned,
            Err(error) => {
                self.answer_membership(asker, refusal(error.into()));
                return;
            }
        };
        if matches!(planned, Planned::Add(_)) && !self.peers.reaches_peers() {
            self.answer_membership(asker, refusal(ServerError::NoPeerListener));
            return;
        }
        self.next_proposal_key = self.next_proposal_key.wrapping_add(1);
        let key = self.next_proposal_key;
        let proposed = match planned {
            Planned::Add(member) => {
                let change_type = if member.is_learner {
                    ConfChangeType::AddLearnerNode
                } else {
                    ConfChangeType::AddNode
                };
                self.propose_conf_change(change_type, member, key)
            }
            Planned::Promote(member) => {
                self.propose_conf_change(ConfChangeType::AddNode, member, key)
            }
            Planned::Remove(id) => {
                let member = Member {
                    id,
                    ..Member::default()
                };
                self.propose_conf_change(ConfChangeType::RemoveNode, member, key)
            }
            Planned::Update { id, peer_urls } => {
                let internal = InternalRequest {
                    id: 0,
                    origin_shard: OWNER_ORIGIN,
                    proposer_incarnation: self.incarnation,
                    request: Some(internal_request::Request::MemberUpdate(MemberUpdate {
                        member_id: id,
                        peer_urls,
                        proposal_key: key,
                    })),
                };
                self.node.propose(Vec::new(), internal.encode_to_vec())
            }
        };
        match proposed {
            Ok(()) => {
                self.pending_membership.insert(key, asker);
            }
            Err(error) => {
                tracing::warn!(%error, "membership change not proposed");
                self.answer_membership(asker, refusal(ServerError::NoLeader));
            }
        }
    }

    fn propose_conf_change(
        &mut self,
        change_type: ConfChangeType,
        member: Member,
        proposal_key: u64,
    ) -> Result<(), raft::Error> {
        let mut change = ConfChange::default();
        change.set_change_type(change_type);
        change.node_id = member.id;
        let context = ConfChangeContext {
            member: Some(member),
            proposal_key,
        };
        change.context = context.encode_to_vec().into();
        self.node.propose_conf_change(Vec::new(), change)
    }

    /// Answers the caller of an applied change, if this member proposed it.
    fn settle_membership(&mut self, proposal_key: u64, member: Option<Member>) {
        let Some(asker) = self.pending_membership.remove(&proposal_key) else {
            return;
        };
        let answer = MembershipAnswer {
            code: 0,
            message: String::new(),
            member,
            members: self.members.members().to_vec(),
        };
        self.answer_membership(asker, answer);
    }

    /// This member stopped leading: its pending changes may or may not apply.
    pub(super) fn fail_pending_membership(&mut self, error: fn() -> ServerError) {
        let pending: Vec<MembershipAsker> = self
            .pending_membership
            .drain()
            .map(|(_, asker)| asker)
            .collect();
        for asker in pending {
            self.answer_membership(asker, refusal(error()));
        }
    }

    /// Fails every change this member forwarded and still waits for (it leads now, or stops).
    pub(super) fn fail_membership_forwards(&mut self, error: fn() -> ServerError) {
        let askers = self.membership_forwards.take_all();
        self.fail_askers(askers, error);
    }

    pub(super) fn give_up_overdue_membership_forwards(&mut self) {
        let patience = self.lease_extension_on_lead * FORWARD_PATIENCE_ELECTION_TIMEOUTS;
        for (origin, id) in self
            .membership_forwards
            .take_overdue(Instant::now(), patience)
        {
            let error = ServerError::TimedOut;
            self.outgoing.push((origin, Answer::Failed { id, error }));
        }
    }

    /// Tells the transport where a member listens (only when that is news to it).
    pub(super) fn connect_peer(&self, member: &Member, known_urls: Option<&[String]>) {
        if member.id == self.node.raft.id || known_urls == Some(member.peer_ur_ls.as_slice()) {
            return;
        }
        let url = member
            .peer_ur_ls
            .iter()
            .find_map(|url| ClientUrl::parse(url).ok());
        match url {
            Some(url) => self.peers.add_peer(member.id, &url),
            None => tracing::warn!(
                member = format!("{:x}", member.id),
                "member has no usable peer url"
            ),
        }
    }

    pub(super) fn publish_members(&mut self) {
        self.shared_members.store(Arc::new(self.members.clone()));
    }

    /// A committed conf change: raft's configuration, then the member list and the transport.
    pub(super) fn apply_conf_change_entry(&mut self, entry: &Entry) -> Result<(), RaftGroupError> {
        let undecodable = |reason: String| RaftGroupError::UndecodableEntry {
            index: entry.index,
            reason,
        };
        let change = <ConfChange as protobuf::Message>::parse_from_bytes(entry.data.as_ref())
            .map_err(|error| undecodable(error.to_string()))?;
        let context = if change.context.is_empty() {
            None
        } else {
            Some(
                ConfChangeContext::decode(change.context.as_ref())
                    .map_err(|error| undecodable(error.to_string()))?,
            )
        };
        let conf_state = self.node.apply_conf_change(&change)?;
        self.log.set_conf_state(conf_state)?;
        // Bootstrap entries carry no context: their members come from --initial-cluster.
        let Some(context) = context else {
            return Ok(());
        };
        let id = change.node_id;
        let mut settled_member = None;
        match change.get_change_type() {
            ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
                if let Some(mut member) = context.member {
                    member.id = id;
                    member.is_learner = change.get_change_type() == ConfChangeType::AddLearnerNode;
                    self.removed_members.remove(&id);
                    let known_urls = self.members.get(id).map(|known| known.peer_ur_ls.clone());
                    self.connect_peer(&member, known_urls.as_deref());
                    self.members.apply_add(member);
                    settled_member = self.members.get(id).cloned();
                    tracing::info!(
                        member = format!("{id:x}"),
                        learner = change.get_change_type() == ConfChangeType::AddLearnerNode,
                        "member added"
                    );
                }
            }
            ConfChangeType::RemoveNode => {
                settled_member = self.members.get(id).cloned();
                self.members.apply_remove(id);
                if id == self.node.raft.id {
                    tracing::error!("the member has been permanently removed from the cluster");
                    self.removed_from_cluster = true;
                } else {
                    // The leader stops replicating to it, so it may never apply its removal:
                    // tell it, and keep its connection a little while to tell it again.
                    self.peers.send(id, PeerMessage::Removed.encode());
                    let linger =
                        self.lease_extension_on_lead * REMOVED_PEER_LINGER_ELECTION_TIMEOUTS;
                    self.removed_members.insert(id, Instant::now() + linger);
                }
                tracing::info!(member = format!("{id:x}"), "member removed");
            }
        }
        self.publish_members();
        self.settle_membership(context.proposal_key, settled_member);
        Ok(())
    }

    /// A member of our cluster says this member was removed.
    pub(super) fn on_removed_notice(&mut self, from: u64) {
        if self.members.get(from).is_none() {
            tracing::warn!(
                from = format!("{from:x}"),
                "removal notice from a non-member ignored"
            );
            return;
        }
        tracing::error!(
            from = format!("{from:x}"),
            "the member has been permanently removed from the cluster"
        );
        self.removed_from_cluster = true;
    }

    /// The transport forgets removed members whose linger time is over.
    pub(super) fn forget_removed_members(&mut self) {
        let now = Instant::now();
        let expired: Vec<u64> = self
            .removed_members
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.removed_members.remove(&id);
            self.peers.remove_peer(id);
        }
    }

    /// A committed MemberUpdate: new peer urls for a member.
    pub(super) fn apply_member_update(&mut self, update: &MemberUpdate) {
        let known_urls = self
            .members
            .get(update.member_id)
            .map(|known| known.peer_ur_ls.clone());
        if self
            .members
            .apply_update(update.member_id, &update.peer_urls)
        {
            if let Some(member) = self.members.get(update.member_id).cloned() {
                self.connect_peer(&member, known_urls.as_deref());
            }
            self.publish_members();
        }
        let member = self.members.get(update.member_id).cloned();
        self.settle_membership(update.proposal_key, member);
    }
}

/// Election timeouts a leader move may take before the caller is told it timed out.
const LEADER_MOVE_ELECTION_TIMEOUTS: u32 = 2;

impl RaftGroup {
    /// Maintenance.MoveLeader: the leader asks raft to hand over to `target`.
    pub(super) fn start_leader_move(&mut self, asker: Asker, target: u64) {
        let (origin, id) = asker;
        if self.node.raft.state != StateRole::Leader {
            let error = ServerError::NotLeader;
            self.outgoing.push((origin, Answer::Failed { id, error }));
            return;
        }
        let is_voter = self
            .members
            .get(target)
            .is_some_and(|member| !member.is_learner);
        if !is_voter {
            let error = ServerError::BadLeaderTransferee;
            self.outgoing.push((origin, Answer::Failed { id, error }));
            return;
        }
        if target == self.node.raft.id {
            self.outgoing.push((origin, Answer::Done { id }));
            return;
        }
        tracing::info!(target = format!("{target:x}"), "moving leadership");
        self.node.transfer_leader(target);
        let patience = self.lease_extension_on_lead * LEADER_MOVE_ELECTION_TIMEOUTS;
        self.leader_moves
            .push((asker, target, Instant::now() + patience));
    }

    /// Answers leader moves whose target leads now, or that ran out of time.
    pub(super) fn settle_leader_moves(&mut self) {
        let now = Instant::now();
        let leader = self.node.raft.leader_id;
        let mut waiting = Vec::new();
        for ((origin, id), target, deadline) in std::mem::take(&mut self.leader_moves) {
            if leader == target {
                self.outgoing.push((origin, Answer::Done { id }));
            } else if now >= deadline {
                let error = ServerError::TimedOut;
                self.outgoing.push((origin, Answer::Failed { id, error }));
            } else {
                waiting.push(((origin, id), target, deadline));
            }
        }
        self.leader_moves = waiting;
    }
}
