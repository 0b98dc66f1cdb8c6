//! Requests a follower has forwarded to the leader (lease questions, membership changes) and
//! not yet had answered.

use crate::shard::ShardId;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The call waiting for a forwarded answer: its shard and its request id there.
pub type Asker = (ShardId, u64);

struct Pending {
    asker: Asker,
    sent_at: Instant,
}

#[derive(Default)]
pub struct Forwards {
    /// Never reused within a process, so a late answer can only find its own question.
    next_forward_id: u64,
    pending: HashMap<u64, Pending>,
}

impl Forwards {
    /// Records a request about to be sent; returns the id the leader will answer with.
    pub fn start(&mut self, asker: Asker, now: Instant) -> u64 {
        self.next_forward_id += 1;
        let forward_id = self.next_forward_id;
        self.pending.insert(
            forward_id,
            Pending {
                asker,
                sent_at: now,
            },
        );
        forward_id
    }

    /// The asker of an answered request, once; `None` for unknown or already settled ids.
    pub fn finish(&mut self, forward_id: u64) -> Option<Asker> {
        self.pending
            .remove(&forward_id)
            .map(|pending| pending.asker)
    }

    /// Requests unanswered for `patience` (the leader died or the message was lost).
    pub fn take_overdue(&mut self, now: Instant, patience: Duration) -> Vec<Asker> {
        let overdue: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, pending)| now.duration_since(pending.sent_at) >= patience)
            .map(|(forward_id, _)| *forward_id)
            .collect();
        overdue
            .into_iter()
            .filter_map(|forward_id| self.finish(forward_id))
            .collect()
    }

    /// Every pending request (this member became the leader, or is stopping).
    pub fn take_all(&mut self) -> Vec<Asker> {
        self.pending
            .drain()
            .map(|(_, pending)| pending.asker)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_settle_once_and_overdue_questions_are_given_up() {
        let start = Instant::now();
        let mut forwards = Forwards::default();
        let first = forwards.start((0, 10), start);
        let second = forwards.start((1, 11), start + Duration::from_millis(400));
        assert_ne!(first, second);
        assert_eq!(forwards.finish(first), Some((0, 10)));
        assert_eq!(
            forwards.finish(first),
            None,
            "a duplicate answer finds nothing"
        );
        let third = forwards.start((1, 12), start + Duration::from_millis(900));
        let overdue =
            forwards.take_overdue(start + Duration::from_secs(1), Duration::from_millis(500));
        assert_eq!(overdue, vec![(1, 11)]);
        assert_eq!(forwards.finish(second), None);
        assert_eq!(forwards.take_all(), vec![(1, 12)]);
        assert_eq!(forwards.finish(third), None);
    }
}
