//! Watch: etcd's watch semantics, fanned out across shards.
//!
//! The raft owner applies a turn's writes, publishes the new read view, then hands the turn's
//! events ([`EventBatch`], in revision order, all events of a revision together) once to every
//! shard. Each shard's [`WatchHub`] matches them to its own watchers through an index (a hash
//! of single-key watchers, an ordered map of range watchers) and queues one response per
//! watcher on that watcher's stream ([`Outbox`]).
//!
//! A stream's queue is bounded in bytes. When a watcher's events do not fit, the watcher leaves
//! the live path and *catches up*: it remembers the first revision it has not been sent and is
//! fed from MVCC history in bounded steps ([`WatchHub::catch_up_step`]) while its client reads,
//! rejoining the live path when it reaches the hub's last delivered revision. So a slow reader
//! never blocks apply or other watchers, holds at most its queue bound of memory, and never
//! misses, repeats or reorders an event; if compaction removes the history it needs, it is
//! cancelled with `compact_revision` set, as etcd does. Watchers that start at a past revision
//! begin in catch-up mode.
//!
//! Server code that must wait on a key (the lock and election services) registers an
//! [`InternalWatch`]: a hub stream of its own with one watcher, read directly.

mod batch;
mod hub;
mod internal;
mod outbox;
mod watcher;

pub use batch::EventBatch;
pub use hub::{HubConfig, StreamId, WatchHub};
pub use internal::InternalWatch;
pub use outbox::Outbox;
