//! `capstan-bench`: a latency benchmark for etcd v3 endpoints — Capstan or etcd itself.
//!
//! It speaks only the wire protocol, through its own small gRPC client ([`grpc`]: `h2` +
//! `prost`, the messages of `capstan-proto`), so the same command measures any etcd v3 server.
//! Sub-commands and flags mirror etcd's `tools/benchmark` so existing command lines carry over.
//!
//! # One run, from flags to figures
//!
//! 1. **Flags** — [`cli`] parses etcd's global flags and one workload sub-command; [`app`]
//!    refuses what is not supported (TLS) with a clear message.
//! 2. **Connections** — [`client::Pool`] dials `--conns` HTTP/2 connections over the
//!    `--endpoints` (round robin) and, with `--user`, authenticates once; client `i` uses
//!    connection `i % conns`.
//! 3. **Requests** — a workload ([`workload`]) turns a request index into one call; the
//!    [`driver`] runs `--clients` sequential loops that share the indices. Closed loop by default;
//!    with `--rate R` every request has an intended send time `start + i/R` and its latency is
//!    measured from that time, so a stalled server shows up in the percentiles instead of
//!    silently slowing the sender (no coordinated omission). A warm-up phase runs first and is
//!    not recorded.
//! 4. **Figures** — [`metrics`] keeps one HDR histogram per series (1 µs .. 60 s, 3 significant
//!    figures) plus error counts; [`report`] prints a table, JSON or CSV; [`plot`] draws the
//!    latency-by-percentile curves as SVG; [`compare`] alternates two endpoint sets
//!    (A B A B …) and prints B/A ratios.
//!
//! Watch and lease workloads need servers that implement those services; a server answering
//! gRPC `UNIMPLEMENTED` makes the run stop with a message that says so.

pub mod app;
pub mod cli;
pub mod client;
pub mod compare;
pub mod driver;
pub mod endpoint;
pub mod error;
pub mod flag_duration;
pub mod grpc;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod plot;
pub mod report;
pub mod tls;
pub mod workload;
