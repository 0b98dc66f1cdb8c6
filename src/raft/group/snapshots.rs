//! Raft snapshots in the group: taking them every `--snapshot-count` applied entries (then
//! compacting the log), streaming them in chunks to followers behind the compacted log, and
//! installing one received from the leader.
//!
//! Taking a snapshot clones the store (O(1), structure is shared) and encodes it and writes the
//! file on a helper thread, so the group keeps applying meanwhile; the log is compacted once
//! the file is durable. Installing a received snapshot writes its file on the group's shard
//! before anything that depends on it is logged.

use super::RaftGroup;
use crate::lease::Lessor;
use crate::membership::MemberList;
use crate::raft::peer_message::PeerMessage;
use crate::raft::snapshot_file::SnapshotDir;
use crate::raft::snapshot_state::{self, AppliedState};
use crate::raft::snapshot_stream::{
    IncomingSnapshots, OutgoingSnapshot, SNAPSHOT_QUEUE_BYTES_BELOW,
};
use crate::raft::RaftGroupError;
use crate::shard::message::ToShard;
use crate::watch::EventBatch;
use raft::eraftpb::{Message as RaftMessage, Snapshot, SnapshotMetadata};
use raft::SnapshotStatus;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

/// Entries kept in memory below a snapshot, so followers slightly behind still get entries
/// (etcd's `SnapshotCatchUpEntries`); fewer when `--snapshot-count` is smaller.
pub const SNAPSHOT_CATCH_UP_ENTRIES: u64 = 5_000;

/// Where snapshots stand in the group.
pub(super) struct Snapshots {
    /// `--snapshot-count`.
    count: u64,
    /// Index of the newest snapshot taken or installed (0: none).
    last_index: u64,
    /// A snapshot being written by a helper thread.
    in_progress: Option<mpsc::Receiver<Result<Snapshot, String>>>,
    outgoing: Vec<OutgoingSnapshot>,
    incoming: IncomingSnapshots,
    /// The state of the leader's snapshot raft holds pending, decoded (and so checked) before
    /// raft was given it: `(index, term, state)`.
    received: Option<(u64, u64, AppliedState)>,
}

impl Snapshots {
    pub(super) fn new(count: u64, last_index: u64) -> Snapshots {
        Snapshots {
            count: count.max(1),
            last_index,
            in_progress: None,
            outgoing: Vec::new(),
            incoming: IncomingSnapshots::default(),
            received: None,
        }
    }

    fn catch_up_entries(&self) -> u64 {
        SNAPSHOT_CATCH_UP_ENTRIES.min(self.count)
    }
}

/// Encodes the state and writes the snapshot file; runs on a helper thread.
fn write_snapshot(
    snapshots: &SnapshotDir,
    metadata: SnapshotMetadata,
    kv: crate::mvcc::KvStore,
    members: MemberList,
) -> Result<Snapshot, String> {
    let snapshot = snapshot_state::raft_snapshot(&kv, &members, metadata);
    snapshots
        .save(&snapshot)
        .map_err(|error| error.to_string())?;
    Ok(snapshot)
}

impl RaftGroup {
    /// At start-up: the state the newest snapshot holds (the log replays from after it).
    pub(super) fn restore_from_snapshot_file(&mut self) -> Result<(), RaftGroupError> {
        let latest = self
            .log
            .storage()
            .latest_snapshot()
            .map_err(|error| RaftGroupError::Snapshot(error.to_string()))?;
        let Some(snapshot) = latest else {
            return Ok(());
        };
        let state = snapshot_state::decode(&snapshot.data)
            .map_err(|error| RaftGroupError::Snapshot(error.to_string()))?;
        tracing::info!(
            index = snapshot.get_metadata().index,
            revision = state.kv.current_revision(),
            "state restored from snapshot"
        );
        self.adopt_state(state);
        Ok(())
    }

    /// Replaces the state machine with a snapshot's.
    pub(super) fn adopt_state(&mut self, state: AppliedState) {
        let AppliedState { kv, members } = state;
        let now = Instant::now();
        self.lessor = Lessor::default();
        for id in kv.lease_ids() {
            if let Some(lease) = kv.lease(id) {
                self.lessor.on_granted(id, lease.granted_ttl, now);
            }
        }
        self.kv = kv;
        if self.node.raft.state == raft::StateRole::Leader {
            self.promote_lease_clocks();
        }
        self.applied_since_publish = true;
        for member in members.members() {
            let known_urls = self
                .members
                .get(member.id)
                .map(|known| known.peer_ur_ls.clone());
            self.connect_peer(member, known_urls.as_deref());
        }
        for member in self.members.members() {
            if members.get(member.id).is_none() && member.id != self.node.raft.id {
                self.peers.remove_peer(member.id);
            }
        }
        self.members = members;
        self.publish_members();
    }

