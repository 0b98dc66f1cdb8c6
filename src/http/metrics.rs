//! `/metrics`: the Prometheus text format (0.0.4), with etcd's metric names and help texts.
//!
//! Nothing here sits on a hot path: at each scrape a [`MemberSample`] is taken from what the
//! owner shard already publishes (raft status atomics, the read view's alarms, key count and
//! revisions, page store sizes), from `/proc`, and from the per-thread counters the hot paths
//! keep (`crate::metrics`, summed here; registered by `metrics_series`), and a fresh
//! `prometheus_client` registry is built from them and encoded. Adding a member-state series is
//! adding a field to the sample and a `register` call; adding a counted one is a variant in
//! `metrics::series` and a counting line where it happens.
//!
//! etcd answers `/metrics` to any method; so does this.

use super::member::{HealthCounters, MemberView};
use super::metrics_series::register_counted;
use super::process::{self, ProcessSample};
use super::response::Response;
use crate::config::ETCD_API_VERSION;
use crate::metrics::Totals;
use prometheus_client::encoding::prometheus_text::encode;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering;

/// What etcd 3.6 (Go's promhttp) sends as the content type of the text format.
pub const METRICS_CONTENT_TYPE: &str =
    "text/plain; version=0.0.4; charset=utf-8; escaping=underscores";

