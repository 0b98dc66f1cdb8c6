//! Capstan: an etcd v3-compatible, strongly consistent key-value store, thread-per-core on
//! io_uring.
//!
//! # One Put, from socket to fsync to reply
//!
//! 1. **Accept** — every shard (a glommio executor pinned to a core, [`shard::runtime`]) listens
//!    on the client port with SO_REUSEPORT; the kernel hands the connection to one shard, which
//!    runs HTTP/2 on it ([`grpc::connection`]).
//! 2. **Decode** — the stream's `:path` picks the method ([`grpc::routes`]); the 5-byte gRPC
//!    prefix is checked against the size limit before the message is buffered
//!    ([`grpc::frame`]), and the `PutRequest` is decoded and validated
//!    ([`server::kv`], [`mvcc`]'s `check_put`).
//! 3. **Propose** — the shard wraps it in a `capstanpb.InternalRequest` carrying a request id
//!    and its own shard id, and sends it over a bounded cross-core channel to the shard that owns
//!    the raft group ([`shard::owner_link`]).
//! 4. **Persist** — the owner drains every message that has arrived, proposes them all to
//!    raft-rs, appends the new entries and hard state to the WAL ([`raft::log_store`], the
//!    `capstan-wal` crate: O_DIRECT writes, crc32 per record) and makes the whole batch durable
//!    with one `fdatasync` ([`raft::group`]).
//! 5. **Apply** — committed entries are applied to the MVCC store ([`mvcc`]), which gives the
//!    Put its revision; the owner publishes the new immutable read view for every shard.
//! 6. **Reply** — the owner sends the result back to the originating shard, which fills in the
//!    response header (cluster id, member id, revision, raft term) and answers on the client's
//!    stream with `grpc-status: 0` in the trailers ([`grpc::call`]).
//!
//! Reads never leave the connection's shard except to ask the owner for a read index
//! (linearizable reads; serializable ones skip it) and then read the published view.
//!
//! The MVCC state lives in memory and is rebuilt from the WAL at start-up until the page store
//! lands.

pub mod backup;
pub mod civil_date;
pub mod config;
pub mod durable;
pub mod grpc;
pub mod http;
pub mod lease;
pub mod logging;
pub mod membership;
pub mod metrics;
pub mod mvcc;
pub mod peer;
pub mod raft;
pub mod server;
pub mod shard;
pub mod store;
pub mod tls;
pub mod watch;

pub use capstan_wal::failpoint;
