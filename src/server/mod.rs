//! The etcd services, as handlers on a shard's [`ShardContext`](crate::shard::ShardContext).
//!
//! - `kv`: Range (served on the connection's shard; linearizable ones first wait for a read
//!   index), Put, DeleteRange, Txn and Compact (validated here, then proposed through raft).
//! - `cluster`: MemberList.
//! - `lease`: Lease grant/revoke through raft; keep-alive and time-to-live on the leader's
//!   lease clock.
//! - `maintenance`: Status, Alarm, Hash, HashKV, MoveLeader.
//! - `quota`: the space quota checked before Put, Txn and LeaseGrant are proposed.
//! - `auto_compaction`: the leader's periodic or revision-based compactions.
//! - `lock`: the Lock service (`v3lockpb.Lock`): Lock, Unlock.
//! - `election`: the Election service (`v3electionpb.Election`): Campaign, Proclaim, Leader,
//!   Observe, Resign.
//! - `recipe`: what those two share, etcd's `concurrency` recipes run server-side: session
//!   keys, waiting for older keys' deletion on an internal watcher, cleanup of abandoned keys.
//! - `watch`: the Watch stream, on the shard's [`WatchHub`](crate::watch::WatchHub).
//! - `health`: `grpc.health.v1.Health`.
//! - `corrupt_check`: etcd's initial corruption check, run at start-up (before any shard
//!   serves) against the other members' HashKV, and the peer port's answer to it.
//! - `error`: this layer's error enum; `grpc::status` turns it into wire statuses.

pub mod auto_compaction;
pub mod cluster;
pub mod corrupt_check;
pub mod election;
pub mod error;
pub mod health;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod quota;
pub mod recipe;
pub mod snapshot;
pub mod watch;

pub use error::ServerError;
