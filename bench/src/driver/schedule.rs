//! Which call a client makes next, and when.
//!
//! Closed loop: a shared counter; a client takes the next index as soon as its previous call
//! is answered. Open loop: a pacer thread releases index `i` at its intended send time
//! `start + i / rate` (a plain OS thread sleeping with `std::thread::sleep`: tens of
//! microseconds of precision without spinning, where tokio's timer has 1 ms); idle clients
//! wait for the next released index in turn. A call released while every client is busy waits
//! for one — that wait is queueing the server caused, and it counts in the call's latency,
//! which runs from the intended time.
//!
//! With a deadline, no call is handed out once it has passed (closed loop), and no call due at
//! or after it is released (open loop): the run ends early, its calls under way finish.

use crate::limits::PACER_QUEUE_CALLS_MAX;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Mutex};

/// Intended send times of an open loop.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    start: Instant,
    interval: Duration,
}

impl Pacing {
    /// `None` (closed loop) unless the rate is positive and finite.
    pub fn new(rate_per_s: Option<f64>, start: Instant) -> Option<Pacing> {
        match rate_per_s {
            Some(rate) if rate > 0.0 && rate.is_finite() => Some(Pacing {
                start,
                interval: Duration::from_secs_f64(1.0 / rate),
            }),
            _ => None,
        }
    }

    /// When call `index` is due.
    pub fn intended(&self, index: u64) -> Instant {
        self.start + Duration::from_secs_f64(self.interval.as_secs_f64() * index as f64)
    }
}

/// Linux lets a sleeping thread wake up to 50 µs late by default ("timer slack"); the pacer
/// asks for 1 µs, so calls are released on time. Failure only costs precision.
fn tighten_timer_slack() {
    #[cfg(target_os = "linux")]
    {
        const PACER_TIMER_SLACK_NS: libc::c_ulong = 1_000;
        // SAFETY: PR_SET_TIMERSLACK takes one integer argument and only changes this thread's
        // timer slack; no memory is passed to the kernel.
        let _ = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, PACER_TIMER_SLACK_NS) };
    }
}

/// Where clients take their next call from.
pub enum Indices {
    Closed {
        next: AtomicU64,
        total: u64,
        deadline: Option<Instant>,
    },
    Open {
        pacing: Pacing,
        released: Mutex<mpsc::Receiver<u64>>,
    },
}

impl Indices {
    /// Starts handing out `0..total`, paced when `pacing` is given, until `deadline`.
    pub fn start(total: u64, pacing: Option<Pacing>, deadline: Option<Instant>) -> Arc<Indices> {
        let Some(pacing) = pacing else {
            return Arc::new(Indices::Closed {
                next: AtomicU64::new(0),
                total,
                deadline,
            });
        };
        let capacity = usize::try_from(total.clamp(1, PACER_QUEUE_CALLS_MAX)).unwrap_or(1);
        let (sender, receiver) = mpsc::channel(capacity);
        // The thread ends after releasing the last index, or as soon as the clients are gone
        // (the send fails); it holds nothing but the sender.
        std::thread::spawn(move || {
            tighten_timer_slack();
            for index in 0..total {
                let due = pacing.intended(index);
                if deadline.is_some_and(|deadline| due >= deadline) {
                    break;
                }
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                if sender.blocking_send(index).is_err() {
                    break;
                }
            }
        });
        Arc::new(Indices::Open {
            pacing,
            released: Mutex::new(receiver),
        })
    }

    /// The next call: its index and, in an open loop, its intended send time. `None` when
    /// every call has been handed out.
    pub async fn next(&self) -> Option<(u64, Option<Instant>)> {
        match self {
            Indices::Closed {
                next,
                total,
                deadline,
            } => {
                if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                    return None;
                }
                let index = next.fetch_add(1, Ordering::Relaxed);
                (index < *total).then_some((index, None))
            }
            Indices::Open { pacing, released } => {
                // One idle client at a time waits on the queue; the others wait for the lock.
                let index = released.lock().await.recv().await?;
                Some((index, Some(pacing.intended(index))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_loop_times_are_evenly_spaced() {
        let start = Instant::now();
        let pacing = Pacing::new(Some(1000.0), start);
        let later = pacing.map(|p| p.intended(1500) - start);
        assert_eq!(later.map(|d| d.as_millis()), Some(1500));
        assert!(Pacing::new(None, start).is_none());
        assert!(Pacing::new(Some(0.0), start).is_none());
    }

    #[tokio::test]
    async fn closed_loop_hands_out_each_index_once() {
        let indices = Indices::start(3, None, None);
        let mut seen = Vec::new();
        while let Some((index, intended)) = indices.next().await {
            assert!(intended.is_none());
            seen.push(index);
        }
        assert_eq!(seen, vec![0, 1, 2]);
    }

    #[tokio::test]
    async fn open_loop_releases_indices_no_earlier_than_due() {
        let start = Instant::now();
        let indices = Indices::start(5, Pacing::new(Some(500.0), start), None);
        let mut count = 0;
        while let Some((index, intended)) = indices.next().await {
            let intended = intended.expect("open loop has intended times");
            assert!(Instant::now() >= intended, "index {index} released early");
            assert_eq!(intended - start, Duration::from_millis(2 * index));
            count += 1;
        }
        assert_eq!(count, 5);
    }

    #[tokio::test]
    async fn closed_loop_stops_handing_out_at_the_deadline() {
        let indices = Indices::start(u64::MAX, None, Some(Instant::now()));
        assert!(indices.next().await.is_none(), "deadline already passed");
        let deadline = Instant::now() + Duration::from_millis(50);
        let indices = Indices::start(u64::MAX, None, Some(deadline));
        let mut count = 0u64;
        while indices.next().await.is_some() {
            count += 1;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(count > 0);
        assert!(Instant::now() >= deadline);
    }

    #[tokio::test]
    async fn open_loop_releases_only_calls_due_before_the_deadline() {
        let start = Instant::now();
        // 1000 calls/s for 20 ms: indices 0..20 are due before the deadline.
        let deadline = start + Duration::from_millis(20);
        let indices = Indices::start(1000, Pacing::new(Some(1000.0), start), Some(deadline));
        let mut count = 0;
        while let Some((_, intended)) = indices.next().await {
            assert!(intended.expect("open loop has intended times") < deadline);
            count += 1;
        }
        assert_eq!(count, 20);
    }
}
