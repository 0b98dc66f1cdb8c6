//! Recovery: reads every segment, checks it, tells a torn tail from
//! corruption and repairs a torn tail (see `FORMAT.md`, "Recovery").

use std::path::{Path, PathBuf};

use glommio::io::Directory;

use crate::error::WalError;
use crate::format::{
    align_down, align_up, decode_record, decode_segment_header, encode_segment_header,
    is_valid_record_at, Decoded, HeaderError, BLOCK_BYTES, RECORD_ALIGN_BYTES, SEGMENT_BYTES_MAX,
    SEGMENT_HEADER_BYTES,
};
use crate::segment::{
    classify_entry, close_quietly, create_segment, fdatasync, open_ro, open_rw, read_all,
    segment_file_name, write_blocks, write_zeros, EntryKind,
};
use crate::writer::{ActiveSegment, ClosedSegment};
use crate::{Record, SegmentRecords, TornTail, WalConfig};

/// What recovery hands to the writer.
pub(crate) struct RecoveredState {
    pub records: Vec<Record>,
    pub segments: Vec<SegmentRecords>,
    pub torn_tail: Option<TornTail>,
    pub closed: Vec<ClosedSegment>,
    pub active: ActiveSegment,
}

/// The result of decoding one segment's bytes, before any policy.
#[derive(Debug)]
pub(crate) struct Scan {
    /// `Ok(segment_bytes)` from the header, or why the header is bad.
    pub header: Result<u64, HeaderError>,
    pub records: Vec<Record>,
    /// Offset right after the last valid record.
    pub data_end: u64,
    /// The first invalid record: offset and reason.
    pub invalid: Option<(u64, &'static str)>,
}

/// Decodes the header and the records of one segment.
pub(crate) fn scan_segment(data: &[u8], seq: u64) -> Scan {
    let header = decode_segment_header(data, seq);
    let mut scan = Scan {
        header: header.clone(),
        records: Vec::new(),
        data_end: SEGMENT_HEADER_BYTES,
        invalid: None,
    };
    let Ok(segment_bytes) = header else {
        return scan;
    };
    let limit = data
        .len()
        .min(usize::try_from(segment_bytes).unwrap_or(usize::MAX));
    let data = &data[..limit];
    let mut at = SEGMENT_HEADER_BYTES;
    loop {
        match decode_record(data, at, seq) {
            Decoded::Record {
                kind,
                payload,
                next,
            } => {
                scan.records.push(Record {
                    kind,
                    payload: payload.to_vec(),
                });
                at = next;
            }
            Decoded::End => break,
            Decoded::Invalid(reason) => {
                scan.invalid = Some((at, reason));
                break;
            }
        }
    }
    scan.data_end = at;
    scan
}

/// First valid record at an 8-aligned offset in `[from, data.len())`.
pub(crate) fn find_valid_record(data: &[u8], from: u64, seq: u64) -> Option<u64> {
    let mut at = align_up(from, RECORD_ALIGN_BYTES);
    while at < data.len() as u64 {
        if is_valid_record_at(data, at, seq) {
            return Some(at);
        }
        at += RECORD_ALIGN_BYTES;
    }
    None
}

/// Bytes looked at together by the zero scans: a whole block is OR-ed at once (which the
/// compiler vectorizes), and only a block with a non-zero byte is searched byte by byte. A
/// start-up scans the rest of a pre-zeroed 64 MiB segment this way.
const ZERO_SCAN_BYTES: usize = 4096;

fn is_all_zero(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |any, byte| any | byte) == 0
}

fn first_nonzero(data: &[u8], from: u64) -> Option<u64> {
    let from = usize::try_from(from).ok()?;
    let rest = data.get(from..)?;
    let (block, chunk) = rest
        .chunks(ZERO_SCAN_BYTES)
        .enumerate()
        .find(|(_, chunk)| !is_all_zero(chunk))?;
    let within = chunk.iter().position(|b| *b != 0)?;
    Some((from + block * ZERO_SCAN_BYTES + within) as u64)
}

fn last_nonzero_end(data: &[u8]) -> u64 {
    let Some((block, chunk)) = data
        .chunks(ZERO_SCAN_BYTES)
        .enumerate()
        .rev()
        .find(|(_, chunk)| !is_all_zero(chunk))
    else {
        return 0;
    };
    let within = chunk.iter().rposition(|b| *b != 0).unwrap_or(0);
    (block * ZERO_SCAN_BYTES + within) as u64 + 1
}

