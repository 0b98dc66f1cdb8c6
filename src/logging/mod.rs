//! Log lines as etcd writes them: zap's production encoder behind `--logger zap`.
//!
//! Every `tracing` event becomes one line. With `--log-format json` (etcd's default) the line is
//! one JSON object whose keys come in zap's order — `level`, `ts`, `logger` (only for a named
//! logger, e.g. `"raft"`), `caller`, `msg` — followed by the event's fields with their types
//! kept (numbers stay numbers). With `--log-format console` it is zap's console form:
//! `ts<TAB>level<TAB>[logger<TAB>]caller<TAB>msg<TAB>{"field": value, ...}`.
//!
//! Conventions, so that call sites read as ordinary `tracing` code:
//! - a field's name is written with `-` for `_` (etcd's field names are hyphenated:
//!   `local_member_id = ..` is written `"local-member-id"`); names with spaces, such as
//!   etcd's `"time spent"`, are given quoted;
//! - an event whose target is a named logger ([`NAMED_LOGGERS`], e.g.
//!   `tracing::info!(target: "raft", ..)`) carries `"logger":"raft"`, as etcd's raft lines do;
//! - durations meant for a reader are written with [`go_duration`] (`"1.5ms"`, `"7s"`), as
//!   zap's `StringDurationEncoder` writes Go's `time.Duration`.
//!
//! Times are UTC with microseconds (`2026-12-07T23:10:01.123456Z`, etcd 3.6's layout; etcd
//! writes the local zone, which is UTC on the hosts this runs on).
//!
//! Files: [`settings`] (the flags, refused with etcd's messages), [`record`] (an event taken
//! apart), [`json`] and [`console`] (the two encoders), [`outputs`] (stderr, stdout, files),
//! [`layer`] (the `tracing` layer tying them together), [`timestamp`], [`go_duration`], and
//! [`slow`] (etcd's warnings about slow requests and applies, with [`request_text`]).

pub mod console;
pub mod go_duration;
pub mod json;
pub mod layer;
pub mod outputs;
pub mod record;
pub mod request_text;
pub mod settings;
pub mod slow;
pub mod timestamp;

pub use go_duration::go_duration;
pub use layer::ZapLayer;
pub use settings::{LogFormat, LogSettings};

/// `tracing` targets written as zap's named loggers (`"logger":"raft"`).
pub const NAMED_LOGGERS: &[&str] = &["raft"];

/// Installs the process-wide subscriber: `settings` decides format, level and outputs;
/// `CAPSTAN_LOG` (an `EnvFilter` directive such as `info,capstan::grpc=debug`), when set and
/// valid, replaces the level filter.
pub fn init(settings: &LogSettings) -> Result<(), String> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAPSTAN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(settings.level.filter_directive()));
    let outputs = outputs::Outputs::open(&settings.outputs)?;
    tracing_subscriber::registry()
        .with(filter)
        .with(ZapLayer::new(settings.format, outputs))
        .try_init()
        .map_err(|error| format!("cannot install the logger: {error}"))
}