type Labels = Vec<(&'static str, String)>;

/// About what one scrape renders (most of it `grpc_server_handled_total`'s 748 rows).
const RENDERED_BYTES_GUESS: usize = 160 * 1024;

/// The member's state for one scrape.
#[derive(Debug, Clone)]
pub struct MemberSample {
    pub member_id: u64,
    pub has_leader: bool,
    pub is_leader: bool,
    pub is_learner: bool,
    pub leader_changes: u64,
    /// Raft's commit and applied indexes (etcd's `etcd_server_proposals_committed_total` and
    /// `..._applied_total` gauges are exactly these).
    pub commit_index: u64,
    pub applied_index: u64,
    /// Live keys, current and compacted revisions of the published read view.
    pub keys_total: u64,
    pub current_revision: i64,
    /// etcd reports -1 before any compaction.
    pub compact_revision: i64,
    /// The quota in force (etcd's `etcd_server_quota_backend_bytes`; negative when off).
    pub quota_backend_bytes: i64,
    pub db_total_size_bytes: u64,
    pub db_total_size_in_use_bytes: u64,
    pub health: HealthCounters,
    pub process: Option<ProcessSample>,
}

impl MemberSample {
    pub fn take(member: &MemberView) -> MemberSample {
        let leader_id = member.leader_id();
        let config = &member.config;
        let quota_backend_bytes = match config.quota_bytes() {
            Some(bytes) => i64::try_from(bytes).unwrap_or(i64::MAX),
            None => config.quota_backend_bytes,
        };
        let status = member.raft_status.snapshot();
        let view = member.read_view.load();
        MemberSample {
            member_id: member.member_id,
            has_leader: leader_id != raft::INVALID_ID,
            is_leader: leader_id != raft::INVALID_ID && leader_id == member.member_id,
            is_learner: member.is_learner(),
            leader_changes: member.raft_status.leader_changes(),
            commit_index: status.commit_index,
            applied_index: status.applied_index,
            keys_total: view.key_count() as u64,
            current_revision: view.current_revision(),
            compact_revision: view.compact_revision_or_unset(),
            quota_backend_bytes,
            db_total_size_bytes: member.durable_stats.size_bytes.load(Ordering::Relaxed),
            db_total_size_in_use_bytes: member.durable_stats.in_use_bytes.load(Ordering::Relaxed),
            health: member.counters.borrow().clone(),
            process: process::sample(),
        }
    }
}

/// One label set with the value 1 (etcd's "info" gauges such as `etcd_server_version`).
fn info_gauge(label: &'static str, value: String) -> Family<Labels, Gauge> {
    let family = Family::<Labels, Gauge>::default();
    family.get_or_create(&vec![(label, value)]).set(1);
    family
}

/// The registry of one scrape. Help texts are etcd's (prometheus_client adds the final dot).
pub fn registry_of(sample: &MemberSample) -> Registry {
    let mut registry = Registry::default();
    let flag = |value: bool| ConstGauge::new(i64::from(value));
    registry.register(
        "etcd_server_has_leader",
        "Whether or not a leader exists. 1 is existence, 0 is not",
        flag(sample.has_leader),
    );
    registry.register(
        "etcd_server_is_leader",
        "Whether or not this member is a leader. 1 if is, 0 otherwise",
        flag(sample.is_leader),
    );
    registry.register(
        "etcd_server_is_learner",
        "Whether or not this member is a learner. 1 if is, 0 otherwise",
        flag(sample.is_learner),
    );
    registry.register(
        "etcd_server_leader_changes_seen",
        "The number of leader changes seen",
        ConstCounter::new(sample.leader_changes),
    );
    registry.register(
        "etcd_server_proposals_committed_total",
        "The total number of consensus proposals committed",
        ConstGauge::new(i64::try_from(sample.commit_index).unwrap_or(i64::MAX)),
    );
    registry.register(
        "etcd_server_proposals_applied_total",
        "The total number of consensus proposals applied",
        ConstGauge::new(i64::try_from(sample.applied_index).unwrap_or(i64::MAX)),
    );
    registry.register(
        "etcd_debugging_mvcc_keys_total",
        "Total number of keys",
        ConstGauge::new(i64::try_from(sample.keys_total).unwrap_or(i64::MAX)),
    );
    registry.register(
        "etcd_debugging_mvcc_current_revision",
        "The current revision of store",
        ConstGauge::new(sample.current_revision),
    );
    registry.register(
        "etcd_debugging_mvcc_compact_revision",
        "The revision of the last compaction in store",
        ConstGauge::new(sample.compact_revision),
    );
    registry.register(
        "etcd_server_id",
        "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID",
        info_gauge("server_id", format!("{:x}", sample.member_id)),
    );
    registry.register(
        "etcd_server_version",
        "Which version is running. 1 for 'server_version' label with current version",
        info_gauge("server_version", ETCD_API_VERSION.to_string()),
    );
    let cluster_version = super::version::cluster_version(ETCD_API_VERSION);
    registry.register(
        "etcd_cluster_version",
        "Which version is running. 1 for 'cluster_version' label with current cluster version",
        info_gauge(
            "cluster_version",
            cluster_version
                .strip_suffix(".0")
                .unwrap_or(&cluster_version)
                .to_string(),
        ),
    );
    registry.register(
        "etcd_server_quota_backend_bytes",
        "Current backend storage quota size in bytes",
        ConstGauge::new(sample.quota_backend_bytes),
    );
    registry.register(
        "etcd_mvcc_db_total_size_in_bytes",
        "Total size of the underlying database physically allocated in bytes",
        ConstGauge::new(sample.db_total_size_bytes),
    );
    registry.register(
        "etcd_mvcc_db_total_size_in_use_in_bytes",
        "Total size of the underlying database logically in use in bytes",
        ConstGauge::new(sample.db_total_size_in_use_bytes),
    );
    register_health(&mut registry, &sample.health);
    if let Some(process) = &sample.process {
        register_process(&mut registry, process);
    }
    registry
}

/// etcd's two health counters. Their names have no `_total`, which `prometheus_client` adds to
/// every counter it encodes, so they are written here and put in by [`render`].
fn health_counter_lines(health: &HealthCounters) -> String {
    [
        (
            "etcd_server_health_success",
            "The total number of successful health checks",
            health.health_success,
        ),
        (
            "etcd_server_health_failures",
            "The total number of failed health checks",
            health.health_failures,
        ),
    ]
    .iter()
    .map(|(name, help, value)| {
        format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n")
    })
    .collect()
}

fn register_health(registry: &mut Registry, health: &HealthCounters) {
    let results = Family::<Labels, Gauge>::default();
    let totals = Family::<Labels, Counter>::default();
    for (&(probe, check), counts) in &health.checks {
        let labels = vec![("type", probe.to_string()), ("name", check.to_string())];
        results
            .get_or_create(&labels)
            .set(i64::from(counts.last_ok));
        for (status, count) in [("success", counts.successes), ("error", counts.failures)] {
            if count > 0 {
                let mut labels = labels.clone();
                labels.push(("status", status.to_string()));
                totals.get_or_create(&labels).inc_by(count);
            }
        }
    }
    registry.register(
        "etcd_server_healthcheck",
        "The result of each kind of healthcheck",
        results,
    );
    registry.register(
        "etcd_server_healthchecks",
        "The total number of each kind of healthcheck",
        totals,
    );
}

fn register_process(registry: &mut Registry, process: &ProcessSample) {
    registry.register(
        "process_cpu_seconds",
        "Total user and system CPU time spent in seconds",
        ConstCounter::new(process.cpu_seconds_total),
    );
    registry.register(
        "process_resident_memory_bytes",
        "Resident memory size in bytes",
        ConstGauge::new(process.resident_memory_bytes),
    );
    registry.register(
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes",
        ConstGauge::new(process.virtual_memory_bytes),
    );
    registry.register(
        "process_virtual_memory_max_bytes",
        "Maximum amount of virtual memory available in bytes",
        // Go's client writes the unlimited u64::MAX as a float too.
        ConstGauge::new(process.virtual_memory_max_bytes as f64),
    );
    registry.register(
        "process_open_fds",
        "Number of open file descriptors",
        ConstGauge::new(process.open_fds),
    );
    registry.register(
        "process_max_fds",
        "Maximum number of open file descriptors",
        ConstGauge::new(process.max_fds),
    );
    registry.register(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds",
        ConstGauge::new(process.start_time_seconds),
    );
}

/// The exposition text of `sample` and the counted series of `totals`.
pub fn render(sample: &MemberSample, totals: &Totals) -> String {
    let mut registry = registry_of(sample);
    register_counted(&mut registry, totals, crate::metrics::is_extensive());
    let mut text = String::with_capacity(RENDERED_BYTES_GUESS);
    if let Err(error) = encode(&mut text, &registry) {
        tracing::error!(%error, "cannot encode metrics");
    }
    let end = text.rfind(OPEN_METRICS_EOF).unwrap_or(text.len());
    text.insert_str(end, &health_counter_lines(&sample.health));
    text
}

/// The last line `prometheus_client` writes (a comment to a 0.0.4 text parser).
const OPEN_METRICS_EOF: &str = "# EOF\n";

pub fn respond_metrics(member: &MemberView) -> Response {
    Response::new(200)
        .with_header("Content-Type", METRICS_CONTENT_TYPE)
        .with_body(render(
            &MemberSample::take(member),
            &crate::metrics::totals(),
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MemberSample {
        let mut health = HealthCounters {
            health_success: 3,
            ..HealthCounters::default()
        };
        health.record_check("readyz", "linearizable_read", true);
        health.record_check("readyz", "linearizable_read", false);
        MemberSample {
            member_id: 0xbdae_9bbc_11dd_390d,
            has_leader: true,
            is_leader: false,
            is_learner: false,
            leader_changes: 2,
            commit_index: 9,
            applied_index: 8,
            keys_total: 3,
            current_revision: 6,
            compact_revision: -1,
            quota_backend_bytes: 2_147_483_648,
            db_total_size_bytes: 20_480,
            db_total_size_in_use_bytes: 16_384,
            health,
            process: process::sample(),
        }
    }

    #[test]
    fn renders_etcds_series() {
        let text = render(&sample(), &crate::metrics::totals());
        for line in [
            "# TYPE etcd_server_has_leader gauge",
            "etcd_server_has_leader 1",
            "etcd_server_is_leader 0",
            "# TYPE etcd_server_leader_changes_seen_total counter",
            "etcd_server_leader_changes_seen_total 2",
            "etcd_server_id{server_id=\"bdae9bbc11dd390d\"} 1",
            "etcd_server_version{server_version=\"3.6.0\"} 1",
            "etcd_cluster_version{cluster_version=\"3.6\"} 1",
            "etcd_server_quota_backend_bytes 2147483648",
            "etcd_mvcc_db_total_size_in_bytes 20480",
            "etcd_mvcc_db_total_size_in_use_in_bytes 16384",
            "# TYPE etcd_server_proposals_committed_total gauge",
            "etcd_server_proposals_committed_total 9",
            "etcd_server_proposals_applied_total 8",
            "etcd_debugging_mvcc_keys_total 3",
            "etcd_debugging_mvcc_compact_revision -1",
            "# TYPE etcd_disk_wal_fsync_duration_seconds histogram",
            "etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.001\"} 0",
            "etcd_disk_wal_fsync_duration_seconds_bucket{le=\"8.192\"} 0",
            "etcd_disk_backend_defrag_duration_seconds_bucket{le=\"409.6\"} 0",
            "etcd_disk_backend_snapshot_duration_seconds_bucket{le=\"655.36\"} 0",
            "# TYPE etcd_mvcc_put_total counter",
            "# TYPE etcd_disk_wal_write_bytes_total gauge",
            "# TYPE grpc_server_handled_total counter",
            "# TYPE etcd_server_health_success counter",
            "etcd_server_health_success 3",
            "etcd_server_health_failures 0",
            "etcd_server_healthcheck{type=\"readyz\",name=\"linearizable_read\"} 0",
            "etcd_server_healthchecks_total{type=\"readyz\",name=\"linearizable_read\",status=\"error\"} 1",
            "# HELP etcd_server_has_leader Whether or not a leader exists. 1 is existence, 0 is not.",
        ] {
            assert!(text.lines().any(|known| known == line), "{line} missing in\n{text}");
        }
        for row in [
            "grpc_server_started_total{grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} ",
            "grpc_server_handled_total{grpc_code=\"Unavailable\",grpc_method=\"Watch\",grpc_service=\"etcdserverpb.Watch\",grpc_type=\"bidi_stream\"} ",
        ] {
            assert!(text.lines().any(|line| line.starts_with(row)), "{row} missing");
        }
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
            "process_virtual_memory_bytes",
        ] {
            assert!(
                text.lines()
                    .any(|line| line.starts_with(&format!("{name} "))),
                "{name} missing in\n{text}"
            );
        }
    }
}
