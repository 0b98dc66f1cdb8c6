//! Leases: what is replicated and what is not.
//!
//! A lease's existence, granted TTL and attached keys are replicated state: LeaseGrant and
//! LeaseRevoke go through raft and are applied to the MVCC store (so every member deletes the
//! same keys at the same revision, and watchers see DELETE events). *When* a lease expires is
//! decided by the leader alone: the [`Lessor`] on the raft owner shard keeps each lease's
//! deadline, moves it on every keep-alive, and proposes a revoke for leases past their
//! deadline, a bounded number per tick. Followers forward keep-alives and time-to-live
//! questions to the leader over the peer transport. Every half election timeout the leader
//! checkpoints the remaining TTL of the leases renewed since its last checkpoint through raft,
//! so the member that leads next continues from those deadlines (plus an election timeout)
//! instead of restarting every lease from its full TTL.

mod lessor;

pub use lessor::{
    min_ttl_seconds, Lessor, CHECKPOINT_LEASES_MAX, LEASE_TTL_SECONDS_MAX, REVOKES_PER_TICK_MAX,
};
