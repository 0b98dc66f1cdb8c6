//! Settings (from one source, renames resolved, outcomes checked) → `ServerConfig`, with
//! etcd's defaults and its cross-flag rules (`--advertise-client-urls` required with
//! `--listen-client-urls` on the command line, election timeout at least five heartbeats, ...).

use super::gates::GateValues;
use super::settings::{parse_go_bool, Origin, Settings};
use super::{
    parse_auto_compaction, parse_go_duration, security, ClientUrl, ConfigError, ServerConfig,
    TransportSecurity, AUTO_COMPACTION_MODE_DEFAULT, ELECTION_TIMEOUT_MS_DEFAULT,
    HEARTBEAT_INTERVAL_MS_DEFAULT, MAX_REQUEST_BYTES_DEFAULT, MAX_TXN_OPS_DEFAULT,
    WATCH_PROGRESS_NOTIFY_INTERVAL_DEFAULT,
};
use std::path::PathBuf;
use std::time::Duration;

/// Default WAL segment size (etcd's 64 MiB).
pub const WAL_SEGMENT_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;
/// etcd's maximum `--election-timeout`, in milliseconds.
const ELECTION_TIMEOUT_MS_MAX: u64 = 50_000;
/// etcd's `--max-learners` default.
const MAX_LEARNERS_DEFAULT: u64 = 1;
/// etcd 3.6's `--snapshot-count` default: applied entries between raft snapshots (3.5 and
/// older: 100000).
pub const SNAPSHOT_COUNT_DEFAULT: u64 = 10_000;

/// etcd's `--warning-unary-request-duration` default.
pub const WARNING_UNARY_REQUEST_DURATION_DEFAULT: Duration = Duration::from_millis(300);
/// etcd's `--warning-apply-duration` default.
pub const WARNING_APPLY_DURATION_DEFAULT: Duration = Duration::from_millis(100);

/// A Go duration flag, or `default` when it is not given.
fn duration_or(
    values: &Values<'_>,
    name: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match values.get(name) {
        None => Ok(default),
        Some(value) => parse_go_duration(value).map_err(|error| {
            ConfigError(format!(
                "invalid value \"{value}\" for flag -{name}: {error}"
            ))
        }),
    }
}

/// Typed reads of settings that were checked against their kinds already.
struct Values<'a>(&'a Settings);

impl Values<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|setting| setting.value.as_str())
    }

    fn given(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    fn text(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_string()
    }

    fn number(&self, name: &str, default: u64) -> Result<u64, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(value) => value.trim().parse::<u64>().map_err(|_| {
                ConfigError(format!(
                    "invalid value \"{value}\" for flag -{name}: parse error"
                ))
            }),
        }
    }

    fn signed(&self, name: &str, default: i64) -> Result<i64, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(value) => value.trim().parse::<i64>().map_err(|_| {
                ConfigError(format!(
                    "invalid value \"{value}\" for flag -{name}: parse error"
                ))
            }),
        }
    }

    fn flag(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(value) => parse_go_bool(value).ok_or_else(|| {
                ConfigError(format!(
                    "invalid boolean value \"{value}\" for -{name}: parse error"
                ))
            }),
        }
    }

    fn path(&self, name: &str) -> Option<PathBuf> {
        self.get(name)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
    }

    /// A comma-separated list, normalised (`a, b` → `a,b`), `None` when empty.
    fn names(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|value| list(value).join(","))
            .filter(|joined| !joined.is_empty())
    }
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(str::to_string)
        .collect()
}

fn parse_initial_cluster(text: &str) -> Result<Vec<(String, Vec<String>)>, ConfigError> {
    let mut members: Vec<(String, Vec<String>)> = Vec::new();
    for entry in list(text) {
        let Some((name, url)) = entry.split_once('=') else {
            return Err(ConfigError(format!(
                "--initial-cluster: '{entry}' is not of the form name=url"
            )));
        };
        match members.iter_mut().find(|(member, _)| member == name) {
            Some((_, urls)) => urls.push(url.to_string()),
            None => members.push((name.to_string(), vec![url.to_string()])),
        }
    }
    Ok(members)
}

