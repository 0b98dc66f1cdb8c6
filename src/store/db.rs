//! The store: open, read snapshots, and the commit protocol of the module doc, step by step.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use memmap2::Mmap;

use super::error::{Result, StoreError};
use super::freelist::{chain_pages_for, encode_chain, read_chain, FreeRuns};
use super::io::{FileWriter, PageWriter};
use super::meta::{self, Meta, META_SLOTS};
use super::node::{MAX_KEY_BYTES, MAX_VALUE_BYTES};
use super::page::{page_offset_bytes, PageSource, NO_PAGE, PAGE_BYTES};
use super::tree_read::{self, RangeIter};
use super::tree_write::{Allocator, Op, TreeWriter};

/// The file grows by at least this much at a time.
pub const GROWTH_MIN_BYTES: u64 = 1 << 20;
/// ... and by at most this much (plus what one commit needs).
pub const GROWTH_MAX_BYTES: u64 = 1 << 30;

/// How much to grow a file of `len_bytes` (an eighth of it, within the bounds above).
pub fn growth_bytes(len_bytes: u64) -> u64 {
    (len_bytes / 8).clamp(GROWTH_MIN_BYTES, GROWTH_MAX_BYTES)
}

/// Settings of one store.
#[derive(Clone, Debug, Default)]
pub struct StoreOptions {}

/// What open found, beyond the state it opened.
#[derive(Clone, Debug)]
pub struct OpenReport {
    /// The commit the store opened at.
    pub txn_id: u64,
    /// The meta slot that did not verify, if one did not (expected after a crash during the
    /// meta write; anything else is worth an operator's look).
    pub ignored_meta: Option<String>,
}

/// Sizes and page counts, for etcd's `dbSize` / `dbSizeInUse` and for compaction decisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    pub txn_id: u64,
    pub data_keys: u64,
    /// Length of the file.
    pub size_bytes: u64,
    /// Bytes of pages in use: below the high-water mark and not free.
    pub size_in_use_bytes: u64,
    /// High-water mark of pages (meta pages included).
    pub page_count: u64,
    /// Free pages the next commit may reuse.
    pub free_pages_reusable: u64,
    /// Free pages still visible to some reader (or freed by the last commit).
    pub free_pages_pending: u64,
    /// Pages holding the freelist chain.
    pub freelist_pages: u64,
}

/// One committed state: the file map it was read through and its meta.
struct Snapshot {
    path: Arc<PathBuf>,
    map: Arc<Mmap>,
    meta: Meta,
}

impl Snapshot {
    fn source(&self) -> PageSource<'_> {
        PageSource {
            path: self.path.as_path(),
            bytes: &self.map[..],
            page_count: self.meta.page_count,
            txn_id: self.meta.txn_id,
        }
    }
}

/// A read-only view of one commit. Cheap to create, `Send + Sync`; holding it keeps the pages
/// it can reach from being reused, so do not keep one for ever.
#[derive(Clone)]
pub struct ReadTxn {
    snapshot: Arc<Snapshot>,
}

impl ReadTxn {
    /// The commit this view shows.
    pub fn txn_id(&self) -> u64 {
        self.snapshot.meta.txn_id
    }

    /// Number of keys in the data tree.
    pub fn key_count(&self) -> u64 {
        self.snapshot.meta.data_keys
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<&[u8]>> {
        let snapshot = &self.snapshot;
        tree_read::get(&snapshot.source(), snapshot.meta.data_root, key)
    }

    /// Keys in `[start, end)` in ascending order (`end` `None`: no upper bound), zero-copy.
    pub fn iter(&self, start: &[u8], end: Option<&[u8]>) -> Result<RangeIter<'_>> {
        let snapshot = &self.snapshot;
        RangeIter::new(snapshot.source(), snapshot.meta.data_root, start, end)
    }

    /// At most `limit` entries of `[start, end)`, copied out.
    pub fn range(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut entries = Vec::new();
        for entry in self.iter(start, end)?.take(limit) {
            let (key, value) = entry?;
            entries.push((key.to_vec(), value.to_vec()));
        }
        Ok(entries)
    }