fn header_error(path: &Path, e: HeaderError) -> WalError {
    match e {
        HeaderError::Version(version) => WalError::UnsupportedVersion {
            path: path.to_path_buf(),
            version,
        },
        HeaderError::Short => WalError::corrupt(path, 0, "segment header: file too short"),
        HeaderError::Bad(reason) => WalError::corrupt(path, 0, reason),
    }
}

/// Applies the non-last-segment policy: anything wrong is corruption.
pub(crate) fn check_sealed(path: &Path, data: &[u8], scan: Scan) -> Result<Scan, WalError> {
    let segment_bytes = match &scan.header {
        Ok(b) => *b,
        Err(e) => return Err(header_error(path, e.clone())),
    };
    let len = data.len() as u64;
    if len < segment_bytes {
        return Err(WalError::corrupt(
            path,
            len,
            format!("segment file is {len} bytes, its header says {segment_bytes}"),
        ));
    }
    if let Some((offset, reason)) = scan.invalid {
        return Err(WalError::corrupt(path, offset, reason));
    }
    let limit = segment_bytes as usize;
    if let Some(offset) = first_nonzero(&data[..limit], scan.data_end) {
        return Err(WalError::corrupt(
            path,
            offset,
            "non-zero bytes after the end of data in a sealed segment",
        ));
    }
    Ok(scan)
}

/// Policy decision for the last segment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TailVerdict {
    /// Nothing to repair.
    Clean,
    /// Torn tail at `offset` (= the end of valid data, or 0 for a bad
    /// header); rewrite `[align_down(valid_end), zero_to)`.
    Torn { offset: u64, zero_to: u64 },
}

/// Applies the last-segment policy. `fallback_segment_bytes` sizes a
/// segment whose header is unreadable. Returns the segment size and verdict.
pub(crate) fn check_last(
    path: &Path,
    seq: u64,
    data: &[u8],
    scan: &Scan,
    fallback_segment_bytes: u64,
) -> Result<(u64, TailVerdict), WalError> {
    let len = data.len() as u64;
    let (segment_bytes, bad) = match &scan.header {
        Ok(b) => (*b, scan.invalid.map(|(o, r)| (o, r.to_string()))),
        Err(HeaderError::Version(v)) => {
            return Err(header_error(path, HeaderError::Version(*v)));
        }
        Err(HeaderError::Short) => (
            fallback_segment_bytes,
            Some((0, "segment header: file too short".to_string())),
        ),
        Err(HeaderError::Bad(r)) => (
            fallback_segment_bytes.max(align_up(len, BLOCK_BYTES)),
            Some((0, r.clone())),
        ),
    };
    let limit = len.min(segment_bytes);
    let body = &data[..limit as usize];
    let end = scan.data_end;
    let bad = bad.or_else(|| {
        first_nonzero(body, end).map(|_| (end, "non-zero bytes after the end of data".to_string()))
    });
    let short = len < segment_bytes;
    if bad.is_none() && !short {
        return Ok((segment_bytes, TailVerdict::Clean));
    }
    let torn_offset = bad.as_ref().map(|(o, _)| *o).unwrap_or(end);
    if let Some((offset, reason)) = &bad {
        if let Some(valid) = find_valid_record(body, offset + RECORD_ALIGN_BYTES, seq) {
            return Err(WalError::corrupt(
                path,
                *offset,
                format!("{reason} (a valid record follows at offset {valid})"),
            ));
        }
    }
    let zero_to = if short {
        segment_bytes
    } else {
        align_up(last_nonzero_end(body).max(end), BLOCK_BYTES)
    };
    Ok((
        segment_bytes,
        TailVerdict::Torn {
            offset: torn_offset,
            zero_to,
        },
    ))
}

/// Lists segments (sorted), deleting leftover `*.tmp` files.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, WalError> {
    let mut segs = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| WalError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| WalError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            tracing::warn!(dir = %dir.display(), name = ?name, "wal: ignoring unexpected file");
            continue;
        };
        let path = entry.path();
        match classify_entry(name) {
            EntryKind::Segment(seq) => segs.push((seq, path)),
            EntryKind::Tmp => {
                tracing::info!(path = %path.display(), "wal: removing unfinished segment");
                std::fs::remove_file(&path).map_err(|e| WalError::io(&path, e))?;
            }
            EntryKind::Other => {
                tracing::warn!(path = %path.display(), "wal: ignoring unexpected file");
            }
        }
    }
    segs.sort();
    for w in segs.windows(2) {
        if w[1].0 != w[0].0 + 1 {
            return Err(WalError::corrupt(
                &w[1].1,
                0,
                format!(
                    "segment sequence gap: the previous segment is {}",
                    segment_file_name(w[0].0)
                ),
            ));
        }
    }
    Ok(segs)
}

