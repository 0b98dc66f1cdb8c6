//! The applied MVCC state kept in the page store (`src/store`), so a restart loads it instead of
//! replaying the raft log, and so the file can be compacted and defragmented.
//!
//! # Layout in the page store (`member/pages.db`)
//!
//! One data row per stored version, keyed by revision so rows are appended at the right edge
//! of the tree and etcd's key size (up to the request limit) never meets the store's key limit:
//!
//! ```text
//! data key   b'r' | main revision u64 big-endian | sub revision u64 big-endian   (17 bytes)
//! data value capstanpb.KeySnapshot { key, versions: [ exactly one VersionSnapshot ] }
//! ```
//!
//! Meta values, committed atomically with the rows:
//!
//! | name               | value                                                              |
//! |--------------------|--------------------------------------------------------------------|
//! | `format`           | u64 1                                                              |
//! | `applied_index`    | u64: every raft entry up to this index is reflected in the rows    |
//! | `current_revision` | u64: the store's revision as of `applied_index`                    |
//! | `state`            | capstanpb.StateSnapshot without keys: compaction revision, leases, |
//! |                    | alarms and members as of the commit that last changed them         |
//!
//! # Checkpoints
//!
//! The raft group applies entries in memory (`mvcc::KvStore`) and, once per turn, hands the
//! changes to a writer thread ([`DurableHandle`]): the rows of new versions (from the applied
//! events), the revisions a compaction dropped, the state blob when leases, alarms, members or
//! the compaction revision changed, and the applied index. The writer merges whatever has
//! queued and commits it as one page-store commit (pages, `fdatasync`, meta, `fdatasync`). No
//! client waits for a checkpoint: every acknowledged write is already in the WAL.
//!
//! Rows dropped by a compaction are deleted at most [`DELETES_PER_COMMIT_MAX`] per commit, so a
//! large compaction never holds up the checkpoints of new writes; the rest wait for the next
//! commits. A delete is never committed with an applied index below its compaction's entry.
//!
//! # Crash argument
//!
//! A commit's rows and `applied_index` are atomic (the page store's commit protocol), and the
//! rows are exactly the changes of entries up to that index, except for deletions still owed
//! to a compaction at or below it. So the durable store is the state at `applied_index` plus
//! some versions below the compaction revision that no read can see. Start-up loads it, drops
//! those versions again (`KvStore::redo_compaction`) and queues their deletion; raft then
//! applies the entries after `applied_index` from the WAL.
//!
//! The WAL is still released only below raft snapshots (`--snapshot-count`), never below the
//! page store, so a store that lags behind (or failed) is not needed: start-up takes the newer
//! of the page store and the newest snapshot file, and if the snapshot is newer the store is
//! rebuilt from it ([`Command::Replace`], also used when a follower installs a snapshot from
//! the leader). A rebuild writes a new file beside the old one and renames it into place, so a
//! crash leaves one or the other, whole.
//!
//! # Layout
//!
//! `rows`: encoding of rows and metas; `load`: the state at start-up; `writer`: the writer
//! thread, its commands and the handle others hold.

pub mod load;
pub mod rows;
pub mod writer;

#[cfg(test)]
mod tests;

pub use load::{load, LoadedState};
pub use rows::{encode_state_for, PendingCheckpoint, STORE_FILE_NAME};
pub use writer::{
    spawn_writer, CheckpointBatch, Command, DurableHandle, DurableStats, DELETES_PER_COMMIT_MAX,
};
