//! The gRPC front end, wired by hand on `h2`: one task per connection, one task per stream.
//!
//! - [`connection`] accepts on a shard, tells gRPC from HTTP/1.1 (by ALPN, else by the first
//!   bytes: [`sniff`]), runs the h2 handshake with every limit set explicitly, and spawns a
//!   task per stream; HTTP/1.1 connections go to `crate::http`.
//! - [`authority`] and [`authority_io`] sit between the socket and h2 and repair the URL that
//!   etcd 3.4's grpc-go clients send as `:authority` (`etcdctl endpoint status --cluster`);
//!   other connections pass through untouched after their first request's headers.
//! - [`frame`] is gRPC's 5-byte length-prefixed message framing; the length is checked against
//!   the receive limit before any buffer is allocated for the message.
//! - [`call`] runs one unary or streaming call: request decoding, `grpc-timeout` deadline,
//!   response and `grpc-status`/`grpc-message` trailers.
//! - [`routes`] dispatches by `:path` to the services in [`crate::server`].
//! - [`status`] is the one table from internal errors to gRPC codes and etcd's exact strings.

pub mod authority;
pub mod authority_io;
pub mod call;
pub mod connection;
pub mod frame;
pub mod routes;
pub mod sniff;
pub mod status;
pub mod timeout;

pub use status::{Code, Status};
