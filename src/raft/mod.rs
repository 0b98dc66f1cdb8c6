//! Consensus: one raft-rs group per keyspace, owned by one shard.
//!
//! - [`log_store`] makes raft's log durable in our WAL (`capstan-wal`): entries, hard state and
//!   conf state are WAL records; on start the WAL is replayed into raft's in-memory log.
//! - [`group`] is the owner shard's loop: it batches proposals and read-index requests from all
//!   shards, runs raft-rs's Ready cycle with one `fdatasync` per batch, applies committed entries
//!   to the MVCC store, publishes the new read view, and answers each shard.
//! - [`forwards`] remembers requests forwarded to the leader until it answers.
//! - [`proposal_tracker`] remembers the shards' proposals with the leadership they were made
//!   under, so a leader change answers them at once ("leader changed").
//! - [`peer_message`] frames what groups send each other: raft messages and forwarded lease
//!   questions.
//! - [`status`] is what other shards may read about the group: term, leader, indexes.

pub mod forwards;
pub mod group;
pub mod log_store;
pub mod peer_message;
pub mod proposal_tracker;
pub mod status;

pub use group::{RaftGroup, RaftGroupError};
pub use status::RaftStatus;
