//! Command-line flags. Names and defaults follow etcd's `tools/benchmark` (so its command
//! lines work here); additions are marked as such in their help.
//!
//! Global flags may stand before or after the sub-command. Boolean flags take etcd's forms:
//! `--sequential-keys` or `--sequential-keys=true|false`.

use crate::flag_duration::parse_duration;
use crate::limits::{COMPARE_ROUNDS_DEFAULT, REQUEST_TIMEOUT_DEFAULT, WARMUP_CALLS_DEFAULT};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

fn duration_flag(text: &str) -> Result<Duration, String> {
    parse_duration(text)
}

#[derive(Parser, Debug, Clone)]
#[command(
    name = "capstan-bench",
    version,
    about = "Latency benchmark for etcd v3 endpoints (Capstan or etcd), over the wire protocol",
    long_about = "Latency benchmark for etcd v3 endpoints (Capstan or etcd), over the wire \
protocol only. Sub-commands and flags mirror etcd's tools/benchmark. Latencies go into HDR \
histograms (1 us .. 60 s, 3 significant figures). Closed loop by default; with --rate the run \
is open loop and latency is measured from each call's intended send time."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// gRPC endpoints, host:port or http://host:port, comma-separated
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "127.0.0.1:2379"
    )]
    pub endpoints: Vec<String>,
    /// Total number of gRPC connections
    #[arg(long, global = true, default_value_t = 1)]
    pub conns: usize,
    /// Total number of gRPC clients (sequential loops; client i uses connection i % conns)
    #[arg(long, global = true, default_value_t = 1)]
    pub clients: usize,
    /// Total number of measured requests (per run; warm-up not included)
    #[arg(long, global = true, default_value_t = 10_000)]
    pub total: u64,
    /// Use full floating point precision in the table
    #[arg(long, global = true, action = clap::ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value = "false")]
    pub precise: bool,
    /// Also report completions and latency per second
    #[arg(long, global = true, action = clap::ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value = "false")]
    pub sample: bool,
    /// TLS client certificate (PEM)
    #[arg(long, global = true)]
    pub cert: Option<String>,
    /// TLS client key (PEM)
    #[arg(long = "key", global = true)]
    pub key_file: Option<String>,
    /// TLS CA bundle (PEM) that server certificates are verified against
    #[arg(long, global = true)]
    pub cacert: Option<String>,
    /// Skip server certificate verification (TLS)
    #[arg(long, global = true, action = clap::ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value = "false")]
    pub insecure_skip_tls_verify: bool,
    /// name:password to authenticate with (etcd auth)
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// Dial timeout per connection, a Go duration (0: 5s)
    #[arg(long, global = true, default_value = "0s", value_parser = duration_flag)]
    pub dial_timeout: Duration,
    /// [capstan-bench] A call slower than this is abandoned and counted as an error
    #[arg(long, global = true, default_value = REQUEST_TIMEOUT_DEFAULT, value_parser = duration_flag)]
    pub request_timeout: Duration,
    /// [capstan-bench] End the measured phase after this long even if --total calls were not
    /// all made (calls under way then still finish); 0s: no limit. For put, range, txn-put,
    /// txn-mixed and lease-keepalive; per run (per round in compare)
    #[arg(long, global = true, default_value = "0s", value_parser = duration_flag)]
    pub duration: Duration,
    /// [capstan-bench] Calls made before measuring, not recorded
    #[arg(long, global = true, default_value_t = WARMUP_CALLS_DEFAULT)]
    pub warmup: u64,
    /// [capstan-bench] Output format
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// [capstan-bench] Write a latency-by-percentile chart (SVG) of the run's series here
    #[arg(long, global = true)]
    pub plot: Option<PathBuf>,
    /// [capstan-bench] Name of this run in reports and charts (default: the endpoints)
    #[arg(long, global = true)]
    pub label: Option<String>,
    /// [capstan-bench] Seed of the random keys and values
    #[arg(long, global = true, default_value_t = 1)]
    pub seed: u64,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Json,
    Csv,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    #[command(flatten)]
    Run(Workload),
    /// Run one workload against two endpoint sets, alternating A B A B ..., and print B/A
    Compare(CompareArgs),
    /// Draw the series of saved JSON reports (--output json) in one SVG chart
    Plot(PlotArgs),
}

