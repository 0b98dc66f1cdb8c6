//! The raft group's loop on its owner shard.
//!
//! One turn of the loop:
//! 1. wait for a proposal or read-index request from any shard, or for the next tick;
//! 2. drain whatever else has arrived (up to `MESSAGES_PER_TURN_MAX`) and hand it to raft-rs —
//!    this is the batch;
//! 3. run the Ready cycle in raft-rs's order: apply already-committed entries, append new
//!    entries and hard state to the WAL, ONE `fdatasync` for the whole batch, `advance`, apply
//!    what the advance committed, `advance_apply`;
//! 4. publish the new MVCC read view, then answer every shard (a client that reads after its
//!    write was acknowledged sees it on any shard), then release read-index waiters whose index
//!    has been applied.
//!
//! Any WAL error stops the group for good: a failed `fdatasync` is never retried.

mod checkpoint;
mod election_clock;
mod leases;
mod membership;
mod metrics_hooks;
mod proposals;
mod snapshots;

use super::forwards::{Asker, Forwards};
use super::log_store::{LogStore, LogStoreError};
use super::peer_message::PeerMessage;
use super::proposal_tracker::ProposalTracker;
use super::status::{RaftStatus, StatusSnapshot};
use super::storage::GroupStorage;
use crate::durable::{DurableHandle, LoadedState, PendingCheckpoint};
use crate::lease::Lessor;
use crate::membership::change::ChangeRules;
use crate::membership::MemberList;
use crate::mvcc::{KvStore, WriteRequest};
use crate::server::ServerError;
use crate::shard::message::{Answer, ToOwner, ToShard, WriteOutcome};
use crate::shard::{ShardId, Shutdown};
use crate::watch::EventBatch;
use arc_swap::ArcSwap;
use capstan_proto::capstanpb::{internal_request, InternalRequest, MemberPublish};
use capstan_proto::mvccpb::Event;
use futures::FutureExt;
use glommio::channels::local_channel::{LocalReceiver, LocalSender};
use leases::LeaseQuestion;
use membership::MembershipAsker;
use prost::Message;
use raft::eraftpb::{Entry, EntryType, Message as RaftMessage};
use raft::{RawNode, StateRole};
use snapshots::Snapshots;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a starting member looks whether enough peers are connected to advance its
/// election clock (see `election_clock`).
const START_CLOCK_POLL: Duration = Duration::from_millis(10);
/// Messages taken from the inbox in one turn (one raft batch, one fdatasync).
pub const MESSAGES_PER_TURN_MAX: usize = 4_096;
/// Largest raft message raft-rs may build (only matters once there are peers).
pub const RAFT_MESSAGE_BYTES_MAX: u64 = 1024 * 1024;
/// `origin_shard` of proposals the owner makes itself (lease revokes on expiry): nobody waits.
pub const OWNER_ORIGIN: u64 = u64::MAX;
/// Entries applied after proposing our publication before it is proposed again.
const PUBLICATION_RETRY_ENTRIES: u64 = 1_000;
/// Committed entries handed out per Ready, bounding the work of one turn during replay.
pub const COMMITTED_BYTES_PER_READY_MAX: u64 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RaftGroupError {
    #[error(transparent)]
    LogStore(#[from] LogStoreError),
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    #[error("committed entry {index} does not decode: {reason}")]
    UndecodableEntry { index: u64, reason: String },
    #[error("the member has been permanently removed from the cluster")]
    Removed,
    #[error("raft snapshot: {0}")]
    Snapshot(String),
    /// The leader says this member acknowledged entries its log no longer has: the data
    /// directory was wiped or replaced, and the member still runs under its old id.
    #[error(
        "member {member:x} lost its raft log: the leader {leader:x} (term {term}) says it had \
         acknowledged entries up to index {acknowledged}, but its log ends at index \
         {last_index}; its data directory was removed or replaced. Remove the member \
         (etcdctl member remove {member:x}) and add it again with an empty data directory"
    )]
    LogLost {
        member: u64,
        leader: u64,
        term: u64,
        acknowledged: u64,
        last_index: u64,
    },
}

/// Where the group's outgoing raft messages go (the peer transport; nowhere on one member).
pub trait RaftMessageSink {
    /// Queues one encoded peer message for member `to`; must never block.
    fn send(&self, to: u64, message: bytes::Bytes);
    /// A member joined (or moved): messages for it go to its peer `url` from now on (over TLS
    /// when it is `https://`).
    fn add_peer(&self, id: u64, url: &crate::config::ClientUrl);
    /// A member left.
    fn remove_peer(&self, id: u64);
    /// Bytes waiting in `to`'s queue; `None` when `to` is not a known peer.
    fn queued_bytes(&self, to: u64) -> Option<usize>;
    /// Whether other members can be reached at all (false: a lone member without a peer
    /// listener, which must not add members).
    fn reaches_peers(&self) -> bool {
        true
    }
    /// Members this one has an established connection to right now (none where unknown).
    fn connected_peers(&self) -> Vec<u64> {
        Vec::new()
    }
}

