//! Fast-forwarding the election clock of a member that starts — etcd's
//! `--initial-election-tick-advance` (on by default there).
//!
//! raft-rs starts every member as a follower whose election fires after a timeout drawn from
//! `[election_ticks, 2 × election_ticks)`. After a whole-cluster restart nobody leads, so the
//! first election would come one to two election timeouts after start (1–2 s with the default
//! 100 ms tick and 1 s timeout), and one that fires before the peers are reachable is wasted
//! and followed by another full timeout. Like etcd, once enough peers are connected that an
//! election can succeed, the clock of a member that knows no leader is moved to one tick short
//! of the shortest timeout: its first election starts after between 1 and `election_ticks`
//! ticks, still spread over the members by raft-rs's randomization, so that they rarely
//! campaign at once.
//!
//! One member goes first: the one with the lowest id among itself and the connected voters
//! has its clock moved to `FIRST_IN_LINE_TICKS` short of its drawn timeout, so after a
//! whole-cluster restart an election starts two ticks after a quorum is connected rather than
//! after the smallest of the members' draws (one to ten ticks). Members that see different
//! peers may both think they go first; then the randomized timeouts settle it as before.
//!
//! A member restarting into a healthy cluster cannot disturb its leader this way: pre-vote is
//! on, so an early campaign is a pre-vote that raises no term, and check-quorum makes members
//! that heard from their leader within an election timeout ignore it (raft-rs's "lease"). The
//! advance happens once, only while no leader is known and the member is still a follower.

/// Whether the start-up advance of the election clock is still to come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ElectionClock {
    /// Waiting until enough peers are connected for an election to succeed.
    Waiting,
    /// Advanced, or not needed (a leader is known, an election already started, or this member
    /// cannot campaign): not looked at again.
    Settled,
}

/// Whether this member and the peers it is connected to form a quorum of the configuration:
/// a majority of `voters` and, during a joint change, of `voters_outgoing` too (an empty
/// outgoing half asks for nothing).
pub(super) fn quorum_reachable(
    voters: &[u64],
    voters_outgoing: &[u64],
    local_id: u64,
    connected: &[u64],
) -> bool {
    let majority_reachable = |config: &[u64]| {
        let reachable = config
            .iter()
            .filter(|id| **id == local_id || connected.contains(id))
            .count();
        config.is_empty() || reachable > config.len() / 2
    };
    !voters.is_empty() && majority_reachable(voters) && majority_reachable(voters_outgoing)
}

/// Ticks between the advance and the first election of the member that goes first: two, so
/// that a heartbeat of a leader this member has not heard of yet (sent every tick) comes first.
pub(super) const FIRST_IN_LINE_TICKS: usize = 2;

/// Whether this member goes first: its id is the lowest of itself and the connected voters.
pub(super) fn first_in_line(voters: &[u64], local_id: u64, connected: &[u64]) -> bool {
    voters
        .iter()
        .filter(|id| connected.contains(id))
        .all(|id| *id > local_id)
}