#[derive(Subcommand, Debug, Clone)]
pub enum Workload {
    /// Benchmark put
    Put(PutArgs),
    /// Benchmark range: range KEY [END]
    Range(RangeArgs),
    /// Benchmark txn with --txn-ops puts each
    TxnPut(TxnPutArgs),
    /// Benchmark a mixed load of txn-put and txn-range
    TxnMixed(TxnMixedArgs),
    /// Benchmark watch creation and event delivery
    Watch(WatchArgs),
    /// Benchmark the latency between writing a key and receiving its watch event
    WatchLatency(WatchLatencyArgs),
    /// Benchmark serializable gets while many unsynced watchers catch up
    WatchGet(WatchGetArgs),
    /// Benchmark lease keepalive
    LeaseKeepalive(LeaseKeepaliveArgs),
    /// [capstan-bench] How late lease expiries arrive as watch DELETE events
    LeaseExpiry(LeaseExpiryArgs),
    /// [capstan-bench] Kill the leader (SIGKILL) and time the first write acknowledged after it
    Failover(FailoverArgs),
}

impl Workload {
    /// The sub-command's name, as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Workload::Put(_) => "put",
            Workload::Range(_) => "range",
            Workload::TxnPut(_) => "txn-put",
            Workload::TxnMixed(_) => "txn-mixed",
            Workload::Watch(_) => "watch",
            Workload::WatchLatency(_) => "watch-latency",
            Workload::WatchGet(_) => "watch-get",
            Workload::LeaseKeepalive(_) => "lease-keepalive",
            Workload::LeaseExpiry(_) => "lease-expiry",
            Workload::Failover(_) => "failover",
        }
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// Linearizable
    #[value(name = "l")]
    Linearizable,
    /// Serializable
    #[value(name = "s")]
    Serializable,
}

#[derive(Args, Debug, Clone)]
pub struct PutArgs {
    /// Key size of put request
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value size of put request
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,
    /// Puts per second, open loop (0: closed loop, as fast as answered)
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Maximum possible keys
    #[arg(long, default_value_t = 1)]
    pub key_space_size: u64,
    /// Use sequential keys
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false")]
    pub sequential_keys: bool,
}

#[derive(Args, Debug, Clone)]
pub struct RangeArgs {
    /// First key of the range
    pub key: String,
    /// End of the range (exclusive); none for the single key
    pub end: Option<String>,
    /// Range requests per second, open loop (0: closed loop)
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Linearizable (l) or Serializable (s)
    #[arg(long, value_enum, default_value_t = Consistency::Linearizable)]
    pub consistency: Consistency,
    /// Maximum number of results (0: no limit)
    #[arg(long, default_value_t = 0)]
    pub limit: i64,
    /// Only count the keys
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false")]
    pub count_only: bool,
    /// Only return keys
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false")]
    pub keys_only: bool,
}

#[derive(Args, Debug, Clone)]
pub struct TxnPutArgs {
    /// Key size of txn put
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value size of txn put
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,
    /// Number of puts per txn
    #[arg(long, default_value_t = 1)]
    pub txn_ops: u64,
    /// Txns per second, open loop (0: closed loop)
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Maximum possible keys
    #[arg(long, default_value_t = 1)]
    pub key_space_size: u64,
}

#[derive(Args, Debug, Clone)]
pub struct TxnMixedArgs {
    /// First key read (etcd reads from the empty key: every key)
    pub key: Option<String>,
    /// End of the range read (default: the prefix end of KEY)
    pub end: Option<String>,
    /// Key size of mixed txn
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value size of mixed txn
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,
    /// Txns per second, open loop (0: closed loop)
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Read range end key (overrides END)
    #[arg(long, default_value = "")]
    pub end_key: String,
    /// Read operation range result limit
    #[arg(long, default_value_t = 1000)]
    pub limit: i64,
    /// Maximum possible keys
    #[arg(long, default_value_t = 1)]
    pub key_space_size: u64,
    /// Linearizable (l) or Serializable (s)
    #[arg(long, value_enum, default_value_t = Consistency::Linearizable)]
    pub consistency: Consistency,
    /// Read/write ops ratio
    #[arg(long, default_value_t = 1.0)]
    pub rw_ratio: f64,
}

#[derive(Args, Debug, Clone)]
pub struct WatchArgs {
    /// Total watch streams
    #[arg(long, default_value_t = 10)]
    pub streams: usize,
    /// Total watchers per stream
    #[arg(long, default_value_t = 100)]
    pub watch_per_stream: usize,
    /// Total number of keys to be watched
    #[arg(long, default_value_t = 1)]
    pub watched_key_total: usize,
    /// Puts per second, open loop (0: closed loop)
    #[arg(long, default_value_t = 0.0)]
    pub put_rate: f64,
    /// Number of put requests
    #[arg(long, default_value_t = 1000)]
    pub put_total: u64,
    /// Key size of watch request
    #[arg(long, default_value_t = 32)]
    pub key_size: usize,
    /// Maximum possible keys
    #[arg(long, default_value_t = 1)]
    pub key_space_size: u64,
    /// Use sequential keys
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false")]
    pub sequential_keys: bool,
}

