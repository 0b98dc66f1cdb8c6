//! The process-wide stop signal. Set once (by SIGINT/SIGTERM or a fatal error), observed by every
//! shard's accept loops, connections and the raft loop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often waiters look at the flag.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

#[derive(Clone, Default)]
pub struct Shutdown {
    triggered: Arc<AtomicBool>,
}

impl Shutdown {
    pub fn trigger(&self) {
        self.triggered.store(true, Ordering::SeqCst);
    }

    pub fn is_triggered(&self) -> bool {
        self.triggered.load(Ordering::SeqCst)
    }

    /// Resolves once shutdown has been triggered. Must run inside a glommio executor.
    pub async fn wait(&self) {
        while !self.is_triggered() {
            glommio::timer::sleep(POLL_INTERVAL).await;
        }
    }
}
