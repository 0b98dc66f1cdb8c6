//! Plain HTTP/1.1: etcd's health probes, `/metrics` and `/version`.
//!
//! This serves the metrics listeners (`--listen-metrics-urls`): `/health`, `/livez`,
//! `/readyz` (and their sub-paths, one per check) and `/metrics`, as etcd 3.6 answers them;
//! and the HTTP/1.1 connections of the client ports, which `grpc::connection` tells from gRPC
//! by ALPN or their first bytes: the same endpoints, `/version` and the JSON gateway
//! ([`client_routes`]).
//!
//! The request path through this module:
//! 1. [`listener`] accepts on a glommio socket (at most [`MAX_CONNECTIONS_PER_LISTENER`] at a
//!    time) and runs each connection as its own task;
//! 2. [`connection`] reads one request head at a time ([`request`]: `httparse`, bounded size
//!    and time), reads or skips its body, asks a [`Handler`] for the response and writes it
//!    ([`response`]); keep-alive, `Connection: close`, HEAD and Go's error answers live there.
//!    It is generic over any futures `AsyncRead + AsyncWrite` stream, so a TLS stream plugs in
//!    unchanged;
//! 3. [`routes`] picks the endpoint as Go's `ServeMux` does (exact paths, cleaned-path
//!    redirects, `404 page not found`);
//! 4. the endpoints: [`health`] (`/health`), [`checks`] (`/livez`, `/readyz`), [`metrics`]
//!    (with [`process`] for the `process_*` series) and [`version`]. They read the member
//!    through [`member::MemberView`]: raft status, alarms, learner state and real reads (a
//!    linearizable one goes through a read index, as a gRPC Range does).
//!
//! [`metrics_listener`] binds the metrics sockets at start-up and starts serving them on the
//! owner shard; `https://` ones speak TLS with the client certificate.
//!
//! Bytes from the network never panic this module: every length is checked before it is
//! allocated, and every malformed request gets Go's error status and a closed connection.

pub mod checks;
pub mod client_routes;
pub mod connection;
pub mod date;
pub mod gateway;
pub mod health;
pub mod listener;
pub mod member;
pub mod metrics;
pub mod metrics_listener;
pub mod metrics_series;
pub mod process;
pub mod query;
pub mod request;
pub mod response;
pub mod routes;
pub mod version;

pub use client_routes::ClientRoutes;
pub use connection::Handler;
pub use listener::serve_http_listener;
pub use member::{ContextSlot, MemberView};
pub use metrics_listener::{bind_metrics_sockets, start_metrics_listeners, MetricsSockets};
pub use request::Request;
pub use response::Response;
pub use routes::MetricsRoutes;

use std::time::Duration;

/// Largest request head (request line and headers) accepted: Go's `DefaultMaxHeaderBytes`
/// (1 MiB) plus the 4 KiB of slack net/http allows; beyond it the answer is 431.
pub const MAX_REQUEST_HEAD_BYTES: usize = (1 << 20) + 4096;
/// Most header lines in one request head (beyond it: 431).
pub const MAX_REQUEST_HEADERS: usize = 256;
/// Largest request body read (and dropped) on the metrics listener; beyond it the answer is
/// 413 and the connection closes.
pub const MAX_REQUEST_BODY_BYTES: usize = 1 << 20;
/// How long a kept-alive connection may stay silent before its next request.
pub const KEEP_ALIVE_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a request head may take once its first byte arrived (slowloris).
pub const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request body may take to arrive.
pub const REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long writing one response may take (a client that does not read).
pub const RESPONSE_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections one HTTP listener serves at once; more wait in the kernel's accept queue.
pub const MAX_CONNECTIONS_PER_LISTENER: usize = 256;
/// Pending connections the kernel queues on a metrics listener.
pub const METRICS_LISTEN_BACKLOG: i32 = 128;