/// Reads that asked for a read index, by the raft context they were issued with.
struct ReadBatch {
    waiters: Vec<(ShardId, u64)>,
    issued_at: Instant,
}

pub struct RaftGroup {
    node: RawNode<GroupStorage>,
    log: LogStore,
    kv: KvStore,
    incarnation: u64,
    read_view: Arc<ArcSwap<KvStore>>,
    status: Arc<RaftStatus>,
    replies: Vec<LocalSender<ToShard>>,
    inbox: LocalReceiver<ToOwner>,
    unissued_reads: Vec<(ShardId, u64)>,
    issued_reads: HashMap<u64, ReadBatch>,
    reads_waiting_for_apply: Vec<(u64, Vec<(ShardId, u64)>)>,
    read_batch_sequence: u64,
    outgoing: Vec<(ShardId, Answer)>,
    /// Events applied this turn, in revision order, for every shard's watch hub.
    turn_events: Vec<Event>,
    /// Entries were applied since the read view was last published.
    applied_since_publish: bool,
    tick_interval: Duration,
    lessor: Lessor,
    members: MemberList,
    shared_members: Arc<ArcSwap<MemberList>>,
    own_publication: MemberPublish,
    /// Raft index at which our publication was last proposed (not re-proposed before it applies).
    publication_proposed_at: Option<u64>,
    /// Role seen at the end of the previous turn, to notice becoming leader.
    last_role: StateRole,
    /// etcd's raft log lines for role and leader changes.
    role_log: super::role_log::RoleLog,
    peers: Box<dyn RaftMessageSink>,
    /// Leases get this much extra life when this member starts leading (etcd extends them by an
    /// election timeout on promotion).
    lease_extension_on_lead: Duration,
    /// Lease questions this follower forwarded to the leader.
    lease_forwards: Forwards,
    lease_checkpoint_interval: Duration,
    last_checkpoint_at: Instant,
    /// Membership changes this follower forwarded to the leader.
    membership_forwards: Forwards,
    /// Membership changes this leader proposed, by proposal key, with who waits for them.
    pending_membership: HashMap<u64, MembershipAsker>,
    next_proposal_key: u64,
    change_rules: ChangeRules,
    /// This member applied its own removal (or was told of it): it stops.
    removed_from_cluster: bool,
    /// Set when a peer's message shows this member cannot go on (its log was lost).
    refusal: Option<RaftGroupError>,
    /// MoveLeader calls waiting for their target to lead: (asker, target, deadline).
    leader_moves: Vec<(Asker, u64, Instant)>,
    /// Members removed from the cluster, told so whenever they still send us something, and
    /// forgotten by the transport once their deadline passes.
    removed_members: HashMap<u64, Instant>,
    snapshots: Snapshots,
    /// A snapshot replaced the store: watchers re-read history from this revision.
    resync_watchers_from: Option<i64>,
    /// The shards' proposals not yet answered, with the leadership each was made under.
    proposals: ProposalTracker,
    /// The page store's writer thread.
    durable: DurableHandle,
    /// Changes applied since the last checkpoint handed to `durable`.
    checkpoint: PendingCheckpoint,
    /// Heartbeat and round-trip times per peer, for `/metrics`.
    peer_timing: metrics_hooks::PeerTiming,
}

/// What the group needs from start-up.
pub struct RaftGroupParts {
    pub member_id: u64,
    pub election_ticks: usize,
    pub tick_interval: Duration,
    pub election_timeout: Duration,
    /// The member list every shard reads; updated when publications apply.
    pub members: Arc<ArcSwap<MemberList>>,
    /// What this member publishes about itself once it serves.
    pub own_publication: MemberPublish,
    pub incarnation: u64,
    pub log: LogStore,
    pub read_view: Arc<ArcSwap<KvStore>>,
    pub status: Arc<RaftStatus>,
    pub replies: Vec<LocalSender<ToShard>>,
    pub inbox: LocalReceiver<ToOwner>,
    pub peers: Box<dyn RaftMessageSink>,
    pub change_rules: ChangeRules,
    /// `--snapshot-count`.
    pub snapshot_count: u64,
    pub durable: DurableHandle,
    /// The state the page store held at start-up.
    pub loaded: Option<LoadedState>,
}

