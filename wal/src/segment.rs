//! Segment files: naming, creation (tmp, pre-allocate, zero-fill, fdatasync,
//! rename, directory fsync) and whole-block O_DIRECT reads and writes.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::{Directory, DmaFile, OpenOptions};

use crate::error::WalError;
use crate::format::{align_up, encode_segment_header, BLOCK_BYTES, SEGMENT_HEADER_BYTES};

const _: () = assert!(SEGMENT_HEADER_BYTES <= BLOCK_BYTES);

/// Largest single O_DIRECT write issued by the WAL.
pub const WRITE_CHUNK_BYTES_MAX: usize = 1024 * 1024;
/// Largest single O_DIRECT read issued during recovery.
pub const READ_CHUNK_BYTES_MAX: usize = 1024 * 1024;
/// Chunk reads in flight at once while a segment is read whole.
pub const READS_IN_FLIGHT_MAX: usize = 8;

const SEGMENT_SUFFIX: &str = ".wal";
const TMP_SUFFIX: &str = ".wal.tmp";
const SEQ_HEX_DIGITS: usize = 16;

/// File name of segment `seq`.
pub fn segment_file_name(seq: u64) -> String {
    format!("{seq:016x}{SEGMENT_SUFFIX}")
}

/// What a directory entry's name says it is.
#[derive(Debug, PartialEq, Eq)]
pub enum EntryKind {
    Segment(u64),
    Tmp,
    Other,
}

fn parse_seq(hex: &str) -> Option<u64> {
    if hex.len() != SEQ_HEX_DIGITS || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Classifies a directory entry name.
pub fn classify_entry(name: &str) -> EntryKind {
    if name == IOPOLL_PROBE_FILE_NAME {
        return EntryKind::Tmp;
    }
    if let Some(stem) = name.strip_suffix(TMP_SUFFIX) {
        if parse_seq(stem).is_some() {
            return EntryKind::Tmp;
        }
    } else if let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) {
        if let Some(seq) = parse_seq(stem) {
            return EntryKind::Segment(seq);
        }
    }
    EntryKind::Other
}

/// Name of the scratch file used by [`prime_iopoll_probe`].
pub const IOPOLL_PROBE_FILE_NAME: &str = ".capstan-wal-iopoll-probe";

/// Makes glommio's per-thread, per-device io-poll probe run against a
/// non-empty file.
///
/// glommio decides once per executor thread and block device whether
/// O_DIRECT I/O may use the polled io_uring ring, by reading the first 512
/// bytes of the first `DmaFile` opened there. If that file is empty, the
/// read succeeds at end-of-file without exercising polling, the device is
/// wrongly recorded as pollable, and every later O_DIRECT read on it fails
/// with `EOPNOTSUPP` (seen on ext4 over virtio-blk). This writes a
/// `BLOCK_BYTES` file in `dir` with ordinary buffered I/O, opens it as a
/// `DmaFile` (running the probe on real data), then removes it. It has no
/// effect if a `DmaFile` was already opened on this thread and device.
pub async fn prime_iopoll_probe(dir: &Path) -> Result<(), WalError> {
    let path = dir.join(IOPOLL_PROBE_FILE_NAME);
    std::fs::write(&path, vec![0u8; BLOCK_BYTES as usize]).map_err(|e| WalError::io(&path, e))?;
    let opened = DmaFile::open(&path).await;
    let removed = std::fs::remove_file(&path);
    let file = opened.map_err(|e| WalError::io(&path, e))?;
    close_quietly(file, &path).await;
    removed.map_err(|e| WalError::io(&path, e))
}

/// Opens an existing segment for reading and writing with O_DIRECT.
pub async fn open_rw(path: &Path) -> Result<DmaFile, WalError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .dma_open(path)
        .await
        .map_err(|e| WalError::io(path, e))?;
    check_alignment(&file, path)?;
    Ok(file)
}