/// The election clock after the advance: one tick short of the shortest election timeout, or
/// for the member that goes first `FIRST_IN_LINE_TICKS` short of its drawn timeout
/// (`timeout_ticks`); never moved back. raft-rs's timeout is at least `election_ticks`, so the
/// result is below it and the next tick does not by itself start an election unless the drawn
/// timeout is the shortest.
pub(super) fn advanced_election_elapsed(
    elapsed: usize,
    election_ticks: usize,
    timeout_ticks: usize,
    first: bool,
) -> usize {
    let target = if first {
        timeout_ticks.saturating_sub(FIRST_IN_LINE_TICKS)
    } else {
        election_ticks.saturating_sub(1)
    };
    elapsed.max(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_members_need_one_connected_peer() {
        let voters = [1, 2, 3];
        assert!(!quorum_reachable(&voters, &[], 1, &[]));
        assert!(quorum_reachable(&voters, &[], 1, &[2]));
        assert!(quorum_reachable(&voters, &[], 1, &[3]));
        assert!(quorum_reachable(&voters, &[], 1, &[2, 3]));
    }

    #[test]
    fn five_members_need_two_connected_peers() {
        let voters = [1, 2, 3, 4, 5];
        assert!(!quorum_reachable(&voters, &[], 1, &[4]));
        assert!(quorum_reachable(&voters, &[], 1, &[4, 5]));
    }

    #[test]
    fn connected_learners_and_strangers_do_not_count() {
        // 9 is a learner or a member no longer in the configuration.
        assert!(!quorum_reachable(&[1, 2, 3], &[], 1, &[9]));
        assert!(!quorum_reachable(&[1, 2, 3], &[], 1, &[9, 8]));
    }

    #[test]
    fn a_member_outside_the_configuration_needs_a_majority_of_others() {
        assert!(!quorum_reachable(&[2, 3, 4], &[], 1, &[2]));
        assert!(quorum_reachable(&[2, 3, 4], &[], 1, &[2, 3]));
        assert!(!quorum_reachable(&[], &[], 1, &[2, 3]));
    }

    #[test]
    fn a_joint_configuration_needs_both_majorities() {
        // Moving from {1, 2, 3} to {1, 4, 5}.
        assert!(!quorum_reachable(&[1, 4, 5], &[1, 2, 3], 1, &[2]));
        assert!(!quorum_reachable(&[1, 4, 5], &[1, 2, 3], 1, &[4]));
        assert!(quorum_reachable(&[1, 4, 5], &[1, 2, 3], 1, &[2, 4]));
    }

    #[test]
    fn a_single_member_reaches_its_quorum_alone() {
        assert!(quorum_reachable(&[1], &[], 1, &[]));
    }

    #[test]
    fn the_clock_moves_to_one_tick_short_of_the_shortest_timeout() {
        assert_eq!(advanced_election_elapsed(0, 10, 15, false), 9);
        assert_eq!(advanced_election_elapsed(3, 10, 15, false), 9);
        assert_eq!(advanced_election_elapsed(0, 2, 3, false), 1);
    }

    #[test]
    fn the_member_that_goes_first_campaigns_two_ticks_later() {
        assert_eq!(advanced_election_elapsed(0, 10, 17, true), 15);
        assert_eq!(advanced_election_elapsed(4, 10, 10, true), 8);
    }

    #[test]
    fn the_clock_never_moves_back() {
        assert_eq!(advanced_election_elapsed(12, 10, 15, false), 12);
        assert_eq!(advanced_election_elapsed(9, 10, 15, false), 9);
        assert_eq!(advanced_election_elapsed(14, 10, 15, true), 14);
    }

    #[test]
    fn the_first_election_comes_within_one_election_timeout_and_no_earlier_than_one_tick() {
        let election_ticks = 10;
        // raft-rs draws the timeout from [election_ticks, 2 * election_ticks).
        for timeout in election_ticks..2 * election_ticks {
            for first in [false, true] {
                let elapsed = advanced_election_elapsed(0, election_ticks, timeout, first);
                let remaining = timeout - elapsed;
                assert!(
                    (1..=election_ticks).contains(&remaining),
                    "{timeout} {first}: {remaining}"
                );
                if first {
                    assert_eq!(remaining, FIRST_IN_LINE_TICKS);
                }
            }
        }
    }

    #[test]
    fn the_lowest_connected_voter_goes_first() {
        assert!(first_in_line(&[1, 2, 3], 1, &[2, 3]));
        assert!(!first_in_line(&[1, 2, 3], 2, &[1, 3]));
        // Member 1 is down: 2 goes first.
        assert!(first_in_line(&[1, 2, 3], 2, &[3]));
        assert!(!first_in_line(&[1, 2, 3], 3, &[2]));
        // Learners and strangers do not count.
        assert!(first_in_line(&[2, 3], 2, &[1, 3]));
    }
}
