//! The `Wal` handle: buffering appends and group-committing them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use glommio::io::{Directory, DmaFile};

use crate::error::WalError;
use crate::failpoint::{self, WAL_AFTER_FDATASYNC, WAL_BEFORE_FDATASYNC, WAL_BEFORE_WRITE};
use crate::format::{
    align_down, align_up, encode_record, encoded_len, is_caller_kind, BLOCK_BYTES,
    RECORD_HEADER_BYTES, RECORD_PAYLOAD_BYTES_MAX, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN,
    SEGMENT_HEADER_BYTES,
};
use crate::recovery::recover;
use crate::segment::{
    close_quietly, create_segment, fdatasync, prime_iopoll_probe, segment_file_name, sync_dir,
    write_blocks,
};
use crate::{Recovered, SyncStats, WalConfig};

/// A segment that is no longer written to.
pub(crate) struct ClosedSegment {
    /// Offset right after its last record.
    pub data_end: u64,
}

/// The segment appends go to.
pub(crate) struct ActiveSegment {
    pub file: DmaFile,
    pub path: PathBuf,
    pub seq: u64,
    pub size_bytes: u64,
    /// Offset right after the last durable record.
    pub tail: u64,
    /// The durable bytes `[align_down(tail, BLOCK_BYTES), tail)`.
    pub tail_block: Vec<u8>,
}

/// Encoded records waiting for `sync`, all destined for segment `seq`.
struct PendingChunk {
    seq: u64,
    bytes: Vec<u8>,
    records: u64,
}

/// Where the next appended record will land once synced. `append` plans
/// rotation so each record is encoded (its checksum covers the segment
/// seq) for the segment it will be written to.
struct Plan {
    seq: u64,
    tail: u64,
    size_bytes: u64,
}

/// A write-ahead log in one directory. Used from one glommio executor.
pub struct Wal {
    config: WalConfig,
    dir: Directory,
    closed: Vec<ClosedSegment>,
    closed_data_bytes: u64,
    active: ActiveSegment,
    pending: Vec<PendingChunk>,
    pending_bytes: usize,
    plan: Plan,
    failed: bool,
    /// Told how long each group commit's fdatasync took (the caller's metrics).
    fdatasync_observer: Option<fn(Duration)>,
}

