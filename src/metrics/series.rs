//! The unlabelled series counted on hot paths: one enum per kind, with the exported name, help
//! text and (for histograms) buckets. Names, help texts and buckets of the `etcd_*` series are
//! etcd 3.6's (server/etcdserver/metrics.go, server/storage/{wal,backend,mvcc}/metrics.go); the
//! `capstan_*` ones are ours, named with their unit.

use super::cells::Buckets;

/// Counters (exported as `counter` unless [`Counter::exported_as_gauge`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    ProposalsFailed,
    HeartbeatSendFailures,
    SlowApply,
    ReadIndexesFailed,
    MvccPut,
    MvccDelete,
    MvccRange,
    MvccTxn,
    /// etcd exports this one as a gauge.
    WalWriteBytes,
    ClientGrpcSentBytes,
    ClientGrpcReceivedBytes,
    /// Watchers switched from live delivery to catching up from history.
    WatchCatchUps,
    /// Messages a shard sent to the owner shard (proposals, read indexes, lease questions).
    CrossShardHops,
}

impl Counter {
    pub const ALL: [Counter; 13] = [
        Counter::ProposalsFailed,
        Counter::HeartbeatSendFailures,
        Counter::SlowApply,
        Counter::ReadIndexesFailed,
        Counter::MvccPut,
        Counter::MvccDelete,
        Counter::MvccRange,
        Counter::MvccTxn,
        Counter::WalWriteBytes,
        Counter::ClientGrpcSentBytes,
        Counter::ClientGrpcReceivedBytes,
        Counter::WatchCatchUps,
        Counter::CrossShardHops,
    ];
    pub const COUNT: usize = Counter::ALL.len();

    /// The exported name (with `_total` where etcd's has it) and help text.
    pub fn describe(self) -> (&'static str, &'static str) {
        match self {
            Counter::ProposalsFailed => (
                "etcd_server_proposals_failed_total",
                "The total number of failed proposals seen.",
            ),
            Counter::HeartbeatSendFailures => (
                "etcd_server_heartbeat_send_failures_total",
                "The total number of leader heartbeat send failures (likely overloaded from slow disk).",
            ),
            Counter::SlowApply => (
                "etcd_server_slow_apply_total",
                "The total number of slow apply requests (likely overloaded from slow disk).",
            ),
            Counter::ReadIndexesFailed => (
                "etcd_server_read_indexes_failed_total",
                "The total number of failed read indexes seen.",
            ),
            Counter::MvccPut => (
                "etcd_mvcc_put_total",
                "Total number of puts seen by this member.",
            ),
            Counter::MvccDelete => (
                "etcd_mvcc_delete_total",
                "Total number of deletes seen by this member.",
            ),
            Counter::MvccRange => (
                "etcd_mvcc_range_total",
                "Total number of ranges seen by this member.",
            ),
            Counter::MvccTxn => (
                "etcd_mvcc_txn_total",
                "Total number of txns seen by this member.",
            ),
            Counter::WalWriteBytes => (
                "etcd_disk_wal_write_bytes_total",
                "Total number of bytes written in WAL.",
            ),
            Counter::ClientGrpcSentBytes => (
                "etcd_network_client_grpc_sent_bytes_total",
                "The total number of bytes sent to grpc clients.",
            ),
            Counter::ClientGrpcReceivedBytes => (
                "etcd_network_client_grpc_received_bytes_total",
                "The total number of bytes received from grpc clients.",
            ),
            Counter::WatchCatchUps => (
                "capstan_watch_catch_ups_total",
                "Watchers switched from live delivery to catching up from history (a slow reader or a snapshot install).",
            ),
            Counter::CrossShardHops => (
                "capstan_cross_shard_hops_total",
                "Messages a shard sent to the raft group's owner shard (proposals, read indexes, lease questions).",
            ),
        }
    }

    /// etcd registers `etcd_disk_wal_write_bytes_total` as a gauge.
    pub fn exported_as_gauge(self) -> bool {
        self == Counter::WalWriteBytes
    }

    /// Exported per shard (label `shard`) rather than summed.
    pub fn per_shard(self) -> bool {
        self == Counter::CrossShardHops
    }
}

/// Gauges, each the sum of every thread's part (or, per shard, each shard's part).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gauge {
    ProposalsPending,
    Watchers,
    SlowWatchers,
    WatchStreams,
    DefragInflight,
    /// gRPC calls started and not yet finished on a shard.
    CallsInFlight,
    /// A shard's requests to the owner shard not yet answered.
    OwnerRequestsInFlight,
}

