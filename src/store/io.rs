//! The write path as a narrow trait: positioned writes, `fdatasync` and `set_len`.
//!
//! The store never writes its file any other way, so a test can record every call (and build
//! the image a crash would leave), fail a call on purpose, or a later version can move the
//! writes to glommio DMA / io_uring without touching the B-tree.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Where the store's page writes go.
pub trait PageWriter: Send {
    /// Writes all of `bytes` at byte `offset_bytes` of the file.
    fn write_at(&mut self, bytes: &[u8], offset_bytes: u64) -> io::Result<()>;
    /// Makes every earlier write and length change durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Sets the file length (the store only ever grows it).
    fn set_len(&mut self, len_bytes: u64) -> io::Result<()>;
}

/// The plain implementation: `pwrite` and `fdatasync` on the store's file.
pub struct FileWriter {
    file: File,
}

impl FileWriter {
    pub fn new(file: File) -> FileWriter {
        FileWriter { file }
    }
}

impl PageWriter for FileWriter {
    fn write_at(&mut self, bytes: &[u8], offset_bytes: u64) -> io::Result<()> {
        self.file.write_all_at(bytes, offset_bytes)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn set_len(&mut self, len_bytes: u64) -> io::Result<()> {
        self.file.set_len(len_bytes)
    }
}
