//! The WAL's error type.

use std::path::PathBuf;

/// Everything that can go wrong in the WAL.
#[derive(thiserror::Error, Debug)]
pub enum WalError {
    /// An I/O operation failed. After a failed write or fdatasync the `Wal`
    /// is failed and later calls return [`WalError::Failed`].
    #[error("wal: i/o error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Data on disk is damaged somewhere other than a torn tail.
    #[error("wal: corrupt record in {} at offset {offset}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// A segment was written by a format version this code cannot read.
    #[error("wal: unsupported format version {version} in {}", path.display())]
    UnsupportedVersion { path: PathBuf, version: u32 },
    /// An earlier write or fdatasync failed; the WAL accepts no more calls.
    #[error("wal: failed after an earlier i/o error; reopen to recover")]
    Failed,
    /// The payload is larger than a record may be.
    #[error("wal: record payload of {bytes} bytes exceeds the limit of {limit_bytes} bytes")]
    RecordTooLarge { bytes: usize, limit_bytes: usize },
    /// The kind is 0 or in the range reserved for the WAL (0xF0..=0xFF).
    #[error("wal: record kind {kind:#04x} is reserved (callers use 0x01..=0xef)")]
    ReservedKind { kind: u8 },
    /// The configuration is unusable.
    #[error("wal: invalid config: {reason}")]
    InvalidConfig { reason: String },
}

impl WalError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: impl Into<std::io::Error>) -> Self {
        WalError::Io {
            path: path.into(),
            source: source.into(),
        }
    }

    pub(crate) fn corrupt(
        path: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        WalError::Corrupt {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }
}
