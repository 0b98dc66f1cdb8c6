//! The raft group's published status, readable from every shard without locks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[derive(Default)]
pub struct RaftStatus {
    term: AtomicU64,
    leader_id: AtomicU64,
    commit_index: AtomicU64,
    applied_index: AtomicU64,
    /// Times the published leader changed to a known one (etcd's
    /// `etcd_server_leader_changes_seen_total`: none -> A and A -> B both count).
    leader_changes: AtomicU64,
    /// Replay finished and this member leads (or follows) a leader: clients may be served.
    serving: AtomicBool,
    /// The group stopped for good (e.g. a failed fdatasync).
    failed: AtomicBool,
}

/// A consistent-enough copy of the status for one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusSnapshot {
    pub term: u64,
    pub leader_id: u64,
    pub commit_index: u64,
    pub applied_index: u64,
}

impl RaftStatus {
    pub fn publish(&self, snapshot: StatusSnapshot) {
        self.term.store(snapshot.term, Ordering::Release);
        let previous_leader = self.leader_id.swap(snapshot.leader_id, Ordering::AcqRel);
        if snapshot.leader_id != 0 && snapshot.leader_id != previous_leader {
            self.leader_changes.fetch_add(1, Ordering::Relaxed);
        }
        self.commit_index
            .store(snapshot.commit_index, Ordering::Release);
        self.applied_index
            .store(snapshot.applied_index, Ordering::Release);
    }

    pub fn snapshot(&self) -> StatusSnapshot {
        StatusSnapshot {
            term: self.term.load(Ordering::Acquire),
            leader_id: self.leader_id.load(Ordering::Acquire),
            commit_index: self.commit_index.load(Ordering::Acquire),
            applied_index: self.applied_index.load(Ordering::Acquire),
        }
    }

    /// The leader's member id, 0 when none is known.
    pub fn leader_id(&self) -> u64 {
        self.leader_id.load(Ordering::Acquire)
    }

    /// How many times a new leader was seen since start-up.
    pub fn leader_changes(&self) -> u64 {
        self.leader_changes.load(Ordering::Relaxed)
    }

    pub fn term(&self) -> u64 {
        self.term.load(Ordering::Acquire)
    }

    pub fn set_serving(&self) {
        self.serving.store(true, Ordering::Release);
    }

    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }

    pub fn set_failed(&self) {
        self.failed.store(true, Ordering::Release);
    }

    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }
}
