//! The etcd v3 MVCC key-value state machine, in memory.
//!
//! # Data model
//!
//! The store is a map from key (ordered bytewise) to that key's *history*:
//! every retained version, oldest first. A version is either *live* (the
//! key's value, `create_revision`, `version` and lease as of one put) or a
//! *tombstone* (the key was deleted). Each applied write request gets the
//! next main *revision*; the individual changes inside it are numbered by
//! sub revision. A read at revision `r` sees, per key, the newest version
//! with main revision `<= r`, and the key only if that version is live.
//!
//! A run of versions from a put on an absent key up to its deletion is a
//! *generation*: `create_revision` is the revision that started it and
//! `version` counts the puts within it (1 for the first).
//!
//! Compaction at `c` drops, per key, every version older than the newest one
//! `<= c`, and that one too if it is a tombstone older than `c` (a tombstone
//! at exactly `c` stays so a watcher starting at `c` still sees the delete). Reads at `c` and later are
//! unaffected; reads below `c` fail with [`MvccError::Compacted`].
//!
//! The map is an `imbl::OrdMap` of version lists (`version_list`), so cloning a
//! [`KvStore`] is O(1): the applying shard publishes clones as immutable
//! snapshots, and each write is applied to a clone that replaces the store
//! only if the whole write succeeded.
//!
//! # Leases
//!
//! The store also holds the granted leases: id, granted TTL and the keys
//! attached. A key is attached to lease `L` exactly while it is live and its
//! newest version carries `L`: a put moves the key to its new lease (lease 0
//! detaches it, `ignore_lease` keeps the old one), a delete detaches it.
//! Puts need their lease to exist. A grant uses no revision; a revoke
//! deletes the attached keys in key order as one write (one revision, or
//! none if no key is attached) and forgets the lease. Compaction leaves
//! leases alone; expiry is decided outside the store.
//!
//! # Alarms
//!
//! The store also holds the raised alarms (NOSPACE, CORRUPT) and the member
//! that raised each, changed by alarm writes like any other replicated
//! state. While one is raised, `apply` refuses the writes it forbids: see
//! `alarm` (and [`quota`] for which writes grow the store).
//!
//! # Worked example
//!
//! A fresh store is at revision 1.
//!
//! | revision | request                  | history of `a`                            | history of `b`        |
//! |----------|--------------------------|-------------------------------------------|-----------------------|
//! | 2        | put a=1                  | `2: live 1 (create 2, version 1)`         |                       |
//! | 3        | put a=2                  | `.., 3: live 2 (create 2, version 2)`     |                       |
//! | 4        | txn { put b=x; delete a } | `.., 4.1: tombstone`                      | `4.0: live x (create 4, version 1)` |
//! | -        | delete c (absent)        | unchanged; still revision 4               |                       |
//! | 5        | put a=3                  | `.., 5: live 3 (create 5, version 1)`     |                       |
//!
//! Reading `a` at revision 3 gives value 2 (version 2); at 4 nothing; at 5
//! value 3 with `create_revision` 5, `version` 1 (a new generation).
//! Compacting at 4 leaves `a` with `4.1: tombstone, 5: live 3` (the tombstone
//! is at the compaction revision itself, so it stays until a later
//! compaction) and `b` with `4.0: live x`;
//! a read at revision 3 now fails with `Compacted`, one at 4 still sees
//! `b=x` and no `a`.
//!
//! # Layout
//!
//! * [`validation`]: request checks done before proposing;
//! * `store`: [`KvStore`] and its counters; `key_history`: one key's
//!   versions; `key_range`: what `key`/`range_end` select;
//! * `range`: serving a range; `apply`: dispatching writes; `write_txn`:
//!   puts and deletes under one revision; `txn`/`compare`: transactions;
//!   `compaction`: dropping old versions; `lease`: leases and attachments;
//! * `alarm`: raised alarms and the writes they refuse; [`quota`]: what a
//!   write costs against `--quota-backend-bytes`; `hash`: `Hash` and
//!   `HashKV` (crc32c over the versions, in etcd's record layout);
//!   `snapshot`: the whole store to and from a raft snapshot's data.

mod alarm;
mod apply;
mod compaction;
mod compare;
mod crc32c;
mod error;
mod hash;
mod history;
mod key_history;
mod key_range;
mod lease;
pub mod quota;
mod range;
mod revision;
mod snapshot;
mod store;
mod txn;
pub mod validation;
mod version_list;
mod write_txn;

#[cfg(test)]
mod compaction_tests;
#[cfg(test)]
mod lease_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod range_tests;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod txn_tests;
#[cfg(test)]
mod validation_tests;
#[cfg(test)]
mod write_tests;

pub use alarm::Alarms;
pub use apply::{Applied, WriteRequest, WriteResponse};
pub use error::MvccError;
pub use hash::KvHash;
pub use key_range::KeyRange;
pub use lease::LeaseInfo;
pub use revision::Revision;
pub use snapshot::{SnapshotError, StoreSnapshot};
pub use store::KvStore;
pub use validation::{check_delete_range, check_put, check_range, check_txn};
