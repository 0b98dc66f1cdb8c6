//! etcd's raft log lines for role and leader changes, written under the `raft` logger so a
//! log shipper sees the same `msg` strings as from etcd (`logger: "raft"`):
//!
//! - `<id> became follower at term <t>` (also `pre-candidate`, `candidate`, `leader`),
//!   from etcd raft's `becomeFollower`, `becomePreCandidate`, ...;
//! - `raft.node: <id> elected leader <leader> at term <t>`,
//!   `raft.node: <id> changed leader from <old> to <new> at term <t>` and
//!   `raft.node: <id> lost leader <old> at term <t>`, from etcd raft's `node.run` when the soft
//!   state's leader changes.
//!
//! raft-rs logs through slog with its own wording; Capstan discards that and writes these lines
//! from the soft state it sees at the end of each turn of the group's loop, so a role held for
//! less than one turn (a single member's pre-candidacy) is not logged.

use raft::StateRole;

/// The role and leader last logged.
#[derive(Debug)]
pub struct RoleLog {
    role: StateRole,
    leader_id: u64,
    term: u64,
    logged_once: bool,
}

impl Default for RoleLog {
    fn default() -> Self {
        RoleLog {
            role: StateRole::Follower,
            leader_id: raft::INVALID_ID,
            term: 0,
            logged_once: false,
        }
    }
}

fn role_word(role: StateRole) -> &'static str {
    match role {
        StateRole::Follower => "follower",
        StateRole::PreCandidate => "pre-candidate",
        StateRole::Candidate => "candidate",
        StateRole::Leader => "leader",
    }
}

impl RoleLog {
    /// Logs what changed since the last call: the role (with the term it was taken at) and the
    /// leader.
    pub fn observe(&mut self, id: u64, term: u64, role: StateRole, leader_id: u64) {
        let role_changed = role != self.role || (role == StateRole::Follower && term != self.term);
        if role_changed || !self.logged_once {
            tracing::info!(
                target: "raft",
                "{id:x} became {} at term {term}",
                role_word(role)
            );
        }
        if leader_id != self.leader_id {
            let old = self.leader_id;
            if old == raft::INVALID_ID {
                tracing::info!(
                    target: "raft",
                    "raft.node: {id:x} elected leader {leader_id:x} at term {term}"
                );
            } else if leader_id == raft::INVALID_ID {
                tracing::info!(
                    target: "raft",
                    "raft.node: {id:x} lost leader {old:x} at term {term}"
                );
            } else {
                tracing::info!(
                    target: "raft",
                    "raft.node: {id:x} changed leader from {old:x} to {leader_id:x} at term {term}"
                );
            }
        }
        self.role = role;
        self.leader_id = leader_id;
        self.term = term;
        self.logged_once = true;
    }
}
