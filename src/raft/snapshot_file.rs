//! Raft snapshots on disk: one file per snapshot in `member/snap/`.
//!
//! ```text
//! name   {term:016x}-{index:016x}.snap
//! 0..8   magic "CPSNAP\0\x01"
//! 8..16  body length, u64 LE
//! 16..20 crc32 of the body, u32 LE
//! 20..24 zero
//! 24..   body: an encoded eraftpb.Snapshot (metadata: index, term, conf state; data: the
//!        state machine, see `snapshot_state`)
//! ```
//!
//! # Life cycle
//!
//! Two writers save snapshot files while a member runs, and they may overlap in any order: the
//! group's own snapshot (every `--snapshot-count` entries, on a helper thread) and a snapshot
//! installed from the leader (on the group's shard, possibly the same one twice when the leader
//! resends it). Every save goes through the member's one [`SnapshotDir`]:
//!
//! | step | who | file | a crash here leaves |
//! | --- | --- | --- | --- |
//! | 1. write `NAME.PID-N.tmp`, fsync it | the saving thread alone (the name is unique) | tmp | a tmp file, deleted at the next start |
//! | 2. rename tmp → `NAME`, fsync the directory | under the directory's lock | `NAME` | the old files, with or without `NAME` whole |
//! | 3. delete all but the newest [`SNAPSHOT_FILES_KEPT`] and the served file | under the lock | older files | a superset of the files needed |
//! | 4. the WAL records that depend on `NAME` (log compaction, the install record) | the group, after `save` returned | WAL | see `log_store` |
//!
//! - Steps 2 and 3 run under the lock, so two saves never prune at the same time; a file that
//!   is already gone when pruning counts as pruned (a copy of the member started by hand on
//!   the same directory is refused by the data directory's lock, but gone is gone either way).
//! - The *served* file is the one raft's storage hands to lagging followers and that the group
//!   restarts from ([`SnapshotDir::serve`]); pruning never deletes it, even when two newer
//!   files exist (a damaged newest file at start-up, an older own snapshot finishing after an
//!   install).
//! - Nothing depends on a file before its save returned: the WAL is compacted after the own
//!   snapshot is durable, and the install record is written after the leader's is.
//! - Start-up ([`SnapshotDir::load_newest`], before any writer runs) deletes leftover tmp files
//!   and takes the newest file whose checksum holds; a damaged one is reported with its path
//!   and offset and skipped (the WAL replay then fails with a gap if the older snapshot is not
//!   enough).

use protobuf::Message as ProtobufMessage;
use raft::eraftpb::Snapshot;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const MAGIC: [u8; 8] = *b"CPSNAP\0\x01";
/// Makes every unfinished file's name unique within the process.
static TMP_SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
const HEADER_BYTES: usize = 24;
/// Snapshot files kept; older ones are deleted once a newer one is durable.
pub const SNAPSHOT_FILES_KEPT: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    #[error("snapshot file {path}: {operation}: {source}")]
    Io {
        path: PathBuf,
        operation: &'static str,
        source: std::io::Error,
    },
    #[error("snapshot file {path} is damaged at offset {offset}: {reason}")]
    Damaged {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

fn io_error<'a>(
    path: &'a Path,
    operation: &'static str,
) -> impl FnOnce(std::io::Error) -> SnapshotFileError + 'a {
    move |source| SnapshotFileError::Io {
        path: path.to_path_buf(),
        operation,
        source,
    }
}

pub fn file_name(term: u64, index: u64) -> String {
    format!("{term:016x}-{index:016x}.snap")
}

/// `(term, index)` of a snapshot file name.
fn parse_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".snap")?;
    let (term, index) = stem.split_once('-')?;
    if term.len() != 16 || index.len() != 16 {
        return None;
    }
    Some((
        u64::from_str_radix(term, 16).ok()?,
        u64::from_str_radix(index, 16).ok()?,
    ))
}

/// Encodes a snapshot into the file layout above.
pub fn encode(snapshot: &Snapshot) -> Vec<u8> {
    let body = snapshot
        .write_to_bytes()
        .unwrap_or_else(|error| unreachable!("raft snapshot encodes: {error}"));
    let mut out = Vec::with_capacity(HEADER_BYTES + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&body);
    out
}