impl Gauge {
    pub const ALL: [Gauge; 7] = [
        Gauge::ProposalsPending,
        Gauge::Watchers,
        Gauge::SlowWatchers,
        Gauge::WatchStreams,
        Gauge::DefragInflight,
        Gauge::CallsInFlight,
        Gauge::OwnerRequestsInFlight,
    ];
    pub const COUNT: usize = Gauge::ALL.len();

    pub fn describe(self) -> (&'static str, &'static str) {
        match self {
            Gauge::ProposalsPending => (
                "etcd_server_proposals_pending",
                "The current number of pending proposals to commit.",
            ),
            Gauge::Watchers => (
                "etcd_debugging_mvcc_watcher_total",
                "Total number of watchers.",
            ),
            Gauge::SlowWatchers => (
                "etcd_debugging_mvcc_slow_watcher_total",
                "Total number of unsynced slow watchers.",
            ),
            Gauge::WatchStreams => (
                "etcd_debugging_mvcc_watch_stream_total",
                "Total number of watch streams.",
            ),
            Gauge::DefragInflight => (
                "etcd_disk_defrag_inflight",
                "Whether or not defrag is active on the member. 1 means active, 0 means not.",
            ),
            Gauge::CallsInFlight => (
                "capstan_shard_grpc_calls_in_flight",
                "gRPC calls started and not yet finished, per shard.",
            ),
            Gauge::OwnerRequestsInFlight => (
                "capstan_shard_owner_requests_in_flight",
                "Requests a shard sent to the raft group's owner shard and not yet answered, per shard (its cross-shard queue depth).",
            ),
        }
    }

    pub fn per_shard(self) -> bool {
        matches!(self, Gauge::CallsInFlight | Gauge::OwnerRequestsInFlight)
    }
}

/// Histograms without labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Histogram {
    WalFsyncSeconds,
    BackendCommitSeconds,
    BackendDefragSeconds,
    BackendSnapshotSeconds,
    /// Raft entries and state records made durable by one WAL sync (proposals per fsync).
    WalSyncRecords,
    WalSyncBytes,
    ApplySeconds,
}

impl Histogram {
    pub const ALL: [Histogram; 7] = [
        Histogram::WalFsyncSeconds,
        Histogram::BackendCommitSeconds,
        Histogram::BackendDefragSeconds,
        Histogram::BackendSnapshotSeconds,
        Histogram::WalSyncRecords,
        Histogram::WalSyncBytes,
        Histogram::ApplySeconds,
    ];
    pub const COUNT: usize = Histogram::ALL.len();

    pub fn describe(self) -> (&'static str, &'static str) {
        match self {
            Histogram::WalFsyncSeconds => (
                "etcd_disk_wal_fsync_duration_seconds",
                "The latency distributions of fsync called by WAL.",
            ),
            Histogram::BackendCommitSeconds => (
                "etcd_disk_backend_commit_duration_seconds",
                "The latency distributions of commit called by backend.",
            ),
            Histogram::BackendDefragSeconds => (
                "etcd_disk_backend_defrag_duration_seconds",
                "The latency distribution of backend defragmentation.",
            ),
            Histogram::BackendSnapshotSeconds => (
                "etcd_disk_backend_snapshot_duration_seconds",
                "The latency distribution of backend snapshots.",
            ),
            Histogram::WalSyncRecords => (
                "capstan_wal_sync_records",
                "Records (raft entries and state) made durable by one WAL group commit: proposals per fsync.",
            ),
            Histogram::WalSyncBytes => (
                "capstan_wal_sync_bytes",
                "Record bytes made durable by one WAL group commit.",
            ),
            Histogram::ApplySeconds => (
                "capstan_raft_apply_batch_duration_seconds",
                "Time to apply one batch of committed raft entries to the MVCC state.",
            ),
        }
    }

    pub fn buckets(self) -> Buckets {
        match self {
            // wal/metrics.go and backend/metrics.go: 1 ms to 8.192 s.
            Histogram::WalFsyncSeconds | Histogram::BackendCommitSeconds => {
                Buckets::exponential(0.001, 2.0, 14)
            }
            // 100 ms to 409.6 s.
            Histogram::BackendDefragSeconds => Buckets::exponential(0.1, 2.0, 13),
            // 10 ms to 655.36 s.
            Histogram::BackendSnapshotSeconds => Buckets::exponential(0.01, 2.0, 17),
            Histogram::WalSyncRecords => Buckets::exponential(1.0, 2.0, 14),
            Histogram::WalSyncBytes => Buckets::exponential(512.0, 4.0, 12),
            // 100 µs to 1.6 s.
            Histogram::ApplySeconds => Buckets::exponential(0.0001, 2.0, 15),
        }
    }
}

/// etcd's apply is "slow" past this (etcd's `warnApplyDuration`, 100 ms).
pub const SLOW_APPLY_SECONDS: f64 = 0.1;
