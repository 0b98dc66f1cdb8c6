//! The page store: one file of fixed-size pages holding a copy-on-write B+tree of byte keys.
//!
//! This layer knows keys and values as bytes only; MVCC (revisions, generations) is built on
//! top of it by the caller. What it gives:
//!
//! - [`Store::open`] a file (created if it does not exist), [`Store::read`] a [`ReadTxn`] that
//!   holds one immutable committed root (cheap, `Send + Sync`, never blocks the writer and is
//!   never blocked by it), [`Store::commit`] a [`WriteBatch`] of puts and deletes atomically and
//!   durably, range scans `[start, end)` in key order with a limit, a handful of named *meta
//!   values* (such as the last applied raft index) committed atomically with the data, and
//!   [`Store::stats`] for etcd's `dbSize` / `dbSizeInUse`.
//! - [`Store::delete_range_step`] deletes keys in bounded batches (the compaction primitive);
//!   [`write_compact_copy`] writes a packed copy of one snapshot to a new file, and
//!   [`Store::defragment`] uses it to shrink the file online.
//!
//! Layering: [`page`] knows page headers and checksums, [`node`] the byte layout of leaf and
//! branch pages, [`tree_read`] walks pages of one snapshot, [`tree_write`] builds a new tree from
//! an old one plus sorted operations, [`freelist`] keeps free page runs, [`io`] is the narrow
//! write path (positioned writes, `fdatasync`, `set_len`) that tests replace to record writes and
//! build crash images, and [`db`] ties them into the commit protocol.
//!
//! # FORMAT
//!
//! All integers are little-endian. The file is an array of pages of [`PAGE_BYTES`] = 4096 bytes;
//! page *n* starts at byte `n * 4096`. Page ids are `u64`; id 0 never names a tree page (it is a
//! meta page), so 0 means "none" wherever a page id is stored.
//!
//! ## Common page header (24 bytes, every page type)
//!
//! ```text
//! offset size field
//!  0      4   checksum    crc32 (crc32fast, IEEE) of bytes 4..end of the page, or of the whole
//!                         run for an overflow run (see below)
//!  4      1   page_type   1 meta, 2 branch, 3 leaf, 4 overflow, 5 freelist
//!  5      1   reserved    0
//!  6      2   count       number of cells (branch, leaf), runs (freelist); 0 otherwise
//!  8      8   page_id     the page's own id: a page written to the wrong place is detected
//! 16      8   txn_id      the commit that wrote the page; a reader of snapshot T rejects any
//!                         page with txn_id > T (a reused page reached from a stale root)
//! ```
//!
//! Every page read is verified: checksum, `page_id`, expected `page_type`, `txn_id` no newer than
//! the snapshot, and every length and offset inside it bounds-checked before use. A failure is
//! [`StoreError::Corruption`] naming the file and the byte offset; bytes from disk are untrusted
//! input and never cause a panic.
//!
//! ## Meta page (pages 0 and 1)
//!
//! ```text
//!  0     24   header      page_type 1, page_id 0 or 1, txn_id = the commit this meta records
//! 24      8   magic       b"CAPSTPGS"
//! 32      4   version     1
//! 36      4   page_bytes  4096
//! 40      8   page_count  high-water mark: pages >= this are unused (file may be longer)
//! 48      8   data_root   root page of the data tree (0: empty)
//! 56      8   data_keys   number of keys in the data tree
//! 64      8   meta_root   root page of the meta-values tree (0: empty)
//! 72      8   freelist_head       first freelist page (0: no free pages)
//! 80      8   freelist_free_pages pages listed as free by the freelist chain
//! 88      8   freelist_pages      pages the freelist chain itself occupies
//! 96..4096    zero
//! ```
//!
//! Commit `T` writes its meta to page `T % 2`, so the two slots hold the last two commits. Open
//! reads both, keeps those that verify, and takes the higher `txn_id`. An invalid slot next to a
//! valid one is the expected result of a meta write torn by a crash; it is logged (with its
//! offset) and reported by [`Store::open_report`]. Two invalid slots is an error.
//!
//! ## Branch page (type 2) and leaf page (type 3)
//!
//! ```text
//!  0     24   header       count = n cells
//! 24   2*n    slots        u16 byte offset of each cell, cells in ascending key order
//!  ...        free space
//!  ...        cells        packed toward the end of the page
//! ```
//!
//! Branch cell: `child u64 | key_len u16 | key`. Child `i` holds keys `>= key_i` and
//! `< key_{i+1}`; the key of cell 0 is not used for routing (child 0 takes everything below
//! `key_1`) and is written empty, except in a branch split off to the right of another, where
//! it repeats that branch's separator in the parent. Keys are strictly ascending (binary search
//! depends on it). Every child of a branch has the same height.
//!
//! Leaf cell: `key_len u16 | kind u8 | value_len u32 | key | value`, where `kind` 0 stores the
//! value inline and `kind` 1 stores `first_page u64` of an overflow run instead. A value is
//! inline when its cell is at most [`node::MAX_INLINE_CELL_BYTES`]; keys are limited to
//! [`MAX_KEY_BYTES`] so every page holds at least three cells.
//!
//! ## Overflow run (type 4)
//!
//! A value too big to sit inline occupies `ceil((32 + value_len) / 4096)` *contiguous* pages.
//! The first page carries the header (count 0) and `value_len u64` at 24..32; the value follows
//! from byte 32 across the run. One checksum covers bytes 4..end of the whole run. Values are
//! limited to [`MAX_VALUE_BYTES`] (checked before the run is read).
//!
//! ## Freelist page (type 5)
//!
//! ```text
//!  0     24   header       count = n runs
//! 24      8   next         next freelist page (0: last)
//! 32   16*n   runs         start_page u64 | page_count u64, ascending, non-overlapping
//! ```
//!
//! The chain lists every page below `page_count` that is neither reachable from the meta's trees
//! nor part of the chain itself. It is rewritten (into fresh pages) by every commit that changes
//! it; the old chain's pages are freed by that commit like any other replaced page.
//!
//! ## Free pages and readers
//!
//! A commit `T` replaces pages (copy-on-write) and so frees the old ones; readers of snapshots
//! older than `T` may still read them. Pages freed by `T` go to a pending list tagged `T` and
//! become reusable only when no reader holds a snapshot older than `T`. On disk the freelist
//! stores pending and reusable pages alike: after a restart there are no readers.
//!
//! Invariant that makes crashes safe: **a commit writes only pages that are free in the last
//! durable meta** (not reachable from its trees, not in its freelist chain). Pages of the
//! previous-but-one meta may be reused; that meta is only a fallback for a torn write of the
//! *next* meta, which cannot coexist with reuse (see step 3 below), and if ever chosen after
//! bit rot of the newest meta its reused pages fail the `txn_id` check instead of being served.
//!
//! ## Commit protocol
//!
//! For commit `T` (last durable meta `T-1`):
//!
//! 1. Build the new tree in memory from the old one plus the batch; allocate pages from the
//!    reusable free runs or above `page_count`; write the new freelist chain the same way. If
//!    the file is too short, grow it with `set_len` in chunks ([`db::growth_bytes`]).
//!    *Crash here:* nothing durable changed the meaning of the file; open finds meta `T-1`.
//! 2. Write every new page with positioned writes, then `fdatasync` (which also persists a new
//!    file length). *Crash before the sync completes:* any subset of the new pages may be on
//!    disk, torn or not; all are free in meta `T-1`, which is intact, so open finds `T-1`.
//! 3. Write meta `T` to slot `T % 2`, then `fdatasync`. *Crash before the sync completes:* the
//!    slot holds the old meta `T-2`, the new meta `T`, or a torn mix. A torn meta fails its
//!    checksum and open takes `T-1` from the other slot; an intact `T` (or `T-2`, which is older
//!    than `T-1`) loses to or wins over `T-1` by `txn_id`. Either way the pages the chosen meta
//!    reaches were synced in step 2 (for `T`) or were never overwritten (for `T-1`).
//! 4. After the sync returns, `T` is durable: publish it to new readers and move the pages it
//!    freed to the pending list.
//!
//! An I/O error in steps 1–3 leaves the store *failed*: every later commit returns
//! [`StoreError::Failed`] (a failed `fdatasync` is never retried; the page cache state is
//! unknown). Readers of already-published snapshots keep working.
//!
//! ## Reads
//!
//! Reads go through a read-only `mmap` of the file (`memmap2`). The file only ever grows while
//! open, so a reader's map stays valid; the writer maps again after growing and publishes the new
//! map with the next snapshot. Writes use `write_at` on the same file (not `O_DIRECT`), so the
//! map sees them through the shared page cache. A future `O_DIRECT`/io_uring write path must
//! keep that coherence (or read through its own page cache).
//!
//! ## Limits of this first cut
//!
//! - [`Store::commit`] is synchronous: `pwrite` and two `fdatasync`s on the calling thread. On
//!   a glommio reactor it belongs behind a DMA-file [`PageWriter`] with an async commit, or on
//!   a blocking thread.
//! - The freelist chain is rewritten whole by every commit: cost grows with the number of free
//!   *runs* (not pages). A heavily fragmented 100 GiB file wants an incremental freelist.
//! - The file never shrinks while open. Free pages at the top lower `page_count` (and so
//!   `size_in_use_bytes`) at once, but `size_bytes` only drops when a defrag copies the live
//!   pages into a new file.
//! - Each page visit checksums 4 KiB again; a per-map "verified" bitmap could skip repeats.
//! - A [`WriteBatch`] does not read its own writes; reads see the last commit.

pub mod copy;
pub mod db;
pub mod error;
pub mod freelist;
pub mod io;
pub mod meta;
pub mod node;
pub mod page;
pub mod tree_read;
pub mod tree_write;

#[cfg(test)]
mod tests;

pub use copy::{write_compact_copy, CopyReport};
pub use db::{
    DefragReport, DeleteRangeStep, OpenReport, ReadTxn, Stats, Store, StoreOptions, WriteBatch,
};
pub use error::StoreError;
pub use io::{FileWriter, PageWriter};
pub use node::{MAX_KEY_BYTES, MAX_VALUE_BYTES};
pub use page::PAGE_BYTES;
