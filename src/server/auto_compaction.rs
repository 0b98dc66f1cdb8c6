//! Auto-compaction (etcd's `v3compactor`): the leader compacts old history on its own, by
//! proposing an ordinary Compaction through raft. Followers only watch the clock; when a
//! follower becomes leader it takes over (etcd pauses and resumes its compactor on leadership
//! changes the same way).
//!
//! **periodic** (retention `T`), as etcd 3.4: every `min(T, 1h) / 10` the current revision is
//! sampled and the newest `T / (min(T, 1h) / 10) + 1` samples kept, so the oldest sample is the
//! revision of about `T` ago. Once `T` has passed since start-up, and from then on every
//! `min(T, 1h)` after the last successful compaction, the leader compacts at the oldest sample.
//! A retention of 2h thus keeps 2h of history and compacts hourly; 10m compacts every 10m.
//!
//! **revision** (retention `N`): every [`REVISION_CHECK_INTERVAL`] the leader compacts at
//! `current revision - N` unless that is not positive or was already compacted. etcd checks
//! every 5 minutes; Capstan checks every 5 seconds, which keeps the history closer to `N`
//! revisions (a compaction is only proposed when the target moved).
//!
//! A compaction refused because the revision is already compacted counts as done, as in etcd;
//! unlike etcd, one the member already knows to be compacted is not proposed at all.

use crate::config::AutoCompaction;
use crate::mvcc::MvccError;
use crate::server::ServerError;
use crate::shard::{ShardContext, Shutdown};
use capstan_proto::capstanpb::internal_request::Request;
use capstan_proto::etcdserverpb::CompactionRequest;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How often revision mode looks whether to compact (etcd: 5 minutes).
pub const REVISION_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// Periodic mode compacts at most this far apart, however long the retention.
const PERIODIC_COMPACT_INTERVAL_MAX: Duration = Duration::from_secs(3600);
/// Periodic mode samples the revision this many times per compaction interval.
const PERIODIC_SAMPLES_PER_INTERVAL: u32 = 10;
/// Floor of the sampling interval, so tiny retentions do not spin.
const PERIODIC_SAMPLE_INTERVAL_MIN: Duration = Duration::from_millis(10);

/// etcd's periodic compactor, without the clock: the caller records a sample, waits
/// [`sample_interval`](Self::sample_interval), then asks [`due`](Self::due).
#[derive(Debug)]
pub struct PeriodicCompactor {
    retention: Duration,
    samples: VecDeque<i64>,
    samples_max: usize,
    last_success: Instant,
    /// The wait before the next attempt: the retention at first, then the compact interval.
    wait_since_success: Duration,
}

impl PeriodicCompactor {
    pub fn new(retention: Duration, now: Instant) -> PeriodicCompactor {
        let mut compactor = PeriodicCompactor {
            retention,
            samples: VecDeque::new(),
            samples_max: 1,
            last_success: now,
            wait_since_success: retention,
        };
        let per_sample = compactor.sample_interval().as_nanos().max(1);
        compactor.samples_max = usize::try_from(retention.as_nanos() / per_sample)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        compactor
    }

    fn compact_interval(&self) -> Duration {
        self.retention.min(PERIODIC_COMPACT_INTERVAL_MAX)
    }

    /// How long to wait between samples (etcd's retry interval).
    pub fn sample_interval(&self) -> Duration {
        (self.compact_interval() / PERIODIC_SAMPLES_PER_INTERVAL).max(PERIODIC_SAMPLE_INTERVAL_MIN)
    }

    /// Remembers the current revision.
    pub fn record(&mut self, revision: i64) {
        self.samples.push_back(revision);
        while self.samples.len() > self.samples_max {
            self.samples.pop_front();
        }
    }

    /// The revision to compact at now, if it is time and this member leads.
    pub fn due(&mut self, now: Instant, leading: bool) -> Option<i64> {
        if !leading || now.duration_since(self.last_success) < self.wait_since_success {
            return None;
        }
        self.wait_since_success = self.compact_interval();
        self.samples.front().copied()
    }

    /// The compaction proposed by `due` applied (or was already done).
    pub fn compacted(&mut self, now: Instant) {
        self.last_success = now;
    }
}

/// etcd's revision compactor, without the clock.
#[derive(Debug)]
pub struct RevisionCompactor {
    retention_revisions: i64,
    last_compacted: i64,
}

impl RevisionCompactor {
    pub fn new(retention_revisions: i64) -> RevisionCompactor {
        RevisionCompactor {
            retention_revisions,
            last_compacted: 0,
        }
    }

    /// The revision to compact at, if this member leads and the target moved.
    pub fn due(&self, current_revision: i64, leading: bool) -> Option<i64> {
        let target = current_revision.saturating_sub(self.retention_revisions);
        (leading && target > 0 && target != self.last_compacted).then_some(target)
    }

    pub fn compacted(&mut self, revision: i64) {
        self.last_compacted = revision;
    }
}

