//! Every flag etcd 3.6 accepts, and Capstan's own, in one table: its kind, etcd's default and
//! help group, and what Capstan does with it. The parser, `--help`, the environment variables,
//! the configuration file and `docs/configuration.md` are all driven by this table.
//!
//! The rule for outcomes: a setting that touches security, durability or membership is either
//! `Implemented` or `Refused`, never a `Notice`. A flag given with etcd's default value changes
//! nothing compared with leaving it out, so only other values are noticed or refused.

/// How a flag's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Bool,
    /// An unsigned integer.
    Uint,
    /// A signed integer.
    Int,
    /// A Go duration on the command line (`5s`); integer nanoseconds in the configuration file.
    Duration,
    /// Comma-separated URLs (a comma-separated string in the configuration file too).
    UrlList,
    /// Comma-separated values; a YAML sequence in the configuration file.
    List,
    /// `Name=bool,...` (`--feature-gates`).
    Gates,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Text => "string",
            Kind::Bool => "bool",
            Kind::Uint => "uint",
            Kind::Int => "int",
            Kind::Duration => "duration",
            Kind::UrlList => "url list",
            Kind::List => "list",
            Kind::Gates => "gates",
        }
    }
}

/// etcd's help groups, in its order, then Capstan's own flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    Usage,
    Member,
    Clustering,
    Security,
    Auth,
    Profiling,
    Logging,
    Tracing,
    Experimental,
    Unsafe,
    Capstan,
}

impl Group {
    pub const ALL: [Group; 11] = [
        Group::Usage,
        Group::Member,
        Group::Clustering,
        Group::Security,
        Group::Auth,
        Group::Profiling,
        Group::Logging,
        Group::Tracing,
        Group::Experimental,
        Group::Unsafe,
        Group::Capstan,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Group::Usage => "Usage",
            Group::Member => "Member",
            Group::Clustering => "Clustering",
            Group::Security => "Security",
            Group::Auth => "Auth",
            Group::Profiling => "Profiling and Monitoring",
            Group::Logging => "Logging",
            Group::Tracing => "Experimental distributed tracing",
            Group::Experimental => "Experimental feature",
            Group::Unsafe => "Unsafe feature",
            Group::Capstan => "Capstan (not etcd flags)",
        }
    }
}

/// Which TLS side a security flag configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsSide {
    Client,
    Peer,
    /// Settings shared by both sides (`--cipher-suites`, `--tls-min-version`, ...).
    Either,
}

/// What Capstan does with a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Reaches `ServerConfig` and has its effect.
    Implemented,
    /// Parsed into `ServerConfig::security`; refused while that side's listeners do not speak
    /// TLS (see `security::tls_served`), so a security setting never goes without its effect.
    Tls(TlsSide),
    /// Accepted; a value other than etcd's default logs this one-line reason at start-up.
    Notice(&'static str),
    /// A value other than etcd's default stops start-up with this reason.
    Refused(&'static str),
    /// An etcd 3.5 `--experimental-*` name that 3.6 still accepts: the newer flag's outcome.
    Renamed(&'static str),
    /// An etcd 3.5 `--experimental-*` flag that 3.6 replaced by a feature gate.
    Gate(&'static str),
}

/// One flag.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    pub name: &'static str,
    pub kind: Kind,
    /// etcd's default, as a value of `kind` (`--help` shows `default_shown` when set).
    pub default: &'static str,
    pub group: Group,
    pub help: &'static str,
    pub outcome: Outcome,
}

impl Flag {
    /// The `ETCD_*` variable of this flag (etcd's `FlagToEnv`).
    pub fn env_name(&self) -> String {
        env_name_of(self.name)
    }

    /// The default as `--help` prints it.
    pub fn default_shown(&self) -> &'static str {
        match self.name {
            "max-concurrent-streams" => "math.MaxUint32",
            _ => self.default,
        }
    }
}

/// `ETCD_` and the flag name upper-cased, with `-` as `_`.
pub fn env_name_of(flag: &str) -> String {
    format!("ETCD_{}", flag.to_uppercase().replace('-', "_"))
}

/// The flag named `name`, if etcd or Capstan has one.
pub fn find(name: &str) -> Option<&'static Flag> {
    FLAGS.iter().find(|flag| flag.name == name)
}

