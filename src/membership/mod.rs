//! Cluster membership as clients see it (the Cluster service).
//!
//! The member set starts as `--initial-cluster` (identical on every member, so every member
//! derives the same ids). Client urls are not in that flag: each member publishes its
//! `--advertise-client-urls` through raft once it serves, as etcd does, and every member applies
//! the publication. Membership changes are raft conf changes (add, add as learner, promote,
//! remove) whose context carries the member; MemberUpdate is an ordinary log entry. The
//! leader validates every change with etcd's rules ([`change`]) before proposing it; every
//! member applies the committed change to its [`MemberList`], and the owner shard publishes the
//! list as an immutable snapshot for every shard.

pub mod change;
pub mod error;
mod list;

pub use error::MembershipError;
pub use list::MemberList;
