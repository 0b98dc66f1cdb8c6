//! Proposals this member handed to raft for its shards and has not yet answered, each with the
//! leadership (leader id and term) it was made under.
//!
//! raft-rs never acknowledges a proposal: on a follower it travels to the leader as a `MsgProp`,
//! and if that leader dies or steps down before appending it, it is lost without a trace. A
//! proposal made under one leadership is therefore given up as soon as this member sees that
//! leadership end: a different leader, a new term, no leader known any more (a follower that
//! stopped hearing from its leader for an election timeout), or this member no longer leading.
//!
//! A given-up proposal may still apply: the new leader may have it in its log, or the old one
//! may come back in the same term. So its call is answered with etcd's error for an unknown
//! outcome, "request timed out, possibly due to previous leader failure", never with a definite
//! one (etcd's "leader changed" is for requests that did not execute); the late `Applied`
//! answer finds no waiting call on its shard. A client thus learns within about an election
//! timeout of losing the leader what it would otherwise learn only at the request timeout.

use super::forwards::Asker;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Proposals tracked at once; past it, new proposals wait for the request timeout instead
/// (about 64 bytes each: 8 MiB).
pub const TRACKED_PROPOSALS_MAX: usize = 131_072;
/// How often proposals the shards stopped waiting for are looked for.
pub const OVERDUE_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Who leads, and in which term, as one member sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leadership {
    /// `raft::INVALID_ID` (0) when no leader is known.
    pub leader_id: u64,
    pub term: u64,
}

impl Leadership {
    pub fn is_known(&self) -> bool {
        self.leader_id != raft::INVALID_ID
    }
}

struct Tracked {
    made_under: Leadership,
    proposed_at: Instant,
}

pub struct ProposalTracker {
    /// How long a shard waits for a proposal (the request timeout): past it, nobody does.
    patience: Duration,
    waiting: HashMap<Asker, Tracked>,
    /// The leadership seen when the tracker last looked.
    observed: Leadership,
    last_sweep_at: Instant,
}