const fn flag(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    group: Group,
    help: &'static str,
    outcome: Outcome,
) -> Flag {
    Flag {
        name,
        kind,
        default,
        group,
        help,
        outcome,
    }
}

use Group::*;
use Kind::*;
use Outcome::*;

const DISCOVERY: Outcome = Refused(
    "discovery is not implemented; give the members with --initial-cluster (membership is never \
     guessed)",
);
const AUTH: Outcome = Refused(
    "authentication is not implemented yet; an auth setting is never accepted without its effect",
);
const TRACING: Outcome = Notice("distributed tracing (OpenTelemetry) is not exported by Capstan");
const BACKEND: Outcome = Notice(
    "Capstan has no bbolt backend: its page store commits on its own schedule, and a write is \
     durable in the WAL before it is acknowledged",
);
const KEEPALIVE: Outcome = Notice(
    "gRPC keepalive is not enforced: Capstan neither pings idle clients nor closes fast-pinging \
     ones; dead connections end with TCP, and HTTP/2's own limits bound every connection",
);

/// Every flag: etcd 3.6's, in `etcd --help`'s order, then Capstan's own. Kept unformatted so
/// that it reads as a table.
#[rustfmt::skip]
pub const FLAGS: &[Flag] = &[
    flag("config-file", Text, "", Usage,
        "Path to the server configuration file. Note that if a configuration file is provided, \
         other command line flags and environment variables will be ignored.",
        Implemented),
    // Member
    flag("name", Text, "default", Member, "Human-readable name for this member.", Implemented),
    flag("data-dir", Text, "${name}.etcd", Member, "Path to the data directory.", Implemented),
    flag("wal-dir", Text, "", Member, "Path to the dedicated wal directory.", Implemented),
    flag("snapshot-count", Uint, "10000", Member,
        "Number of committed transactions to trigger a snapshot.", Implemented),
    flag("heartbeat-interval", Uint, "100", Member,
        "Time (in milliseconds) of a heartbeat interval.", Implemented),
    flag("election-timeout", Uint, "1000", Member,
        "Time (in milliseconds) for an election to timeout.", Implemented),
    flag("initial-election-tick-advance", Bool, "true", Member,
        "Whether to fast-forward initial election ticks on boot for faster election.",
        Notice("Capstan always fast-forwards the first election clock once a quorum of peers is \
                connected; etcd's 'false' only slows the first election")),
    flag("listen-peer-urls", UrlList, "http://localhost:2380", Member,
        "List of URLs to listen on for peer traffic.", Implemented),
    flag("listen-client-urls", UrlList, "http://localhost:2379", Member,
        "List of URLs to listen on for client grpc traffic and http as long as \
         --listen-client-http-urls is not specified.", Implemented),
    flag("listen-client-http-urls", UrlList, "", Member,
        "List of URLs to listen on for http only client traffic.", Implemented),
    flag("max-snapshots", Uint, "5", Member,
        "Maximum number of snapshot files to retain (0 is unlimited).",
        Refused("Capstan keeps its newest 2 snapshot files (whole-state copies); a retention \
                 count is not implemented")),
    flag("max-wals", Uint, "5", Member,
        "Maximum number of wal files to retain (0 is unlimited).",
        Refused("WAL segments are released once a snapshot covers them; a retention count is \
                 not implemented")),
    flag("memory-mlock", Bool, "false", Member,
        "Enable to enforce etcd pages (in particular bbolt) to stay in RAM.",
        Notice("memory is not mlocked; this only matters for tail latency under memory \
                pressure")),
    flag("quota-backend-bytes", Int, "0", Member,
        "Maximum size (in bytes) of the backend database; 0 is the default 2GiB limit.",
        Implemented),
    flag("backend-bbolt-freelist-type", Text, "map", Member,
        "Type of freelist that boltdb backend uses (array and map are supported types).",
        BACKEND),
    flag("backend-batch-interval", Duration, "0s", Member,
        "Maximum time before commit the backend transaction.", BACKEND),
    flag("backend-batch-limit", Int, "0", Member,
        "Maximum operations before commit the backend transaction.", BACKEND),
    flag("max-txn-ops", Uint, "128", Member,
        "Maximum number of operations permitted in a transaction.", Implemented),
    flag("max-request-bytes", Uint, "1572864", Member,
        "Maximum client request size in bytes the server will accept.", Implemented),
    flag("max-concurrent-streams", Uint, "4294967295", Member,
        "Maximum concurrent streams that each client can open at a time.", Implemented),
    flag("grpc-keepalive-min-time", Duration, "5s", Member,
        "Minimum duration interval that a client should wait before pinging server.", KEEPALIVE),
    flag("grpc-keepalive-interval", Duration, "2h", Member,
        "Frequency duration of server-to-client ping to check if a connection is alive.",
        KEEPALIVE),
    flag("grpc-keepalive-timeout", Duration, "20s", Member,
        "Additional duration of wait before closing a non-responsive connection.", KEEPALIVE),
    flag("socket-reuse-port", Bool, "false", Member,
        "Enable to set socket option SO_REUSEPORT on listeners.",
        Notice("Capstan's shards already share each client port with SO_REUSEPORT")),
    flag("socket-reuse-address", Bool, "false", Member,
        "Enable to set socket option SO_REUSEADDR on listeners.",
        Notice("not applied: Capstan sets its own socket options, and a failed bind stops \
                start-up")),
    flag("enable-grpc-gateway", Bool, "true", Member, "Enable GRPC gateway.", Implemented),
    flag("raft-read-timeout", Duration, "5s", Member,
        "Read timeout set on each rafthttp connection",
        Notice("Capstan's peer transport has its own timeouts")),
    flag("raft-write-timeout", Duration, "5s", Member,
        "Write timeout set on each rafthttp connection",
        Notice("Capstan's peer transport has its own timeouts")),
    flag("feature-gates", Gates, "", Member,
        "A set of key=value pairs that describe server level feature gates.", Implemented),
    // Clustering
    flag("initial-advertise-peer-urls", UrlList, "http://localhost:2380", Clustering,
        "List of this member's peer URLs to advertise to the rest of the cluster.", Implemented),
    flag("initial-cluster", Text, "default=http://localhost:2380", Clustering,
        "Initial cluster configuration for bootstrapping.", Implemented),
    flag("initial-cluster-state", Text, "new", Clustering,
        "Initial cluster state ('new' or 'existing').", Implemented),
    flag("initial-cluster-token", Text, "etcd-cluster", Clustering,
        "Initial cluster token for the etcd cluster during bootstrap.", Implemented),
    flag("advertise-client-urls", UrlList, "http://localhost:2379", Clustering,
        "List of this member's client URLs to advertise to the public.", Implemented),
    flag("discovery", Text, "", Clustering,
        "Discovery URL used to bootstrap the cluster for v2 discovery.", DISCOVERY),
    flag("discovery-token", Text, "", Clustering,
        "V3 discovery: discovery token for the etcd cluster to be bootstrapped.", DISCOVERY),
    flag("discovery-endpoints", Text, "", Clustering,
        "V3 discovery: List of gRPC endpoints of the discovery service.", DISCOVERY),
    flag("discovery-dial-timeout", Duration, "2s", Clustering,
        "V3 discovery: dial timeout for client connections.", DISCOVERY),
    flag("discovery-request-timeout", Duration, "5s", Clustering,
        "V3 discovery: timeout for discovery requests (excluding dial timeout).", DISCOVERY),
    flag("discovery-keepalive-time", Duration, "2s", Clustering,
        "V3 discovery: keepalive time for client connections.", DISCOVERY),
    flag("discovery-keepalive-timeout", Duration, "6s", Clustering,
        "V3 discovery: keepalive timeout for client connections.", DISCOVERY),
    flag("discovery-insecure-transport", Bool, "true", Clustering,
        "V3 discovery: disable transport security for client connections.", DISCOVERY),
    flag("discovery-insecure-skip-tls-verify", Bool, "false", Clustering,
        "V3 discovery: skip server certificate verification.", DISCOVERY),
    flag("discovery-cert", Text, "", Clustering,
        "V3 discovery: identify secure client using this TLS certificate file.", DISCOVERY),
    flag("discovery-key", Text, "", Clustering,
        "V3 discovery: identify secure client using this TLS key file.", DISCOVERY),
    flag("discovery-cacert", Text, "", Clustering,
        "V3 discovery: verify certificates of TLS-enabled secure servers using this CA bundle.",
        DISCOVERY),
    flag("discovery-user", Text, "", Clustering,
        "V3 discovery: username[:password] for authentication.", DISCOVERY),
    flag("discovery-password", Text, "", Clustering,
        "V3 discovery: password for authentication.", DISCOVERY),
    flag("discovery-fallback", Text, "exit", Clustering,
        "Expected behavior ('exit') when discovery services fails.", DISCOVERY),
    flag("discovery-proxy", Text, "", Clustering,
        "HTTP proxy to use for traffic to discovery service.", DISCOVERY),
    flag("discovery-srv", Text, "", Clustering,
        "DNS srv domain used to bootstrap the cluster.", DISCOVERY),
    flag("discovery-srv-name", Text, "", Clustering,
        "Suffix to the dns srv name queried when bootstrapping.", DISCOVERY),
    flag("strict-reconfig-check", Bool, "true", Clustering,
        "Reject reconfiguration requests that would cause quorum loss.", Implemented),
    flag("pre-vote", Bool, "true", Clustering,
        "Enable the raft Pre-Vote algorithm.",
        Notice("Capstan always runs Pre-Vote (and check-quorum); turning it off would only make \
                elections more disruptive")),
    flag("auto-compaction-retention", Text, "0", Clustering,
        "Auto compaction retention length. 0 means disable auto compaction.", Implemented),
    flag("auto-compaction-mode", Text, "periodic", Clustering,
        "Interpret 'auto-compaction-retention' one of: periodic|revision.", Implemented),
    flag("v2-deprecation", Text, "write-only", Clustering,
        "Phase of v2store deprecation (etcd 3.6 enforces the default).",
        Notice("Capstan has no v2 store; etcd 3.6 itself enforces the default")),
    // Security
    flag("cert-file", Text, "", Security, "Path to the client server TLS cert file.",
        Tls(TlsSide::Client)),
    flag("key-file", Text, "", Security, "Path to the client server TLS key file.",
        Tls(TlsSide::Client)),
    flag("client-cert-auth", Bool, "false", Security, "Enable client cert authentication.",
        Tls(TlsSide::Client)),
    flag("client-cert-file", Text, "", Security,
        "Path to an explicit peer client TLS cert file otherwise cert file will be used when \
         client auth is required.", Tls(TlsSide::Client)),
    flag("client-key-file", Text, "", Security,
        "Path to an explicit peer client TLS key file otherwise key file will be used when \
         client auth is required.", Tls(TlsSide::Client)),
    flag("client-crl-file", Text, "", Security,
        "Path to the client certificate revocation list file.", Tls(TlsSide::Client)),
    flag("client-cert-allowed-hostname", Text, "", Security,
        "Comma-separated list of SAN hostnames for client cert authentication.",
        Tls(TlsSide::Client)),
    flag("trusted-ca-file", Text, "", Security,
        "Path to the client server TLS trusted CA cert file.", Tls(TlsSide::Client)),
    flag("auto-tls", Bool, "false", Security, "Client TLS using generated certificates.",
        Tls(TlsSide::Client)),
    flag("peer-cert-file", Text, "", Security, "Path to the peer server TLS cert file.",
        Tls(TlsSide::Peer)),
    flag("peer-key-file", Text, "", Security, "Path to the peer server TLS key file.",
        Tls(TlsSide::Peer)),
    flag("peer-client-cert-auth", Bool, "false", Security,
        "Enable peer client cert authentication.", Tls(TlsSide::Peer)),
    flag("peer-client-cert-file", Text, "", Security,
        "Path to an explicit peer client TLS cert file otherwise peer cert file will be used \
         when client auth is required.", Tls(TlsSide::Peer)),
    flag("peer-client-key-file", Text, "", Security,
        "Path to an explicit peer client TLS key file otherwise peer key file will be used when \
         client auth is required.", Tls(TlsSide::Peer)),
    flag("peer-trusted-ca-file", Text, "", Security,
        "Path to the peer server TLS trusted CA file.", Tls(TlsSide::Peer)),
    flag("peer-cert-allowed-cn", Text, "", Security,
        "Comma-separated list of allowed CNs for inter-peer TLS authentication.",
        Tls(TlsSide::Peer)),
    flag("peer-cert-allowed-hostname", Text, "", Security,
        "Comma-separated list of allowed SAN hostnames for inter-peer TLS authentication.",
        Tls(TlsSide::Peer)),
    flag("peer-auto-tls", Bool, "false", Security,
        "Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are \
         not provided.", Tls(TlsSide::Peer)),
    flag("self-signed-cert-validity", Uint, "1", Security,
        "The validity period (years) of the certificates generated by --auto-tls and \
         --peer-auto-tls.", Tls(TlsSide::Either)),
    flag("peer-crl-file", Text, "", Security,
        "Path to the peer certificate revocation list file.", Tls(TlsSide::Peer)),
    flag("cipher-suites", List, "", Security,
        "Comma-separated list of supported TLS cipher suites between client/server and peers.",
        Tls(TlsSide::Either)),
    flag("cors", Text, "*", Security,
        "Comma-separated whitelist of origins for CORS (empty or * means allow all).",
        Refused("a CORS policy is not implemented; a security setting is never accepted without \
                 its effect")),
    flag("host-whitelist", Text, "*", Security,
        "Acceptable hostnames from HTTP client requests, if server is not secure.",
        Refused("host name checks on HTTP requests (DNS rebinding protection) are not \
                 implemented")),
    flag("tls-min-version", Text, "TLS1.2", Security,
        "Minimum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3.",
        Tls(TlsSide::Either)),
    flag("tls-max-version", Text, "", Security,
        "Maximum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3.",
        Tls(TlsSide::Either)),
    // Auth
    flag("auth-token", Text, "simple", Auth,
        "Specify a v3 authentication token type and its options ('simple' or 'jwt').", AUTH),
    flag("bcrypt-cost", Uint, "10", Auth,
        "Specify the cost / strength of the bcrypt algorithm for hashing auth passwords.", AUTH),
    flag("auth-token-ttl", Uint, "300", Auth, "Time (in seconds) of the auth-token-ttl.", AUTH),
    // Profiling and monitoring
    flag("enable-pprof", Bool, "false", Profiling,
        "Enable runtime profiling data via HTTP server.",
        Notice("Capstan serves no /debug/pprof endpoints (profile it with perf)")),
    flag("metrics", Text, "basic", Profiling,
        "Set level of detail for exported metrics ('basic' or 'extensive').",
        Implemented),
    flag("listen-metrics-urls", UrlList, "", Profiling,
        "List of URLs to listen on for the /metrics and /health endpoints.",
        Implemented),
    // Logging
    flag("logger", Text, "zap", Logging, "Currently only supports 'zap' for structured logging.",
        Implemented),
    flag("log-outputs", List, "default", Logging,
        "Specify 'stdout' or 'stderr' to skip journald logging, or list of output targets.",
        Implemented),
    flag("log-level", Text, "info", Logging,
        "Configures log level. Only supports debug, info, warn, error, panic, or fatal.",
        Implemented),
    flag("log-format", Text, "json", Logging, "Configures log format. Only supports json, console.",
        Implemented),
    flag("enable-log-rotation", Bool, "false", Logging,
        "Enable log rotation of a single log-outputs file target.",
        Notice("not implemented: log files are only appended to; rotate them with logrotate's \
                copytruncate or the service manager")),
    flag("log-rotation-config-json", Text,
        "{\"maxsize\": 100, \"maxage\": 0, \"maxbackups\": 0, \"localtime\": false, \"compress\": false}",
        Logging, "Configures log rotation if enabled with a JSON logger config.",
        Notice("not implemented: log files are only appended to; rotate them with logrotate's \
                copytruncate or the service manager")),
    flag("warning-unary-request-duration", Duration, "300ms", Logging,
        "Time after which a warning is logged if a unary request takes more than this duration.",
        Implemented),
    // Experimental distributed tracing
    flag("experimental-enable-distributed-tracing", Bool, "false", Tracing,
        "Enable experimental distributed tracing.", Renamed("enable-distributed-tracing")),
    flag("enable-distributed-tracing", Bool, "false", Tracing, "Enable distributed tracing.",
        TRACING),
    flag("experimental-distributed-tracing-address", Text, "localhost:4317", Tracing,
        "Distributed tracing collector address.", Renamed("distributed-tracing-address")),
    flag("distributed-tracing-address", Text, "localhost:4317", Tracing,
        "Distributed tracing collector address.", TRACING),
    flag("experimental-distributed-tracing-service-name", Text, "etcd", Tracing,
        "Distributed tracing service name.", Renamed("distributed-tracing-service-name")),
    flag("distributed-tracing-service-name", Text, "etcd", Tracing,
        "Distributed tracing service name, must be same across all etcd instances.", TRACING),
    flag("experimental-distributed-tracing-instance-id", Text, "", Tracing,
        "Distributed tracing instance ID.", Renamed("distributed-tracing-instance-id")),
    flag("distributed-tracing-instance-id", Text, "", Tracing,
        "Distributed tracing instance ID, must be unique per each etcd instance.", TRACING),
    flag("experimental-distributed-tracing-sampling-rate", Int, "0", Tracing,
        "Number of samples to collect per million spans.",
        Renamed("distributed-tracing-sampling-rate")),
    flag("distributed-tracing-sampling-rate", Int, "0", Tracing,
        "Number of samples to collect per million spans for distributed tracing.", TRACING),
    // Experimental feature
    flag("experimental-initial-corrupt-check", Bool, "false", Experimental,
        "Enable to check data corruption before serving any client/peer traffic.",
        Gate("InitialCorruptCheck")),
    flag("experimental-corrupt-check-time", Duration, "0s", Experimental,
        "Duration of time between cluster corruption check passes.",
        Renamed("corrupt-check-time")),
    flag("corrupt-check-time", Duration, "0s", Experimental,
        "Duration of time between cluster corruption check passes.",
        Refused("periodic corruption checks against peers are not implemented; a safety check \
                 is never accepted without its effect")),
    flag("experimental-compact-hash-check-enabled", Bool, "false", Experimental,
        "Enable leader to periodically check followers compaction hashes.",
        Gate("CompactHashCheck")),
    flag("experimental-compact-hash-check-time", Duration, "1m", Experimental,
        "Duration of time between leader checks followers compaction hashes.",
        Renamed("compact-hash-check-time")),
    flag("compact-hash-check-time", Duration, "1m", Experimental,
        "Duration of time between leader checks followers compaction hashes.",
        Notice("only used by the CompactHashCheck gate, which Capstan refuses")),
    flag("experimental-enable-lease-checkpoint", Bool, "false", Experimental,
        "Enables primary lessor to persist lease remainingTTL.", Gate("LeaseCheckpoint")),
    flag("experimental-compaction-batch-limit", Int, "1000", Experimental,
        "Sets the maximum revisions deleted in each compaction batch.",
        Renamed("compaction-batch-limit")),
    flag("compaction-batch-limit", Int, "1000", Experimental,
        "Sets the maximum revisions deleted in each compaction batch.",
        Notice("Capstan compacts in its own batches")),
    flag("experimental-peer-skip-client-san-verification", Bool, "false", Experimental,
        "Skip verification of SAN field in client certificate for peer connections.",
        Renamed("peer-skip-client-san-verification")),
    flag("peer-skip-client-san-verification", Bool, "false", Experimental,
        "Skip verification of SAN field in client certificate for peer connections.",
        Tls(TlsSide::Peer)),
    flag("experimental-watch-progress-notify-interval", Duration, "10m", Experimental,
        "Duration of periodical watch progress notification.",
        Renamed("watch-progress-notify-interval")),
    flag("watch-progress-notify-interval", Duration, "10m", Experimental,
        "Duration of periodical watch progress notification.", Implemented),
    flag("experimental-warning-apply-duration", Duration, "100ms", Experimental,
        "Warning is generated if requests take more than this duration.",
        Renamed("warning-apply-duration")),
    flag("warning-apply-duration", Duration, "100ms", Experimental,
        "Warning is generated if requests take more than this duration.",
        Implemented),
    flag("experimental-txn-mode-write-with-shared-buffer", Bool, "true", Experimental,
        "Enable the write transaction to use a shared buffer in its readonly check operations.",
        Gate("TxnModeWriteWithSharedBuffer")),
    flag("experimental-bootstrap-defrag-threshold-megabytes", Uint, "0", Experimental,
        "Defrag during bootstrap if it frees at least this many megabytes.",
        Renamed("bootstrap-defrag-threshold-megabytes")),
    flag("bootstrap-defrag-threshold-megabytes", Uint, "0", Experimental,
        "Defrag during bootstrap if it frees at least this many megabytes.",
        Notice("Capstan's page store is defragmented online (Maintenance.Defragment)")),
    flag("experimental-warning-unary-request-duration", Duration, "300ms", Experimental,
        "Time after which a warning is generated if a unary request takes more than this.",
        Renamed("warning-unary-request-duration")),
    flag("max-learners", Int, "1", Experimental,
        "Set the max number of learner members allowed in the cluster membership.", Implemented),
    flag("experimental-compaction-sleep-interval", Duration, "10ms", Experimental,
        "Sets the sleep interval between each compaction batch.",
        Renamed("compaction-sleep-interval")),
    flag("compaction-sleep-interval", Duration, "10ms", Experimental,
        "Sets the sleep interval between each compaction batch.",
        Notice("Capstan compacts in its own batches")),
    flag("experimental-downgrade-check-time", Duration, "5s", Experimental,
        "Duration of time between two downgrade status checks.",
        Renamed("downgrade-check-time")),
    flag("downgrade-check-time", Duration, "5s", Experimental,
        "Duration of time between two downgrade status checks.",
        Notice("cluster downgrades are not supported, so there is nothing to check")),
    flag("experimental-enable-lease-checkpoint-persist", Bool, "false", Experimental,
        "Enable persisting remainingTTL to prevent indefinite auto-renewal of long lived leases.",
        Gate("LeaseCheckpointPersist")),
    flag("experimental-memory-mlock", Bool, "false", Experimental,
        "Enable to enforce etcd pages (in particular bbolt) to stay in RAM.",
        Renamed("memory-mlock")),
    flag("experimental-snapshot-catchup-entries", Uint, "5000", Experimental,
        "Number of entries for a slow follower to catch up after compacting the raft storage \
         entries.", Renamed("snapshot-catchup-entries")),
    flag("snapshot-catchup-entries", Uint, "5000", Experimental,
        "Number of entries for a slow follower to catch up after compacting the raft storage \
         entries.",
        Notice("Capstan keeps its own raft log tail; a follower further behind gets a snapshot")),
    flag("experimental-stop-grpc-service-on-defrag", Bool, "false", Experimental,
        "Enable etcd gRPC service to stop serving client requests on defragmentation.",
        Gate("StopGRPCServiceOnDefrag")),
    // Unsafe
    flag("force-new-cluster", Bool, "false", Unsafe, "Force to create a new one-member cluster.",
        Refused("rewriting membership to a one-member cluster is not implemented")),
    flag("unsafe-no-fsync", Bool, "false", Unsafe, "Disables fsync, unsafe, will cause data loss.",
        Refused("Capstan always fsyncs its WAL; a durability setting is never accepted without \
                 its effect")),
    // Capstan's own
    flag("shards", Uint, "0", Capstan,
        "Pinned executors (shards) to run; 0 is one per CPU the process may use.", Implemented),
    flag("wal-segment-bytes", Uint, "67108864", Capstan,
        "Size of one pre-allocated WAL segment, in bytes.", Implemented),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_renames_point_at_flags() {
        for (index, flag) in FLAGS.iter().enumerate() {
            assert!(
                FLAGS[..index].iter().all(|other| other.name != flag.name),
                "--{} twice",
                flag.name
            );
            if let Renamed(newer) = flag.outcome {
                let target = find(newer).expect("renamed flag exists");
                assert_eq!(target.kind, flag.kind, "--{}", flag.name);
                assert!(!matches!(target.outcome, Renamed(_) | Gate(_)));
            }
            if let Gate(gate) = flag.outcome {
                assert!(super::super::gates::find(gate).is_some(), "{gate}");
                assert_eq!(flag.kind, Bool);
            }
        }
    }

    #[test]
    fn env_names_follow_etcd() {
        let flag = find("listen-client-urls").expect("flag");
        assert_eq!(flag.env_name(), "ETCD_LISTEN_CLIENT_URLS");
    }
}
