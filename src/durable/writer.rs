//! The page store's writer thread: merges queued checkpoints into commits, owes and pays
//! compaction deletes in bounded batches, rebuilds the file from a snapshot, and runs defrags
//! on a thread of their own (commits go on meanwhile: the page store replays them onto the
//! copy).

use super::rows::{
    encode_row, encode_state_for, row_key, FORMAT_VERSION, META_APPLIED_INDEX,
    META_CURRENT_REVISION, META_FORMAT, META_STATE,
};
use crate::membership::MemberList;
use crate::mvcc::{KvStore, Revision};
use crate::store::{DefragReport, Store, StoreError, StoreOptions, WriteBatch};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

/// Rows a compaction dropped, deleted per commit at most.
pub const DELETES_PER_COMMIT_MAX: usize = 20_000;
/// Queued commands merged into one commit at most.
const COMMANDS_PER_COMMIT_MAX: usize = 4_096;
/// Rows per commit while rebuilding the file from a snapshot.
const REBUILD_ROWS_PER_COMMIT: usize = 50_000;

/// Changes of the entries applied since the previous batch, up to `applied_index`.
pub struct CheckpointBatch {
    pub applied_index: u64,
    pub current_revision: i64,
    /// Row keys' revisions and encoded rows of the new versions.
    pub rows: Vec<(Revision, Vec<u8>)>,
    /// Versions a compaction dropped.
    pub deletes: Vec<Revision>,
    /// The `state` meta value, when it changed.
    pub state: Option<Vec<u8>>,
}

pub enum Command {
    Checkpoint(CheckpointBatch),
    /// The whole state was replaced (a snapshot): rebuild the file from it.
    Replace {
        applied_index: u64,
        kv: KvStore,
        members: MemberList,
    },
    /// Maintenance.Defragment: shrink the file; answered when done.
    Defragment(futures::channel::oneshot::Sender<Result<DefragReport, String>>),
    /// The server is stopping: commit what came before, then end the thread.
    Finish,
}

/// What the server reports about the page store (Status `dbSize`, `dbSizeInUse`).
#[derive(Default)]
pub struct DurableStats {
    pub size_bytes: AtomicU64,
    pub in_use_bytes: AtomicU64,
    /// Applied index of the newest commit.
    pub applied_index: AtomicU64,
    /// A commit failed: nothing more is written (the WAL and snapshots still hold everything).
    pub failed: AtomicBool,
}

impl DurableStats {
    fn refresh(&self, store: &Store) {
        let stats = store.stats();
        self.size_bytes.store(stats.size_bytes, Ordering::Relaxed);
        self.in_use_bytes
            .store(stats.size_in_use_bytes, Ordering::Relaxed);
    }
}

/// Sends work to the writer thread; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct DurableHandle {
    sender: mpsc::Sender<Command>,
    pub stats: Arc<DurableStats>,
}

impl DurableHandle {
    pub fn send(&self, command: Command) {
        if self.sender.send(command).is_err() {
            tracing::error!("page store writer is gone; command dropped");
        }
    }

    /// Defragments the page store; resolves when the new file is in place.
    pub async fn defragment(&self) -> Result<DefragReport, String> {
        let (reply, answer) = futures::channel::oneshot::channel();
        self.send(Command::Defragment(reply));
        answer
            .await
            .unwrap_or_else(|_| Err("page store writer is gone".to_string()))
    }
}

/// Starts the writer thread for `store` (at `path`), with deletes still owed by a compaction.
pub fn spawn_writer(
    store: Store,
    owed_deletes: Vec<Revision>,
) -> std::io::Result<(DurableHandle, JoinHandle<()>)> {
    let (sender, receiver) = mpsc::channel();
    let stats = Arc::new(DurableStats::default());
    stats.refresh(&store);
    let writer = Writer {
        path: store.path().to_path_buf(),
        store: Arc::new(store),
        stats: stats.clone(),
        owed_deletes: owed_deletes.into(),
        defrags: Vec::new(),
        failed: false,
    };
    let thread = std::thread::Builder::new()
        .name("capstan-pages".to_string())
        .spawn(move || writer.run(receiver))?;
    Ok((DurableHandle { sender, stats }, thread))
}

/// Checkpoints merged into one commit.
#[derive(Default)]
struct Gathered {
    applied_index: Option<u64>,
    current_revision: i64,
    rows: Vec<(Revision, Vec<u8>)>,
    state: Option<Vec<u8>>,
}