fn to_write_request(request: internal_request::Request) -> WriteRequest {
    match request {
        internal_request::Request::Put(put) => WriteRequest::Put(put),
        internal_request::Request::DeleteRange(delete) => WriteRequest::DeleteRange(delete),
        internal_request::Request::Txn(txn) => WriteRequest::Txn(txn),
        internal_request::Request::Compaction(compaction) => WriteRequest::Compaction(compaction),
        internal_request::Request::LeaseGrant(grant) => WriteRequest::LeaseGrant(grant),
        internal_request::Request::LeaseRevoke(revoke) => WriteRequest::LeaseRevoke(revoke),
        internal_request::Request::Alarm(alarm) => WriteRequest::Alarm(alarm),
        internal_request::Request::MemberPublish(_)
        | internal_request::Request::LeaseCheckpoint(_)
        | internal_request::Request::MemberUpdate(_) => {
            unreachable!("publications and checkpoints are applied by the raft group itself")
        }
    }
}

impl RaftGroup {
    pub fn new(mut parts: RaftGroupParts) -> Result<RaftGroup, RaftGroupError> {
        // Start from the page store unless the newest snapshot file is newer.
        let snapshot_index = parts.log.storage().snapshot_index();
        let loaded = parts
            .loaded
            .take()
            .filter(|loaded| loaded.applied_index >= snapshot_index);
        if let Some(loaded) = &loaded {
            parts.log.settle_applied(loaded.applied_index)?;
        }
        let config = raft::Config {
            id: parts.member_id,
            election_tick: parts.election_ticks,
            heartbeat_tick: 1,
            applied: loaded.as_ref().map_or(0, |loaded| loaded.applied_index),
            max_size_per_msg: RAFT_MESSAGE_BYTES_MAX,
            max_inflight_msgs: 256,
            max_committed_size_per_ready: COMMITTED_BYTES_PER_READY_MAX,
            check_quorum: true,
            pre_vote: true,
            ..raft::Config::default()
        };
        config.validate()?;
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let node = RawNode::new(&config, parts.log.storage().clone(), &logger)?;
        let snapshots = Snapshots::new(parts.snapshot_count, parts.log.storage().snapshot_index());
        let mut group = RaftGroup {
            node,
            log: parts.log,
            kv: KvStore::new(),
            incarnation: parts.incarnation,
            read_view: parts.read_view,
            status: parts.status,
            replies: parts.replies,
            inbox: parts.inbox,
            unissued_reads: Vec::new(),
            issued_reads: HashMap::new(),
            reads_waiting_for_apply: Vec::new(),
            read_batch_sequence: 0,
            outgoing: Vec::new(),
            turn_events: Vec::new(),
            applied_since_publish: false,
            tick_interval: parts.tick_interval,
            lessor: Lessor::default(),
            members: parts.members.load().as_ref().clone(),
            shared_members: parts.members,
            own_publication: parts.own_publication,
            publication_proposed_at: None,
            last_role: StateRole::Follower,
            role_log: super::role_log::RoleLog::default(),
            peers: parts.peers,
            lease_extension_on_lead: parts.election_timeout,
            lease_forwards: Forwards::default(),
            lease_checkpoint_interval: parts.election_timeout / 2,
            last_checkpoint_at: Instant::now(),
            membership_forwards: Forwards::default(),
            pending_membership: HashMap::new(),
            // Keys only need to differ from those of earlier incarnations still in the log.
            next_proposal_key: parts.incarnation,
            change_rules: parts.change_rules,
            removed_from_cluster: false,
            refusal: None,
            removed_members: HashMap::new(),
            leader_moves: Vec::new(),
            snapshots,
            resync_watchers_from: None,
            proposals: ProposalTracker::new(
                crate::config::request_timeout_for(parts.election_timeout),
                Instant::now(),
            ),
            durable: parts.durable,
            checkpoint: PendingCheckpoint {
                // The first checkpoint always writes the state.
                state_changed: true,
                ..PendingCheckpoint::default()
            },
            peer_timing: metrics_hooks::PeerTiming::default(),
        };
        match loaded {
            Some(loaded) => group.adopt_loaded(loaded),
            None => {
                group.restore_from_snapshot_file()?;
                group.rebuild_page_store_from_snapshot(snapshot_index);
            }
        }
        Ok(group)
    }