    /// All named meta values, in name order.
    pub fn meta_iter(&self) -> Result<RangeIter<'_>> {
        let snapshot = &self.snapshot;
        RangeIter::new(snapshot.source(), snapshot.meta.meta_root, b"", None)
    }

    /// A named meta value (such as the last applied raft index).
    pub fn meta(&self, name: &str) -> Result<Option<&[u8]>> {
        let snapshot = &self.snapshot;
        tree_read::get(&snapshot.source(), snapshot.meta.meta_root, name.as_bytes())
    }

    /// A named meta value written by [`WriteBatch::set_meta_u64`]; a value of another length
    /// is corruption.
    pub fn meta_u64(&self, name: &str) -> Result<Option<u64>> {
        match self.meta(name)? {
            None => Ok(None),
            Some(bytes) => match <[u8; 8]>::try_from(bytes) {
                Ok(array) => Ok(Some(u64::from_le_bytes(array))),
                Err(_) => Err(StoreError::Corruption {
                    path: self.snapshot.path.to_path_buf(),
                    offset_bytes: 0,
                    detail: format!("meta value {name:?} is {} bytes, not 8", bytes.len()),
                }),
            },
        }
    }
}

/// Puts and deletes applied atomically by [`Store::commit`]; the last operation on a key wins.
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    data: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    meta: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl WriteBatch {
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    fn check(key: &[u8], value: &[u8]) -> Result<()> {
        if key.len() > MAX_KEY_BYTES {
            return Err(StoreError::KeyTooLarge {
                key_bytes: key.len(),
                max_bytes: MAX_KEY_BYTES,
            });
        }
        if value.len() > MAX_VALUE_BYTES {
            return Err(StoreError::ValueTooLarge {
                value_bytes: value.len(),
                max_bytes: MAX_VALUE_BYTES,
            });
        }
        Ok(())
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        Self::check(key, value)?;
        self.data.insert(key.to_vec(), Some(value.to_vec()));
        Ok(())
    }

    pub fn delete(&mut self, key: &[u8]) -> Result<()> {
        Self::check(key, &[])?;
        self.data.insert(key.to_vec(), None);
        Ok(())
    }

    pub fn set_meta(&mut self, name: &str, value: &[u8]) -> Result<()> {
        Self::check(name.as_bytes(), value)?;
        self.meta
            .insert(name.as_bytes().to_vec(), Some(value.to_vec()));
        Ok(())
    }

    pub fn set_meta_u64(&mut self, name: &str, value: u64) -> Result<()> {
        self.set_meta(name, &value.to_le_bytes())
    }

    pub fn delete_meta(&mut self, name: &str) -> Result<()> {
        Self::check(name.as_bytes(), &[])?;
        self.meta.insert(name.as_bytes().to_vec(), None);
        Ok(())
    }

    /// Operations in the batch (data and meta).
    pub fn len(&self) -> usize {
        self.data.len() + self.meta.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn ops(map: &BTreeMap<Vec<u8>, Option<Vec<u8>>>) -> Vec<Op<'_>> {
    map.iter()
        .map(|(key, value)| (key.as_slice(), value.as_deref()))
        .collect()
}

/// Result of [`Store::defragment`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefragReport {
    pub size_bytes_before: u64,
    pub size_bytes_after: u64,
    /// Batches committed during the copy and replayed onto it.
    pub replayed_batches: usize,
}

/// Once no more than this many batches wait to be replayed, the last ones are replayed with
/// commits held back, and the file is switched.
pub const DEFRAG_FINAL_BATCHES_MAX: usize = 64;
/// Replay rounds without holding commits back before the last round holds them regardless.
pub const DEFRAG_CATCH_UP_ROUNDS_MAX: usize = 16;

/// Result of one [`Store::delete_range_step`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteRangeStep {
    pub deleted_keys: usize,
    /// Where the next step starts; `None` when the range is empty now.
    pub resume_from: Option<Vec<u8>>,
}

/// Everything only the (single) writer touches.
struct Writer {
    /// The store's file, for mapping it again after it grows; it holds the flock.
    file: File,
    page_writer: Box<dyn PageWriter>,
    file_len_bytes: u64,
    /// Free pages no reader can see: the next commit may overwrite them.
    free: FreeRuns,
    /// Pages freed by commit `txn`, reusable once no reader holds a snapshot older than `txn`.
    pending: VecDeque<(u64, FreeRuns)>,
    /// Pages of the durable freelist chain (freed by the next commit that rewrites it).
    chain_pages: Vec<u64>,
    /// Snapshots replaced by newer commits, oldest first, kept to see which are still read.
    retained: VecDeque<Arc<Snapshot>>,
    /// Set after any failed write or sync: the store accepts no more commits.
    failed: Option<String>,
    /// While a defrag copies a snapshot, every later committed batch, to replay on the copy.
    defrag_log: Option<Vec<WriteBatch>>,
}