impl Wal {
    /// Opens (creating the directory and first segment when empty) and recovers.
    pub async fn open(config: WalConfig) -> Result<(Wal, Recovered), WalError> {
        validate(&config)?;
        if !config.dir.is_dir() {
            std::fs::create_dir_all(&config.dir).map_err(|e| WalError::io(&config.dir, e))?;
            if let Some(parent) = config.dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                let parent_dir = Directory::open(parent)
                    .await
                    .map_err(|e| WalError::io(parent, e))?;
                let synced = sync_dir(&parent_dir, parent).await;
                let _ = parent_dir.close().await;
                synced?;
            }
        }
        prime_iopoll_probe(&config.dir).await?;
        let dir = Directory::open(&config.dir)
            .await
            .map_err(|e| WalError::io(&config.dir, e))?;
        let state = recover(&config, &dir).await?;
        let closed_data_bytes = state
            .closed
            .iter()
            .map(|c| c.data_end - SEGMENT_HEADER_BYTES)
            .sum();
        let plan = Plan {
            seq: state.active.seq,
            tail: state.active.tail,
            size_bytes: state.active.size_bytes,
        };
        let wal = Wal {
            config,
            dir,
            closed: state.closed,
            closed_data_bytes,
            active: state.active,
            pending: Vec::new(),
            pending_bytes: 0,
            plan,
            failed: false,
            fdatasync_observer: None,
        };
        wal.note_durable_tail();
        let recovered = Recovered {
            records: state.records,
            torn_tail: state.torn_tail,
            segments: state.segments,
        };
        Ok((wal, recovered))
    }

    /// From now on, `observer` is told the duration of every group commit's fdatasync (one
    /// `Instant` pair per fdatasync; etcd's `etcd_disk_wal_fsync_duration_seconds`).
    pub fn set_fdatasync_observer(&mut self, observer: fn(Duration)) {
        self.fdatasync_observer = Some(observer);
    }

    /// Largest payload `append` accepts with this configuration.
    pub fn payload_bytes_max(&self) -> usize {
        payload_limit(self.config.segment_bytes)
    }

    /// Buffers one record in memory; nothing is written until `sync`.
    pub fn append(&mut self, kind: u8, payload: &[u8]) -> Result<(), WalError> {
        if self.failed {
            return Err(WalError::Failed);
        }
        if !is_caller_kind(kind) {
            return Err(WalError::ReservedKind { kind });
        }
        let limit_bytes = self.payload_bytes_max();
        if payload.len() > limit_bytes {
            return Err(WalError::RecordTooLarge {
                bytes: payload.len(),
                limit_bytes,
            });
        }
        let len = encoded_len(payload.len());
        if self.plan.tail + len > self.plan.size_bytes {
            self.plan = Plan {
                seq: self.plan.seq + 1,
                tail: SEGMENT_HEADER_BYTES,
                size_bytes: self.config.segment_bytes,
            };
        }
        debug_assert!(self.plan.tail + len <= self.plan.size_bytes);
        let seq = self.plan.seq;
        if self.pending.last().map(|c| c.seq) != Some(seq) {
            self.pending.push(PendingChunk {
                seq,
                bytes: Vec::new(),
                records: 0,
            });
        }
        let chunk = self
            .pending
            .last_mut()
            .expect("a chunk for the planned segment was just pushed");
        encode_record(&mut chunk.bytes, seq, kind, payload);
        chunk.records += 1;
        self.plan.tail += len;
        self.pending_bytes += len as usize;
        Ok(())
    }

    /// Group commit: writes every record appended since the last sync with
    /// O_DIRECT at the tail (rotating segments as needed), then one
    /// fdatasync per touched segment. When it returns `Ok`, every appended
    /// record is durable. Any error leaves the `Wal` failed.
    pub async fn sync(&mut self) -> Result<SyncStats, WalError> {
        if self.failed {
            return Err(WalError::Failed);
        }
        let result = self.sync_inner().await;
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    async fn sync_inner(&mut self) -> Result<SyncStats, WalError> {
        let mut stats = SyncStats::default();
        let chunks = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        for chunk in chunks {
            if chunk.seq != self.active.seq {
                assert_eq!(
                    chunk.seq,
                    self.active.seq + 1,
                    "planned rotation skips a seq"
                );
                self.rotate().await?;
            }
            self.write_chunk(&chunk.bytes).await?;
            stats.bytes_written += chunk.bytes.len() as u64;
            stats.records += chunk.records;
        }
        Ok(stats)
    }

    /// Writes `bytes` (whole records) at the active tail and fdatasyncs.
    async fn write_chunk(&mut self, bytes: &[u8]) -> Result<(), WalError> {
        let a = &mut self.active;
        let start = align_down(a.tail, BLOCK_BYTES);
        let new_tail = a.tail + bytes.len() as u64;
        assert!(
            new_tail <= a.size_bytes,
            "planned records overflow the segment"
        );
        let end = align_up(new_tail, BLOCK_BYTES);
        let mut buf = Vec::with_capacity((end - start) as usize);
        buf.extend_from_slice(&a.tail_block);
        buf.extend_from_slice(bytes);
        buf.resize((end - start) as usize, 0);
        failpoint::check(WAL_BEFORE_WRITE).map_err(|e| WalError::io(&a.path, e))?;
        write_blocks(&a.file, &a.path, start, &buf).await?;
        failpoint::check(WAL_BEFORE_FDATASYNC).map_err(|e| WalError::io(&a.path, e))?;
        failpoint::hit("walBeforeSync");
        let fdatasync_started = Instant::now();
        fdatasync(&a.file, &a.path).await?;
        if let Some(observe) = self.fdatasync_observer {
            observe(fdatasync_started.elapsed());
        }
        failpoint::check(WAL_AFTER_FDATASYNC).map_err(|e| WalError::io(&a.path, e))?;
        let keep_from = (align_down(new_tail, BLOCK_BYTES) - start) as usize;
        let keep_to = (new_tail - start) as usize;
        a.tail_block.clear();
        a.tail_block.extend_from_slice(&buf[keep_from..keep_to]);
        a.tail = new_tail;
        self.note_durable_tail();
        failpoint::hit("walAfterSync");
        Ok(())
    }

    /// Tells the failpoints how far the active segment is durable (for `crash-lose-unsynced`).
    fn note_durable_tail(&self) {
        let a = &self.active;
        failpoint::wal_durable(&self.config.dir, &a.path, a.tail, a.size_bytes);
    }

    /// Creates the next segment and makes it the active one. The active
    /// segment's data is already durable.
    async fn rotate(&mut self) -> Result<(), WalError> {
        failpoint::hit("walBeforeRotate");
        let seq = self.active.seq + 1;
        let size_bytes = self.config.segment_bytes;
        let (file, path) = create_segment(&self.config.dir, &self.dir, seq, size_bytes).await?;
        let mut tail_block = vec![0u8; SEGMENT_HEADER_BYTES as usize];
        crate::format::encode_segment_header(&mut tail_block, seq, size_bytes);
        let old = std::mem::replace(
            &mut self.active,
            ActiveSegment {
                file,
                path,
                seq,
                size_bytes,
                tail: SEGMENT_HEADER_BYTES,
                tail_block,
            },
        );
        self.closed_data_bytes += old.tail - SEGMENT_HEADER_BYTES;
        self.closed.push(ClosedSegment { data_end: old.tail });
        close_quietly(old.file, &old.path).await;
        self.note_durable_tail();
        failpoint::hit("walAfterRotate");
        Ok(())
    }

    /// The segment the most recently appended record goes to (once synced); the active
    /// segment when nothing is pending.
    pub fn append_seq(&self) -> u64 {
        self.plan.seq
    }

    /// The oldest segment still kept.
    pub fn first_seq(&self) -> u64 {
        self.active.seq - self.closed.len() as u64
    }

    /// Deletes the sealed segments older than `seq` (never the active one), oldest first, then
    /// fsyncs the directory; returns how many were deleted. A crash part-way leaves a
    /// contiguous run of newer segments, which `open` accepts. The caller must no longer need
    /// any of their records.
    pub async fn release_before(&mut self, seq: u64) -> Result<usize, WalError> {
        if self.failed {
            return Err(WalError::Failed);
        }
        let release_to = seq.min(self.active.seq);
        let mut released = 0;
        while self.first_seq() < release_to {
            let first = self.first_seq();
            let path = self.config.dir.join(segment_file_name(first));
            std::fs::remove_file(&path).map_err(|e| WalError::io(&path, e))?;
            let segment = self.closed.remove(0);
            self.closed_data_bytes -= segment.data_end - SEGMENT_HEADER_BYTES;
            released += 1;
        }
        if released > 0 {
            sync_dir(&self.dir, &self.config.dir).await?;
        }
        Ok(released)
    }

    /// Bytes appended but not yet synced (encoded size).
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.closed.len() + 1
    }

    /// Bytes of valid, synced log data across segments (encoded records,
    /// without segment headers and the zeroed rest of each segment).
    pub fn total_bytes(&self) -> u64 {
        self.closed_data_bytes + (self.active.tail - SEGMENT_HEADER_BYTES)
    }

    /// True after a failed write or fdatasync.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// Closes the files. Pending (unsynced) records are dropped.
    pub async fn close(self) -> Result<(), WalError> {
        failpoint::wal_closed(&self.config.dir);
        let Wal { active, dir, .. } = self;
        let r = active.file.close().await;
        let _ = dir.close().await;
        r.map_err(|e| WalError::io(&active.path, e))
    }
}

fn payload_limit(segment_bytes: u64) -> usize {
    // `segment_bytes - SEGMENT_HEADER_BYTES` is a multiple of 8, so a record
    // whose unpadded size fits also fits once padded.
    let room = segment_bytes - SEGMENT_HEADER_BYTES - RECORD_HEADER_BYTES as u64;
    usize::try_from(room)
        .unwrap_or(usize::MAX)
        .min(RECORD_PAYLOAD_BYTES_MAX)
}

fn validate(config: &WalConfig) -> Result<(), WalError> {
    let b = config.segment_bytes;
    if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&b) || b % BLOCK_BYTES != 0 {
        return Err(WalError::InvalidConfig {
            reason: format!(
                "segment_bytes {b} must be a multiple of {BLOCK_BYTES} between \
                 {SEGMENT_BYTES_MIN} and {SEGMENT_BYTES_MAX}"
            ),
        });
    }
    Ok(())
}
