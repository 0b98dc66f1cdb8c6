//! etcd's warnings about slow work, with etcd's `msg` strings and fields:
//!
//! - `request stats` (etcd's unary interceptor, `--warning-unary-request-duration`, 300 ms): a
//!   unary gRPC call took longer than the threshold, from its dispatch to its answer;
//! - `apply request took too long` (etcd's `txn.WarnOfExpensiveRequest`,
//!   `--warning-apply-duration`, 100 ms): applying one committed request to the MVCC state took
//!   longer than the threshold;
//! - `slow fdatasync` (etcd's WAL, over 1 s) is written by the `capstan-wal` crate itself.
//!
//! The thresholds are process-wide settings, stored once at start-up ([`set_thresholds`]) and
//! read with one relaxed atomic load per request; a zero threshold turns the warning off. The
//! fast path costs one `Instant` per request; texts are built only for slow ones.

use super::go_duration;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// etcd's defaults (`embed.DefaultWarningUnaryRequestDuration`, `DefaultWarningApplyDuration`).
const UNARY_REQUEST_WARN_DEFAULT: Duration = Duration::from_millis(300);
const APPLY_WARN_DEFAULT: Duration = Duration::from_millis(100);

static UNARY_REQUEST_WARN_NANOS: AtomicU64 =
    AtomicU64::new(UNARY_REQUEST_WARN_DEFAULT.as_nanos() as u64);
static APPLY_WARN_NANOS: AtomicU64 = AtomicU64::new(APPLY_WARN_DEFAULT.as_nanos() as u64);

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Sets `--warning-unary-request-duration` and `--warning-apply-duration`.
pub fn set_thresholds(unary_request: Duration, apply: Duration) {
    UNARY_REQUEST_WARN_NANOS.store(nanos(unary_request), Ordering::Relaxed);
    APPLY_WARN_NANOS.store(nanos(apply), Ordering::Relaxed);
}

fn threshold(setting: &AtomicU64) -> Option<Duration> {
    match setting.load(Ordering::Relaxed) {
        0 => None,
        nanos => Some(Duration::from_nanos(nanos)),
    }
}

/// Times one unary call; [`UnaryTimer::finish`] warns when it was slow.
pub struct UnaryTimer {
    started: Instant,
}

impl UnaryTimer {
    pub fn start() -> UnaryTimer {
        UnaryTimer {
            started: Instant::now(),
        }
    }

    /// etcd's `request stats` warning for a slow call to `method` (the gRPC path, which etcd
    /// writes as `response type`).
    pub fn finish(self, method: &str) {
        let Some(limit) = threshold(&UNARY_REQUEST_WARN_NANOS) else {
            return;
        };
        let took = self.started.elapsed();
        if took <= limit {
            return;
        }
        let start_time = SystemTime::now()
            .checked_sub(took)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        tracing::warn!(
            "start time" = super::timestamp::utc_micros(start_time),
            "time spent" = go_duration(took),
            "response type" = method,
            "request stats"
        );
    }
}

/// Times applying one request; [`ApplyTimer::finish`] warns when it was slow.
pub struct ApplyTimer {
    started: Instant,
}

impl ApplyTimer {
    pub fn start() -> ApplyTimer {
        ApplyTimer {
            started: Instant::now(),
        }
    }

    /// etcd's `apply request took too long`; `describe` renders the request and its response
    /// (etcd's `request` and `response` fields) only when the warning is written.
    pub fn finish(self, describe: impl FnOnce() -> (String, String)) {
        let Some(limit) = threshold(&APPLY_WARN_NANOS) else {
            return;
        };
        let took = self.started.elapsed();
        if took <= limit {
            return;
        }
        let (request, response) = describe();
        tracing::warn!(
            took = go_duration(took),
            expected_duration = go_duration(limit),
            prefix = "",
            request,
            response,
            "apply request took too long"
        );
    }
}
