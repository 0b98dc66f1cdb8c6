//! The start-up lines etcd writes, with etcd's `msg` strings and field names, so a log shipper
//! sees a Capstan start-up as it sees an etcd one (`embed.StartEtcd`, `embed.serveClients`):
//!
//! 1. `starting an etcd server` — the configuration in force (plus Capstan's shards and CPUs);
//! 2. `starting local member` / `restarting local member` — ids, after the WAL is read;
//! 3. `now serving peer/client/metrics` and `serving peer traffic` — listeners bound;
//! 4. (`ready to serve client requests`, written by the runtime when every shard accepts);
//! 5. `serving client traffic insecurely; this is strongly discouraged!` or
//!    `serving client traffic securely`, one per client URL.
//!
//! URL lists, which etcd writes as JSON arrays, are written as comma-separated strings.

use crate::config::{ClientUrl, ServerConfig, ETCD_API_VERSION};
use crate::logging::go_duration;
use std::time::Duration;

fn joined(urls: &[ClientUrl]) -> String {
    urls.iter()
        .map(|url| url.original.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn initial_cluster(config: &ServerConfig) -> String {
    config
        .initial_cluster
        .iter()
        .flat_map(|(name, urls)| urls.iter().map(move |url| format!("{name}={url}")))
        .collect::<Vec<_>>()
        .join(",")
}

/// `starting an etcd server`, first thing after the flags are read.
pub fn starting(config: &ServerConfig, shards: usize, cpus: &[usize]) {
    let member_initialized = config.wal_dir().exists();
    tracing::info!(
        etcd_version = ETCD_API_VERSION,
        capstan_version = env!("CARGO_PKG_VERSION"),
        max_cpu_set = cpus.len() as u64,
        shards = shards as u64,
        member_initialized,
        name = config.name.as_str(),
        data_dir = %config.data_dir.display(),
        wal_dir = %config
            .wal_dir_dedicated
            .as_ref()
            .map(|dir| dir.display().to_string())
            .unwrap_or_default(),
        member_dir = %config.data_dir.join("member").display(),
        heartbeat_interval = go_duration(Duration::from_millis(config.heartbeat_interval_ms)),
        election_timeout = go_duration(Duration::from_millis(config.election_timeout_ms)),
        snapshot_count = config.snapshot_count,
        initial_advertise_peer_urls = config.initial_advertise_peer_urls.join(","),
        listen_peer_urls = config.listen_peer_url.original.as_str(),
        advertise_client_urls = config.advertise_client_urls.join(","),
        listen_client_urls = joined(&config.listen_client_urls),
        listen_metrics_urls = joined(&config.listen_metrics_urls),
        initial_cluster = initial_cluster(config),
        initial_cluster_state = if config.join_existing { "existing" } else { "new" },
        initial_cluster_token = config.initial_cluster_token.as_str(),
        quota_backend_bytes = config.quota_bytes().unwrap_or(0),
        max_request_bytes = config.max_request_bytes as u64,
        pre_vote = true,
        initial_corrupt_check = config.initial_corrupt_check,
        "starting an etcd server"
    );
}

/// `starting local member` for a new member, `restarting local member` for one with a WAL.
pub fn local_member(config: &ServerConfig, restarting: bool, commit_index: u64) {
    let local_member_id = format!("{:x}", config.member_id());
    let cluster_id = format!("{:x}", config.cluster_id());
    if restarting {
        tracing::info!(
            local_member_id,
            cluster_id,
            commit_index,
            "restarting local member"
        );
    } else {
        tracing::info!(local_member_id, cluster_id, "starting local member");
    }
}

/// `now serving peer/client/metrics`, then `serving peer traffic` when a peer listener runs.
pub fn now_serving(config: &ServerConfig, peer_listener: bool) {
    tracing::info!(
        local_member_id = format!("{:x}", config.member_id()),
        initial_advertise_peer_urls = config.initial_advertise_peer_urls.join(","),
        listen_peer_urls = config.listen_peer_url.original.as_str(),
        advertise_client_urls = config.advertise_client_urls.join(","),
        listen_client_urls = joined(&config.listen_client_urls),
        listen_metrics_urls = joined(&config.listen_metrics_urls),
        "now serving peer/client/metrics"
    );
    if peer_listener {
        tracing::info!(
            address = %config.listen_peer_url.address,
            "serving peer traffic"
        );
    }
}

/// etcd's line per client listener once it serves (`traffic`: `grpc+http`, or `grpc` and
/// `http` once `--listen-client-http-urls` splits them).
pub fn serving_client_traffic(config: &ServerConfig) {
    for (url, traffic) in super::listen::client_listener_urls(config) {
        let traffic = traffic.etcd_name();
        if url.tls {
            tracing::info!(
                traffic,
                address = %url.address,
                "serving client traffic securely"
            );
        } else {
            tracing::info!(
                traffic,
                address = %url.address,
                "serving client traffic insecurely; this is strongly discouraged!"
            );
        }
    }
}
