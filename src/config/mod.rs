//! Server configuration: etcd's whole configuration surface (every etcd 3.6 flag, its
//! `ETCD_*` variable, `--feature-gates` and the `--config-file` YAML), and the identities
//! (member and cluster ids) derived from it exactly as etcd derives them, so a Capstan member
//! started with the same flags as an etcd member reports the same ids.
//!
//! `table` lists every flag with what Capstan does with it (implemented, accepted with a notice,
//! or refused by name); `flags::parse_args` reads the sources in etcd's order of precedence;
//! `docs/configuration.md` is the table for readers (a test keeps them equal).

mod args;
mod assemble;
mod auto_compaction;
mod duration;
mod env;
mod file;
mod flags;
pub mod gates;
mod help;
mod identity;
mod security;
mod settings;
pub mod table;
mod url;

pub use auto_compaction::{parse_auto_compaction, AutoCompaction, AUTO_COMPACTION_MODE_DEFAULT};
pub use duration::parse_go_duration;
pub use flags::{
    parse_args, ConfigError, Parsed, SNAPSHOT_COUNT_DEFAULT, WAL_SEGMENT_BYTES_DEFAULT,
};
pub use help::{configuration_table, outcome_note, usage, version_text};
pub use identity::{cluster_id_of, member_id_of};
pub use security::tls_served;
pub use security::{SecurityConfig, TransportSecurity, SELF_SIGNED_CERT_VALIDITY_YEARS_DEFAULT};
pub use settings::parse_go_bool;
pub use url::ClientUrl;

use std::path::PathBuf;
use std::time::Duration;

/// etcd's default `--max-request-bytes` (1.5 MiB).
pub const MAX_REQUEST_BYTES_DEFAULT: usize = 1_572_864;
/// gRPC receive allowance on top of `--max-request-bytes` (etcd's `grpcOverheadBytes`).
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;
/// etcd's default `--max-txn-ops`.
pub const MAX_TXN_OPS_DEFAULT: usize = 128;
/// etcd's default `--heartbeat-interval`, in milliseconds.
pub const HEARTBEAT_INTERVAL_MS_DEFAULT: u64 = 100;
/// etcd's default `--election-timeout`, in milliseconds.
pub const ELECTION_TIMEOUT_MS_DEFAULT: u64 = 1000;
/// etcd's default `--watch-progress-notify-interval`.
pub const WATCH_PROGRESS_NOTIFY_INTERVAL_DEFAULT: Duration = Duration::from_secs(600);
/// The part of etcd's request timeout that does not depend on the election timeout.
pub const REQUEST_TIMEOUT_BASE: Duration = Duration::from_secs(5);

/// etcd's request timeout for an election timeout: 5 s plus two election timeouts.
pub fn request_timeout_for(election_timeout: Duration) -> Duration {
    REQUEST_TIMEOUT_BASE + 2 * election_timeout
}

/// The etcd API version Capstan implements, reported by `Maintenance.Status`. kube-apiserver
/// only enables consistent reads from its watch cache for versions it recognises.
pub const ETCD_API_VERSION: &str = "3.6.0";

