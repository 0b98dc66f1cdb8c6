//! The page store's one error type.

use std::path::PathBuf;

/// Everything the page store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O call failed. After a failed write or sync the store is failed.
    #[error("I/O error on {path} during {operation}: {source}")]
    Io {
        path: PathBuf,
        operation: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// Bytes on disk do not verify; they are never served as data.
    #[error("corrupt page store {path} at byte offset {offset_bytes}: {detail}")]
    Corruption {
        path: PathBuf,
        offset_bytes: u64,
        detail: String,
    },
    /// An earlier write or sync failed; the store accepts no more commits.
    #[error("page store {path} failed earlier ({detail}) and accepts no more commits")]
    Failed { path: PathBuf, detail: String },
    /// A key longer than [`crate::store::MAX_KEY_BYTES`].
    #[error("key of {key_bytes} bytes exceeds the limit of {max_bytes} bytes")]
    KeyTooLarge { key_bytes: usize, max_bytes: usize },
    /// A value longer than [`crate::store::MAX_VALUE_BYTES`].
    #[error("value of {value_bytes} bytes exceeds the limit of {max_bytes} bytes")]
    ValueTooLarge {
        value_bytes: usize,
        max_bytes: usize,
    },
}

pub type Result<T> = std::result::Result<T, StoreError>;
