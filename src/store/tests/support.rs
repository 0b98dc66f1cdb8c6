//! Write paths for tests: one that skips `fdatasync` (speed), one that records every call.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::store::{FileWriter, PageWriter, Store, StoreOptions};

/// Writes through to the file but does not sync: for tests that never simulate a crash.
pub struct NoSyncWriter(pub FileWriter);

impl PageWriter for NoSyncWriter {
    fn write_at(&mut self, bytes: &[u8], offset_bytes: u64) -> io::Result<()> {
        self.0.write_at(bytes, offset_bytes)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn set_len(&mut self, len_bytes: u64) -> io::Result<()> {
        self.0.set_len(len_bytes)
    }
}

pub fn open_fast(path: &Path) -> Store {
    Store::open_with_writer(path, StoreOptions::default(), |file: File| {
        Box::new(NoSyncWriter(FileWriter::new(file)))
    })
    .expect("open store")
}

/// One call on the write path.
#[derive(Clone, Debug)]
pub enum Event {
    Write { offset_bytes: u64, bytes: Vec<u8> },
    Sync,
    SetLen(u64),
}

/// Writes through to the file and records every call, in order.
pub struct RecordingWriter {
    pub inner: FileWriter,
    pub events: Arc<Mutex<Vec<Event>>>,
}

impl PageWriter for RecordingWriter {
    fn write_at(&mut self, bytes: &[u8], offset_bytes: u64) -> io::Result<()> {
        self.events.lock().expect("events").push(Event::Write {
            offset_bytes,
            bytes: bytes.to_vec(),
        });
        self.inner.write_at(bytes, offset_bytes)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.events.lock().expect("events").push(Event::Sync);
        self.inner.sync_data()
    }
    fn set_len(&mut self, len_bytes: u64) -> io::Result<()> {
        self.events
            .lock()
            .expect("events")
            .push(Event::SetLen(len_bytes));
        self.inner.set_len(len_bytes)
    }
}

/// Fails every call once `remaining_ok` calls have succeeded.
pub struct FailingWriter {
    pub inner: FileWriter,
    pub remaining_ok: usize,
}

impl FailingWriter {
    fn step(&mut self) -> io::Result<()> {
        if self.remaining_ok == 0 {
            return Err(io::Error::other("injected I/O failure"));
        }
        self.remaining_ok -= 1;
        Ok(())
    }
}

impl PageWriter for FailingWriter {
    fn write_at(&mut self, bytes: &[u8], offset_bytes: u64) -> io::Result<()> {
        self.step()?;
        self.inner.write_at(bytes, offset_bytes)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.step()?;
        self.inner.sync_data()
    }
    fn set_len(&mut self, len_bytes: u64) -> io::Result<()> {
        self.step()?;
        self.inner.set_len(len_bytes)
    }
}