async fn file_len(path: &Path, file: &glommio::io::DmaFile) -> Result<u64, WalError> {
    let len = file.file_size().await.map_err(|e| WalError::io(path, e))?;
    if len > SEGMENT_BYTES_MAX {
        return Err(WalError::corrupt(
            path,
            SEGMENT_BYTES_MAX,
            format!("segment file is {len} bytes, more than SEGMENT_BYTES_MAX"),
        ));
    }
    Ok(len)
}

/// Runs the whole recovery of `config.dir` (which exists).
pub(crate) async fn recover(
    config: &WalConfig,
    dir: &Directory,
) -> Result<RecoveredState, WalError> {
    let segs = list_segments(&config.dir)?;
    let Some(((last_seq, last_path), sealed)) = segs.split_last() else {
        let (file, path) = create_segment(&config.dir, dir, 1, config.segment_bytes).await?;
        let mut tail_block = vec![0u8; SEGMENT_HEADER_BYTES as usize];
        encode_segment_header(&mut tail_block, 1, config.segment_bytes);
        return Ok(RecoveredState {
            records: Vec::new(),
            segments: vec![SegmentRecords { seq: 1, records: 0 }],
            torn_tail: None,
            closed: Vec::new(),
            active: ActiveSegment {
                file,
                path,
                seq: 1,
                size_bytes: config.segment_bytes,
                tail: SEGMENT_HEADER_BYTES,
                tail_block,
            },
        });
    };

    let mut records = Vec::new();
    let mut segments = Vec::new();
    let mut closed = Vec::new();
    for (seq, path) in sealed {
        let file = open_ro(path).await?;
        let len = file_len(path, &file).await;
        let data = match len {
            Ok(len) => read_all(&file, path, len).await,
            Err(e) => Err(e),
        };
        close_quietly(file, path).await;
        let data = data?;
        let scan = check_sealed(path, &data, scan_segment(&data, *seq))?;
        closed.push(ClosedSegment {
            data_end: scan.data_end,
        });
        segments.push(SegmentRecords {
            seq: *seq,
            records: scan.records.len(),
        });
        records.extend(scan.records);
    }

    let file = open_rw(last_path).await?;
    let len = file_len(last_path, &file).await?;
    let (data, scan, whole) = read_last_segment(&file, last_path, *last_seq, len).await?;
    let (size_bytes, verdict) = if !whole {
        // A clean prefix (`read_last_segment`): the file is whole, its header valid.
        (len, TailVerdict::Clean)
    } else {
        check_last(last_path, *last_seq, &data, &scan, config.segment_bytes)?
    };
    let end = scan.data_end;
    let block_start = align_down(end, BLOCK_BYTES);
    // `end` may lie past a cut-off file's end when only the last record's
    // zero padding was lost; the missing bytes are that padding.
    let mut tail_block = data
        .get(block_start as usize..(end as usize).min(data.len()))
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    tail_block.resize((end - block_start) as usize, 0);
    let mut torn_tail = None;
    if let TailVerdict::Torn { offset, zero_to } = verdict {
        tracing::warn!(
            path = %last_path.display(),
            offset,
            file_bytes = len,
            "wal: torn tail in the last segment; truncating it"
        );
        if scan.header.is_err() {
            tail_block = vec![0u8; SEGMENT_HEADER_BYTES as usize];
            encode_segment_header(&mut tail_block, *last_seq, size_bytes);
        }
        repair(&file, last_path, end, &tail_block, size_bytes, zero_to).await?;
        torn_tail = Some(TornTail {
            path: last_path.clone(),
            offset,
        });
    }
    segments.push(SegmentRecords {
        seq: *last_seq,
        records: scan.records.len(),
    });
    records.extend(scan.records);
    Ok(RecoveredState {
        records,
        segments,
        torn_tail,
        closed,
        active: ActiveSegment {
            file,
            path: last_path.clone(),
            seq: *last_seq,
            size_bytes,
            tail: end,
            tail_block,
        },
    })
}

