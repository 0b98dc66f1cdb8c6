//! What the raft group counts for `/metrics`: pending proposals, apply batches (and slow
//! ones), peer round trips and late heartbeats. Each hook costs at most one `Instant` pair per
//! batch or per heartbeat; the counts go to this shard's cells (`crate::metrics`).

use super::RaftGroup;
use crate::metrics::{self, Counter, Gauge, Histogram};
use raft::eraftpb::{Message as RaftMessage, MessageType};
use raft::prelude::Entry;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Heartbeat and round-trip bookkeeping per peer.
#[derive(Debug, Default)]
pub(super) struct PeerTiming {
    /// When the last heartbeat to each peer was sent (etcd's `timeoutDetector`).
    last_heartbeat_sent: HashMap<u64, Instant>,
    /// A heartbeat to each peer whose response is awaited, for the round trip time.
    probe_sent: HashMap<u64, Instant>,
}

impl PeerTiming {
    /// A message is about to go to `message.to`. A heartbeat sent more than two heartbeat
    /// intervals after the previous one counts as a send failure, as etcd's leader counts one
    /// ("likely overloaded from slow disk").
    pub(super) fn on_send(&mut self, message: &RaftMessage, heartbeat_interval: Duration) {
        if message.get_msg_type() != MessageType::MsgHeartbeat {
            return;
        }
        let now = Instant::now();
        if let Some(previous) = self.last_heartbeat_sent.insert(message.to, now) {
            if now.duration_since(previous) > 2 * heartbeat_interval {
                metrics::count(Counter::HeartbeatSendFailures, 1);
            }
        }
        self.probe_sent.entry(message.to).or_insert(now);
    }

    /// A message came from `message.from`: a heartbeat response ends that peer's probe.
    pub(super) fn on_receive(&mut self, message: &RaftMessage) {
        if message.get_msg_type() != MessageType::MsgHeartbeatResponse {
            return;
        }
        if let Some(sent) = self.probe_sent.remove(&message.from) {
            metrics::peer_round_trip(message.from, sent.elapsed());
        }
    }
}

impl RaftGroup {
    /// Applies committed entries, timing the batch (etcd's slow apply: past 100 ms).
    pub(super) fn apply_timed(&mut self, entries: Vec<Entry>) -> Result<(), super::RaftGroupError> {
        if entries.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let result = self.apply_entries(entries);
        let elapsed = started.elapsed();
        metrics::observe_duration(Histogram::ApplySeconds, elapsed);
        if elapsed.as_secs_f64() > metrics::series::SLOW_APPLY_SECONDS {
            metrics::count(Counter::SlowApply, 1);
        }
        result
    }

    /// Publishes the gauges the loop owns, once per turn.
    pub(super) fn publish_metrics(&self) {
        metrics::gauge_set(Gauge::ProposalsPending, self.proposals.len() as i64);
    }
}