#[derive(Args, Debug, Clone)]
pub struct WatchLatencyArgs {
    /// Total watch streams
    #[arg(long, default_value_t = 10)]
    pub streams: usize,
    /// Total watchers per stream
    #[arg(long, default_value_t = 10)]
    pub watchers_per_stream: usize,
    /// PrevKV enabled on watch requests
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false")]
    pub prevkv: bool,
    /// Total number of put requests
    #[arg(long, default_value_t = 1000)]
    pub put_total: u64,
    /// Number of keys to put per second (open loop)
    #[arg(long, default_value_t = 100.0)]
    pub put_rate: f64,
    /// Key size of watch response
    #[arg(long, default_value_t = 32)]
    pub key_size: usize,
    /// Value size of watch response
    #[arg(long, default_value_t = 32)]
    pub val_size: usize,
}

#[derive(Args, Debug, Clone)]
pub struct WatchGetArgs {
    /// Total number of watchers
    #[arg(long, default_value_t = 10_000)]
    pub watchers: usize,
    /// Total number of watcher streams
    #[arg(long, default_value_t = 1)]
    pub streams: usize,
    /// Number of events per watcher
    #[arg(long, default_value_t = 8)]
    pub events: u64,
}

#[derive(Args, Debug, Clone)]
pub struct LeaseKeepaliveArgs {}

#[derive(Args, Debug, Clone)]
pub struct LeaseExpiryArgs {
    /// Leases to grant; one key is attached to each and none is kept alive
    #[arg(long, default_value_t = 1000)]
    pub leases: u64,
    /// TTL of every lease, in seconds
    #[arg(long, default_value_t = 5)]
    pub ttl: i64,
    /// How long to wait for DELETE events after the last lease's expected expiry (a Go duration)
    #[arg(long, default_value = "30s", value_parser = duration_flag)]
    pub grace: Duration,
    /// Prefix of the keys; a unique run id is appended, so runs and rounds never mix
    #[arg(long, default_value = "capstan-bench/lease-expiry/")]
    pub prefix: String,
}

#[derive(Args, Debug, Clone)]
pub struct FailoverArgs {
    /// ENDPOINT=PID_FILE for every endpoint of --endpoints (comma-separated or repeated); the
    /// leader's process is read from its file and killed with SIGKILL
    #[arg(long = "member", value_delimiter = ',', required = true)]
    pub members: Vec<String>,
    /// Kill-and-measure rounds (more than one needs --restart-command)
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    /// Shell command (sh -c) run after each round to restart the killed member; it sees
    /// CAPSTAN_BENCH_KILLED_ENDPOINT and CAPSTAN_BENCH_KILLED_PID_FILE
    #[arg(long)]
    pub restart_command: Option<String>,
    /// Puts per second sent to the surviving members, open loop (each put on its own stream)
    #[arg(long, default_value_t = 200.0)]
    pub put_rate: f64,
    /// Successful puts before the leader is killed
    #[arg(long, default_value_t = 20)]
    pub puts_before_kill: u64,
    /// A round without a successful put this long after the kill counts as an error
    #[arg(long, default_value = "60s", value_parser = duration_flag)]
    pub round_timeout: Duration,
    /// How long to wait for every member to be healthy (one leader, reads answered) before a
    /// round and after the last restart
    #[arg(long, default_value = "90s", value_parser = duration_flag)]
    pub healthy_timeout: Duration,
}

#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// Endpoints of side A, comma-separated
    #[arg(long, value_delimiter = ',', required = true)]
    pub a_endpoints: Vec<String>,
    /// Endpoints of side B, comma-separated
    #[arg(long, value_delimiter = ',', required = true)]
    pub b_endpoints: Vec<String>,
    /// Name of side A in reports
    #[arg(long, default_value = "A")]
    pub a_name: String,
    /// Name of side B in reports
    #[arg(long, default_value = "B")]
    pub b_name: String,
    /// Rounds; each side runs --total / rounds calls per round, A before B
    #[arg(long, default_value_t = COMPARE_ROUNDS_DEFAULT)]
    pub rounds: u32,
    #[command(subcommand)]
    pub workload: Workload,
}

