//! etcd's flag syntax: `--flag=value`, `--flag value`, `-flag`, booleans as `--flag` or
//! `--flag=false`; every flag may also come from `ETCD_<UPPER_SNAKE_NAME>`, and a command-line
//! flag wins over its environment variable. An unknown flag is an error that names it.

use super::{
    parse_auto_compaction, parse_go_duration, ClientUrl, ServerConfig,
    AUTO_COMPACTION_MODE_DEFAULT, ELECTION_TIMEOUT_MS_DEFAULT, HEARTBEAT_INTERVAL_MS_DEFAULT,
    MAX_REQUEST_BYTES_DEFAULT, MAX_TXN_OPS_DEFAULT, WATCH_PROGRESS_NOTIFY_INTERVAL_DEFAULT,
};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Default WAL segment size (etcd's 64 MiB).
pub const WAL_SEGMENT_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;
/// etcd's maximum `--election-timeout`, in milliseconds.
const ELECTION_TIMEOUT_MS_MAX: u64 = 50_000;
/// etcd's `--max-learners` default.
const MAX_LEARNERS_DEFAULT: u64 = 1;
/// etcd 3.4's `--snapshot-count` default: applied entries between raft snapshots.
pub const SNAPSHOT_COUNT_DEFAULT: u64 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Number,
    Bool,
    /// A Go duration such as `5s` or `10m`.
    Duration,
}