struct Writer {
    path: PathBuf,
    store: Arc<Store>,
    stats: Arc<DurableStats>,
    owed_deletes: VecDeque<Revision>,
    defrags: Vec<JoinHandle<()>>,
    failed: bool,
}

impl Writer {
    fn run(mut self, receiver: mpsc::Receiver<Command>) {
        loop {
            let first = if self.owed_deletes.is_empty() || self.failed {
                match receiver.recv() {
                    Ok(command) => Some(command),
                    Err(_) => break,
                }
            } else {
                match receiver.try_recv() {
                    Ok(command) => Some(command),
                    Err(mpsc::TryRecvError::Empty) => None,
                    Err(mpsc::TryRecvError::Disconnected) => break,
                }
            };
            let mut gathered = Gathered::default();
            let mut next = first;
            let mut merged = 0;
            let mut finishing = false;
            while let Some(command) = next {
                if matches!(command, Command::Finish) {
                    finishing = true;
                    break;
                }
                self.take(command, &mut gathered);
                merged += 1;
                next = if merged < COMMANDS_PER_COMMIT_MAX {
                    receiver.try_recv().ok()
                } else {
                    None
                };
            }
            self.commit(gathered);
            if finishing {
                break;
            }
        }
        for defrag in self.defrags.drain(..) {
            let _ = defrag.join();
        }
    }

    fn take(&mut self, command: Command, gathered: &mut Gathered) {
        match command {
            Command::Checkpoint(batch) => {
                gathered.applied_index = Some(batch.applied_index);
                gathered.current_revision = batch.current_revision;
                gathered.rows.extend(batch.rows);
                if batch.state.is_some() {
                    gathered.state = batch.state;
                }
                self.owed_deletes.extend(batch.deletes);
            }
            Command::Replace {
                applied_index,
                kv,
                members,
            } => {
                // Everything gathered or owed predates the new state.
                *gathered = Gathered::default();
                self.owed_deletes.clear();
                self.rebuild(applied_index, &kv, &members);
            }
            Command::Defragment(reply) => {
                self.commit(std::mem::take(gathered));
                self.start_defrag(reply);
            }
            Command::Finish => {}
        }
    }

    fn fail(&mut self, error: &StoreError) {
        tracing::error!(%error, "page store commit failed; it takes no more checkpoints");
        self.failed = true;
        self.stats.failed.store(true, Ordering::Relaxed);
    }