#[derive(Args, Debug, Clone)]
pub struct PlotArgs {
    /// The SVG file to write
    pub svg: PathBuf,
    /// JSON reports written with --output json (single runs or compare)
    #[arg(required = true)]
    pub reports: Vec<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("capstan-bench").chain(args.iter().copied()))
    }

    #[test]
    fn etcd_command_lines_parse() {
        let cli = parse(&[
            "--endpoints=127.0.0.1:2379",
            "--conns=100",
            "--clients=1000",
            "put",
            "--key-size=8",
            "--sequential-keys",
            "--total=100000",
            "--val-size=256",
        ]);
        let cli = cli.map_err(|e| e.to_string());
        let Ok(Cli {
            global,
            command: Command::Run(Workload::Put(put)),
        }) = cli
        else {
            panic!("unexpected parse: {cli:?}");
        };
        assert_eq!(
            (global.conns, global.clients, global.total),
            (100, 1000, 100_000)
        );
        assert!(put.sequential_keys);
        assert_eq!(put.val_size, 256);
    }

    #[test]
    fn range_takes_key_end_and_consistency() {
        let cli = parse(&["range", "foo", "fop", "--consistency=s", "--total", "5"]);
        let Ok(Cli {
            command: Command::Run(Workload::Range(range)),
            ..
        }) = cli
        else {
            panic!("unexpected parse");
        };
        assert_eq!(range.key, "foo");
        assert_eq!(range.end.as_deref(), Some("fop"));
        assert_eq!(range.consistency, Consistency::Serializable);
    }

    #[test]
    fn booleans_accept_etcd_forms() {
        let cli = parse(&["range", "--count-only=false", "foo"]);
        let Ok(Cli {
            command: Command::Run(Workload::Range(range)),
            ..
        }) = cli
        else {
            panic!("unexpected parse");
        };
        assert!(!range.count_only);
        assert_eq!(range.key, "foo");
    }

    #[test]
    fn compare_wraps_a_workload() {
        let cli = parse(&[
            "compare",
            "--a-endpoints",
            "a:1",
            "--b-endpoints",
            "b:2",
            "--rounds",
            "2",
            "put",
            "--total",
            "10",
        ]);
        let Ok(Cli {
            command: Command::Compare(compare),
            global,
        }) = cli
        else {
            panic!("unexpected parse");
        };
        assert_eq!(compare.rounds, 2);
        assert_eq!(compare.workload.name(), "put");
        assert_eq!(global.total, 10);
    }

    #[test]
    fn watch_latency_defaults_match_etcd() {
        let cli = parse(&["watch-latency"]);
        let Ok(Cli {
            command: Command::Run(Workload::WatchLatency(args)),
            ..
        }) = cli
        else {
            panic!("unexpected parse");
        };
        assert_eq!((args.streams, args.watchers_per_stream), (10, 10));
        assert_eq!((args.put_total, args.put_rate), (1000, 100.0));
    }

    #[test]
    fn lease_expiry_defaults() {
        let cli = parse(&["lease-expiry"]);
        let Ok(Cli {
            command: Command::Run(Workload::LeaseExpiry(args)),
            ..
        }) = cli
        else {
            panic!("unexpected parse");
        };
        assert_eq!((args.leases, args.ttl), (1000, 5));
        assert_eq!(args.grace, Duration::from_secs(30));
        let cli = parse(&["lease-expiry", "--leases=10", "--ttl=2", "--grace=5s"]);
        let Ok(Cli {
            command: Command::Run(Workload::LeaseExpiry(args)),
            ..
        }) = cli
        else {
            panic!("unexpected parse");
        };
        assert_eq!(
            (args.leases, args.ttl, args.grace),
            (10, 2, Duration::from_secs(5))
        );
    }

    #[test]
    fn failover_takes_members_and_a_restart_command() {
        let cli = parse(&[
            "--endpoints=a:1,b:2,c:3",
            "failover",
            "--member",
            "a:1=/d/m1.pid,b:2=/d/m2.pid",
            "--member=c:3=/d/m3.pid",
            "--rounds=5",
            "--restart-command",
            "cluster3.sh start etcd /d 2379",
            "--round-timeout=10s",
        ]);
        let Ok(Cli {
            command: Command::Run(Workload::Failover(args)),
            global,
        }) = cli
        else {
            panic!("unexpected parse");
        };
        assert_eq!(global.endpoints.len(), 3);
        assert_eq!(args.members.len(), 3);
        assert_eq!(args.members[2], "c:3=/d/m3.pid");
        assert_eq!(args.rounds, 5);
        assert_eq!(
            args.restart_command.as_deref(),
            Some("cluster3.sh start etcd /d 2379")
        );
        assert_eq!(args.round_timeout, Duration::from_secs(10));
        assert_eq!((args.put_rate, args.puts_before_kill), (200.0, 20));
        assert!(parse(&["failover"]).is_err(), "--member is required");
    }
}