/// Flags with an effect, and etcd flags accepted with a warning because their subsystem does not
/// exist yet (so etcd command lines keep working while Capstan grows).
const FLAGS: &[(&str, Kind, &str)] = &[
    ("name", Kind::Text, "human-readable name for this member"),
    ("data-dir", Kind::Text, "path to the data directory"),
    (
        "listen-client-urls",
        Kind::Text,
        "comma-separated urls to serve clients on",
    ),
    (
        "advertise-client-urls",
        Kind::Text,
        "comma-separated client urls advertised to the cluster",
    ),
    (
        "initial-advertise-peer-urls",
        Kind::Text,
        "this member's peer urls (used to derive its id)",
    ),
    (
        "initial-cluster",
        Kind::Text,
        "initial cluster configuration, name=url,...",
    ),
    (
        "initial-cluster-token",
        Kind::Text,
        "initial cluster token (used to derive ids)",
    ),
    ("listen-peer-urls", Kind::Text, "url to serve raft peers on"),
    (
        "listen-metrics-urls",
        Kind::Text,
        "comma-separated urls to serve /metrics and the health probes (/health, /livez, \
         /readyz) on; https ones use the client TLS files",
    ),
    (
        "initial-cluster-state",
        Kind::Text,
        "new (bootstrap a cluster) or existing (join one, after member add)",
    ),
    (
        "strict-reconfig-check",
        Kind::Bool,
        "reject membership changes that would leave too few started members (default true)",
    ),
    (
        "max-learners",
        Kind::Number,
        "maximum number of learner members in the cluster (default 1)",
    ),
    (
        "snapshot-count",
        Kind::Number,
        "applied raft entries between snapshots that compact the log (default 100000)",
    ),
    (
        "max-request-bytes",
        Kind::Number,
        "maximum client request size in bytes",
    ),
    (
        "max-txn-ops",
        Kind::Number,
        "maximum number of operations in one txn",
    ),
    (
        "heartbeat-interval",
        Kind::Number,
        "raft heartbeat interval in ms",
    ),
    (
        "election-timeout",
        Kind::Number,
        "raft election timeout in ms",
    ),
    (
        "log-level",
        Kind::Text,
        "debug, info, warn, error, panic or fatal",
    ),
    (
        "shards",
        Kind::Number,
        "pinned executors to run (0: one per usable CPU)",
    ),
    (
        "wal-segment-bytes",
        Kind::Number,
        "size of one pre-allocated WAL segment",
    ),
    (
        "watch-progress-notify-interval",
        Kind::Duration,
        "period of watch progress notifications (a Go duration: 10m, 5s)",
    ),
    (
        "experimental-watch-progress-notify-interval",
        Kind::Duration,
        "etcd v3.5 name of --watch-progress-notify-interval",
    ),
    (
        "quota-backend-bytes",
        Kind::Number,
        "raise the NOSPACE alarm when the store would grow past this many bytes \
         (0: 2 GiB; negative: no quota)",
    ),
    (
        "auto-compaction-mode",
        Kind::Text,
        "periodic (keep a time window of history) or revision (keep the newest revisions)",
    ),
    (
        "auto-compaction-retention",
        Kind::Text,
        "history auto-compaction keeps: hours or a Go duration (periodic), a revision \
         count (revision); 0 turns it off",
    ),
    // Client TLS and the member-wide TLS settings (see `client_security`, `tls_settings`).
    (
        "cert-file",
        Kind::Text,
        "path to the client server TLS cert file",
    ),
    (
        "key-file",
        Kind::Text,
        "path to the client server TLS key file",
    ),
    (
        "trusted-ca-file",
        Kind::Text,
        "path to the client server TLS trusted CA cert file (client certificates are then \
         required, as in etcd)",
    ),
    (
        "client-cert-auth",
        Kind::Bool,
        "enable client cert authentication",
    ),
    (
        "client-crl-file",
        Kind::Text,
        "path to the client certificate revocation list file",
    ),
    (
        "client-cert-allowed-hostname",
        Kind::Text,
        "comma-separated list of SAN hostnames allowed for client cert authentication",
    ),
    (
        "client-cert-file",
        Kind::Text,
        "path to an explicit client TLS cert file (else --cert-file)",
    ),
    (
        "client-key-file",
        Kind::Text,
        "path to an explicit client TLS key file (else --key-file)",
    ),
    (
        "auto-tls",
        Kind::Bool,
        "client TLS using generated certificates",
    ),
    (
        "self-signed-cert-validity",
        Kind::Number,
        "validity in years of the certificates --auto-tls and --peer-auto-tls make (default 1)",
    ),
    (
        "cipher-suites",
        Kind::Text,
        "comma-separated list of TLS 1.2 cipher suites (Go names; empty: rustls's defaults)",
    ),
    (
        "tls-min-version",
        Kind::Text,
        "minimum TLS version: TLS1.2 or TLS1.3 (default TLS1.2)",
    ),
    (
        "tls-max-version",
        Kind::Text,
        "maximum TLS version: TLS1.2 or TLS1.3 (default: no maximum)",
    ),
    // Peer TLS (etcd's names and meanings; see `peer_security`).
    (
        "peer-cert-file",
        Kind::Text,
        "path to the peer server TLS cert file",
    ),
    (
        "peer-key-file",
        Kind::Text,
        "path to the peer server TLS key file",
    ),
    (
        "peer-trusted-ca-file",
        Kind::Text,
        "path to the peer server TLS trusted CA file",
    ),
    (
        "peer-client-cert-auth",
        Kind::Bool,
        "enable peer client cert authentication",
    ),
    (
        "peer-crl-file",
        Kind::Text,
        "path to the peer certificate revocation list file",
    ),
    (
        "peer-cert-allowed-cn",
        Kind::Text,
        "comma-separated list of allowed CNs for inter-peer TLS authentication",
    ),
    (
        "peer-cert-allowed-hostname",
        Kind::Text,
        "comma-separated list of allowed SAN hostnames for inter-peer TLS authentication",
    ),
    (
        "peer-auto-tls",
        Kind::Bool,
        "peer TLS using generated certificates",
    ),
    (
        "peer-client-cert-file",
        Kind::Text,
        "path to an explicit peer client TLS cert file (else --peer-cert-file)",
    ),
    (
        "peer-client-key-file",
        Kind::Text,
        "path to an explicit peer client TLS key file (else --peer-key-file)",
    ),
    (
        "peer-skip-client-san-verification",
        Kind::Bool,
        "skip verification of SAN field in client certificate for peer connections",
    ),
    (
        "experimental-peer-skip-client-san-verification",
        Kind::Bool,
        "etcd v3.5 name of --peer-skip-client-san-verification",
    ),
];