    fn commit(&mut self, gathered: Gathered) {
        if self.failed || (gathered.applied_index.is_none() && self.owed_deletes.is_empty()) {
            return;
        }
        let result = (|| -> Result<(), StoreError> {
            let mut batch = WriteBatch::new();
            for (revision, row) in &gathered.rows {
                batch.put(&row_key(*revision), row)?;
            }
            let deletes = self.owed_deletes.len().min(DELETES_PER_COMMIT_MAX);
            for revision in self.owed_deletes.drain(..deletes) {
                batch.delete(&row_key(revision))?;
            }
            if let Some(applied_index) = gathered.applied_index {
                set_checkpoint_metas(
                    &mut batch,
                    applied_index,
                    gathered.current_revision,
                    gathered.state.as_deref(),
                )?;
            }
            let checkpoint = gathered.applied_index.is_some();
            if checkpoint {
                crate::failpoint::hit("checkpointBeforeCommit");
            }
            if deletes > 0 {
                crate::failpoint::hit("compactBeforeCommitBatch");
            }
            let commit_started = std::time::Instant::now();
            self.store.commit(&batch)?;
            crate::metrics::observe_duration(
                crate::metrics::Histogram::BackendCommitSeconds,
                commit_started.elapsed(),
            );
            if deletes > 0 {
                crate::failpoint::hit("compactAfterCommitBatch");
            }
            if checkpoint {
                crate::failpoint::hit("checkpointAfterCommit");
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                if let Some(applied_index) = gathered.applied_index {
                    self.stats
                        .applied_index
                        .store(applied_index, Ordering::Relaxed);
                }
                self.stats.refresh(&self.store);
            }
            Err(error) => self.fail(&error),
        }
    }

    fn start_defrag(
        &mut self,
        reply: futures::channel::oneshot::Sender<Result<DefragReport, String>>,
    ) {
        let (store, stats) = (self.store.clone(), self.stats.clone());
        let spawned = std::thread::Builder::new()
            .name("capstan-defrag".to_string())
            .spawn(move || {
                use crate::metrics::{Gauge, Histogram};
                crate::metrics::gauge_add(Gauge::DefragInflight, 1);
                let defrag_started = std::time::Instant::now();
                let result = store.defragment();
                crate::metrics::observe_duration(
                    Histogram::BackendDefragSeconds,
                    defrag_started.elapsed(),
                );
                crate::metrics::gauge_add(Gauge::DefragInflight, -1);
                match &result {
                    Ok(report) => tracing::info!(
                        before_bytes = report.size_bytes_before,
                        after_bytes = report.size_bytes_after,
                        replayed_batches = report.replayed_batches,
                        "page store defragmented"
                    ),
                    Err(error) => tracing::error!(%error, "page store defrag failed"),
                }
                stats.refresh(&store);
                let _asker_may_be_gone = reply.send(result.map_err(|error| error.to_string()));
            });
        match spawned {
            Ok(thread) => self.defrags.push(thread),
            Err(error) => tracing::error!(%error, "defrag thread not started"),
        }
        self.defrags.retain(|thread| !thread.is_finished());
    }

    /// Writes the whole state to a new file and renames it over the store's.
    fn rebuild(&mut self, applied_index: u64, kv: &KvStore, members: &MemberList) {
        for defrag in self.defrags.drain(..) {
            let _ = defrag.join();
        }
        let temporary = self.path.with_extension("rebuild");
        let rebuilt = (|| -> Result<Store, StoreError> {
            match std::fs::remove_file(&temporary) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    return Err(StoreError::Io {
                        path: temporary.clone(),
                        operation: "remove stale rebuild file",
                        source: error,
                    })
                }
                _ => {}
            }
            let fresh = Store::open(&temporary, StoreOptions::default())?;
            let mut batch = WriteBatch::new();
            for key in kv.to_snapshot().keys {
                for version in key.versions {
                    let revision = Revision {
                        main: version.main_revision,
                        sub: version.sub_revision,
                    };
                    batch.put(&row_key(revision), &encode_row(&key.key, version))?;
                    if batch.len() >= REBUILD_ROWS_PER_COMMIT {
                        fresh.commit(&std::mem::take(&mut batch))?;
                    }
                }
            }
            let state = encode_state_for(kv, members);
            set_checkpoint_metas(
                &mut batch,
                applied_index,
                kv.current_revision(),
                Some(&state),
            )?;
            fresh.commit(&batch)?;
            drop(fresh);
            crate::failpoint::hit("replaceBeforeRename");
            rename_durably(&temporary, &self.path)?;
            crate::failpoint::hit("replaceAfterRename");
            Store::open(&self.path, StoreOptions::default())
        })();
        match rebuilt {
            Ok(store) => {
                tracing::info!(applied_index, "page store rebuilt from a snapshot");
                self.store = Arc::new(store);
                self.stats
                    .applied_index
                    .store(applied_index, Ordering::Relaxed);
                self.stats.refresh(&self.store);
            }
            Err(error) => self.fail(&error),
        }
    }
}

/// The meta values that go with the rows of every entry up to `applied_index`.
fn set_checkpoint_metas(
    batch: &mut WriteBatch,
    applied_index: u64,
    current_revision: i64,
    state: Option<&[u8]>,
) -> Result<(), StoreError> {
    batch.set_meta_u64(META_FORMAT, FORMAT_VERSION)?;
    batch.set_meta_u64(META_APPLIED_INDEX, applied_index)?;
    batch.set_meta_u64(
        META_CURRENT_REVISION,
        u64::try_from(current_revision).unwrap_or(0),
    )?;
    if let Some(state) = state {
        batch.set_meta(META_STATE, state)?;
    }
    Ok(())
}

fn rename_durably(from: &Path, to: &Path) -> Result<(), StoreError> {
    std::fs::rename(from, to).map_err(|source| StoreError::Io {
        path: to.to_path_buf(),
        operation: "rename rebuilt file",
        source,
    })?;
    let directory = to.parent().unwrap_or(Path::new("."));
    std::fs::File::open(directory)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| StoreError::Io {
            path: directory.to_path_buf(),
            operation: "fsync directory",
            source,
        })
}
