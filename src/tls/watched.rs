//! [`Watched`]: a value loaded from files and loaded again, for new handshakes, when the files
//! change — the one reload mechanism behind [`super::CertificateReloader`] (certificate and
//! key) and [`super::ClientCertPolicy`] (CA bundle and CRL).
//!
//! At most once per [`RELOAD_CHECK_INTERVAL`] the files are stat-ed (inode, size, mtime,
//! ctime); when a stamp changed, the value is loaded again. A load that fails — a half-written
//! file, a key of another certificate — is logged as a warning and the previous value stays in
//! force; the files are tried again at the next check.

use super::files::{stamps_of, FileStamp};
use super::{TlsError, RELOAD_CHECK_INTERVAL};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

/// A value loaded from `files`, reloaded when they change.
#[derive(Debug)]
pub(super) struct Watched<T> {
    files: Vec<PathBuf>,
    /// The log lines of a reload and of a failed one.
    messages: Messages,
    state: Mutex<State<T>>,
}

/// What a [`Watched`] logs when it reloads its value, and when a reload fails.
#[derive(Debug, Clone, Copy)]
pub(super) struct Messages {
    pub reloaded: &'static str,
    pub kept: &'static str,
}

#[derive(Debug)]
struct State<T> {
    value: T,
    stamps: Vec<Option<FileStamp>>,
    checked_at: Instant,
}

impl<T: Clone> Watched<T> {
    /// Loads the value now with `load`; an error here is a start-up error.
    pub(super) fn new(
        files: Vec<PathBuf>,
        messages: Messages,
        load: impl FnOnce() -> Result<T, TlsError>,
    ) -> Result<Watched<T>, TlsError> {
        let stamps = stamps_of(&paths(&files));
        let value = load()?;
        Ok(Watched {
            files,
            messages,
            state: Mutex::new(State {
                value,
                stamps,
                checked_at: Instant::now(),
            }),
        })
    }

    /// The value for a new handshake, loaded again with `load` first if the files changed and
    /// the last check is older than [`RELOAD_CHECK_INTERVAL`].
    pub(super) fn current(&self, load: impl FnOnce() -> Result<T, TlsError>) -> T {
        // `State` is only ever replaced by whole loaded values, so a poisoned lock still holds
        // a usable value.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.checked_at.elapsed() >= RELOAD_CHECK_INTERVAL {
            state.checked_at = Instant::now();
            let stamps = stamps_of(&paths(&self.files));
            if stamps != state.stamps {
                match load() {
                    Ok(value) => {
                        let file = self.files.first().map(|path| path.display().to_string());
                        tracing::info!(
                            file = file.unwrap_or_default(),
                            "{}",
                            self.messages.reloaded
                        );
                        state.value = value;
                        state.stamps = stamps;
                    }
                    Err(error) => tracing::warn!(%error, "{}", self.messages.kept),
                }
            }
        }
        state.value.clone()
    }
}

fn paths(files: &[PathBuf]) -> Vec<&Path> {
    files.iter().map(PathBuf::as_path).collect()
}