const ACCEPTED_NOT_IN_EFFECT: &[(&str, Kind)] = &[
    ("pre-vote", Kind::Bool),
    ("logger", Kind::Text),
    ("log-outputs", Kind::Text),
];

/// What the command line asked for.
#[derive(Debug)]
pub enum Parsed {
    Run {
        config: Box<ServerConfig>,
        warnings: Vec<String>,
    },
    Help(String),
    Version(String),
}

#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn kind_of(name: &str) -> Option<(Kind, bool)> {
    FLAGS
        .iter()
        .find(|(flag, _, _)| *flag == name)
        .map(|(_, kind, _)| (*kind, true))
        .or_else(|| {
            ACCEPTED_NOT_IN_EFFECT
                .iter()
                .find(|(flag, _)| *flag == name)
                .map(|(_, kind)| (*kind, false))
        })
}

/// Parses `args` (without the program name) and the `ETCD_*` variables in `environment`.
pub fn parse_args(
    args: &[String],
    environment: &[(String, String)],
) -> Result<Parsed, ConfigError> {
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    let mut warnings = Vec::new();
    let mut index = 0;
    while index < args.len() {
        let arg = &args[index];
        index += 1;
        let Some(stripped) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(ConfigError(format!(
                "'{arg}' is not a valid flag (positional arguments are not accepted)"
            )));
        };
        let (name, inline) = match stripped.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (stripped, None),
        };
        match name {
            "help" | "h" => return Ok(Parsed::Help(usage())),
            "version" => return Ok(Parsed::Version(version_text())),
            _ => {}
        }
        let Some((kind, _)) = kind_of(name) else {
            return Err(ConfigError(format!(
                "flag provided but not defined: -{name}"
            )));
        };
        let value = match (kind, inline) {
            (_, Some(value)) => value,
            (Kind::Bool, None) => "true".to_string(),
            (_, None) => {
                let Some(next) = args.get(index) else {
                    return Err(ConfigError(format!("flag needs an argument: -{name}")));
                };
                index += 1;
                next.clone()
            }
        };
        values.insert(name.to_string(), value);
    }
    for (key, value) in environment {
        let Some(flag) = key.strip_prefix("ETCD_") else {
            continue;
        };
        let flag = flag.to_lowercase().replace('_', "-");
        if kind_of(&flag).is_none() {
            warnings.push(format!("unrecognized environment variable {key}={value}"));
            continue;
        }
        if values.contains_key(&flag) {
            warnings.push(format!(
                "environment variable {key} is shadowed by the command-line flag --{flag}"
            ));
            continue;
        }
        values.insert(flag, value.clone());
    }
    for (name, value) in &values {
        if let Some((kind, false)) = kind_of(name) {
            check_kind(name, kind, value)?;
            warnings.push(format!(
                "--{name}={value} is accepted for etcd compatibility but has no effect yet"
            ));
        }
    }
    let config = build(&values)?;
    Ok(Parsed::Run {
        config: Box::new(config),
        warnings,
    })
}

fn check_kind(name: &str, kind: Kind, value: &str) -> Result<(), ConfigError> {
    match kind {
        Kind::Text => Ok(()),
        Kind::Number => value.parse::<u64>().map(|_| ()).map_err(|_| {
            ConfigError(format!(
                "invalid value \"{value}\" for flag -{name}: parse error"
            ))
        }),
        Kind::Bool => parse_bool(name, value).map(|_| ()),
        Kind::Duration => parse_go_duration(value).map(|_| ()).map_err(|error| {
            ConfigError(format!(
                "invalid value \"{value}\" for flag -{name}: {error}"
            ))
        }),
    }
}

fn parse_bool(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(ConfigError(format!(
            "invalid boolean value \"{value}\" for -{name}: parse error"
        ))),
    }
}