/// Everything the server needs to start, after flags, environment and defaults are merged.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub name: String,
    pub data_dir: PathBuf,
    /// `--wal-dir`: a dedicated WAL directory instead of `<data-dir>/member/wal`.
    pub wal_dir_dedicated: Option<PathBuf>,
    pub listen_client_urls: Vec<ClientUrl>,
    /// `--listen-client-http-urls`: listeners that serve HTTP/1.1 only; when any is given,
    /// the `--listen-client-urls` ones serve gRPC only (etcd 3.6's split).
    pub listen_client_http_urls: Vec<ClientUrl>,
    /// `--enable-grpc-gateway`: the JSON gateway (`/v3/...`) on the client HTTP listeners.
    pub enable_grpc_gateway: bool,
    pub advertise_client_urls: Vec<String>,
    /// Where raft peers connect (the first `--listen-peer-urls` entry).
    pub listen_peer_url: ClientUrl,
    /// `--listen-peer-urls` (or `ETCD_LISTEN_PEER_URLS`) was given, rather than defaulted:
    /// a member alone in its cluster then still listens for peers, so members can be added.
    pub listen_peer_url_given: bool,
    pub initial_advertise_peer_urls: Vec<String>,
    pub initial_cluster: Vec<(String, Vec<String>)>,
    pub initial_cluster_token: String,
    pub max_request_bytes: usize,
    pub max_txn_ops: usize,
    /// `--max-concurrent-streams`: HTTP/2 streams one client connection may open; `None` keeps
    /// Capstan's own bound (`grpc::connection::CONCURRENT_STREAMS_MAX`).
    pub max_concurrent_streams: Option<u32>,
    pub heartbeat_interval_ms: u64,
    pub election_timeout_ms: u64,
    pub log_level: String,
    /// `--logger` (only `zap`), `--log-outputs` and `--log-format`, checked by
    /// `logging::LogSettings::parse` when the logger is installed.
    pub logger: String,
    pub log_outputs: Vec<String>,
    pub log_format: String,
    /// `--warning-unary-request-duration`: a unary call slower than this logs etcd's
    /// "request stats" warning (zero: never).
    pub warning_unary_request_duration: Duration,
    /// `--warning-apply-duration`: applying one request slower than this logs etcd's
    /// "apply request took too long" warning (zero: never).
    pub warning_apply_duration: Duration,
    /// Number of shards (pinned executors); 0 means one per CPU the process may use.
    pub shards: usize,
    pub wal_segment_bytes: u64,
    /// How often watchers that asked for progress notifications get one when idle.
    pub watch_progress_notify_interval: Duration,
    /// `--strict-reconfig-check`.
    pub strict_reconfig_check: bool,
    /// `--max-learners`.
    pub max_learners: usize,
    /// `--snapshot-count`: applied entries between raft snapshots.
    pub snapshot_count: u64,
    /// `--initial-cluster-state existing`: join a running cluster (after `member add`) instead
    /// of bootstrapping one.
    pub join_existing: bool,
    /// The cluster id learned from the cluster when joining one (not derivable from flags).
    pub cluster_id_override: Option<u64>,
    /// `--quota-backend-bytes` as given: 0 means etcd's default (2 GiB), a negative value
    /// turns the quota off.
    pub quota_backend_bytes: i64,
    /// `--auto-compaction-mode` and `--auto-compaction-retention`; `None` when off.
    pub auto_compaction: Option<AutoCompaction>,
    /// TLS for clients and peers (`--cert-file`, `--peer-cert-file`, ...).
    pub security: SecurityConfig,
    /// `--listen-metrics-urls`: extra listeners for `/metrics` and the health endpoints.
    pub listen_metrics_urls: Vec<ClientUrl>,
    /// `--metrics extensive`: also export `grpc_server_handling_seconds` (etcd enables
    /// go-grpc-prometheus's handling-time histogram only then; any other value is basic).
    pub metrics_extensive: bool,
    /// `--feature-gates=InitialCorruptCheck=true` (etcd 3.5: `--experimental-initial-corrupt-check`):
    /// compare HashKV with the other members before serving (`server::corrupt_check`).
    pub initial_corrupt_check: bool,
}

impl ServerConfig {
    /// The space quota in force, `None` when it is off (etcd's `NewBackendQuota`).
    pub fn quota_bytes(&self) -> Option<u64> {
        match self.quota_backend_bytes {
            0 => Some(crate::mvcc::quota::QUOTA_BACKEND_BYTES_DEFAULT),
            bytes if bytes < 0 => None,
            bytes => Some(bytes.unsigned_abs()),
        }
    }

    /// The largest gRPC message the front end accepts before decoding it.
    pub fn grpc_receive_bytes_max(&self) -> usize {
        self.max_request_bytes + GRPC_OVERHEAD_BYTES
    }

    /// etcd's default request timeout: 5 s plus two election timeouts.
    pub fn request_timeout(&self) -> Duration {
        request_timeout_for(Duration::from_millis(self.election_timeout_ms))
    }

    /// Raft ticks in one election timeout.
    pub fn election_ticks(&self) -> usize {
        (self.election_timeout_ms / self.heartbeat_interval_ms.max(1)).max(2) as usize
    }

    /// Where a joining member keeps the cluster id it learned.
    pub fn cluster_id_path(&self) -> PathBuf {
        self.data_dir.join("member").join("cluster_id")
    }

    pub fn wal_dir(&self) -> PathBuf {
        match &self.wal_dir_dedicated {
            Some(dir) => dir.clone(),
            None => self.data_dir.join("member").join("wal"),
        }
    }

    /// The page store holding the applied state (see `durable`).
    pub fn store_path(&self) -> PathBuf {
        self.data_dir
            .join("member")
            .join(crate::durable::STORE_FILE_NAME)
    }

    /// Where raft snapshots of the applied state are kept.
    pub fn snap_dir(&self) -> PathBuf {
        self.data_dir.join("member").join("snap")
    }

    /// This member's id: etcd's `computeMemberID` over our initial advertise peer urls.
    pub fn member_id(&self) -> u64 {
        member_id_of(
            &self.initial_advertise_peer_urls,
            &self.initial_cluster_token,
        )
    }

    /// Every member of `--initial-cluster`: (id, name, first peer url).
    pub fn initial_members(&self) -> Vec<(u64, String, String)> {
        self.initial_cluster
            .iter()
            .map(|(name, urls)| {
                let id = member_id_of(urls, &self.initial_cluster_token);
                (id, name.clone(), urls.first().cloned().unwrap_or_default())
            })
            .collect()
    }

    /// The cluster id: etcd's `genID` over the ids of every member of `--initial-cluster`.
    pub fn cluster_id(&self) -> u64 {
        if let Some(cluster_id) = self.cluster_id_override {
            return cluster_id;
        }
        let ids: Vec<u64> = self
            .initial_cluster
            .iter()
            .map(|(_, urls)| member_id_of(urls, &self.initial_cluster_token))
            .collect();
        cluster_id_of(&ids)
    }
}