    /// Starts a snapshot once `--snapshot-count` entries were applied since the last one, or
    /// when raft wanted to send one the latest cannot serve (a member added since).
    pub(super) fn maybe_start_snapshot(&mut self) -> Result<(), RaftGroupError> {
        let applied = self.node.raft.raft_log.applied;
        if self.snapshots.in_progress.is_some() {
            return Ok(());
        }
        let wanted =
            self.log.storage().take_fresh_snapshot_wanted() && applied > self.snapshots.last_index;
        if !wanted && applied < self.snapshots.last_index + self.snapshots.count {
            return Ok(());
        }
        let mut metadata = SnapshotMetadata {
            index: applied,
            term: self.log.term(applied)?,
            ..SnapshotMetadata::default()
        };
        metadata.set_conf_state(self.log.conf_state());
        let (sender, receiver) = mpsc::channel();
        let (snapshots, kv, members) = (
            self.log.snapshots().clone(),
            self.kv.clone(),
            self.members.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name("capstan-snapshot".to_string())
            .spawn(move || {
                let _receiver_gone_is_fine =
                    sender.send(write_snapshot(&snapshots, metadata, kv, members));
            });
        match spawned {
            Ok(_) => self.snapshots.in_progress = Some(receiver),
            Err(error) => tracing::error!(%error, "snapshot thread not started"),
        }
        Ok(())
    }

    /// Once the snapshot file is durable: compacts the log and releases WAL segments.
    pub(super) async fn finish_snapshot(&mut self) -> Result<(), RaftGroupError> {
        let Some(receiver) = &self.snapshots.in_progress else {
            return Ok(());
        };
        let written = match receiver.try_recv() {
            Ok(written) => written,
            Err(mpsc::TryRecvError::Empty) => return Ok(()),
            Err(mpsc::TryRecvError::Disconnected) => Err("snapshot thread died".to_string()),
        };
        self.snapshots.in_progress = None;
        let snapshot = match written {
            Ok(snapshot) => snapshot,
            Err(error) => {
                // The log simply stays longer; the next attempt comes after another count.
                tracing::error!(%error, "snapshot not written");
                self.snapshots.last_index = self.node.raft.raft_log.applied;
                return Ok(());
            }
        };
        let index = snapshot.get_metadata().index;
        let bytes = snapshot.data.len();
        if index <= self.snapshots.last_index {
            // A snapshot from the leader at a later index was installed meanwhile: this one is
            // older than the log's start and only a spare file now.
            tracing::info!(
                index,
                "own snapshot finished after a newer install; not used"
            );
            return Ok(());
        }
        self.snapshots.last_index = index;
        let catch_up = self.snapshots.catch_up_entries();
        let released = self.log.compact(snapshot, catch_up).await?;
        tracing::info!(
            index,
            snapshot_bytes = bytes,
            released_wal_segments = released,
            wal_segments = self.log.wal_segments(),
            "raft snapshot taken; log compacted"
        );
        Ok(())
    }

    /// A snapshot raft-rs wants sent: queued for chunked sending, replacing an older one to
    /// the same member.
    pub(super) fn queue_snapshot(&mut self, message: &RaftMessage) {
        let to = message.to;
        let index = message.get_snapshot().get_metadata().index;
        let encoded = match protobuf::Message::write_to_bytes(message) {
            Ok(encoded) => encoded,
            Err(error) => {
                tracing::error!(%error, "snapshot message does not encode");
                self.node.report_snapshot(to, SnapshotStatus::Failure);
                return;
            }
        };
        tracing::info!(
            to = format!("{to:x}"),
            index,
            bytes = encoded.len(),
            "sending a snapshot"
        );
        self.snapshots.outgoing.retain(|outgoing| outgoing.to != to);
        self.snapshots
            .outgoing
            .push(OutgoingSnapshot::new(to, index, encoded.into()));
    }

    /// Hands snapshot chunks to the transport while each peer's queue has room; a snapshot
    /// whose chunks were all queued is reported finished (raft then probes the follower).
    pub(super) fn pump_snapshots(&mut self) {
        let mut finished = Vec::new();
        for outgoing in &mut self.snapshots.outgoing {
            loop {
                match self.peers.queued_bytes(outgoing.to) {
                    None => {
                        finished.push((outgoing.to, SnapshotStatus::Failure));
                        break;
                    }
                    Some(queued) if queued >= SNAPSHOT_QUEUE_BYTES_BELOW => break,
                    Some(_) => {}
                }
                match outgoing.next_chunk() {
                    Some((offset, total, data)) => {
                        let chunk = PeerMessage::SnapshotChunk {
                            offset,
                            total,
                            data,
                        };
                        self.peers.send(outgoing.to, chunk.encode());
                    }
                    None => {
                        finished.push((outgoing.to, SnapshotStatus::Finish));
                        break;
                    }
                }
            }
        }
        for (to, status) in finished {
            if let Some(sent) = self.snapshots.outgoing.iter().find(|sent| sent.to == to) {
                tracing::info!(
                    to = format!("{to:x}"),
                    index = sent.index,
                    ?status,
                    "snapshot handed to the transport"
                );
            }
            self.snapshots.outgoing.retain(|outgoing| outgoing.to != to);
            self.node.report_snapshot(to, status);
        }
    }

    /// One chunk of a snapshot from `from`; the whole message is stepped once complete.
    pub(super) fn on_snapshot_chunk(&mut self, from: u64, offset: u64, total: u64, data: &[u8]) {
        match self.snapshots.incoming.accept(from, offset, total, data) {
            Ok(Some(encoded)) => {
                tracing::info!(
                    from = format!("{from:x}"),
                    bytes = encoded.len(),
                    "snapshot received"
                );
                self.step_peer_message(from, &encoded);
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(from = format!("{from:x}"), %error, "snapshot chunk dropped")
            }
        }
    }

    /// A snapshot message from a peer, before raft sees it: its state must decode, or it is
    /// dropped (raft-rs would accept it and the group could not install it). The decoded state
    /// is kept for the install. Returns whether the message may be stepped.
    pub(super) fn check_received_snapshot(&mut self, from: u64, message: &RaftMessage) -> bool {
        let snapshot = message.get_snapshot();
        let metadata = snapshot.get_metadata();
        match snapshot_state::decode(&snapshot.data) {
            Ok(state) => {
                self.snapshots.received = Some((metadata.index, metadata.term, state));
                true
            }
            Err(error) => {
                tracing::warn!(
                    from = format!("{from:x}"),
                    index = metadata.index,
                    %error,
                    "snapshot whose state does not decode dropped"
                );
                false
            }
        }
    }

    /// Drops the decoded state of a received snapshot raft did not take (an old one).
    pub(super) fn forget_received_snapshot_unless_pending(&mut self) {
        let pending = self.node.raft.raft_log.unstable.snapshot.as_ref();
        let kept = match (&self.snapshots.received, pending) {
            (Some((index, term, _)), Some(pending)) => {
                pending.get_metadata().index == *index && pending.get_metadata().term == *term
            }
            _ => false,
        };
        if !kept {
            self.snapshots.received = None;
        }
    }

    /// The decoded state of `snapshot`: kept from its receipt, else decoded now.
    fn received_state(&mut self, snapshot: &Snapshot) -> Result<AppliedState, RaftGroupError> {
        let metadata = snapshot.get_metadata();
        match self.snapshots.received.take() {
            Some((index, term, state)) if index == metadata.index && term == metadata.term => {
                Ok(state)
            }
            _ => snapshot_state::decode(&snapshot.data)
                .map_err(|error| RaftGroupError::Snapshot(error.to_string())),
        }
    }

    /// A snapshot from the leader, handed out by raft-rs in a Ready: its file first, then the
    /// log and the state machine (and every watcher re-reads what it missed from history).
    pub(super) fn install_snapshot(&mut self, snapshot: Snapshot) -> Result<(), RaftGroupError> {
        let index = snapshot.get_metadata().index;
        let state = self.received_state(&snapshot)?;
        crate::failpoint::hit("raftBeforeApplySnap");
        self.log
            .snapshots()
            .save(&snapshot)
            .map_err(|error| RaftGroupError::Snapshot(error.to_string()))?;
        let previous_revision = self.kv.current_revision();
        self.log.install_snapshot(snapshot)?;
        self.snapshots.last_index = index;
        self.adopt_state(state);
        self.checkpoint.clear();
        self.durable.send(crate::durable::Command::Replace {
            applied_index: index,
            kv: self.kv.clone(),
            members: self.members.clone(),
        });
        self.checkpoint.sent_index = index;
        crate::failpoint::hit("raftAfterApplySnap");
        tracing::info!(
            index,
            revision = self.kv.current_revision(),
            previous_revision,
            "snapshot from the leader installed"
        );
        // Events in `turn_events` are older than the snapshot; the watchers re-read them too,
        // from the new read view, once it is published.
        self.turn_events.clear();
        self.resync_watchers_from = Some(
            self.resync_watchers_from
                .unwrap_or(previous_revision + 1)
                .min(previous_revision + 1),
        );
        Ok(())
    }

    /// Tells every shard's watch hub that the store jumped (after the new read view is out).
    pub(super) fn send_resync(&mut self) {
        let Some(from_revision) = self.resync_watchers_from.take() else {
            return;
        };
        let batch = Arc::new(EventBatch::resync(
            from_revision,
            self.kv.current_revision(),
        ));
        for sender in &self.replies {
            if sender.try_send(ToShard::Events(batch.clone())).is_err() {
                tracing::warn!("a shard's queue is closed; resync not delivered to it");
            }
        }
    }
}
