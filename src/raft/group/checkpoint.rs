//! Handing applied changes to the page store (see `durable`), and starting from what it holds.

use super::RaftGroup;
use crate::durable::{encode_state_for, CheckpointBatch, Command, LoadedState};
use crate::raft::snapshot_state::AppliedState;

/// Applied entries after which a checkpoint is sent even if they changed nothing stored (empty
/// entries, publications already known), so a restart replays little.
const IDLE_ENTRIES_PER_CHECKPOINT: u64 = 1_000;

impl RaftGroup {
    /// After a Ready: the changes applied in it go to the page store's writer.
    pub(super) fn send_checkpoint(&mut self) {
        let applied_index = self.node.raft.raft_log.applied;
        let pending = &mut self.checkpoint;
        if applied_index <= pending.sent_index {
            return;
        }
        if pending.is_empty() && applied_index < pending.sent_index + IDLE_ENTRIES_PER_CHECKPOINT {
            return;
        }
        let state = pending
            .state_changed
            .then(|| encode_state_for(&self.kv, &self.members));
        let batch = CheckpointBatch {
            applied_index,
            current_revision: self.kv.current_revision(),
            rows: std::mem::take(&mut pending.rows),
            deletes: std::mem::take(&mut pending.deletes),
            state,
        };
        pending.state_changed = false;
        pending.sent_index = applied_index;
        self.durable.send(Command::Checkpoint(batch));
    }

    /// At start-up: the state the page store holds (the log replays from after it).
    pub(super) fn adopt_loaded(&mut self, loaded: LoadedState) {
        tracing::info!(
            index = loaded.applied_index,
            revision = loaded.kv.current_revision(),
            "state restored from the page store"
        );
        self.checkpoint.sent_index = loaded.applied_index;
        self.checkpoint.state_changed = false;
        self.adopt_state(AppliedState {
            kv: loaded.kv,
            members: loaded.members,
        });
    }

    /// At start-up, when the snapshot file at `snapshot_index` was newer than the page store:
    /// the store is rebuilt from it.
    pub(super) fn rebuild_page_store_from_snapshot(&mut self, snapshot_index: u64) {
        if snapshot_index == 0 {
            return;
        }
        self.durable.send(Command::Replace {
            applied_index: snapshot_index,
            kv: self.kv.clone(),
            members: self.members.clone(),
        });
        self.checkpoint.sent_index = snapshot_index;
        self.checkpoint.state_changed = false;
    }
}