    /// Runs until shutdown or a fatal error. Replays the log before serving.
    pub async fn run(mut self, shutdown: Shutdown) -> Result<(), RaftGroupError> {
        if self.is_sole_voter() {
            self.node.campaign()?;
        }
        let mut start_clock = election_clock::ElectionClock::Waiting;
        let mut next_tick = Instant::now() + self.tick_interval;
        let result = loop {
            if shutdown.is_triggered() {
                break Ok(());
            }
            // Work raft already has (a start-up campaign) is done now, not after a tick.
            let wait = if self.node.has_ready() {
                Duration::ZERO
            } else if start_clock == election_clock::ElectionClock::Waiting {
                // Nothing wakes this loop when a peer connects: look again soon.
                next_tick
                    .saturating_duration_since(Instant::now())
                    .min(START_CLOCK_POLL)
            } else {
                next_tick.saturating_duration_since(Instant::now())
            };
            let first = futures_lite::future::or(async { Some(self.inbox.recv().await) }, async {
                glommio::timer::sleep(wait).await;
                None
            })
            .await;
            if let Some(Some(message)) = first {
                self.accept(message);
                for _ in 1..MESSAGES_PER_TURN_MAX {
                    match self.inbox.recv().now_or_never() {
                        Some(Some(message)) => self.accept(message),
                        _ => break,
                    }
                }
            }
            // Looked at on every turn, not only on ticks, so that the advance comes as soon as
            // the peers are connected (the loop turns only on messages and ticks).
            if start_clock == election_clock::ElectionClock::Waiting {
                start_clock = self.advance_election_clock();
            }
            if Instant::now() >= next_tick {
                self.node.tick();
                self.publish_self_if_needed();
                self.propose_expired_revokes();
                self.propose_lease_checkpoint();
                self.give_up_overdue_forwards();
                self.give_up_overdue_membership_forwards();
                self.forget_removed_members();
                self.settle_leader_moves();
                self.forget_overdue_proposals();
                next_tick = Instant::now() + self.tick_interval;
            }
            if let Some(refusal) = self.refusal.take() {
                break Err(refusal);
            }
            self.issue_reads();
            self.fail_proposals_of_past_leaderships();
            if let Err(error) = self.process_ready().await {
                break Err(error);
            }
            self.publish_metrics();
            if let Err(error) = self.snapshot_turn().await {
                break Err(error);
            }
            self.mark_serving_once_caught_up();
            self.on_role_change();
            if self.removed_from_cluster {
                shutdown.trigger();
                break Err(RaftGroupError::Removed);
            }
        };
        if let Err(error) = &result {
            tracing::error!(%error, "raft group stopped");
            self.status.set_failed();
        }
        self.fail_everything_waiting();
        result
    }

    /// Snapshot upkeep after each Ready: finish a written one, start the next when due, and
    /// stream chunks to followers.
    async fn snapshot_turn(&mut self) -> Result<(), RaftGroupError> {
        self.finish_snapshot().await?;
        self.maybe_start_snapshot()?;
        self.pump_snapshots();
        Ok(())
    }

    /// etcd's initial election tick advance (see `election_clock`): once this member, knowing
    /// no leader, is connected to enough peers for an election to succeed, its first election
    /// comes within one election timeout instead of after one to two.
    fn advance_election_clock(&mut self) -> election_clock::ElectionClock {
        let raft = &self.node.raft;
        if raft.leader_id != raft::INVALID_ID
            || raft.state != StateRole::Follower
            || !raft.promotable()
        {
            return election_clock::ElectionClock::Settled;
        }
        let conf = raft.prs().conf().to_conf_state();
        let connected = self.peers.connected_peers();
        if !election_clock::quorum_reachable(
            &conf.voters,
            &conf.voters_outgoing,
            raft.id,
            &connected,
        ) {
            return election_clock::ElectionClock::Waiting;
        }
        let election_ticks = raft.election_timeout();
        let timeout_ticks = raft.randomized_election_timeout();
        let first = election_clock::first_in_line(&conf.voters, raft.id, &connected);
        let elapsed = election_clock::advanced_election_elapsed(
            raft.election_elapsed,
            election_ticks,
            timeout_ticks,
            first,
        );
        assert!(
            elapsed < timeout_ticks,
            "advanced election clock {elapsed} reaches the drawn timeout {timeout_ticks}"
        );
        self.node.raft.election_elapsed = elapsed;
        tracing::info!(
            connected_peers = connected.len(),
            election_ticks,
            ticks_to_election = timeout_ticks - elapsed,
            first_in_line = first,
            "peers connected and no leader known: election clock advanced"
        );
        election_clock::ElectionClock::Settled
    }

    fn is_sole_voter(&self) -> bool {
        let conf = self.node.raft.prs().conf();
        let voters: Vec<u64> = conf.voters().ids().iter().collect();
        voters == [self.node.raft.id]
    }

    fn accept(&mut self, message: ToOwner) {
        match message {
            ToOwner::Propose { origin, id, data } => self.propose_for_shard(origin, id, data),
            ToOwner::ReadIndex { origin, id } => self.unissued_reads.push((origin, id)),
            ToOwner::Peer { from, data } => self.on_peer_message(from, data),
            ToOwner::LeaseKeepAlive {
                origin,
                id,
                lease_id,
            } => self.ask_lease((origin, id), LeaseQuestion::KeepAlive { lease_id }),
            ToOwner::LeaseTimeToLive {
                origin,
                id,
                lease_id,
            } => self.ask_lease((origin, id), LeaseQuestion::TimeToLive { lease_id }),
            ToOwner::Membership {
                origin,
                id,
                request,
            } => self.request_membership((origin, id), request),
            ToOwner::MoveLeader { origin, id, target } => {
                self.start_leader_move((origin, id), target)
            }
        }
    }