/// A test failpoint run during a defrag.
#[cfg(test)]
pub(crate) type DefragHook = Box<dyn FnOnce(&Store) + Send>;

/// Makes the write path for a store file (kept so a defragmented file gets the same kind).
pub type MakeWriter = Arc<dyn Fn(File) -> Box<dyn PageWriter> + Send + Sync>;

/// An open page store. Share it with `Arc`; reads on any thread, one commit at a time.
pub struct Store {
    path: Arc<PathBuf>,
    make_writer: MakeWriter,
    current: ArcSwap<Snapshot>,
    writer: Mutex<Writer>,
    /// Held for the whole of a defrag: one at a time.
    defrag_lock: Mutex<()>,
    /// Test failpoint: runs once a defrag's copy is written, before the catch-up.
    #[cfg(test)]
    pub(crate) after_defrag_copy: Mutex<Option<DefragHook>>,
    open_report: OpenReport,
}

fn io_error(path: &Path, operation: &'static str) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        path,
        operation,
        source,
    }
}

/// Creates a new store file: both meta slots describe the empty store. Written to a temporary
/// name, synced, renamed into place and the directory synced, so a crash leaves either no
/// file or a complete one.
fn create(path: &Path) -> Result<()> {
    let temporary = path.with_extension("creating");
    let file = File::create(&temporary).map_err(io_error(&temporary, "create"))?;
    let mut writer = FileWriter::new(file);
    let empty = Meta::empty();
    for slot in 0..META_SLOTS {
        writer
            .write_at(&empty.encode(slot), page_offset_bytes(slot))
            .map_err(io_error(&temporary, "write"))?;
    }
    writer
        .sync_data()
        .map_err(io_error(&temporary, "fdatasync"))?;
    std::fs::rename(&temporary, path).map_err(io_error(path, "rename"))?;
    let directory = path.parent().filter(|dir| !dir.as_os_str().is_empty());
    let directory = directory.unwrap_or(Path::new("."));
    File::open(directory)
        .and_then(|dir| dir.sync_all())
        .map_err(io_error(directory, "fsync directory"))
}

fn map_file(path: &Path, file: &File) -> Result<Mmap> {
    // SAFETY: the map is read-only and the file is only ever grown while open, never
    // truncated, so mapped bytes stay backed. This process holds an exclusive flock, so no
    // other cooperating process writes the file; our own writer only writes pages no live
    // snapshot can reach (see "Free pages and readers" in the module doc), and every byte
    // read is verified as untrusted input.
    unsafe { memmap2::MmapOptions::new().map(file) }.map_err(io_error(path, "mmap"))
}

fn lock_exclusive(path: &Path, file: &File) -> Result<()> {
    // SAFETY: flock on a valid, open file descriptor owned by `file`.
    let status = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if status != 0 {
        return Err(io_error(
            path,
            "flock (is another process using the store?)",
        )(std::io::Error::last_os_error()));
    }
    Ok(())
}