/// Opens an existing segment for reading with O_DIRECT.
pub async fn open_ro(path: &Path) -> Result<DmaFile, WalError> {
    let file = DmaFile::open(path)
        .await
        .map_err(|e| WalError::io(path, e))?;
    check_alignment(&file, path)?;
    Ok(file)
}

fn check_alignment(file: &DmaFile, path: &Path) -> Result<(), WalError> {
    let a = file.alignment();
    if a == 0 || BLOCK_BYTES % a != 0 {
        return Err(WalError::io(
            path,
            std::io::Error::other(format!(
                "device O_DIRECT alignment {a} does not divide BLOCK_BYTES ({BLOCK_BYTES})"
            )),
        ));
    }
    Ok(())
}

/// Closes a file whose data is already durable; a close error is only logged.
pub async fn close_quietly(file: DmaFile, path: &Path) {
    if let Err(e) = file.close().await {
        tracing::warn!(path = %path.display(), error = %e, "wal: closing segment failed");
    }
}

/// Reads a whole file with O_DIRECT. `len_bytes` is its size (already
/// checked to be sane by the caller); a shorter read stops early.
pub async fn read_all(file: &DmaFile, path: &Path, len_bytes: u64) -> Result<Vec<u8>, WalError> {
    let cap = usize::try_from(len_bytes)
        .map_err(|_| WalError::io(path, std::io::Error::other("segment too large for memory")))?;
    let mut out = Vec::with_capacity(cap);
    let mut pos = 0u64;
    while pos < len_bytes {
        // Up to READS_IN_FLIGHT_MAX chunks are read at once (a start-up reads whole segments,
        // and one read at a time leaves the device idle between them); they are used in order.
        let mut reads = Vec::with_capacity(READS_IN_FLIGHT_MAX);
        let mut at = pos;
        while at < len_bytes && reads.len() < READS_IN_FLIGHT_MAX {
            let want = align_up(
                (len_bytes - at).min(READ_CHUNK_BYTES_MAX as u64),
                BLOCK_BYTES,
            );
            reads.push(async move { (want, file.read_at_aligned(at, want as usize).await) });
            at += want;
        }
        for (want, got) in futures::future::join_all(reads).await {
            let got = got.map_err(|e| WalError::io(path, e))?;
            let keep = got.len().min(cap - out.len());
            out.extend_from_slice(&got[..keep]);
            pos += got.len() as u64;
            if (got.len() as u64) < want {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// Writes `data` (its length a multiple of `BLOCK_BYTES`) at the aligned
/// offset `pos`, in chunks of at most `WRITE_CHUNK_BYTES_MAX`.
pub async fn write_blocks(
    file: &DmaFile,
    path: &Path,
    pos: u64,
    data: &[u8],
) -> Result<(), WalError> {
    assert_eq!(pos % BLOCK_BYTES, 0, "unaligned write offset");
    assert_eq!(data.len() as u64 % BLOCK_BYTES, 0, "unaligned write length");
    let mut done = 0usize;
    while done < data.len() {
        let n = (data.len() - done).min(WRITE_CHUNK_BYTES_MAX);
        let mut buf = file.alloc_dma_buffer(n);
        buf.as_bytes_mut().copy_from_slice(&data[done..done + n]);
        let wrote = file
            .write_at(buf, pos + done as u64)
            .await
            .map_err(|e| WalError::io(path, e))?;
        if wrote != n {
            return Err(short_write(path, wrote, n));
        }
        done += n;
    }
    Ok(())
}

fn short_write(path: &Path, wrote: usize, wanted: usize) -> WalError {
    WalError::io(
        path,
        std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            format!("short write: {wrote} of {wanted} bytes"),
        ),
    )
}

/// Writes zeros over `[from, to)` (both multiples of `BLOCK_BYTES`).
pub async fn write_zeros(file: &DmaFile, path: &Path, from: u64, to: u64) -> Result<(), WalError> {
    assert_eq!(from % BLOCK_BYTES, 0, "unaligned zero-fill start");
    assert_eq!(to % BLOCK_BYTES, 0, "unaligned zero-fill end");
    if from >= to {
        return Ok(());
    }
    let chunk = ((to - from).min(WRITE_CHUNK_BYTES_MAX as u64)) as usize;
    let mut zero = file.alloc_dma_buffer(chunk);
    zero.as_bytes_mut().fill(0);
    let zero = Rc::new(zero);
    let mut pos = from;
    while pos < to {
        let n = (to - pos).min(chunk as u64) as usize;
        let wrote = if n == chunk {
            file.write_rc_at(zero.clone(), pos).await
        } else {
            let mut small = file.alloc_dma_buffer(n);
            small.as_bytes_mut().fill(0);
            file.write_at(small, pos).await
        }
        .map_err(|e| WalError::io(path, e))?;
        if wrote != n {
            return Err(short_write(path, wrote, n));
        }
        pos += n as u64;
    }
    Ok(())
}

/// etcd's `warnSyncDuration`: a WAL fdatasync slower than this logs `slow fdatasync`.
pub const SLOW_FDATASYNC_WARN: std::time::Duration = std::time::Duration::from_secs(1);

/// fdatasync with the path in the error; a slow one is logged as etcd logs it (`slow fdatasync`
/// with `took` and `expected-duration`).
pub async fn fdatasync(file: &DmaFile, path: &Path) -> Result<(), WalError> {
    let started = std::time::Instant::now();
    file.fdatasync().await.map_err(|e| WalError::io(path, e))?;
    let took = started.elapsed();
    if took > SLOW_FDATASYNC_WARN {
        tracing::warn!(
            took = format!("{took:?}"),
            expected_duration = format!("{SLOW_FDATASYNC_WARN:?}"),
            "slow fdatasync"
        );
    }
    Ok(())
}

/// fsyncs the WAL directory.
pub async fn sync_dir(dir: &Directory, dir_path: &Path) -> Result<(), WalError> {
    dir.sync().await.map_err(|e| WalError::io(dir_path, e))
}

/// Creates segment `seq` of `segment_bytes` bytes: `*.tmp`, pre-allocate,
/// header + zero-fill, fdatasync, rename, directory fsync. Returns the open
/// (read-write) file, its final path and the header block's bytes.
pub async fn create_segment(
    dir_path: &Path,
    dir: &Directory,
    seq: u64,
    segment_bytes: u64,
) -> Result<(DmaFile, PathBuf), WalError> {
    let path = dir_path.join(segment_file_name(seq));
    let tmp = dir_path.join(format!("{seq:016x}{TMP_SUFFIX}"));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .dma_open(&tmp)
        .await
        .map_err(|e| WalError::io(&tmp, e))?;
    check_alignment(&file, &tmp)?;
    file.pre_allocate(segment_bytes, false)
        .await
        .map_err(|e| WalError::io(&tmp, e))?;
    let mut first = vec![0u8; BLOCK_BYTES as usize];
    encode_segment_header(&mut first, seq, segment_bytes);
    write_blocks(&file, &tmp, 0, &first).await?;
    write_zeros(&file, &tmp, BLOCK_BYTES, segment_bytes).await?;
    fdatasync(&file, &tmp).await?;
    file.rename(&path)
        .await
        .map_err(|e| WalError::io(&tmp, e))?;
    sync_dir(dir, dir_path).await?;
    Ok((file, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(segment_file_name(1), "0000000000000001.wal");
        assert_eq!(
            classify_entry("0000000000000001.wal"),
            EntryKind::Segment(1)
        );
        assert_eq!(
            classify_entry("00000000000000ff.wal"),
            EntryKind::Segment(255)
        );
        assert_eq!(classify_entry("0000000000000001.wal.tmp"), EntryKind::Tmp);
        assert_eq!(classify_entry("1.wal"), EntryKind::Other);
        assert_eq!(classify_entry("000000000000000g.wal"), EntryKind::Other);
        assert_eq!(classify_entry("notes.txt"), EntryKind::Other);
    }
}
