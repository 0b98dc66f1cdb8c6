//! The raft peer transport: raft messages between members over TCP, or TLS over it.
//!
//! Runs on the raft owner shard (one glommio executor, everything `!Send`). Messages are the
//! already-encoded bytes of raft-rs `eraftpb::Message`s; the transport never looks inside.
//!
//! # Connections
//!
//! Each member keeps ONE outbound connection to every other member and only ever writes on it;
//! it receives on the connections the others open to it. So between two members there are two
//! connections, one per direction, and messages arrive in the order they were sent as long as
//! a connection lives. Per peer:
//!
//! - **outbound** ([`outbound`]): a sender task connects (timeout
//!   [`outbound::CONNECT_TIMEOUT`]), sends the handshake, then drains the peer's bounded queue
//!   ([`queue`]), writing everything queued as one batch of frames per write. On any error it
//!   closes, waits ([`outbound::RECONNECT_BACKOFF_MIN`] doubling to
//!   [`outbound::RECONNECT_BACKOFF_MAX`]) and reconnects; messages queued meanwhile wait, and
//!   a full queue drops its oldest messages. [`PeerTransport::send`] never waits.
//! - **inbound** ([`inbound`]): the accept loop checks each connection's handshake (magic,
//!   version, cluster id, that it is addressed to us) and hands every frame to `deliver`.
//!   Bad bytes close that connection only.
//!
//! # Handshake (32 bytes, integers big-endian, sent once by the connecting side)
//!
//! ```text
//!  0        4        6        8                16               24               32
//!  +--------+--------+--------+----------------+----------------+----------------+
//!  | "CPRT" |version | flags  |   cluster_id   |    from_id     |     to_id      |
//!  | magic  | u16 =1 | u16 =0 |      u64       |      u64       |      u64       |
//!  +--------+--------+--------+----------------+----------------+----------------+
//! ```
//!
//! Refused (connection closed): another magic, another version, non-zero flags; a cluster id
//! other than ours (logged as an error: `cluster ID mismatch`, both ids in hex); a `to_id`
//! other than our member id; a `from_id` of 0 or our own id. No reply is ever sent: the
//! connection is one-way.
//!
//! # Frames (after the handshake, back to back until the connection closes)
//!
//! ```text
//!  0                4                                 4 + length
//!  +----------------+----------------------------------+
//!  | length: u32 BE |  payload: one encoded raft       |
//!  | <= 64 MiB      |  eraftpb::Message (opaque)       |
//!  +----------------+----------------------------------+
//! ```
//!
//! A length above [`wire::FRAME_BYTES_MAX`] closes the connection before anything is allocated
//! for it. Raft snapshots travel as frames too, cut into chunks
//! (`raft::snapshot_stream`), so they share the connection and its TLS.
//!
//! # TLS ([`tls`])
//!
//! With an `https://` `--listen-peer-urls` the peer port speaks TLS first: each accepted
//! connection runs its TLS handshake in its own task ([`tls::TLS_HANDSHAKE_TIMEOUT`]), with the
//! `--peer-*` settings built by [`crate::tls`] (CA, `--peer-client-cert-auth`, CRL) and then
//! etcd's peer checks (client SAN against the source address, `--peer-cert-allowed-cn` /
//! `--peer-cert-allowed-hostname`). A member whose peer url is `https://` (from
//! `--initial-cluster` or a `member add`: [`PeerAddress::tls_host`]) is connected to over TLS,
//! its certificate verified for the url's host. The handshake and the frames above then travel
//! inside TLS unchanged; `stream::PeerStream` hides which. A connection that fails TLS is
//! closed like one with bad bytes. The joining member's cluster query ([`cluster_query`]) uses
//! the same client configuration, blocking.

pub mod cluster_query;
pub mod frame_reader;
pub mod inbound;
pub mod outbound;
pub mod queue;
pub(crate) mod stream;
pub mod tls;
pub mod transport;
pub mod wire;

#[cfg(test)]
mod tests;

pub use queue::{PEER_QUEUE_BYTES_MAX, PEER_QUEUE_MESSAGES_MAX};
pub use tls::PeerTls;
pub use transport::{Deliver, PeerAddress, PeerTransport, TransportConfig};
pub use wire::FRAME_BYTES_MAX;