fn number(values: &BTreeMap<String, String>, name: &str, default: u64) -> Result<u64, ConfigError> {
    match values.get(name) {
        None => Ok(default),
        Some(value) => value.trim().parse::<u64>().map_err(|_| {
            ConfigError(format!(
                "invalid value \"{value}\" for flag -{name}: parse error"
            ))
        }),
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

fn build(values: &BTreeMap<String, String>) -> Result<ServerConfig, ConfigError> {
    let text = |name: &str, default: &str| -> String {
        values
            .get(name)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    };
    let name = text("name", "default");
    let data_dir = PathBuf::from(text("data-dir", &format!("{name}.etcd")));
    // Resolved once here: glommio opens directories by absolute path only (a relative one fails
    // with EBADF), and logs should name the real place anyway.
    let data_dir = if data_dir.is_absolute() {
        data_dir
    } else {
        std::env::current_dir()
            .map_err(|error| {
                ConfigError(format!(
                    "--data-dir: cannot resolve {}: {error}",
                    data_dir.display()
                ))
            })?
            .join(data_dir)
    };
    let listen = list(&text("listen-client-urls", "http://localhost:2379"));
    if values.contains_key("listen-client-urls") && !values.contains_key("advertise-client-urls") {
        return Err(ConfigError(
            "--advertise-client-urls is required when --listen-client-urls is set explicitly"
                .to_string(),
        ));
    }
    let listen_client_urls = listen
        .iter()
        .map(|url| ClientUrl::parse(url).map_err(ConfigError))
        .collect::<Result<Vec<_>, _>>()?;
    if listen_client_urls.is_empty() {
        return Err(ConfigError("--listen-client-urls is empty".to_string()));
    }
    let peer_urls = list(&text(
        "initial-advertise-peer-urls",
        "http://localhost:2380",
    ));
    let initial_cluster = parse_initial_cluster(&text(
        "initial-cluster",
        &format!("{name}=http://localhost:2380"),
    ))?;
    match initial_cluster.iter().find(|(member, _)| *member == name) {
        None => {
            return Err(ConfigError(format!(
                "couldn't find local name \"{name}\" in the initial cluster configuration"
            )))
        }
        Some((_, urls)) => {
            let mut ours = peer_urls.clone();
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
        }
    }
    let join_existing = match text("initial-cluster-state", "new").as_str() {
        "new" => false,
        "existing" => true,
        other => {
            return Err(ConfigError(format!(
                "unexpected value \"{other}\" for --initial-cluster-state (new or existing)"
            )))
        }
    };
    let listen_peer_urls = list(&text("listen-peer-urls", "http://localhost:2380"))
        .iter()
        .map(|url| ClientUrl::parse(url).map_err(ConfigError))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(listen_peer_url) = listen_peer_urls.first().cloned() else {
        return Err(ConfigError("--listen-peer-urls is empty".to_string()));
    };
    let listen_metrics_urls = list(&text("listen-metrics-urls", ""))
        .iter()
        .map(|url| ClientUrl::parse(url).map_err(ConfigError))
        .collect::<Result<Vec<_>, _>>()?;
    let peer_security = peer_security(values)?;
    let security = tls_settings(values, client_security(values)?, peer_security)?;
    check_client_urls_have_a_certificate(&listen_client_urls, &security.client)?;
    let heartbeat_interval_ms =
        number(values, "heartbeat-interval", HEARTBEAT_INTERVAL_MS_DEFAULT)?;
    let election_timeout_ms = number(values, "election-timeout", ELECTION_TIMEOUT_MS_DEFAULT)?;
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
    let max_request_bytes = number(
        values,
        "max-request-bytes",
        MAX_REQUEST_BYTES_DEFAULT as u64,
    )?;
    let max_txn_ops = number(values, "max-txn-ops", MAX_TXN_OPS_DEFAULT as u64)?;
    if max_txn_ops == 0 {
        return Err(ConfigError("--max-txn-ops must be at least 1".to_string()));
    }
    let watch_progress_notify_interval = match values
        .get("watch-progress-notify-interval")
        .or_else(|| values.get("experimental-watch-progress-notify-interval"))
    {
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
    let strict_reconfig_check = match values.get("strict-reconfig-check") {
        None => true,
        Some(value) => parse_bool("strict-reconfig-check", value)?,
    };
    let max_learners = number(values, "max-learners", MAX_LEARNERS_DEFAULT)?;
    let quota_backend_bytes = match values.get("quota-backend-bytes") {
        None => 0,
        Some(value) => value.trim().parse::<i64>().map_err(|_| {
            ConfigError(format!(
                "invalid value \"{value}\" for flag -quota-backend-bytes: parse error"
            ))
        })?,
    };
    let auto_compaction = parse_auto_compaction(
        &text("auto-compaction-mode", AUTO_COMPACTION_MODE_DEFAULT),
        &text("auto-compaction-retention", "0"),
    )
    .map_err(ConfigError)?;
    // etcd takes 0 to mean its default.
    let snapshot_count = match number(values, "snapshot-count", SNAPSHOT_COUNT_DEFAULT)? {
        0 => SNAPSHOT_COUNT_DEFAULT,
        count => count,
    };
    Ok(ServerConfig {
        snapshot_count,
        join_existing,
        cluster_id_override: None,
        strict_reconfig_check,
        max_learners: usize::try_from(max_learners)
            .map_err(|_| ConfigError("--max-learners is too large".to_string()))?,
        listen_peer_url,
        listen_peer_url_given: values.contains_key("listen-peer-urls"),
        watch_progress_notify_interval,
        name,
        data_dir,
        listen_client_urls,
        advertise_client_urls: list(&text("advertise-client-urls", "http://localhost:2379")),
        initial_advertise_peer_urls: peer_urls,
        initial_cluster,
        initial_cluster_token: text("initial-cluster-token", "etcd-cluster"),
        max_request_bytes: usize::try_from(max_request_bytes)
            .map_err(|_| ConfigError("--max-request-bytes is too large".to_string()))?,
        max_txn_ops: max_txn_ops as usize,
        heartbeat_interval_ms,
        election_timeout_ms,
        log_level: text("log-level", "info"),
        shards: number(values, "shards", 0)? as usize,
        wal_segment_bytes: number(values, "wal-segment-bytes", WAL_SEGMENT_BYTES_DEFAULT)?,
        quota_backend_bytes,
        auto_compaction,
        security,
        listen_metrics_urls,
    })
}

/// The client TLS flags (`--cert-file`, `--key-file`, `--trusted-ca-file`, ...), as etcd reads
/// them.
fn client_security(
    values: &BTreeMap<String, String>,
) -> Result<super::TransportSecurity, ConfigError> {
    let path = |name: &str| {
        values
            .get(name)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
    };
    let flag = |name: &str| match values.get(name) {
        None => Ok(false),
        Some(value) => parse_bool(name, value),
    };
    let client_cert_file = path("client-cert-file");
    let client_key_file = path("client-key-file");
    if client_cert_file.is_some() != client_key_file.is_some() {
        return Err(ConfigError(
            "--client-cert-file and --client-key-file must both be present or both absent"
                .to_string(),
        ));
    }
    Ok(super::TransportSecurity {
        cert_file: path("cert-file"),
        key_file: path("key-file"),
        trusted_ca_file: path("trusted-ca-file"),
        client_cert_auth: flag("client-cert-auth")?,
        crl_file: path("client-crl-file"),
        allowed_hostname: values
            .get("client-cert-allowed-hostname")
            .map(|value| list(value).join(","))
            .filter(|joined| !joined.is_empty()),
        allowed_cn: None,
        client_cert_file,
        client_key_file,
        auto_tls: flag("auto-tls")?,
        skip_client_san_verification: false,
    })
}

/// The member-wide TLS settings (`--cipher-suites`, `--tls-min-version`, `--tls-max-version`,
/// `--self-signed-cert-validity`), checked now so a bad value stops start-up with etcd's
/// message.
fn tls_settings(
    values: &BTreeMap<String, String>,
    client: super::TransportSecurity,
    peer: super::TransportSecurity,
) -> Result<super::SecurityConfig, ConfigError> {
    let self_signed_cert_validity_years = number(
        values,
        "self-signed-cert-validity",
        u64::from(super::SELF_SIGNED_CERT_VALIDITY_YEARS_DEFAULT),
    )?;
    if self_signed_cert_validity_years == 0 {
        return Err(ConfigError(
            "--self-signed-cert-validity must be at least 1 (year)".to_string(),
        ));
    }
    let security = super::SecurityConfig {
        client,
        peer,
        cipher_suites: values
            .get("cipher-suites")
            .map(|value| list(value))
            .unwrap_or_default(),
        tls_min_version: values.get("tls-min-version").cloned(),
        tls_max_version: values.get("tls-max-version").cloned(),
        self_signed_cert_validity_years: u32::try_from(self_signed_cert_validity_years)
            .map_err(|_| ConfigError("--self-signed-cert-validity is too large".to_string()))?,
    };
    crate::tls::crypto_policy(&security).map_err(|error| ConfigError(error.to_string()))?;
    Ok(security)
}

/// etcd refuses an https client URL without a certificate (unless `--auto-tls` makes one).
fn check_client_urls_have_a_certificate(
    urls: &[ClientUrl],
    client: &super::TransportSecurity,
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

/// The `--peer-*` TLS flags, as etcd reads them: the client certificate defaults to the server
/// one at connect time (not here); `--peer-cert-allowed-cn` and `--peer-cert-allowed-hostname`
/// are comma-separated lists and exclude each other (etcd's `TLSInfo.baseConfig`).
fn peer_security(
    values: &BTreeMap<String, String>,
) -> Result<super::TransportSecurity, ConfigError> {
    let path = |name: &str| {
        values
            .get(name)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
    };
    let flag = |name: &str| match values.get(name) {
        None => Ok(false),
        Some(value) => parse_bool(name, value),
    };
    let names = |name: &str| {
        values
            .get(name)
            .map(|value| list(value).join(","))
            .filter(|joined| !joined.is_empty())
    };
    let allowed_cn = names("peer-cert-allowed-cn");
    let allowed_hostname = names("peer-cert-allowed-hostname");
    if let (Some(cns), Some(hostnames)) = (&allowed_cn, &allowed_hostname) {
        return Err(ConfigError(format!(
            "AllowedCNs and AllowedHostnames are mutually exclusive (cns=[{cns}], hostnames=[{hostnames}])"
        )));
    }
    let client_cert_file = path("peer-client-cert-file");
    let client_key_file = path("peer-client-key-file");
    if client_cert_file.is_some() != client_key_file.is_some() {
        return Err(ConfigError(
            "--peer-client-cert-file and --peer-client-key-file must both be present or both absent"
                .to_string(),
        ));
    }
    Ok(super::TransportSecurity {
        cert_file: path("peer-cert-file"),
        key_file: path("peer-key-file"),
        trusted_ca_file: path("peer-trusted-ca-file"),
        client_cert_auth: flag("peer-client-cert-auth")?,
        crl_file: path("peer-crl-file"),
        allowed_hostname,
        allowed_cn,
        client_cert_file,
        client_key_file,
        auto_tls: flag("peer-auto-tls")?,
        skip_client_san_verification: flag("peer-skip-client-san-verification")?
            || flag("experimental-peer-skip-client-san-verification")?,
    })
}

fn version_text() -> String {
    format!(
        "capstan Version: {}\netcd API Version: {}\n",
        env!("CARGO_PKG_VERSION"),
        super::ETCD_API_VERSION
    )
}

fn usage() -> String {
    let mut text = String::from(
        "Usage: capstan [flags]\n\nStart a Capstan server (an etcd v3-compatible key-value store).\n\
         Every flag may also be set as ETCD_<UPPER_SNAKE_NAME>.\n\nFlags:\n",
    );
    for (name, _, help) in FLAGS {
        text.push_str(&format!("  --{name}\n      {help}\n"));
    }
    text.push_str("  --version\n      print the version and exit\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn run(list: &[&str], env: &[(&str, &str)]) -> Result<ServerConfig, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match parse_args(&args(list), &env)? {
            Parsed::Run { config, .. } => Ok(*config),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn defaults_match_etcd() {
        let config = run(&[], &[]).expect("defaults parse");
        assert_eq!(config.name, "default");
        assert!(config.data_dir.is_absolute());
        assert!(config.data_dir.ends_with("default.etcd"));
        assert_eq!(config.max_request_bytes, 1_572_864);
        assert_eq!(config.max_txn_ops, 128);
        assert_eq!(config.request_timeout().as_millis(), 7_000);
        assert_eq!(config.listen_peer_url.original, "http://localhost:2380");
        assert!(!config.listen_peer_url_given);
    }

    #[test]
    fn a_given_peer_url_is_told_apart_from_the_default() {
        let flag = run(&["--listen-peer-urls=http://127.0.0.1:2390"], &[]).expect("parses");
        assert!(flag.listen_peer_url_given);
        assert_eq!(flag.listen_peer_url.address.port(), 2390);
        let env = run(&[], &[("ETCD_LISTEN_PEER_URLS", "http://127.0.0.1:2391")]).expect("parses");
        assert!(env.listen_peer_url_given);
        assert_eq!(env.listen_peer_url.address.port(), 2391);
    }

    #[test]
    fn both_flag_syntaxes_and_env_work() {
        let config = run(
            &["--name=n1", "-data-dir", "/tmp/x", "--max-txn-ops", "7"],
            &[("ETCD_MAX_REQUEST_BYTES", "100"), ("ETCD_NAME", "ignored")],
        )
        .expect("parses");
        assert_eq!(config.name, "n1");
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.max_txn_ops, 7);
        assert_eq!(config.max_request_bytes, 100);
    }

    #[test]
    fn quota_backend_bytes_as_etcd() {
        let quota = |flags: &[&str]| run(flags, &[]).expect("parses").quota_bytes();
        assert_eq!(quota(&[]), Some(2 * 1024 * 1024 * 1024));
        assert_eq!(
            quota(&["--quota-backend-bytes=0"]),
            Some(2 * 1024 * 1024 * 1024)
        );
        assert_eq!(quota(&["--quota-backend-bytes", "100000"]), Some(100_000));
        // 100 GiB and more.
        assert_eq!(
            quota(&["--quota-backend-bytes=107374182400"]),
            Some(107_374_182_400)
        );
        assert_eq!(
            quota(&["--quota-backend-bytes=1099511627776"]),
            Some(1 << 40)
        );
        assert_eq!(quota(&["--quota-backend-bytes=-1"]), None);
        let env = run(&[], &[("ETCD_QUOTA_BACKEND_BYTES", "4096")]).expect("parses");
        assert_eq!(env.quota_bytes(), Some(4096));
        assert!(run(&["--quota-backend-bytes=2GiB"], &[]).is_err());
    }

    #[test]
    fn auto_compaction_flags_as_etcd() {
        use crate::config::AutoCompaction;
        use std::time::Duration;
        assert_eq!(run(&[], &[]).expect("parses").auto_compaction, None);
        let config = run(&["--auto-compaction-retention=1"], &[]).expect("parses");
        assert_eq!(
            config.auto_compaction,
            Some(AutoCompaction::Periodic {
                retention: Duration::from_secs(3600)
            })
        );
        let config = run(
            &[
                "--auto-compaction-mode",
                "revision",
                "--auto-compaction-retention",
                "100",
            ],
            &[],
        )
        .expect("parses");
        assert_eq!(
            config.auto_compaction,
            Some(AutoCompaction::Revision {
                retention_revisions: 100
            })
        );
        let error = run(&["--auto-compaction-mode=hourly"], &[]).expect_err("must fail");
        assert!(error.0.contains("hourly"), "{error}");
    }

    #[test]
    fn unknown_flag_is_named() {
        let error = run(&["--no-such-flag=1"], &[]).expect_err("must fail");
        assert!(error.0.contains("no-such-flag"), "{error}");
    }

    #[test]
    fn listen_requires_advertise() {
        let error = run(&["--listen-client-urls=http://127.0.0.1:1"], &[]).expect_err("must fail");
        assert!(error.0.contains("advertise-client-urls"));
    }

    #[test]
    fn client_tls_flags_fill_the_client_security_settings() {
        let config = run(
            &[
                "--listen-client-urls=https://127.0.0.1:2379,http://127.0.0.1:22379",
                "--advertise-client-urls=https://127.0.0.1:2379",
                "--cert-file=/c/server.crt",
                "--key-file=/c/server.key",
                "--trusted-ca-file=/c/ca.crt",
                "--client-cert-auth",
                "--client-cert-allowed-hostname=client.example",
                "--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "--tls-max-version=TLS1.2",
            ],
            &[("ETCD_CLIENT_CRL_FILE", "/c/revoked.crl")],
        )
        .expect("parses");
        assert!(config.listen_client_urls[0].tls);
        assert!(!config.listen_client_urls[1].tls);
        let client = &config.security.client;
        assert_eq!(client.cert_file, Some(PathBuf::from("/c/server.crt")));
        assert_eq!(client.key_file, Some(PathBuf::from("/c/server.key")));
        assert_eq!(client.trusted_ca_file, Some(PathBuf::from("/c/ca.crt")));
        assert_eq!(client.crl_file, Some(PathBuf::from("/c/revoked.crl")));
        assert_eq!(client.allowed_hostname.as_deref(), Some("client.example"));
        assert!(client.client_cert_auth);
        assert_eq!(
            config.security.cipher_suites,
            vec!["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_string()]
        );
        assert_eq!(config.security.tls_max_version.as_deref(), Some("TLS1.2"));
    }

    #[test]
    fn https_client_urls_need_a_certificate_and_tls_settings_are_checked() {
        let https = [
            "--listen-client-urls=https://127.0.0.1:2379",
            "--advertise-client-urls=https://127.0.0.1:2379",
        ];
        let error = run(&https, &[]).expect_err("no certificate");
        assert_eq!(
            error.0,
            "TLS key/cert (--cert-file, --key-file) must be provided for client url \
             https://127.0.0.1:2379 with HTTPS scheme"
        );
        let mut auto = https.to_vec();
        auto.push("--auto-tls");
        assert!(
            run(&auto, &[])
                .expect("auto-tls makes one")
                .security
                .client
                .auto_tls
        );
        let error = run(&["--cipher-suites=TLS_FOO"], &[]).expect_err("unknown suite");
        assert_eq!(error.0, "unexpected TLS cipher suite \"TLS_FOO\"");
        let error = run(&["--tls-min-version=TLS1.0"], &[]).expect_err("old version");
        assert!(
            error.0.starts_with("tls-min-version is invalid"),
            "{}",
            error.0
        );
    }

    #[test]
    fn peer_tls_flags_fill_the_peer_security_settings() {
        let config = run(
            &[
                "--listen-peer-urls=https://127.0.0.1:2390",
                "--peer-cert-file=/p/peer.crt",
                "--peer-key-file=/p/peer.key",
                "--peer-trusted-ca-file=/p/ca.crt",
                "--peer-client-cert-auth=true",
                "--peer-cert-allowed-cn=etcd-a, etcd-b",
                "--peer-skip-client-san-verification",
            ],
            &[("ETCD_PEER_CRL_FILE", "/p/revoked.crl")],
        )
        .expect("parses");
        assert!(config.listen_peer_url.tls);
        let peer = &config.security.peer;
        assert_eq!(peer.cert_file, Some(PathBuf::from("/p/peer.crt")));
        assert_eq!(peer.key_file, Some(PathBuf::from("/p/peer.key")));
        assert_eq!(peer.trusted_ca_file, Some(PathBuf::from("/p/ca.crt")));
        assert_eq!(peer.crl_file, Some(PathBuf::from("/p/revoked.crl")));
        assert!(peer.client_cert_auth);
        assert_eq!(peer.allowed_cn.as_deref(), Some("etcd-a,etcd-b"));
        assert!(peer.skip_client_san_verification);
        assert!(!peer.auto_tls);
        assert_eq!(
            config.security.client,
            super::super::TransportSecurity::default()
        );
    }

    #[test]
    fn peer_allowed_cn_and_hostname_exclude_each_other() {
        let error = run(
            &[
                "--peer-cert-allowed-cn=a",
                "--peer-cert-allowed-hostname=b.example",
            ],
            &[],
        )
        .expect_err("refused");
        assert!(error.0.contains("mutually exclusive"), "{error}");
        let error = run(&["--peer-client-cert-file=/p/c.crt"], &[]).expect_err("refused");
        assert!(error.0.contains("both"), "{error}");
    }
}
