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
//! Refused (connection closed): another magic, another version, flags other than the ones
//! below; a cluster id other than ours (logged as an error: `cluster ID mismatch`, both ids in
//! hex); a `to_id` other than our member id; a `from_id` of 0 or our own id. No reply is ever
//! sent on a raft connection: it is one-way.
//!
//! Two flags turn a connection into a one-shot query instead, answered and then closed (no
//! frames); they pass the same TLS and certificate checks as raft connections:
//!
//! - `0x0100` cluster query ([`cluster_query`]): a member joining an existing cluster asks
//!   which cluster the receiver is in (its `cluster_id` is 0); the answer is the receiver's own
//!   handshake.
//! - `0x0200` hash query ([`hash_query`], [`hash_wire`]): a restarting member's initial
//!   corruption check asks for etcd's HashKV at a revision (etcd's `/members/hashkv`). The
//!   revision follows the handshake; the answer is 48 bytes:
//!
//! ```text
//!  query:  handshake (flags 0x0200) | revision: i64 BE            (32 + 8 bytes)
//!
//!  answer:
//!  0        4      5        8                16                 24         28        32
//!  +--------+------+--------+----------------+------------------+----------+---------+
//!  | "CPHK" |status|  0 0 0 |   member_id    | current_revision |   hash   | 0 0 0 0 |
//!  | magic  |  u8  |reserved|      u64       |       i64        |   u32    |reserved |
//!  +--------+------+--------+----------------+------------------+----------+---------+
//!  32                 40                48
//!  +------------------+-----------------+
//!  | compact_revision |  hash_revision  |
//!  |       i64        |       i64       |
//!  +------------------+-----------------+
//! ```
//!
//! `status`: 0 hash (all fields meaningful), 1 compacted (the revision is below
//! `compact_revision`), 2 future revision (past `current_revision`), 3 cluster ID mismatch
//! (the query's `cluster_id` is not the receiver's; logged there as an error), 4 unavailable
//! (no state to hash, or [`inbound::HASH_QUERIES_AT_ONCE`] already running). Fields a status
//! does not use are zero. The hash comes from the owner shard's current read view, computed in
//! the executor's blocking pool. The asker refuses an answer with another magic, an unknown
//! status, non-zero reserved bytes, another `member_id` than the one it asked, or a hash of
//! another revision than it asked for.
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
//! closed like one with bad bytes. The joining member's cluster query ([`cluster_query`]) and
//! the restarting member's hash queries ([`hash_query`]) use the same client configuration,
//! blocking ([`blocking`]); on the receiving side they pass the same TLS and certificate checks
//! as raft connections.

pub mod blocking;
pub mod cluster_query;
pub mod frame_reader;
pub mod hash_query;
pub mod hash_wire;
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
pub use transport::{Deliver, HashSource, PeerAddress, PeerTransport, TransportConfig};
pub use wire::FRAME_BYTES_MAX;