/// Decodes a file's bytes, checking the header and the checksum.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<Snapshot, SnapshotFileError> {
    let damaged = |offset: u64, reason: &str| SnapshotFileError::Damaged {
        path: path.to_path_buf(),
        offset,
        reason: reason.to_string(),
    };
    if bytes.len() < HEADER_BYTES {
        return Err(damaged(0, "shorter than the header"));
    }
    if bytes[0..8] != MAGIC {
        return Err(damaged(0, "bad magic"));
    }
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[8..16]);
    let body_len = u64::from_le_bytes(word);
    let body = &bytes[HEADER_BYTES..];
    if body.len() as u64 != body_len {
        return Err(damaged(8, "body length does not match the file size"));
    }
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&bytes[16..20]);
    if crc32fast::hash(body) != u32::from_le_bytes(crc) {
        return Err(damaged(HEADER_BYTES as u64, "checksum mismatch"));
    }
    Snapshot::parse_from_bytes(body)
        .map_err(|error| damaged(HEADER_BYTES as u64, &format!("does not decode: {error}")))
}

/// Decodes a snapshot encoding followed by zero padding (backups pad to whole 512-byte blocks).
pub fn decode_padded(path: &Path, bytes: &[u8]) -> Result<Snapshot, SnapshotFileError> {
    let declared = bytes
        .get(8..16)
        .and_then(|field| field.try_into().ok())
        .map(u64::from_le_bytes)
        .and_then(|body_len| usize::try_from(body_len).ok())
        .and_then(|body_len| body_len.checked_add(HEADER_BYTES))
        .filter(|end| *end <= bytes.len());
    let Some(end) = declared else {
        return decode(path, bytes);
    };
    if let Some(offset) = bytes[end..].iter().position(|byte| *byte != 0) {
        return Err(SnapshotFileError::Damaged {
            path: path.to_path_buf(),
            offset: (end + offset) as u64,
            reason: "non-zero bytes after the snapshot".to_string(),
        });
    }
    decode(path, &bytes[..end])
}

/// The snapshot directory of one member, shared by everything that saves snapshots there (see
/// the life cycle above).
#[derive(Debug)]
pub struct SnapshotDir {
    path: PathBuf,
    /// Held while a file is published and old ones are pruned; holds the served file.
    publishing: Mutex<Option<PathBuf>>,
}