fn absolute(flag: &str, path: PathBuf) -> Result<PathBuf, ConfigError> {
    // Resolved once here: glommio opens directories by absolute path only (a relative one fails
    // with EBADF), and logs should name the real place anyway.
    if path.is_absolute() {
        return Ok(path);
    }
    std::env::current_dir()
        .map(|dir| dir.join(&path))
        .map_err(|error| {
            ConfigError(format!(
                "--{flag}: cannot resolve {}: {error}",
                path.display()
            ))
        })
}

fn urls(flag: &str, text: &str) -> Result<Vec<ClientUrl>, ConfigError> {
    list(text)
        .iter()
        .map(|url| ClientUrl::parse(url).map_err(|error| ConfigError(format!("--{flag}: {error}"))))
        .collect()
}

/// Refuses `https://` listeners on a side whose TLS is not served yet, and TLS settings on a
/// side with no `https://` listener (they would have no effect). An `http://` listener beside
/// `https://` ones with client certificates required is etcd's choice, kept: the TLS listener
/// logs that client-cert-auth does not apply to it.
fn check_listener_security(
    flag: &str,
    listeners: &[ClientUrl],
    side: super::table::TlsSide,
    transport: &TransportSecurity,
) -> Result<(), ConfigError> {
    let any_tls = listeners.iter().any(|url| url.tls);
    if !any_tls && (transport.is_set() || transport.crl_file.is_some()) {
        return Err(ConfigError(format!(
            "TLS settings are given but no --{flag} URL is https://, so they would have no \
             effect and the listener would accept anyone (refused: a security setting is never \
             accepted without its effect)"
        )));
    }
    for url in listeners {
        if url.tls && !security::tls_served(side) {
            return Err(ConfigError(format!(
                "--{flag}={}: TLS listeners are not supported yet",
                url.original
            )));
        }
    }
    Ok(())
}

