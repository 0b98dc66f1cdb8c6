//! The etcd services, as handlers on a shard's [`ShardContext`](crate::shard::ShardContext).
//!
//! - `kv`: Range (served on the connection's shard; linearizable ones first wait for a read
//!   index), Put, DeleteRange, Txn and Compact (validated here, then proposed through raft).
//! - `cluster`: MemberList.
//! - `lease`: Lease grant/revoke through raft; keep-alive and time-to-live on the leader's
//!   lease clock.
//! - `maintenance`: Status.
//! - `watch`: the Watch stream, on the shard's [`WatchHub`](crate::watch::WatchHub).
//! - `health`: `grpc.health.v1.Health`.
//! - `error`: this layer's error enum; `grpc::status` turns it into wire statuses.

pub mod cluster;
pub mod error;
pub mod health;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod watch;

pub use error::ServerError;