impl ProposalTracker {
    pub fn new(patience: Duration, now: Instant) -> ProposalTracker {
        ProposalTracker {
            patience,
            waiting: HashMap::new(),
            observed: Leadership {
                leader_id: raft::INVALID_ID,
                term: 0,
            },
            last_sweep_at: now,
        }
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Remembers a proposal raft accepted under `made_under`. Returns false when the tracker is
    /// full, or when no leader is known (raft-rs drops proposals then, so it should not happen;
    /// the group must not stop over it): that proposal is left to the request timeout.
    pub fn record(&mut self, asker: Asker, made_under: Leadership, now: Instant) -> bool {
        if !made_under.is_known() || self.waiting.len() >= TRACKED_PROPOSALS_MAX {
            return false;
        }
        let tracked = Tracked {
            made_under,
            proposed_at: now,
        };
        self.waiting.insert(asker, tracked);
        true
    }

    /// The asker got its answer (applied, or failed some other way): forget it.
    pub fn settle(&mut self, asker: Asker) {
        self.waiting.remove(&asker);
    }

    /// Looks at the current leadership; returns (and forgets) every proposal made under a
    /// leadership that has ended.
    pub fn on_leadership(&mut self, current: Leadership) -> Vec<Asker> {
        if current == self.observed {
            return Vec::new();
        }
        self.observed = current;
        let ended: Vec<Asker> = self
            .waiting
            .iter()
            .filter(|(_, tracked)| tracked.made_under != current)
            .map(|(asker, _)| *asker)
            .collect();
        for asker in &ended {
            self.waiting.remove(asker);
        }
        ended
    }

    /// Forgets (without answering) proposals older than the patience: their calls have timed
    /// out on their shards. Looks at most once per [`OVERDUE_SWEEP_INTERVAL`]; returns them.
    pub fn forget_overdue(&mut self, now: Instant) -> Vec<Asker> {
        if now.duration_since(self.last_sweep_at) < OVERDUE_SWEEP_INTERVAL {
            return Vec::new();
        }
        self.last_sweep_at = now;
        let overdue: Vec<Asker> = self
            .waiting
            .iter()
            .filter(|(_, tracked)| now.duration_since(tracked.proposed_at) >= self.patience)
            .map(|(asker, _)| *asker)
            .collect();
        for asker in &overdue {
            self.waiting.remove(asker);
        }
        overdue
    }

    /// Every proposal still waiting (the group is stopping).
    pub fn take_all(&mut self) -> Vec<Asker> {
        self.waiting.drain().map(|(asker, _)| asker).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SELF: u64 = 1;
    const OTHER: u64 = 2;
    const THIRD: u64 = 3;
    const PATIENCE: Duration = Duration::from_secs(7);

    fn led(leader_id: u64, term: u64) -> Leadership {
        Leadership { leader_id, term }
    }

    fn sorted(mut askers: Vec<Asker>) -> Vec<Asker> {
        askers.sort_unstable();
        askers
    }

    #[test]
    fn a_follower_gives_up_proposals_when_another_leader_is_known() {
        let now = Instant::now();
        let mut tracker = ProposalTracker::new(PATIENCE, now);
        assert!(tracker.on_leadership(led(OTHER, 5)).is_empty());
        assert!(tracker.record((0, 1), led(OTHER, 5), now));
        assert!(tracker.record((1, 2), led(OTHER, 5), now));
        assert!(tracker.on_leadership(led(OTHER, 5)).is_empty());
        // A new leader in a new term: both proposals of the old one are given up.
        assert_eq!(
            sorted(tracker.on_leadership(led(THIRD, 6))),
            vec![(0, 1), (1, 2)]
        );
        assert!(tracker.is_empty());
    }

    #[test]
    fn a_follower_gives_up_proposals_when_it_stops_hearing_from_the_leader() {
        let now = Instant::now();
        let mut tracker = ProposalTracker::new(PATIENCE, now);
        tracker.on_leadership(led(OTHER, 5));
        tracker.record((0, 1), led(OTHER, 5), now);
        // An election timeout without the leader (pre-candidate): the outcome is unknown now,
        // whether or not the same leader comes back.
        assert_eq!(
            tracker.on_leadership(led(raft::INVALID_ID, 5)),
            vec![(0, 1)]
        );
        // Proposals made once the leader is back are kept while it leads.
        assert!(tracker.on_leadership(led(OTHER, 5)).is_empty());
        tracker.record((0, 2), led(OTHER, 5), now);
        assert!(tracker.on_leadership(led(OTHER, 5)).is_empty());
        tracker.settle((0, 2));
        assert!(tracker.is_empty());
    }

    #[test]
    fn a_leader_keeps_its_proposals_while_it_leads_and_gives_them_up_when_it_steps_down() {
        let now = Instant::now();
        let mut tracker = ProposalTracker::new(PATIENCE, now);
        tracker.on_leadership(led(SELF, 3));
        tracker.record((0, 7), led(SELF, 3), now);
        assert!(tracker.on_leadership(led(SELF, 3)).is_empty());
        assert_eq!(tracker.len(), 1);
        // Stepping down without knowing the next leader (check quorum).
        assert_eq!(
            tracker.on_leadership(led(raft::INVALID_ID, 3)),
            vec![(0, 7)]
        );
    }

    #[test]
    fn becoming_leader_gives_up_what_was_forwarded_to_the_old_leader_only() {
        let now = Instant::now();
        let mut tracker = ProposalTracker::new(PATIENCE, now);
        tracker.on_leadership(led(OTHER, 2));
        tracker.record((0, 1), led(OTHER, 2), now);
        // Within one turn, the new leadership became known and a proposal was made under it.
        tracker.record((0, 2), led(SELF, 3), now);
        assert_eq!(tracker.on_leadership(led(SELF, 3)), vec![(0, 1)]);
        assert_eq!(tracker.len(), 1);
    }

    #[test]
    fn overdue_proposals_are_forgotten_and_the_tracker_is_bounded() {
        let start = Instant::now();
        let mut tracker = ProposalTracker::new(PATIENCE, start);
        tracker.record((0, 1), led(OTHER, 1), start);
        tracker.record((0, 2), led(OTHER, 1), start + Duration::from_secs(5));
        // Not looked at before the sweep interval has passed.
        assert!(tracker.forget_overdue(start).is_empty());
        assert_eq!(
            tracker.forget_overdue(start + Duration::from_secs(8)),
            vec![(0, 1)]
        );
        assert_eq!(tracker.take_all(), vec![(0, 2)]);
        for id in 0..TRACKED_PROPOSALS_MAX as u64 {
            assert!(tracker.record((0, id), led(OTHER, 1), start));
        }
        assert!(!tracker.record((1, 0), led(OTHER, 1), start));
        assert_eq!(tracker.len(), TRACKED_PROPOSALS_MAX);
    }
}