/// Builds the configuration. From a configuration file, etcd does not require
/// `advertise-client-urls` with `listen-client-urls` (the default is advertised).
pub fn assemble(settings: &Settings, gates: &GateValues) -> Result<ServerConfig, ConfigError> {
    let values = Values(settings);
    let name = values.text("name", "default");
    let data_dir = absolute(
        "data-dir",
        PathBuf::from(values.text("data-dir", &format!("{name}.etcd"))),
    )?;
    let wal_dir = match values.path("wal-dir") {
        None => None,
        Some(path) => Some(absolute("wal-dir", path)?),
    };
    let from_file = settings
        .values()
        .any(|setting| matches!(setting.origin, Origin::File { .. }));
    if values.given("listen-client-urls") && !values.given("advertise-client-urls") && !from_file {
        return Err(ConfigError(
            "--advertise-client-urls is required when --listen-client-urls is set explicitly"
                .to_string(),
        ));
    }
    let listen_client_urls = urls(
        "listen-client-urls",
        &values.text("listen-client-urls", "http://localhost:2379"),
    )?;
    if listen_client_urls.is_empty() {
        return Err(ConfigError("--listen-client-urls is empty".to_string()));
    }
    let listen_client_http_urls = urls(
        "listen-client-http-urls",
        &values.text("listen-client-http-urls", ""),
    )?;
    check_client_http_urls_apart(&listen_client_urls, &listen_client_http_urls)?;
    let peer_urls = list(&values.text("initial-advertise-peer-urls", "http://localhost:2380"));
    let initial_cluster = parse_initial_cluster(
        &values.text("initial-cluster", &format!("{name}=http://localhost:2380")),
    )?;
    check_local_member(&name, &peer_urls, &initial_cluster)?;
    let join_existing = match values.text("initial-cluster-state", "new").as_str() {
        "new" => false,
        "existing" => true,
        other => {
            return Err(ConfigError(format!(
                "unexpected value \"{other}\" for --initial-cluster-state (new or existing)"
            )))
        }
    };
    let listen_peer_urls = urls(
        "listen-peer-urls",
        &values.text("listen-peer-urls", "http://localhost:2380"),
    )?;
    let Some(listen_peer_url) = listen_peer_urls.first().cloned() else {
        return Err(ConfigError("--listen-peer-urls is empty".to_string()));
    };
    let listen_metrics_urls = urls(
        "listen-metrics-urls",
        &values.text("listen-metrics-urls", ""),
    )?;
    let security = super::SecurityConfig {
        client: client_security(&values)?,
        peer: peer_security(&values)?,
        cipher_suites: list(&values.text("cipher-suites", "")),
        tls_min_version: values.get("tls-min-version").map(str::to_string),
        tls_max_version: values
            .get("tls-max-version")
            .filter(|version| !version.is_empty())
            .map(str::to_string),
        self_signed_cert_validity_years: u32::try_from(values.number(
            "self-signed-cert-validity",
            u64::from(super::SELF_SIGNED_CERT_VALIDITY_YEARS_DEFAULT),
        )?)
        .map_err(|_| ConfigError("--self-signed-cert-validity is too large".to_string()))?,
    };
    if security.self_signed_cert_validity_years == 0 {
        return Err(ConfigError(
            "--self-signed-cert-validity must be at least 1 (year)".to_string(),
        ));
    }
    crate::tls::crypto_policy(&security).map_err(|error| ConfigError(error.to_string()))?;
    // The HTTP-only client URLs and an https:// metrics URL serve the client certificate too
    // (etcd's ClientTLSInfo).
    let client_urls: Vec<ClientUrl> = listen_client_urls
        .iter()
        .chain(&listen_client_http_urls)
        .cloned()
        .collect();
    check_client_urls_have_a_certificate(&client_urls, &security.client)?;
    use super::table::TlsSide;
    let client_side_urls: Vec<ClientUrl> = client_urls
        .iter()
        .chain(&listen_metrics_urls)
        .cloned()
        .collect();
    check_listener_security(
        "listen-client-urls",
        &client_side_urls,
        TlsSide::Client,
        &security.client,
    )?;
    check_listener_security(
        "listen-peer-urls",
        &listen_peer_urls,
        TlsSide::Peer,
        &security.peer,
    )?;
    let heartbeat_interval_ms =
        values.number("heartbeat-interval", HEARTBEAT_INTERVAL_MS_DEFAULT)?;
    let election_timeout_ms = values.number("election-timeout", ELECTION_TIMEOUT_MS_DEFAULT)?;
    if heartbeat_interval_ms == 0 || election_timeout_ms < 5 * heartbeat_interval_ms {
        return Err(ConfigError(format!(
            "--election-timeout[{election_timeout_ms}ms] should be at least 5 times as --heartbeat-interval[{heartbeat_interval_ms}ms]"
        )));
    }
    if election_timeout_ms > ELECTION_TIMEOUT_MS_MAX {
        return Err(ConfigError(format!(
            "--election-timeout[{election_timeout_ms}ms] is too long, and should be set less than {ELECTION_TIMEOUT_MS_MAX}ms"
        )));
    }
    let max_request_bytes = values.number("max-request-bytes", MAX_REQUEST_BYTES_DEFAULT as u64)?;
    let max_txn_ops = values.number("max-txn-ops", MAX_TXN_OPS_DEFAULT as u64)?;
    if max_txn_ops == 0 {
        return Err(ConfigError("--max-txn-ops must be at least 1".to_string()));
    }
    let watch_progress_notify_interval = match values.get("watch-progress-notify-interval") {
        None => WATCH_PROGRESS_NOTIFY_INTERVAL_DEFAULT,
        Some(value) => parse_go_duration(value).map_err(|error| {
            ConfigError(format!(
                "invalid value \"{value}\" for flag -watch-progress-notify-interval: {error}"
            ))
        })?,
    };
    if watch_progress_notify_interval.is_zero() {
        return Err(ConfigError(
            "--watch-progress-notify-interval must be greater than 0".to_string(),
        ));
    }
    let max_learners = values.signed("max-learners", MAX_LEARNERS_DEFAULT as i64)?;
    let max_learners = usize::try_from(max_learners)
        .map_err(|_| ConfigError(format!("--max-learners={max_learners} is out of range")))?;
    let auto_compaction = parse_auto_compaction(
        &values.text("auto-compaction-mode", AUTO_COMPACTION_MODE_DEFAULT),
        &values.text("auto-compaction-retention", "0"),
    )
    .map_err(ConfigError)?;
    // etcd takes 0 to mean its default.
    let snapshot_count = match values.number("snapshot-count", SNAPSHOT_COUNT_DEFAULT)? {
        0 => SNAPSHOT_COUNT_DEFAULT,
        count => count,
    };
    let max_concurrent_streams = match values.get("max-concurrent-streams") {
        None => None,
        Some(_) => Some(
            u32::try_from(values.number("max-concurrent-streams", u64::from(u32::MAX))?).map_err(
                |_| ConfigError("--max-concurrent-streams must fit in 32 bits".to_string()),
            )?,
        ),
    };
    if max_concurrent_streams == Some(0) {
        return Err(ConfigError(
            "--max-concurrent-streams must be at least 1".to_string(),
        ));
    }
    Ok(ServerConfig {
        snapshot_count,
        join_existing,
        cluster_id_override: None,
        strict_reconfig_check: values.flag("strict-reconfig-check", true)?,
        max_learners,
        listen_peer_url,
        listen_peer_url_given: values.given("listen-peer-urls"),
        watch_progress_notify_interval,
        name,
        data_dir,
        wal_dir_dedicated: wal_dir,
        listen_client_urls,
        listen_client_http_urls,
        enable_grpc_gateway: values.flag("enable-grpc-gateway", true)?,
        advertise_client_urls: list(&values.text("advertise-client-urls", "http://localhost:2379")),
        initial_advertise_peer_urls: peer_urls,
        initial_cluster,
        initial_cluster_token: values.text("initial-cluster-token", "etcd-cluster"),
        max_request_bytes: usize::try_from(max_request_bytes)
            .map_err(|_| ConfigError("--max-request-bytes is too large".to_string()))?,
        max_txn_ops: usize::try_from(max_txn_ops)
            .map_err(|_| ConfigError("--max-txn-ops is too large".to_string()))?,
        max_concurrent_streams,
        heartbeat_interval_ms,
        election_timeout_ms,
        log_level: values.text("log-level", "info"),
        logger: values.text("logger", "zap"),
        log_outputs: list(&values.text("log-outputs", "default")),
        log_format: values.text("log-format", "json"),
        warning_unary_request_duration: duration_or(
            &values,
            "warning-unary-request-duration",
            WARNING_UNARY_REQUEST_DURATION_DEFAULT,
        )?,
        warning_apply_duration: duration_or(
            &values,
            "warning-apply-duration",
            WARNING_APPLY_DURATION_DEFAULT,
        )?,
        shards: usize::try_from(values.number("shards", 0)?)
            .map_err(|_| ConfigError("--shards is too large".to_string()))?,
        wal_segment_bytes: values.number("wal-segment-bytes", WAL_SEGMENT_BYTES_DEFAULT)?,
        quota_backend_bytes: values.signed("quota-backend-bytes", 0)?,
        auto_compaction,
        security,
        listen_metrics_urls,
        metrics_extensive: values.text("metrics", "basic") == "extensive",
        initial_corrupt_check: gates.get("InitialCorruptCheck").copied().unwrap_or(false),
    })
}