impl Store {
    /// Opens the store at `path`, creating an empty one if the file does not exist.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Store> {
        Store::open_with_writer(path, options, |file| Box::new(FileWriter::new(file)))
    }

    /// Opens with a custom write path (tests record or fail writes through it).
    pub fn open_with_writer(
        path: &Path,
        options: StoreOptions,
        make_writer: impl Fn(File) -> Box<dyn PageWriter> + Send + Sync + 'static,
    ) -> Result<Store> {
        Store::open_with(path, options, Arc::new(make_writer))
    }

    fn open_with(path: &Path, _options: StoreOptions, make_writer: MakeWriter) -> Result<Store> {
        if !path.exists() {
            create(path)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_error(path, "open"))?;
        lock_exclusive(path, &file)?;
        let writer_file = file.try_clone().map_err(io_error(path, "dup"))?;
        let file_len_bytes = file.metadata().map_err(io_error(path, "stat"))?.len();
        let path = Arc::new(path.to_path_buf());
        let map = Arc::new(map_file(&path, &file)?);
        let choice = meta::choose(&path, &map[..])?;
        let meta = choice.meta;
        let ignored_meta = choice.ignored.map(|error| error.to_string());
        if let Some(detail) = &ignored_meta {
            tracing::warn!(%detail, txn_id = meta.txn_id, "page store: ignoring one meta slot");
        }
        if page_offset_bytes(meta.page_count) > file_len_bytes {
            return Err(StoreError::Corruption {
                path: path.to_path_buf(),
                offset_bytes: page_offset_bytes(meta.slot()),
                detail: format!(
                    "meta says {} pages but the file has only {file_len_bytes} bytes",
                    meta.page_count
                ),
            });
        }
        let snapshot = Snapshot {
            path: path.clone(),
            map,
            meta,
        };
        let (free, chain_pages) = read_chain(&snapshot.source(), meta.freelist_head)?;
        if free.total_pages() != meta.freelist_free_pages
            || chain_pages.len() as u64 != meta.freelist_pages
        {
            return Err(StoreError::Corruption {
                path: path.to_path_buf(),
                offset_bytes: page_offset_bytes(meta.slot()),
                detail: format!(
                    "freelist lists {} free pages in {} pages, meta says {} in {}",
                    free.total_pages(),
                    chain_pages.len(),
                    meta.freelist_free_pages,
                    meta.freelist_pages
                ),
            });
        }
        let writer = Writer {
            file,
            page_writer: make_writer(writer_file),
            file_len_bytes,
            free,
            pending: VecDeque::new(),
            chain_pages,
            retained: VecDeque::new(),
            failed: None,
            defrag_log: None,
        };
        Ok(Store {
            path,
            make_writer,
            current: ArcSwap::from_pointee(snapshot),
            writer: Mutex::new(writer),
            defrag_lock: Mutex::new(()),
            #[cfg(test)]
            after_defrag_copy: Mutex::new(None),
            open_report: OpenReport {
                txn_id: meta.txn_id,
                ignored_meta,
            },
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn open_report(&self) -> &OpenReport {
        &self.open_report
    }

    /// A view of the latest commit. Never waits for a commit in progress.
    pub fn read(&self) -> ReadTxn {
        ReadTxn {
            snapshot: self.current.load_full(),
        }
    }

    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        // A panic while holding the lock is a bug; the state it guards may be half updated.
        self.writer
            .lock()
            .expect("page store writer lock poisoned by an earlier panic")
    }

    pub fn stats(&self) -> Stats {
        let writer = self.lock_writer();
        let meta = self.current.load().meta;
        Stats {
            txn_id: meta.txn_id,
            data_keys: meta.data_keys,
            size_bytes: writer.file_len_bytes,
            size_in_use_bytes: page_offset_bytes(meta.page_count - meta.freelist_free_pages),
            page_count: meta.page_count,
            free_pages_reusable: writer.free.total_pages(),
            free_pages_pending: writer
                .pending
                .iter()
                .map(|(_, runs)| runs.total_pages())
                .sum(),
            freelist_pages: meta.freelist_pages,
        }
    }

    /// Applies `batch` atomically and durably; returns the new commit's txn id (the current
    /// one, unchanged, for an empty batch). After an I/O error the store stays failed.
    pub fn commit(&self, batch: &WriteBatch) -> Result<u64> {
        let mut writer = self.lock_writer();
        self.check_not_failed(&writer)?;
        let base = self.current.load_full();
        if batch.is_empty() {
            return Ok(base.meta.txn_id);
        }
        reclaim(&mut writer, base.meta.txn_id);
        let prepared = prepare(&writer, &base, batch)?;
        let txn_id = prepared.meta.txn_id;
        match self.write_durably(&mut writer, &prepared) {
            Ok(map) => {
                let snapshot = Snapshot {
                    path: self.path.clone(),
                    map: map.unwrap_or_else(|| base.map.clone()),
                    meta: prepared.meta,
                };
                let replaced = self.current.swap(Arc::new(snapshot));
                writer.retained.push_back(replaced);
                writer.free = prepared.free;
                writer.pending.push_back((txn_id, prepared.freed));
                writer.chain_pages = prepared.chain_pages;
                if let Some(log) = writer.defrag_log.as_mut() {
                    log.push(batch.clone());
                }
                Ok(txn_id)
            }
            Err(error) => {
                writer.failed = Some(error.to_string());
                Err(error)
            }
        }
    }

    /// Steps 1–3 of the commit protocol. Returns a new map if the file grew.
    fn write_durably(&self, writer: &mut Writer, prepared: &Prepared) -> Result<Option<Arc<Mmap>>> {
        let path = self.path.as_path();
        let needed_bytes = page_offset_bytes(prepared.meta.page_count);
        let mut grown = false;
        if needed_bytes > writer.file_len_bytes {
            let new_len =
                needed_bytes.max(writer.file_len_bytes + growth_bytes(writer.file_len_bytes));
            let new_len = new_len.next_multiple_of(PAGE_BYTES as u64);
            writer
                .page_writer
                .set_len(new_len)
                .map_err(io_error(path, "set_len"))?;
            writer.file_len_bytes = new_len;
            grown = true;
        }
        for (first_page, bytes) in coalesce(&prepared.pages) {
            writer
                .page_writer
                .write_at(&bytes, page_offset_bytes(first_page))
                .map_err(io_error(path, "write pages"))?;
        }
        crate::failpoint::hit("storeBeforeCommit");
        writer
            .page_writer
            .sync_data()
            .map_err(io_error(path, "fdatasync pages"))?;
        crate::failpoint::hit("storeBeforeMetaWrite");
        let slot = prepared.meta.slot();
        writer
            .page_writer
            .write_at(&prepared.meta.encode(slot), page_offset_bytes(slot))
            .map_err(io_error(path, "write meta"))?;
        writer
            .page_writer
            .sync_data()
            .map_err(io_error(path, "fdatasync meta"))?;
        crate::failpoint::hit("storeAfterCommit");
        if grown {
            return Ok(Some(Arc::new(map_file(path, &writer.file)?)));
        }
        Ok(None)
    }

    /// Deletes at most `max_keys` keys of `[start, end)` in one commit. Call again from
    /// `resume_from` until it is `None`; each step is bounded, so writers never wait long.
    pub fn delete_range_step(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        max_keys: usize,
    ) -> Result<DeleteRangeStep> {
        assert!(
            max_keys > 0,
            "a delete step must be allowed to delete something"
        );
        let read = self.read();
        let mut batch = WriteBatch::new();
        let mut resume_from = None;
        for entry in read.iter(start, end)? {
            let (key, _) = entry?;
            if batch.len() == max_keys {
                resume_from = Some(key.to_vec());
                break;
            }
            batch.delete(key)?;
        }
        let deleted_keys = batch.len();
        drop(read);
        self.commit(&batch)?;
        Ok(DeleteRangeStep {
            deleted_keys,
            resume_from,
        })
    }
}

impl Store {
    /// Online defrag: copies the live pages of a snapshot into a new file, replays the batches
    /// committed meanwhile, and switches to the new file. Reads and commits go on throughout;
    /// commits wait only for the last few replayed batches and the rename. Readers of older
    /// snapshots keep reading the old file (its map keeps it alive after the rename).
    ///
    /// Crash safety: the copy is complete and synced before `rename` puts it in place
    /// (followed by a directory sync); a crash before the rename leaves the original file and
    /// a stale `.defrag` file, which the next defrag removes.
    pub fn defragment(&self) -> Result<DefragReport> {
        let _one_at_a_time = self.defrag_lock.lock().expect("defrag lock poisoned");
        let temporary = self.path.with_extension("defrag");
        match std::fs::remove_file(&temporary) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_error(&temporary, "remove stale defrag file")(error)),
        }
        let size_bytes_before = self.stats().size_bytes;
        let snapshot = {
            let mut writer = self.lock_writer();
            self.check_not_failed(&writer)?;
            writer.defrag_log = Some(Vec::new());
            self.read()
        };
        let result = self.defragment_from(snapshot, &temporary);
        if result.is_err() {
            self.lock_writer().defrag_log = None;
            let _ = std::fs::remove_file(&temporary);
        }
        let replayed_batches = result?;
        Ok(DefragReport {
            size_bytes_before,
            size_bytes_after: self.stats().size_bytes,
            replayed_batches,
        })
    }

    fn check_not_failed(&self, writer: &Writer) -> Result<()> {
        match &writer.failed {
            Some(detail) => Err(StoreError::Failed {
                path: self.path.to_path_buf(),
                detail: detail.clone(),
            }),
            None => Ok(()),
        }
    }

    fn defragment_from(&self, snapshot: ReadTxn, temporary: &Path) -> Result<usize> {
        crate::failpoint::hit("defragBeforeCopy");
        super::copy::write_compact_copy(&snapshot, temporary)?;
        drop(snapshot);
        #[cfg(test)]
        if let Some(hook) = self.after_defrag_copy.lock().expect("hook").take() {
            hook(self);
        }
        let copy = Store::open_with(temporary, StoreOptions::default(), self.make_writer.clone())?;
        let mut replayed = 0;
        for round in 0.. {
            let mut writer = self.lock_writer();
            let waiting = writer.defrag_log.as_ref().map_or(0, Vec::len);
            let batches = std::mem::take(writer.defrag_log.as_mut().expect("defrag is logging"));
            if waiting <= DEFRAG_FINAL_BATCHES_MAX || round == DEFRAG_CATCH_UP_ROUNDS_MAX {
                // Final round: commits wait while the copy catches up and replaces the file.
                self.check_not_failed(&writer)?;
                for batch in &batches {
                    copy.commit(batch)?;
                }
                self.switch_to(&mut writer, copy, temporary)?;
                return Ok(replayed + batches.len());
            }
            drop(writer);
            for batch in &batches {
                copy.commit(batch)?;
            }
            replayed += batches.len();
        }
        unreachable!("the catch-up loop returns in its last round")
    }

    /// Puts the caught-up copy in place of the file, under the writer lock.
    fn switch_to(&self, writer: &mut Writer, copy: Store, temporary: &Path) -> Result<()> {
        let copied = copy.current.load_full();
        assert_eq!(
            copied.meta.txn_id,
            self.current.load().meta.txn_id,
            "the copy replayed every batch committed since its snapshot"
        );
        crate::failpoint::hit("defragBeforeRename");
        std::fs::rename(temporary, self.path.as_path()).map_err(io_error(&self.path, "rename"))?;
        // From here on the old file is unlinked: switch before anything else can fail.
        let copy_writer = copy.writer.into_inner().expect("copy writer lock poisoned");
        *writer = Writer {
            defrag_log: None,
            retained: VecDeque::new(),
            ..copy_writer
        };
        self.current.store(Arc::new(Snapshot {
            path: self.path.clone(),
            map: copied.map.clone(),
            meta: copied.meta,
        }));
        let directory = self.path.parent().filter(|dir| !dir.as_os_str().is_empty());
        let directory = directory.unwrap_or(Path::new("."));
        let synced = File::open(directory).and_then(|dir| dir.sync_all());
        if let Err(error) = synced {
            let error = io_error(directory, "fsync directory after defrag")(error);
            writer.failed = Some(error.to_string());
            return Err(error);
        }
        crate::failpoint::hit("defragAfterRename");
        Ok(())
    }
}