/// Runs the configured auto-compaction until shutdown (returns at once when it is off).
pub async fn auto_compaction_loop(context: Rc<ShardContext>, shutdown: Shutdown) {
    match context.config.auto_compaction {
        None => {}
        Some(AutoCompaction::Periodic { retention }) => {
            tracing::info!(?retention, "periodic auto-compaction on");
            let mut compactor = PeriodicCompactor::new(retention, Instant::now());
            loop {
                compactor.record(context.read_view.load().current_revision());
                if !sleep_unless_shutdown(compactor.sample_interval(), &shutdown).await {
                    return;
                }
                let Some(revision) = compactor.due(Instant::now(), is_leader(&context)) else {
                    continue;
                };
                if compact(&context, revision).await {
                    compactor.compacted(Instant::now());
                }
            }
        }
        Some(AutoCompaction::Revision {
            retention_revisions,
        }) => {
            tracing::info!(retention_revisions, "revision auto-compaction on");
            let mut compactor = RevisionCompactor::new(retention_revisions);
            loop {
                if !sleep_unless_shutdown(REVISION_CHECK_INTERVAL, &shutdown).await {
                    return;
                }
                let current = context.read_view.load().current_revision();
                let Some(revision) = compactor.due(current, is_leader(&context)) else {
                    continue;
                };
                if compact(&context, revision).await {
                    compactor.compacted(revision);
                }
            }
        }
    }
}

fn is_leader(context: &ShardContext) -> bool {
    context.raft_status.leader_id() == context.member_id
}

/// Sleeps for `duration`; false if shutdown came first.
async fn sleep_unless_shutdown(duration: Duration, shutdown: &Shutdown) -> bool {
    futures_lite::future::or(
        async {
            glommio::timer::sleep(duration).await;
            true
        },
        async {
            shutdown.wait().await;
            false
        },
    )
    .await
}

/// Proposes a compaction at `revision`; true once it applied or the revision was already
/// compacted (then nothing is proposed: an idle cluster does not grow its log).
async fn compact(context: &ShardContext, revision: i64) -> bool {
    if revision <= context.read_view.load().compact_revision_or_unset() {
        return true;
    }
    tracing::info!(revision, "starting auto-compaction");
    let request = Request::Compaction(CompactionRequest {
        revision,
        physical: false,
    });
    match context.owner.propose(request).await {
        Ok(_) | Err(ServerError::Mvcc(MvccError::Compacted)) => {
            tracing::info!(revision, "completed auto-compaction");
            true
        }
        Err(error) => {
            tracing::warn!(revision, %error, "auto-compaction failed; will retry");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periodic_waits_a_retention_then_compacts_every_interval() {
        let start = Instant::now();
        let retention = Duration::from_secs(100);
        let mut compactor = PeriodicCompactor::new(retention, start);
        assert_eq!(compactor.sample_interval(), Duration::from_secs(10));
        let step = compactor.sample_interval();
        let mut now = start;
        let mut revision = 1;
        let mut compactions = Vec::new();
        // Revisions grow by 5 per sample interval; run 30 intervals.
        for _ in 0..30 {
            compactor.record(revision);
            now += step;
            revision += 5;
            if let Some(at) = compactor.due(now, true) {
                compactions.push((now.duration_since(start).as_secs(), at));
                compactor.compacted(now);
            }
        }
        // The first after 100 s, at the revision sampled at start-up; then every 100 s, at the
        // oldest of the 11 samples kept (taken 110 s before: etcd samples, then waits).
        assert_eq!(compactions, vec![(100, 1), (200, 46), (300, 96)]);
    }

    #[test]
    fn periodic_over_an_hour_compacts_hourly_and_keeps_the_retention() {
        let start = Instant::now();
        let retention = Duration::from_secs(2 * 3600);
        let mut compactor = PeriodicCompactor::new(retention, start);
        let step = compactor.sample_interval();
        assert_eq!(step, Duration::from_secs(360));
        let mut now = start;
        let mut compactions = Vec::new();
        for sample in 0..60 {
            compactor.record(sample);
            now += step;
            if let Some(at) = compactor.due(now, true) {
                compactions.push((now.duration_since(start).as_secs() / 360, at));
                compactor.compacted(now);
            }
        }
        // 21 samples kept (2 h / 6 min + 1): the oldest is 2 h 6 min old.
        assert_eq!(
            compactions,
            vec![(20, 0), (30, 9), (40, 19), (50, 29), (60, 39)]
        );
    }

    #[test]
    fn periodic_followers_do_not_compact() {
        let start = Instant::now();
        let mut compactor = PeriodicCompactor::new(Duration::from_secs(1), start);
        compactor.record(7);
        assert_eq!(compactor.due(start + Duration::from_secs(5), false), None);
        assert_eq!(compactor.due(start + Duration::from_secs(5), true), Some(7));
    }

    #[test]
    fn revision_keeps_the_newest_revisions() {
        let mut compactor = RevisionCompactor::new(10);
        assert_eq!(compactor.due(10, true), None);
        assert_eq!(compactor.due(25, false), None);
        assert_eq!(compactor.due(25, true), Some(15));
        compactor.compacted(15);
        assert_eq!(compactor.due(25, true), None);
        assert_eq!(compactor.due(26, true), Some(16));
    }
}
