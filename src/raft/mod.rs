//! Consensus: one raft-rs group per keyspace, owned by one shard.
//!
//! - [`log_store`] makes raft's log durable in our WAL (`capstan-wal`): entries, hard state and
//!   conf state are WAL records; on start the WAL is replayed into raft's in-memory log.
//! - [`group`] is the owner shard's loop: it batches proposals and read-index requests from all
//!   shards, runs raft-rs's Ready cycle with one `fdatasync` per batch, applies committed entries
//!   to the MVCC store, publishes the new read view, and answers each shard.
//! - [`forwards`] remembers requests forwarded to the leader until it answers.
//! - [`proposal_tracker`] remembers the shards' proposals with the leadership they were made
//!   under, so the end of that leadership answers them at once (an unknown outcome).
//! - [`peer_message`] frames what groups send each other: raft messages and forwarded lease
//!   questions.
//! - [`role_log`] writes etcd's raft lines for role and leader changes (`became leader at
//!   term`, `raft.node: .. elected leader ..`).
//! - [`status`] is what other shards may read about the group: term, leader, indexes.
//! - [`snapshot_file`] keeps raft snapshots (the applied state at one index) on disk;
//!   [`snapshot_state`] turns the state machine into a snapshot's data and back;
//!   [`storage`] is raft-rs's view of the log: the in-memory entries plus the latest snapshot;
//!   [`snapshot_stream`] cuts snapshots into peer frames and puts them together again.

pub mod forwards;
pub mod group;
pub mod log_store;
pub mod peer_message;
pub mod proposal_tracker;
pub mod role_log;
pub mod snapshot_file;
pub mod snapshot_state;
pub mod snapshot_stream;
pub mod status;
pub mod storage;

pub use group::{RaftGroup, RaftGroupError};
pub use status::RaftStatus;
