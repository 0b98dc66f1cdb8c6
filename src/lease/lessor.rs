//! The leader's lease clock.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// etcd's `MaxLeaseTTL`: larger TTLs are refused with "too large lease TTL".
pub const LEASE_TTL_SECONDS_MAX: i64 = 9_000_000_000;
/// Expired leases proposed for revocation per raft tick (etcd revokes up to 1000/s; with
/// 100 ms ticks this is the same rate).
pub const REVOKES_PER_TICK_MAX: usize = 100;
/// Leases in one checkpoint entry; the rest wait for the next checkpoint.
pub const CHECKPOINT_LEASES_MAX: usize = 8_192;

/// etcd's minimum TTL: 1.5 election timeouts, rounded up to whole seconds.
pub fn min_ttl_seconds(election_timeout_ms: u64) -> i64 {
    (3 * election_timeout_ms).div_ceil(2000) as i64
}

/// Each member's copy of the lease clock. The leader's copy is the authority: it renews,
/// expires and checkpoints. Followers move theirs on applied grants and checkpoints, so the
/// member that leads next starts from deadlines at most one checkpoint interval old.
#[derive(Default)]
pub struct Lessor {
    deadlines: HashMap<i64, Instant>,
    /// Revokes proposed and not yet applied: not proposed twice.
    revoking: HashSet<i64>,
    /// Leases renewed by the leader since its last checkpoint.
    renewed_since_checkpoint: HashSet<i64>,
}

impl Lessor {
    pub fn on_granted(&mut self, id: i64, ttl_seconds: i64, now: Instant) {
        self.deadlines.insert(id, now + seconds(ttl_seconds));
    }

    pub fn on_revoked(&mut self, id: i64) {
        self.deadlines.remove(&id);
        self.revoking.remove(&id);
        self.renewed_since_checkpoint.remove(&id);
    }

    /// A checkpoint from the leader applied on a follower: the lease has `remaining_ms` left
    /// from now (the leader measured it before proposing, so this errs late, never early).
    pub fn on_checkpoint(&mut self, id: i64, remaining_ms: i64, now: Instant) {
        if let Some(deadline) = self.deadlines.get_mut(&id) {
            *deadline = now + Duration::from_millis(u64::try_from(remaining_ms).unwrap_or(0));
        }
    }

    /// This member starts leading (or serving after a restart): every lease keeps the deadline
    /// this member's copy of the clock has for it (a full TTL from now when it has none), never
    /// less than now, plus `extension` (etcd extends leases by an election timeout on promotion).
    pub fn promote(
        &mut self,
        leases: impl Iterator<Item = (i64, i64)>,
        now: Instant,
        extension: Duration,
    ) {
        let known = std::mem::take(&mut self.deadlines);
        self.revoking.clear();
        self.renewed_since_checkpoint.clear();
        for (id, ttl_seconds) in leases {
            let tracked = known
                .get(&id)
                .copied()
                .unwrap_or(now + seconds(ttl_seconds));
            self.deadlines.insert(id, tracked.max(now) + extension);
        }
    }

    /// This member stopped leading: revokes it proposed may never apply, and checkpoints are
    /// the next leader's job.
    pub fn demote(&mut self) {
        self.revoking.clear();
        self.renewed_since_checkpoint.clear();
    }

    /// A keep-alive: the lease lives `granted_ttl` from now. Returns the TTL to report, 0 when
    /// the lease is unknown or already expired (its revoke is on its way).
    pub fn renew(&mut self, id: i64, granted_ttl: Option<i64>, now: Instant) -> i64 {
        let Some(granted_ttl) = granted_ttl else {
            return 0;
        };
        match self.deadlines.get_mut(&id) {
            Some(deadline) if *deadline > now && !self.revoking.contains(&id) => {
                *deadline = now + seconds(granted_ttl);
                self.renewed_since_checkpoint.insert(id);
                granted_ttl
            }
            _ => 0,
        }
    }

    /// Whole seconds left, rounded up; `None` for an unknown lease.
    pub fn remaining_seconds(&self, id: i64, now: Instant) -> Option<i64> {
        let deadline = self.deadlines.get(&id)?;
        let left = deadline.saturating_duration_since(now);
        Some(left.as_millis().div_ceil(1000) as i64)
    }