    fn on_peer_message(&mut self, from: u64, data: bytes::Bytes) {
        let message = match PeerMessage::decode(data) {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(from = format!("{from:x}"), %error, "undecodable peer message dropped");
                return;
            }
        };
        if self.removed_members.contains_key(&from) {
            self.peers.send(from, PeerMessage::Removed.encode());
            return;
        }
        match message {
            PeerMessage::Removed => self.on_removed_notice(from),
            PeerMessage::Raft(data) => self.step_peer_message(from, &data),
            PeerMessage::LeaseKeepAlive {
                forward_id,
                lease_id,
            } => self.answer_forwarded(from, forward_id, LeaseQuestion::KeepAlive { lease_id }),
            PeerMessage::LeaseTimeToLive {
                forward_id,
                lease_id,
            } => self.answer_forwarded(from, forward_id, LeaseQuestion::TimeToLive { lease_id }),
            PeerMessage::LeaseAnswer {
                forward_id,
                ttl_seconds,
            } => self.settle_forwarded(forward_id, Some(ttl_seconds)),
            PeerMessage::NotLeader { forward_id } => self.settle_forwarded(forward_id, None),
            PeerMessage::Membership {
                forward_id,
                request,
            } => self.on_forwarded_membership(from, forward_id, request),
            PeerMessage::MembershipAnswer { forward_id, answer } => {
                self.on_membership_answer(forward_id, answer)
            }
            PeerMessage::SnapshotChunk {
                offset,
                total,
                data,
            } => self.on_snapshot_chunk(from, offset, total, &data),
        }
    }

    fn step_peer_message(&mut self, from: u64, data: &[u8]) {
        let message = match <RaftMessage as protobuf::Message>::parse_from_bytes(data) {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(from = format!("{from:x}"), %error, "undecodable raft message dropped");
                return;
            }
        };
        if message.from != from {
            tracing::warn!(
                from = format!("{from:x}"),
                claimed = format!("{:x}", message.from),
                "raft message from the wrong member dropped"
            );
            return;
        }
        if let Some(refusal) = self.lost_log_refusal(&message) {
            self.refusal = Some(refusal);
            return;
        }
        self.peer_timing.on_receive(&message);
        let snapshot = message.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot;
        if snapshot && !self.check_received_snapshot(from, &message) {
            return;
        }
        if let Err(error) = self.node.step(message) {
            tracing::debug!(%error, "raft step refused a message");
        }
        if snapshot {
            self.forget_received_snapshot_unless_pending();
        }
    }

    /// A leader's heartbeat carries the commit index up to what this member acknowledged;
    /// raft-rs cannot take one beyond the member's log (it panics). That only happens when the
    /// member lost entries it had acknowledged: it must stop, with a clear reason.
    fn lost_log_refusal(&self, message: &RaftMessage) -> Option<RaftGroupError> {
        let raft = &self.node.raft;
        let last_index = raft.raft_log.last_index();
        let heartbeat = message.get_msg_type() == raft::eraftpb::MessageType::MsgHeartbeat;
        if !heartbeat || message.term < raft.term || message.commit <= last_index {
            return None;
        }
        Some(RaftGroupError::LogLost {
            member: raft.id,
            leader: message.from,
            term: message.term,
            acknowledged: message.commit,
            last_index,
        })
    }

    fn send_messages(&mut self, messages: Vec<RaftMessage>) {
        for message in messages {
            if message.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot {
                self.queue_snapshot(&message);
                continue;
            }
            self.peer_timing.on_send(&message, self.tick_interval);
            match PeerMessage::encode_raft(&message) {
                Ok(bytes) => self.peers.send(message.to, bytes),
                Err(error) => tracing::error!(%error, "raft message does not encode"),
            }
        }
    }

    /// Notices leadership changes: a new leader takes over the lease clock (and answers the
    /// lease questions it had forwarded itself); a former leader stops expiring leases.
    fn on_role_change(&mut self) {
        let raft = &self.node.raft;
        self.role_log
            .observe(raft.id, raft.term, raft.state, raft.leader_id);
        let role = self.node.raft.state;
        if role == self.last_role {
            return;
        }
        tracing::info!(
            term = self.node.raft.term,
            leader = format!("{:x}", self.node.raft.leader_id),
            role = ?role,
            "raft role changed"
        );
        if role == StateRole::Leader {
            if self.status.is_serving() {
                self.promote_lease_clocks();
            }
            // Asked again, they are answered here.
            self.fail_forwards(|| ServerError::NotLeader);
            self.fail_membership_forwards(|| ServerError::TimedOutDueToLeaderFail);
        } else if self.last_role == StateRole::Leader {
            self.lessor.demote();
            self.fail_pending_membership(|| ServerError::TimedOutDueToLeaderFail);
        }
        self.last_role = role;
    }

    /// One read index serves every read that arrived before it was issued.
    ///
    /// raft-rs drops a read index it cannot serve (no leader known, a new leader that has not
    /// committed in its term, a leader change in flight) without answering, so batches not
    /// answered within half an election timeout are issued again.
    fn issue_reads(&mut self) {
        let now = Instant::now();
        let retry_after = self.lease_extension_on_lead / 2;
        let stale: Vec<u64> = self
            .issued_reads
            .iter()
            .filter(|(_, batch)| now.duration_since(batch.issued_at) >= retry_after)
            .map(|(context, _)| *context)
            .collect();
        for context in stale {
            if let Some(batch) = self.issued_reads.remove(&context) {
                self.unissued_reads.extend(batch.waiters);
            }
        }
        if self.unissued_reads.is_empty() || self.node.raft.leader_id == raft::INVALID_ID {
            return;
        }
        self.read_batch_sequence += 1;
        let context = self.read_batch_sequence;
        let waiters = std::mem::take(&mut self.unissued_reads);
        self.issued_reads.insert(
            context,
            ReadBatch {
                waiters,
                issued_at: now,
            },
        );
        self.node.read_index(self.read_context(context));
    }

    /// A read-index context unique across members: the leader merges requests with equal
    /// contexts, so a bare sequence number would let one follower's read answer another's.
    fn read_context(&self, sequence: u64) -> Vec<u8> {
        let mut context = self.node.raft.id.to_be_bytes().to_vec();
        context.extend_from_slice(&sequence.to_be_bytes());
        context
    }

    async fn process_ready(&mut self) -> Result<(), RaftGroupError> {
        if !self.node.has_ready() {
            self.flush_answers();
            return Ok(());
        }
        let mut ready = self.node.ready();
        // A leader may send before persisting (raft thesis 10.2.1); followers' messages wait.
        self.send_messages(ready.take_messages());
        if !ready.snapshot().is_empty() {
            self.install_snapshot(ready.snapshot().clone())?;
        }
        self.apply_timed(ready.take_committed_entries())?;
        if !ready.entries().is_empty() {
            self.log.append_entries(ready.entries())?;
        }
        if let Some(hard_state) = ready.hs() {
            self.log.set_hard_state(hard_state.clone())?;
        }
        for read_state in ready.take_read_states() {
            let ctx = read_state.request_ctx.as_slice();
            let ours = ctx.len() == 16 && ctx[..8] == self.node.raft.id.to_be_bytes();
            let sequence = ctx
                .get(8..)
                .and_then(|bytes| bytes.try_into().ok())
                .map(u64::from_be_bytes);
            let batch = match sequence {
                Some(sequence) if ours => self.issued_reads.remove(&sequence),
                _ => None,
            };
            if let Some(batch) = batch {
                self.reads_waiting_for_apply
                    .push((read_state.index, batch.waiters));
            }
        }
        if self.log.has_unsynced() {
            self.log.sync().await?;
        }
        self.send_messages(ready.take_persisted_messages());
        let mut light = self.node.advance(ready);
        self.send_messages(light.take_messages());
        if let Some(commit_index) = light.commit_index() {
            self.log.set_commit(commit_index)?;
        }
        self.apply_timed(light.take_committed_entries())?;
        self.node.advance_apply();
        self.send_checkpoint();
        self.flush_answers();
        Ok(())
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<(), RaftGroupError> {
        for entry in entries {
            match entry.get_entry_type() {
                EntryType::EntryConfChange => {
                    self.checkpoint.state_changed = true;
                    self.apply_conf_change_entry(&entry)?;
                    continue;
                }
                EntryType::EntryConfChangeV2 => {
                    tracing::warn!(index = entry.index, "conf change v2 entry ignored");
                    continue;
                }
                EntryType::EntryNormal if entry.data.is_empty() => continue,
                EntryType::EntryNormal => {}
            }
            let internal = InternalRequest::decode(entry.data.as_ref()).map_err(|error| {
                RaftGroupError::UndecodableEntry {
                    index: entry.index,
                    reason: error.to_string(),
                }
            })?;
            let Some(request) = internal.request else {
                continue;
            };
            let request = match request {
                internal_request::Request::Put(_)
                | internal_request::Request::DeleteRange(_)
                | internal_request::Request::Txn(_) => request,
                other => {
                    // Leases, alarms, members or the compaction revision may change.
                    self.checkpoint.state_changed = true;
                    other
                }
            };
            let request = match request {
                internal_request::Request::MemberPublish(publish) => {
                    self.apply_publication(&publish);
                    continue;
                }
                internal_request::Request::LeaseCheckpoint(checkpoint) => {
                    self.apply_lease_checkpoint(&checkpoint);
                    continue;
                }
                internal_request::Request::MemberUpdate(update) => {
                    self.apply_member_update(&update);
                    continue;
                }
                other => other,
            };
            let write = to_write_request(request);
            let apply_timer = crate::logging::slow::ApplyTimer::start();
            let applied = self.kv.apply(&write);
            apply_timer.finish(|| {
                use crate::logging::request_text;
                let response = applied.as_ref().map(|applied| &applied.response);
                (
                    request_text::request(&write),
                    request_text::response(response),
                )
            });
            self.track_leases(&write, applied.is_ok());
            let outcome = match applied {
                Ok(applied) => {
                    self.checkpoint.record(&applied);
                    self.turn_events.extend(applied.events);
                    Ok(WriteOutcome {
                        response: applied.response,
                        revision: self.kv.current_revision(),
                        raft_term: self.node.raft.term,
                    })
                }
                Err(error) => Err(error),
            };
            self.applied_since_publish = true;
            if internal.proposer_incarnation == self.incarnation
                && internal.origin_shard != OWNER_ORIGIN
            {
                let origin = internal.origin_shard as ShardId;
                self.outgoing.push((
                    origin,
                    Answer::Applied {
                        id: internal.id,
                        outcome,
                    },
                ));
            }
        }
        Ok(())
    }

    fn apply_publication(&mut self, publish: &MemberPublish) {
        let own_first_time = publish.member_id == self.own_publication.member_id
            && !self.members.is_published(publish);
        if self.members.apply_publish(publish) {
            if own_first_time {
                // etcd's line (etcdserver.publishV3), with the attributes as Go prints them.
                tracing::info!(
                    local_member_id = format!("{:x}", publish.member_id),
                    local_member_attributes = format!(
                        "{{Name:{} ClientURLs:[{}]}}",
                        publish.name,
                        publish.client_urls.join(" ")
                    ),
                    "published local member to cluster through raft"
                );
            }
            self.shared_members.store(Arc::new(self.members.clone()));
        } else {
            tracing::warn!(
                member = format!("{:x}", publish.member_id),
                "publication from an unknown member ignored"
            );
        }
        if publish.member_id == self.own_publication.member_id {
            self.publication_proposed_at = None;
            self.settle_publication();
        }
    }

    /// Once serving, a member proposes its own publication until it has applied.
    fn publish_self_if_needed(&mut self) {
        if !self.status.is_serving()
            || self.members.is_published(&self.own_publication)
            || self.node.raft.leader_id == raft::INVALID_ID
        {
            return;
        }
        let applied = self.node.raft.raft_log.applied;
        if let Some(proposed_at) = self.publication_proposed_at {
            // Re-propose only if it got lost (e.g. across a leader change).
            if applied < proposed_at + PUBLICATION_RETRY_ENTRIES {
                return;
            }
        }
        let internal = InternalRequest {
            id: 0,
            origin_shard: OWNER_ORIGIN,
            proposer_incarnation: self.incarnation,
            request: Some(internal_request::Request::MemberPublish(
                self.own_publication.clone(),
            )),
        };
        match self.node.propose(Vec::new(), internal.encode_to_vec()) {
            Ok(()) => {
                self.publication_proposed_at = Some(self.node.raft.raft_log.last_index());
                self.track_publication();
            }
            Err(error) => tracing::debug!(%error, "member publication not proposed yet"),
        }
    }

    /// Keeps the lease clock in step with applied grants and revokes.
    fn track_leases(&mut self, write: &WriteRequest, succeeded: bool) {
        match write {
            WriteRequest::LeaseGrant(grant) if succeeded => {
                self.lessor.on_granted(grant.id, grant.ttl, Instant::now())
            }
            // A failed revoke means the lease was already gone: forget it either way.
            WriteRequest::LeaseRevoke(revoke) => self.lessor.on_revoked(revoke.id),
            _ => {}
        }
    }

    /// Publishes the read view and status, hands the turn's events to every shard, then
    /// answers writes and ready reads.
    fn flush_answers(&mut self) {
        let applied_index = self.node.raft.raft_log.applied;
        if self.applied_since_publish {
            self.read_view.store(Arc::new(self.kv.clone()));
            self.applied_since_publish = false;
        }
        self.send_resync();
        if !self.turn_events.is_empty() {
            let batch = Arc::new(EventBatch::new(
                std::mem::take(&mut self.turn_events),
                self.kv.current_revision(),
            ));
            for sender in &self.replies {
                if sender.try_send(ToShard::Events(batch.clone())).is_err() {
                    tracing::warn!("a shard's queue is closed; events not delivered to it");
                }
            }
        }
        self.status.publish(StatusSnapshot {
            term: self.node.raft.term,
            leader_id: self.node.raft.leader_id,
            commit_index: self.node.raft.raft_log.committed,
            applied_index,
        });
        let mut still_waiting = Vec::new();
        for (index, waiters) in std::mem::take(&mut self.reads_waiting_for_apply) {
            if index <= applied_index {
                for (origin, id) in waiters {
                    self.outgoing.push((origin, Answer::ReadReady { id }));
                }
            } else {
                still_waiting.push((index, waiters));
            }
        }
        self.reads_waiting_for_apply = still_waiting;
        self.settle_answered_proposals();
        for (origin, answer) in self.outgoing.drain(..) {
            match self.replies.get(origin) {
                Some(sender) => {
                    if sender.try_send(ToShard::Answer(answer)).is_err() {
                        tracing::warn!(origin, "reply queue closed; answer dropped");
                    }
                }
                None => tracing::warn!(origin, "answer for an unknown shard dropped"),
            }
        }
    }

    /// Serving starts once this member is in the configuration, a leader is known and everything
    /// committed is applied (replay is over), up to an entry of the leader's term; a leader also
    /// waits until its own first entry is committed.
    ///
    /// The entry of the current term matters for a restarted follower: the new leader's first
    /// message may name it leader before telling it what is committed (a heartbeat carries no
    /// commit index the leader has not seen it store), and until then it would serve its own,
    /// possibly old, state. Every leader appends an entry of its term when elected, after
    /// everything committed before, so having applied one means having applied all of those
    /// (etcd's members likewise serve only once their own publication, proposed in the current
    /// term, has applied).
    fn mark_serving_once_caught_up(&mut self) {
        if self.status.is_serving() {
            return;
        }
        // A member that joined with an empty log has caught up only once it applied its own
        // addition (a snapshot or the conf change naming it): before that, a leader known from
        // a heartbeat says nothing about how much of the log it has.
        let conf_state = self.log.conf_state();
        let id = self.node.raft.id;
        let knows_itself = conf_state.voters.contains(&id) || conf_state.learners.contains(&id);
        let raft = &self.node.raft;
        let caught_up = knows_itself
            && raft.leader_id != raft::INVALID_ID
            && raft.raft_log.applied == raft.raft_log.committed
            && raft.raft_log.term(raft.raft_log.applied).ok() == Some(raft.term)
            && (raft.state != StateRole::Leader
                || raft.raft_log.committed == raft.raft_log.last_index());
        if !caught_up {
            return;
        }
        let (term, leader_id, applied_index) = (raft.term, raft.leader_id, raft.raft_log.applied);
        self.promote_lease_clocks();
        self.read_view.store(Arc::new(self.kv.clone()));
        self.status.set_serving();
        tracing::info!(
            term,
            leader = format!("{leader_id:x}"),
            applied_index,
            revision = self.kv.current_revision(),
            wal_bytes = self.log.wal_bytes(),
            "raft group caught up"
        );
    }

    /// Answers every one of `askers` with a failure.
    fn fail_askers(&mut self, askers: Vec<Asker>, error: fn() -> ServerError) {
        for (origin, id) in askers {
            let error = error();
            self.outgoing.push((origin, Answer::Failed { id, error }));
        }
    }

    fn fail_everything_waiting(&mut self) {
        let error = || ServerError::Stopped;
        self.fail_forwards(error);
        self.fail_pending_membership(error);
        self.fail_membership_forwards(error);
        self.fail_all_proposals(error);
        for ((origin, id), _, _) in std::mem::take(&mut self.leader_moves) {
            self.outgoing
                .push((origin, Answer::Failed { id, error: error() }));
        }
        let mut waiters: Vec<(ShardId, u64)> = std::mem::take(&mut self.unissued_reads);
        for (_, batch) in self.issued_reads.drain() {
            waiters.extend(batch.waiters);
        }
        for (_, batch) in std::mem::take(&mut self.reads_waiting_for_apply) {
            waiters.extend(batch);
        }
        for (origin, id) in waiters {
            self.outgoing
                .push((origin, Answer::Failed { id, error: error() }));
        }
        for (origin, answer) in self.outgoing.drain(..) {
            if let Some(sender) = self.replies.get(origin) {
                let _closed_is_fine = sender.try_send(ToShard::Answer(answer));
            }
        }
    }
}