/// etcd's rule: one address is either a `--listen-client-urls` or a
/// `--listen-client-http-urls` listener, not both.
fn check_client_http_urls_apart(
    client_urls: &[ClientUrl],
    http_urls: &[ClientUrl],
) -> Result<(), ConfigError> {
    match http_urls
        .iter()
        .find(|http| client_urls.iter().any(|url| url.address == http.address))
    {
        Some(url) => Err(ConfigError(format!(
            "cannot bind both --listen-client-urls and --listen-client-http-urls on the same \
             url {}",
            url.original
        ))),
        None => Ok(()),
    }
}

/// etcd's rule: an https:// client URL needs a certificate (or `--auto-tls`).
fn check_client_urls_have_a_certificate(
    urls: &[ClientUrl],
    client: &TransportSecurity,
) -> Result<(), ConfigError> {
    let has_certificate = client.cert_file.is_some() && client.key_file.is_some();
    match urls.iter().find(|url| url.tls) {
        Some(url) if !has_certificate && !client.auto_tls => Err(ConfigError(format!(
            "TLS key/cert (--cert-file, --key-file) must be provided for client url {} with \
             HTTPS scheme",
            url.original
        ))),
        _ => Ok(()),
    }
}

/// This member must be in `--initial-cluster` with exactly its advertised peer urls.
fn check_local_member(
    name: &str,
    peer_urls: &[String],
    initial_cluster: &[(String, Vec<String>)],
) -> Result<(), ConfigError> {
    let Some((_, urls)) = initial_cluster.iter().find(|(member, _)| member == name) else {
        return Err(ConfigError(format!(
            "couldn't find local name \"{name}\" in the initial cluster configuration"
        )));
    };
    let mut ours = peer_urls.to_vec();
    let mut listed = urls.clone();
    ours.sort();
    listed.sort();
    if ours != listed {
        return Err(ConfigError(format!(
            "--initial-cluster has {name}={} but missing from --initial-advertise-peer-urls={}",
            listed.join(","),
            ours.join(",")
        )));
    }
    Ok(())
}

