//! Shards: one glommio executor pinned per core, sharing nothing mutable.
//!
//! - [`runtime`] starts the executors, creates every cross-shard channel up front (bounded), and
//!   starts the raft group on its owner shard.
//! - [`message`] is what travels between shards: proposals and read-index requests to the owner,
//!   results back to the shard that holds the client's connection.
//! - [`owner_link`] is one shard's end of that conversation: it numbers requests, bounds how many
//!   are in flight, and completes each waiting call when its result arrives.
//! - [`context`] is the per-shard state a call handler sees.
//! - [`listen`] makes each shard's listening socket on the shared client port.
//! - [`client_tls`] decides which client listeners speak TLS, and with which certificate.
//! - [`shutdown`] is the process-wide stop signal (SIGINT/SIGTERM).
//! - [`startup_log`] writes etcd's start-up log lines.

pub mod client_tls;
pub mod context;
pub mod listen;
pub mod message;
pub mod owner_link;
pub mod runtime;
pub mod shutdown;
pub mod startup_log;

pub use context::ShardContext;
pub use shutdown::Shutdown;

/// Index of a shard, 0-based.
pub type ShardId = usize;

/// The shard that owns the (single, for now) raft group.
pub const OWNER_SHARD: ShardId = 0;
