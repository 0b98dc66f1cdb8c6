//! A one-line progress bar on stderr, drawn only when stderr is a terminal (the caller checks),
//! so logs and CI output stay clean.

use crate::limits::PROGRESS_REFRESH_INTERVAL;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::task::JoinHandle;

const BAR_WIDTH_CHARS: usize = 30;

pub struct Progress {
    done: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

/// Starts redrawing `label [####   ] completed/total` every refresh interval.
pub fn spawn(label: String, total: u64, completed: Arc<AtomicU64>) -> Progress {
    let done = Arc::new(AtomicBool::new(false));
    let stop = done.clone();
    let task = tokio::spawn(async move {
        let start = Instant::now();
        loop {
            let finished = stop.load(Ordering::Relaxed);
            draw(&label, completed.load(Ordering::Relaxed), total, start);
            if finished {
                break;
            }
            tokio::time::sleep(PROGRESS_REFRESH_INTERVAL).await;
        }
        eprintln!();
    });
    Progress { done, task }
}

impl Progress {
    /// Draws the final state and ends the line.
    pub async fn finish(self) {
        self.done.store(true, Ordering::Relaxed);
        let _ = self.task.await;
    }
}

fn draw(label: &str, completed: u64, total: u64, start: Instant) {
    let fraction = if total == 0 {
        1.0
    } else {
        (completed as f64 / total as f64).min(1.0)
    };
    let filled = (fraction * BAR_WIDTH_CHARS as f64) as usize;
    let bar: String = (0..BAR_WIDTH_CHARS)
        .map(|position| if position < filled { '#' } else { ' ' })
        .collect();
    let seconds = start.elapsed().as_secs_f64();
    let rate = if seconds > 0.0 {
        completed as f64 / seconds
    } else {
        0.0
    };
    let mut stderr = std::io::stderr().lock();
    let _ = write!(
        stderr,
        "\r{label} [{bar}] {completed}/{total} {rate:.0} ops/s"
    );
    let _ = stderr.flush();
}