/// The client TLS flags (`--cert-file`, ...), as etcd reads them.
fn client_security(values: &Values) -> Result<TransportSecurity, ConfigError> {
    let client_cert_file = values.path("client-cert-file");
    let client_key_file = values.path("client-key-file");
    if client_cert_file.is_some() != client_key_file.is_some() {
        return Err(ConfigError(
            "--client-cert-file and --client-key-file must both be present or both absent"
                .to_string(),
        ));
    }
    Ok(TransportSecurity {
        cert_file: values.path("cert-file"),
        key_file: values.path("key-file"),
        trusted_ca_file: values.path("trusted-ca-file"),
        client_cert_auth: values.flag("client-cert-auth", false)?,
        crl_file: values.path("client-crl-file"),
        allowed_hostname: values.names("client-cert-allowed-hostname"),
        allowed_cn: None,
        client_cert_file,
        client_key_file,
        auto_tls: values.flag("auto-tls", false)?,
        skip_client_san_verification: false,
    })
}

/// The `--peer-*` TLS flags, as etcd reads them: the client certificate defaults to the server
/// one at connect time (not here); `--peer-cert-allowed-cn` and `--peer-cert-allowed-hostname`
/// are comma-separated lists and exclude each other (etcd's `TLSInfo.baseConfig`).
fn peer_security(values: &Values) -> Result<TransportSecurity, ConfigError> {
    let allowed_cn = values.names("peer-cert-allowed-cn");
    let allowed_hostname = values.names("peer-cert-allowed-hostname");
    if let (Some(cns), Some(hostnames)) = (&allowed_cn, &allowed_hostname) {
        return Err(ConfigError(format!(
            "AllowedCNs and AllowedHostnames are mutually exclusive (cns=[{cns}], hostnames=[{hostnames}])"
        )));
    }
    let client_cert_file = values.path("peer-client-cert-file");
    let client_key_file = values.path("peer-client-key-file");
    if client_cert_file.is_some() != client_key_file.is_some() {
        return Err(ConfigError(
            "--peer-client-cert-file and --peer-client-key-file must both be present or both absent"
                .to_string(),
        ));
    }
    Ok(TransportSecurity {
        cert_file: values.path("peer-cert-file"),
        key_file: values.path("peer-key-file"),
        trusted_ca_file: values.path("peer-trusted-ca-file"),
        client_cert_auth: values.flag("peer-client-cert-auth", false)?,
        crl_file: values.path("peer-crl-file"),
        allowed_hostname,
        allowed_cn,
        client_cert_file,
        client_key_file,
        auto_tls: values.flag("peer-auto-tls", false)?,
        skip_client_san_verification: values.flag("peer-skip-client-san-verification", false)?,
    })
}