impl SnapshotDir {
    pub fn new(path: PathBuf) -> Arc<SnapshotDir> {
        Arc::new(SnapshotDir {
            path,
            publishing: Mutex::new(None),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the snapshot with `metadata`'s term and index is (or would be) saved.
    pub fn path_of(&self, snapshot: &Snapshot) -> PathBuf {
        let metadata = snapshot.get_metadata();
        self.path.join(file_name(metadata.term, metadata.index))
    }

    /// Writes `snapshot` durably (the directory is created if missing), then deletes all but
    /// the newest [`SNAPSHOT_FILES_KEPT`] files and the served one.
    pub fn save(&self, snapshot: &Snapshot) -> Result<PathBuf, SnapshotFileError> {
        crate::failpoint::hit("raftBeforeSaveSnap");
        let dir = &self.path;
        std::fs::create_dir_all(dir).map_err(io_error(dir, "create directory"))?;
        let path = self.path_of(snapshot);
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let sequence = TMP_SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!("{name}.{}-{sequence}.tmp", std::process::id()));
        {
            let mut file = std::fs::File::create(&tmp).map_err(io_error(&tmp, "create"))?;
            file.write_all(&encode(snapshot))
                .map_err(io_error(&tmp, "write"))?;
            file.sync_all().map_err(io_error(&tmp, "fsync"))?;
        }
        let served = self.lock();
        crate::failpoint::hit("snapBeforeRename");
        std::fs::rename(&tmp, &path).map_err(io_error(&tmp, "rename"))?;
        sync_dir(dir)?;
        crate::failpoint::hit("raftAfterSaveSnap");
        prune(dir, served.as_deref())?;
        Ok(path)
    }

    /// Marks `path` as the file raft serves and restarts from: never pruned.
    pub fn serve(&self, path: PathBuf) {
        *self.lock() = Some(path);
    }

    /// At start-up, before anything saves: deletes unfinished files and returns the newest
    /// snapshot that reads back intact, if any.
    pub fn load_newest(&self) -> Result<Option<Snapshot>, SnapshotFileError> {
        let _publishing = self.lock();
        load_newest(&self.path)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<PathBuf>> {
        // The guarded value is only a path, consistent at every point: a panic elsewhere
        // while holding it leaves nothing half-done.
        self.publishing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Writes `snapshot` durably into `dir`, for a directory no member is using (a restore).
pub fn save(dir: &Path, snapshot: &Snapshot) -> Result<PathBuf, SnapshotFileError> {
    SnapshotDir::new(dir.to_path_buf()).save(snapshot)
}

/// Deletes every snapshot file but the newest [`SNAPSHOT_FILES_KEPT`] and `served`.
fn prune(dir: &Path, served: Option<&Path>) -> Result<(), SnapshotFileError> {
    let mut files = list(dir, false)?;
    files.sort_unstable_by_key(|file| std::cmp::Reverse(file.0));
    for (_, old) in files.into_iter().skip(SNAPSHOT_FILES_KEPT) {
        if Some(old.as_path()) == served {
            continue;
        }
        crate::failpoint::hit("snapBeforeRelease");
        match std::fs::remove_file(&old) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_error(&old, "delete old snapshot")(error)),
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), SnapshotFileError> {
    std::fs::File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(io_error(dir, "fsync directory"))
}

/// A snapshot file: `((index, term), path)`.
type SnapshotFile = ((u64, u64), PathBuf);

/// Snapshot files in `dir`; with `delete_unfinished` (only at start-up, when nothing else
/// writes there) leftover `.tmp` files are deleted.
fn list(dir: &Path, delete_unfinished: bool) -> Result<Vec<SnapshotFile>, SnapshotFileError> {
    let mut files = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(error) => return Err(io_error(dir, "list")(error)),
    };
    for entry in entries {
        let entry = entry.map_err(io_error(dir, "list"))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if name.ends_with(".tmp") {
            if delete_unfinished {
                std::fs::remove_file(&path).map_err(io_error(&path, "delete unfinished"))?;
            }
        } else if let Some((term, index)) = parse_name(&name) {
            files.push(((index, term), path));
        }
    }
    Ok(files)
}

/// The snapshot saved in `path`, verified.
pub fn load(path: &Path) -> Result<Snapshot, SnapshotFileError> {
    let bytes = std::fs::read(path).map_err(io_error(path, "read"))?;
    decode(path, &bytes)
}

/// The newest snapshot in `dir` that reads back intact, if any.
fn load_newest(dir: &Path) -> Result<Option<Snapshot>, SnapshotFileError> {
    let mut files = list(dir, true)?;
    files.sort_unstable_by_key(|file| std::cmp::Reverse(file.0));
    for ((index, term), path) in files {
        let bytes = std::fs::read(&path).map_err(io_error(&path, "read"))?;
        match decode(&path, &bytes) {
            Ok(snapshot)
                if snapshot.get_metadata().index == index
                    && snapshot.get_metadata().term == term =>
            {
                return Ok(Some(snapshot))
            }
            Ok(_) => tracing::error!(
                path = %path.display(),
                "snapshot file's metadata does not match its name; skipped"
            ),
            Err(error) => tracing::error!(%error, "snapshot file skipped"),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(term: u64, index: u64, data: &[u8]) -> Snapshot {
        let mut snapshot = Snapshot::default();
        snapshot.mut_metadata().term = term;
        snapshot.mut_metadata().index = index;
        snapshot.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
        snapshot.data = data.to_vec().into();
        snapshot
    }

    #[test]
    fn saved_snapshots_load_newest_first_and_old_ones_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(load_newest(dir.path()).expect("empty").is_none());
        for index in [10, 20, 30] {
            save(dir.path(), &snapshot(2, index, b"state")).expect("save");
        }
        let newest = load_newest(dir.path()).expect("load").expect("some");
        assert_eq!(newest.get_metadata().index, 30);
        assert_eq!(newest.get_metadata().get_conf_state().voters, vec![1, 2, 3]);
        assert_eq!(newest.data.as_ref(), b"state");
        assert_eq!(
            list(dir.path(), false).expect("list").len(),
            SNAPSHOT_FILES_KEPT
        );
    }

    #[test]
    fn a_damaged_newest_file_is_named_and_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        save(dir.path(), &snapshot(2, 10, b"older")).expect("save");
        let newest = save(dir.path(), &snapshot(2, 20, b"newer")).expect("save");
        let mut bytes = std::fs::read(&newest).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&newest, &bytes).expect("write");
        match decode(&newest, &bytes) {
            Err(SnapshotFileError::Damaged { path, offset, .. }) => {
                assert_eq!(path, newest);
                assert_eq!(offset, HEADER_BYTES as u64);
            }
            other => panic!("expected damage, got {other:?}"),
        }
        let loaded = load_newest(dir.path()).expect("load").expect("some");
        assert_eq!(loaded.data.as_ref(), b"older");
    }

    #[test]
    fn leftover_tmp_files_are_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tmp = dir.path().join(format!("{}.tmp", file_name(1, 5)));
        std::fs::write(&tmp, b"partial").expect("write");
        assert!(load_newest(dir.path()).expect("load").is_none());
        assert!(!tmp.exists());
    }
}

#[cfg(test)]
mod race_regression {
    use super::*;

    /// Issue #12: a member's own snapshot (helper thread) and a snapshot installed from the
    /// leader were saved at the same moment; both pruned old files and one failed on the file
    /// the other had just deleted ("delete old snapshot: No such file or directory"), which
    /// stopped the raft group and the member.
    #[test]
    fn concurrent_saves_never_fail_on_a_file_another_save_pruned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_path_buf();
        let mut threads = Vec::new();
        for thread in 0..4u64 {
            let path = path.clone();
            threads.push(std::thread::spawn(move || {
                for round in 0..150u64 {
                    let mut snapshot = Snapshot::default();
                    snapshot.mut_metadata().term = 2;
                    snapshot.mut_metadata().index = round * 4 + thread + 1;
                    save(&path, &snapshot).map(|_| ())?;
                }
                Ok::<(), SnapshotFileError>(())
            }));
        }
        for thread in threads {
            thread.join().expect("thread").expect("every save succeeds");
        }
    }

    /// The same through one shared directory, while the served file moves on: every save
    /// succeeds, and the served file is never pruned even when newer ones exist.
    #[test]
    fn the_served_file_outlives_newer_saves_from_other_threads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let snapshots = SnapshotDir::new(dir.path().to_path_buf());
        let mut served = Snapshot::default();
        served.mut_metadata().term = 1;
        served.mut_metadata().index = 1;
        let served_path = snapshots.save(&served).expect("save");
        snapshots.serve(served_path.clone());
        let mut threads = Vec::new();
        for thread in 0..3u64 {
            let snapshots = snapshots.clone();
            threads.push(std::thread::spawn(move || {
                for round in 0..100u64 {
                    let mut snapshot = Snapshot::default();
                    snapshot.mut_metadata().term = 2;
                    snapshot.mut_metadata().index = 10 + round * 3 + thread;
                    snapshots.save(&snapshot).map(|_| ())?;
                }
                Ok::<(), SnapshotFileError>(())
            }));
        }
        for thread in threads {
            thread.join().expect("thread").expect("every save succeeds");
        }
        assert!(served_path.exists(), "the served file was pruned");
        let files = list(dir.path(), false).expect("list");
        assert_eq!(files.len(), SNAPSHOT_FILES_KEPT + 1, "{files:?}");
        let newest = snapshots.load_newest().expect("load").expect("some");
        assert_eq!(newest.get_metadata().index, 10 + 99 * 3 + 2);
    }
}
