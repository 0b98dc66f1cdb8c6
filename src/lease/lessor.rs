//! The leader's lease clock.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// etcd's `MaxLeaseTTL`: larger TTLs are refused with "too large lease TTL".
pub const LEASE_TTL_SECONDS_MAX: i64 = 9_000_000_000;
/// Expired leases proposed for revocation per raft tick (etcd revokes up to 1000/s; with
/// 100 ms ticks this is the same rate).
pub const REVOKES_PER_TICK_MAX: usize = 100;

/// etcd's minimum TTL: 1.5 election timeouts, rounded up to whole seconds.
pub fn min_ttl_seconds(election_timeout_ms: u64) -> i64 {
    (3 * election_timeout_ms).div_ceil(2000) as i64
}

#[derive(Default)]
pub struct Lessor {
    deadlines: HashMap<i64, Instant>,
    /// Revokes proposed and not yet applied: not proposed twice.
    revoking: HashSet<i64>,
}

impl Lessor {
    pub fn on_granted(&mut self, id: i64, ttl_seconds: i64, now: Instant) {
        self.deadlines.insert(id, now + seconds(ttl_seconds));
    }

    pub fn on_revoked(&mut self, id: i64) {
        self.deadlines.remove(&id);
        self.revoking.remove(&id);
    }

    /// Gives every lease a full TTL from `now` (plus `extension`), as when this member starts
    /// leading: the previous leader's clock is not known here.
    pub fn restart_all(
        &mut self,
        leases: impl Iterator<Item = (i64, i64)>,
        now: Instant,
        extension: Duration,
    ) {
        self.deadlines.clear();
        self.revoking.clear();
        for (id, ttl_seconds) in leases {
            self.deadlines
                .insert(id, now + seconds(ttl_seconds) + extension);
        }
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
}