/// How far past the end of data the last segment is read and checked for non-zero bytes when
/// everything up to there is clean (see `FORMAT.md`, "Recovery", step 4). A torn batch lies
/// within one write of the end of data (the writer writes at most `WRITE_CHUNK_BYTES_MAX` at a
/// time, one batch after the other), and acknowledged records behind a lost stretch of up to
/// this many bytes are still found.
pub const TAIL_CHECK_BYTES: u64 = 8 * 1024 * 1024;

/// The first bytes of the last segment read: the records of a restarted member usually end
/// well within them.
const LAST_SEGMENT_FIRST_READ_BYTES: u64 = TAIL_CHECK_BYTES + 4 * 1024 * 1024;

/// Reads and scans the last segment. A pre-allocated segment is mostly zeros, so it is read
/// from the start in growing prefixes: once a prefix holds every record and at least
/// `TAIL_CHECK_BYTES` of zeros after them (or the whole file), with a valid header and the file
/// at its full size, the rest is not read. Anything else (an invalid record, a non-zero byte
/// after the end of data, a short file, a bad header) reads the whole file, and the policy of
/// `check_last` decides on all of it. The flag says whether the bytes are the whole file.
async fn read_last_segment(
    file: &glommio::io::DmaFile,
    path: &Path,
    seq: u64,
    len: u64,
) -> Result<(Vec<u8>, Scan, bool), WalError> {
    let mut prefix_bytes = LAST_SEGMENT_FIRST_READ_BYTES.min(len);
    while prefix_bytes < len {
        let prefix = read_all(file, path, prefix_bytes).await?;
        let scan = scan_segment(&prefix, seq);
        let clean_prefix = matches!(scan.header, Ok(segment_bytes) if segment_bytes == len)
            && scan.invalid.is_none()
            && first_nonzero(&prefix, scan.data_end).is_none();
        if !clean_prefix || prefix.len() as u64 != prefix_bytes {
            break;
        }
        if scan.data_end.saturating_add(TAIL_CHECK_BYTES) <= prefix_bytes {
            return Ok((prefix, scan, false));
        }
        prefix_bytes = prefix_bytes.saturating_mul(2).min(len);
    }
    let data = read_all(file, path, len).await?;
    let scan = scan_segment(&data, seq);
    Ok((data, scan, true))
}

/// Rewrites the block holding the end of valid data (its valid prefix,
/// then zeros), zeros everything up to `zero_to`, and fdatasyncs.
async fn repair(
    file: &glommio::io::DmaFile,
    path: &Path,
    end: u64,
    tail_block: &[u8],
    size_bytes: u64,
    zero_to: u64,
) -> Result<(), WalError> {
    file.pre_allocate(size_bytes, false)
        .await
        .map_err(|e| WalError::io(path, e))?;
    let block_start = align_down(end, BLOCK_BYTES);
    let mut block = vec![0u8; BLOCK_BYTES as usize];
    block[..tail_block.len()].copy_from_slice(tail_block);
    write_blocks(file, path, block_start, &block).await?;
    write_zeros(
        file,
        path,
        block_start + BLOCK_BYTES,
        zero_to.min(size_bytes),
    )
    .await?;
    fdatasync(file, path).await
}

#[cfg(test)]
mod zero_scan_tests {
    use super::*;

    /// The block-wise scans find the same byte a byte-by-byte scan finds, at block edges too.
    #[test]
    fn zero_scans_agree_with_a_byte_by_byte_scan() {
        let len = 3 * ZERO_SCAN_BYTES + 17;
        assert_eq!(first_nonzero(&vec![0u8; len], 0), None);
        assert_eq!(last_nonzero_end(&vec![0u8; len]), 0);
        for at in [
            0,
            1,
            ZERO_SCAN_BYTES - 1,
            ZERO_SCAN_BYTES,
            2 * ZERO_SCAN_BYTES + 5,
            len - 1,
        ] {
            let mut data = vec![0u8; len];
            data[at] = 0x40;
            assert_eq!(first_nonzero(&data, 0), Some(at as u64), "at {at}");
            assert_eq!(last_nonzero_end(&data), at as u64 + 1, "at {at}");
            let from = at as u64 + 1;
            assert_eq!(first_nonzero(&data, from), None, "after {at}");
            if at > 0 {
                assert_eq!(first_nonzero(&data, at as u64 - 1), Some(at as u64));
            }
        }
        assert_eq!(first_nonzero(&[0u8; 8], 9), None);
    }
}
