//! Capstan's write-ahead log.
//!
//! An append-only log of opaque records (`kind` byte + payload) kept in
//! fixed-size, pre-zeroed segment files written with O_DIRECT through
//! glommio's [`DmaFile`](glommio::io::DmaFile). [`Wal::append`] buffers
//! records in memory; [`Wal::sync`] group-commits them: one write at the
//! tail (rotating segments as needed) and one `fdatasync` per touched
//! segment. Every record carries a CRC-32. [`Wal::open`] recovers every
//! record, truncates a torn tail of the last segment and refuses to open on
//! corruption anywhere else. A failed write or `fdatasync` is never
//! retried: the `Wal` becomes failed.
//!
//! Named crash and sleep failpoints on the durable paths of the whole server (this crate's and
//! the server's) live in [`failpoint`].
//!
//! The on-disk format, the rotation protocol and what recovery does after
//! a crash at each point are specified in `FORMAT.md` next to this crate's
//! `Cargo.toml`.
//!
//! A `Wal` is `!Send`: open and use it on one glommio executor.

mod error;
pub mod failpoint;
mod format;
mod recovery;
mod segment;
mod writer;

use std::path::PathBuf;

pub use error::WalError;
pub use failpoint::{
    clear_failpoints, set_failpoint, FailAction, FAILPOINT_ENV_VAR, WAL_AFTER_FDATASYNC,
    WAL_BEFORE_FDATASYNC, WAL_BEFORE_WRITE,
};
pub use format::{
    BLOCK_BYTES, FORMAT_VERSION, KIND_RESERVED_MIN, RECORD_ALIGN_BYTES, RECORD_HEADER_BYTES,
    RECORD_PAYLOAD_BYTES_MAX, SEGMENT_BYTES_DEFAULT, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN,
    SEGMENT_HEADER_BYTES,
};
pub use recovery::TAIL_CHECK_BYTES;
pub use segment::{prime_iopoll_probe, segment_file_name, IOPOLL_PROBE_FILE_NAME};
pub use writer::Wal;

/// Where the WAL lives and how big its segments are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalConfig {
    /// The WAL directory (created by `open` when missing).
    pub dir: PathBuf,
    /// Size of each new segment file: a multiple of [`BLOCK_BYTES`] between
    /// [`SEGMENT_BYTES_MIN`] and [`SEGMENT_BYTES_MAX`].
    pub segment_bytes: u64,
}

impl WalConfig {
    /// A config for `dir` with [`SEGMENT_BYTES_DEFAULT`] segments.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        WalConfig {
            dir: dir.into(),
            segment_bytes: SEGMENT_BYTES_DEFAULT,
        }
    }
}

/// One log record. `kind` is opaque to the WAL; callers use `1..=0xEF`
/// (0 and `0xF0..=0xFF` are reserved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub kind: u8,
    pub payload: Vec<u8>,
}

/// Where `open` found and truncated a torn tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The last segment's file.
    pub path: PathBuf,
    /// Byte offset in that file where valid data ended (0 when the segment
    /// header itself was damaged).
    pub offset: u64,
}

/// What `open` recovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Every valid record, oldest first.
    pub records: Vec<Record>,
    /// Set when the last segment had a torn tail that was truncated.
    pub torn_tail: Option<TornTail>,
    /// Which segment each record came from: `records` is these segments' records in order,
    /// `segments[i].records` of them from segment `segments[i].seq`.
    pub segments: Vec<SegmentRecords>,
}

/// How many of the recovered records one segment held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentRecords {
    pub seq: u64,
    pub records: usize,
}

/// What one `sync` wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Encoded record bytes made durable (excluding block padding).
    pub bytes_written: u64,
    /// Records made durable.
    pub records: u64,
}