    /// Up to `limit` leases renewed since the last checkpoint, with the milliseconds they have
    /// left, for the next checkpoint entry.
    pub fn take_checkpoint(&mut self, now: Instant, limit: usize) -> Vec<(i64, i64)> {
        let ids: Vec<i64> = self
            .renewed_since_checkpoint
            .iter()
            .copied()
            .take(limit)
            .collect();
        let mut checkpoint = Vec::with_capacity(ids.len());
        for id in ids {
            self.renewed_since_checkpoint.remove(&id);
            if let Some(deadline) = self.deadlines.get(&id) {
                let left = deadline.saturating_duration_since(now);
                checkpoint.push((id, i64::try_from(left.as_millis()).unwrap_or(i64::MAX)));
            }
        }
        checkpoint
    }

    /// Leases past their deadline and not yet being revoked, at most `limit`; they are marked
    /// as being revoked.
    pub fn take_expired(&mut self, now: Instant, limit: usize) -> Vec<i64> {
        let expired: Vec<i64> = self
            .deadlines
            .iter()
            .filter(|(id, deadline)| **deadline <= now && !self.revoking.contains(id))
            .map(|(id, _)| *id)
            .take(limit)
            .collect();
        self.revoking.extend(expired.iter().copied());
        expired
    }
}

fn seconds(count: i64) -> Duration {
    Duration::from_secs(u64::try_from(count).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_ttl_is_one_and_a_half_election_timeouts_rounded_up() {
        assert_eq!(min_ttl_seconds(1000), 2);
        assert_eq!(min_ttl_seconds(2000), 3);
        assert_eq!(min_ttl_seconds(100), 1);
    }

    #[test]
    fn renew_moves_the_deadline_and_expiry_is_reported_once() {
        let start = Instant::now();
        let mut lessor = Lessor::default();
        lessor.on_granted(7, 5, start);
        assert_eq!(lessor.remaining_seconds(7, start), Some(5));
        let later = start + Duration::from_secs(4);
        assert_eq!(lessor.renew(7, Some(5), later), 5);
        assert!(lessor
            .take_expired(start + Duration::from_secs(8), 10)
            .is_empty());
        let expired_at = later + Duration::from_secs(5);
        assert_eq!(lessor.take_expired(expired_at, 10), vec![7]);
        assert!(lessor.take_expired(expired_at, 10).is_empty(), "only once");
        assert_eq!(lessor.renew(7, Some(5), expired_at), 0, "too late to renew");
        lessor.on_revoked(7);
        assert_eq!(lessor.remaining_seconds(7, expired_at), None);
        assert_eq!(lessor.renew(99, None, expired_at), 0);
    }

    #[test]
    fn a_follower_promoted_keeps_checkpointed_deadlines_plus_the_extension() {
        let start = Instant::now();
        let extension = Duration::from_secs(1);
        let mut leader = Lessor::default();
        let mut follower = Lessor::default();
        for lessor in [&mut leader, &mut follower] {
            lessor.on_granted(1, 10, start);
            lessor.on_granted(2, 10, start);
        }
        // Lease 1 is renewed 6 s in; lease 2 is left alone.
        let renewed_at = start + Duration::from_secs(6);
        assert_eq!(leader.renew(1, Some(10), renewed_at), 10);
        let checkpoint = leader.take_checkpoint(renewed_at, CHECKPOINT_LEASES_MAX);
        assert_eq!(checkpoint, vec![(1, 10_000)]);
        assert!(
            leader.take_checkpoint(renewed_at, 10).is_empty(),
            "taken once"
        );
        for (id, remaining_ms) in checkpoint {
            follower.on_checkpoint(id, remaining_ms, renewed_at);
        }
        // The follower leads 8 s in.
        let promoted_at = start + Duration::from_secs(8);
        follower.promote(
            [(1, 10), (2, 10), (3, 5)].into_iter(),
            promoted_at,
            extension,
        );
        assert_eq!(follower.remaining_seconds(1, promoted_at), Some(9));
        assert_eq!(follower.remaining_seconds(2, promoted_at), Some(3));
        // A lease the follower never saw granted gets a full TTL.
        assert_eq!(follower.remaining_seconds(3, promoted_at), Some(6));
        // Lease 2 expires at its original deadline plus the extension, not earlier.
        assert!(follower
            .take_expired(start + Duration::from_millis(10_999), 10)
            .is_empty());
        assert_eq!(
            follower.take_expired(start + Duration::from_secs(11), 10),
            vec![2]
        );
    }

    #[test]
    fn an_overdue_lease_survives_promotion_by_the_extension() {
        let start = Instant::now();
        let mut follower = Lessor::default();
        follower.on_granted(4, 2, start);
        let promoted_at = start + Duration::from_secs(30);
        follower.promote([(4, 2)].into_iter(), promoted_at, Duration::from_secs(1));
        assert_eq!(follower.remaining_seconds(4, promoted_at), Some(1));
    }
}