/// Moves pending frees no live reader can see any more into the reusable set.
fn reclaim(writer: &mut Writer, current_txn: u64) {
    // A replaced snapshot is unreachable for new readers; if only we hold it, nobody reads it.
    writer
        .retained
        .retain(|snapshot| Arc::strong_count(snapshot) > 1);
    let oldest_read = writer
        .retained
        .front()
        .map_or(current_txn, |s| s.meta.txn_id);
    // Pages freed by commit F were last visible in snapshot F-1.
    while writer
        .pending
        .front()
        .is_some_and(|(freed_by, _)| *freed_by <= oldest_read)
    {
        if let Some((_, runs)) = writer.pending.pop_front() {
            // `prepare` checked, when it listed them, that these runs and `free` are disjoint.
            writer
                .free
                .try_insert_all(&runs)
                .expect("pending and free pages overlap");
        }
    }
}

/// A commit built in memory, not yet written.
struct Prepared {
    meta: Meta,
    /// Sealed pages to write, sorted by page id.
    pages: Vec<(u64, Vec<u8>)>,
    /// Reusable free pages after this commit.
    free: FreeRuns,
    /// Pages this commit frees (pending until readers of older snapshots are gone).
    freed: FreeRuns,
    chain_pages: Vec<u64>,
}

/// Step 1 of the commit protocol: the new trees, freelist and meta, in memory.
fn prepare(writer: &Writer, base: &Snapshot, batch: &WriteBatch) -> Result<Prepared> {
    let txn_id = base.meta.txn_id + 1;
    let alloc = Allocator {
        free: writer.free.clone(),
        page_count: base.meta.page_count,
    };
    let mut tree = TreeWriter::new(base.source(), txn_id, alloc);
    let data_root = tree.apply(base.meta.data_root, &ops(&batch.data))?;
    let data_keys = base.meta.data_keys.checked_add_signed(tree.key_delta);
    let data_keys = data_keys.ok_or_else(|| StoreError::Corruption {
        path: base.path.to_path_buf(),
        offset_bytes: page_offset_bytes(base.meta.slot()),
        detail: format!(
            "key count {} cannot change by {}",
            base.meta.data_keys, tree.key_delta
        ),
    })?;
    let meta_root = tree.apply(base.meta.meta_root, &ops(&batch.meta))?;
    let (mut alloc, mut freed, mut pages) = tree.into_pages();
    let overlap = |(start, pages): (u64, u64)| StoreError::Corruption {
        path: base.path.to_path_buf(),
        offset_bytes: page_offset_bytes(start),
        detail: format!("pages {start}+{pages} are both in use and free"),
    };
    for &page_id in &writer.chain_pages {
        if !freed.try_insert(page_id, 1) {
            return Err(overlap((page_id, 1)));
        }
    }
    // Give back free pages at the top of the file.
    while let Some((start, _)) = alloc.free.take_run_ending_at(alloc.page_count) {
        alloc.page_count = start;
    }
    // Everything free on disk after this commit: reusable, pending, and freed now.
    let mut listed = FreeRuns::default();
    for (_, runs) in &writer.pending {
        listed.try_insert_all(runs).map_err(overlap)?;
    }
    listed.try_insert_all(&freed).map_err(overlap)?;
    let mut chain_pages = Vec::new();
    let persisted = loop {
        let mut persisted = listed.clone();
        persisted.try_insert_all(&alloc.free).map_err(overlap)?;
        if chain_pages.len() >= chain_pages_for(persisted.run_count()) {
            break persisted;
        }
        // Taking a page from the front of a run never adds a run, so this ends.
        chain_pages.push(alloc.allocate(1));
    };
    pages.extend(encode_chain(&persisted, &chain_pages, txn_id));
    pages.sort_by_key(|(page_id, _)| *page_id);
    let meta = Meta {
        txn_id,
        page_count: alloc.page_count,
        data_root,
        data_keys,
        meta_root,
        freelist_head: chain_pages.first().copied().unwrap_or(NO_PAGE),
        freelist_free_pages: persisted.total_pages(),
        freelist_pages: chain_pages.len() as u64,
    };
    Ok(Prepared {
        meta,
        pages,
        free: alloc.free,
        freed,
        chain_pages,
    })
}

/// Joins pages with consecutive ids into single writes.
fn coalesce(pages: &[(u64, Vec<u8>)]) -> Vec<(u64, Vec<u8>)> {
    let mut writes: Vec<(u64, Vec<u8>)> = Vec::new();
    for (page_id, bytes) in pages {
        match writes.last_mut() {
            Some((first, joined)) if *first + (joined.len() / PAGE_BYTES) as u64 == *page_id => {
                joined.extend_from_slice(bytes);
            }
            _ => writes.push((*page_id, bytes.clone())),
        }
    }
    writes
}

#[cfg(test)]
impl Store {
    /// The meta of the latest commit.
    pub(crate) fn current_meta(&self) -> Meta {
        self.current.load().meta
    }

    /// Checks the whole file against the invariants of the format (see `tests::invariants`).
    pub(crate) fn check_invariants(&self) -> std::result::Result<(), String> {
        let writer = self.lock_writer();
        let snapshot = self.current.load_full();
        let mut free = writer.free.clone();
        for (_, runs) in &writer.pending {
            free.try_insert_all(runs)
                .expect("pending and free pages overlap");
        }
        super::tests::invariants::check(&snapshot.source(), &snapshot.meta, &free)
    }
}
