//! Every limit and fixed setting of the tool, with its unit. Nothing here is tuned per run;
//! flags override the `*_DEFAULT` ones.

use std::time::Duration;

/// Smallest latency the histograms hold, in microseconds (smaller values are recorded as this).
pub const LATENCY_US_MIN: u64 = 1;
/// Largest latency the histograms hold, in microseconds (60 s; larger values saturate here).
pub const LATENCY_US_MAX: u64 = 60_000_000;
/// Significant decimal figures kept by every histogram.
pub const HISTOGRAM_SIGNIFICANT_FIGURES: u8 = 3;

/// Largest gRPC response message accepted, checked against the length prefix before buffering.
pub const RESPONSE_MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// HTTP/2 receive window per stream.
pub const STREAM_WINDOW_BYTES: u32 = 4 * 1024 * 1024;
/// HTTP/2 receive window per connection.
pub const CONNECTION_WINDOW_BYTES: u32 = 16 * 1024 * 1024;

/// Dial timeout used when `--dial-timeout` is 0 (etcd's default "no timeout" is not kept: a
/// benchmark must end by itself).
pub const DIAL_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
/// Default `--request-timeout`: one call that takes longer is counted as an error.
pub const REQUEST_TIMEOUT_DEFAULT: &str = "60s";
/// Default `--warmup`: calls made (per run) before measuring; they are not recorded.
pub const WARMUP_CALLS_DEFAULT: u64 = 100;

/// `--conns` upper bound.
pub const CONNS_MAX: usize = 10_000;
/// `--clients` upper bound.
pub const CLIENTS_MAX: usize = 100_000;
/// `--total` upper bound (per series); bounds a run's length and memory.
pub const TOTAL_CALLS_MAX: u64 = 100_000_000;
/// Watchers (all streams together) a watch workload may open.
pub const WATCHERS_MAX: usize = 1_000_000;
/// Largest `--key-size` / `--val-size`, in bytes (etcd's default request limit is 1.5 MiB).
pub const KEY_OR_VALUE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Open loop: calls released by the pacer and not yet taken by a client (the pacer waits when
/// the queue is full; intended times do not move, so latencies stay honest).
pub const PACER_QUEUE_CALLS_MAX: u64 = 65_536;
/// How often the progress bar is redrawn (only when stderr is a terminal).
pub const PROGRESS_REFRESH_INTERVAL: Duration = Duration::from_millis(200);
/// Distinct error messages remembered per series (the rest are counted under "other").
pub const ERROR_KINDS_MAX: usize = 8;
/// Per-second samples kept for `--sample` (one hour).
pub const SAMPLE_SECONDS_MAX: usize = 3_600;
/// Step between points of a latency-by-percentile curve, in "nines" (0.05 = 20 per decade).
pub const CURVE_NINES_STEP: f64 = 0.05;
/// Rounds `compare` runs by default (each side runs `--total / rounds` calls per round).
pub const COMPARE_ROUNDS_DEFAULT: u32 = 3;

/// `lease-expiry --leases` upper bound.
pub const LEASES_MAX: u64 = 10_000_000;
/// `lease-expiry --ttl` upper bound, in seconds (a benchmark waits for every lease to expire).
pub const LEASE_TTL_S_MAX: i64 = 3_600;
/// How often a workload waiting for watch events or a cluster's health looks again.
pub const WATCH_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// `failover`: how often the members are asked whether they are healthy while waiting.
pub const HEALTH_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// `failover`: how long one health question (dial, Status, read) to one member may take.
pub const HEALTH_CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// `failover`: puts in flight at once; beyond it the writer waits (its intended times do not
/// move, so the puts' latencies stay honest).
pub const FAILOVER_PUTS_IN_FLIGHT_MAX: usize = 20_000;
