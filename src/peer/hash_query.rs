//! Asking another member for its HashKV at a revision (etcd's `HashByRev` over the peer
//! `/members/hashkv` endpoint): a handshake with
//! [`FLAG_HASH_QUERY`](super::wire::FLAG_HASH_QUERY) and the revision, answered with one
//! [`HashAnswer`] ([`super::hash_wire`]). Blocking, like [`super::cluster_query`]: the initial
//! corruption check runs before any executor starts. The answering side is
//! `inbound::answer_hash_query`.

use super::blocking::{exchange, Timeouts};
use super::hash_wire::{encode_hash_query, HashAnswer, HashReply, HASH_ANSWER_BYTES};
use super::transport::PeerAddress;
use super::wire::Handshake;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// Time to connect to a member. A member that is down refuses at once; this bounds an
/// unreachable host.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Time for a connected member to answer (TLS handshake and hashing included). A member that
/// is stopped (SIGSTOP) but whose kernel still accepts connections costs exactly this.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// Who asks, in which cluster.
#[derive(Clone, Copy, Debug)]
pub struct Asker {
    pub local_id: u64,
    pub cluster_id: u64,
}

/// Asks `peer` for its HashKV at `revision`. `tls` is the peer client configuration, needed
/// when the peer's url is `https://`. An answer from another member than `peer`, or a hash of
/// another revision, is an error.
pub fn ask(
    peer: &PeerAddress,
    asker: Asker,
    revision: i64,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> io::Result<HashAnswer> {
    let query = encode_hash_query(
        &Handshake {
            cluster_id: asker.cluster_id,
            from_id: asker.local_id,
            to_id: peer.id,
        },
        revision,
    );
    let mut bytes = [0u8; HASH_ANSWER_BYTES];
    let timeouts = Timeouts {
        connect: CONNECT_TIMEOUT,
        answer: ANSWER_TIMEOUT,
    };
    exchange(peer, tls, timeouts, &query, &mut bytes)?;
    let answer = HashAnswer::decode(&bytes)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error.to_string()))?;
    if answer.member_id != peer.id {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "answer from member {:x}, not from {:x}",
                answer.member_id, peer.id
            ),
        ));
    }
    if let HashReply::Hash { hash_revision, .. } = answer.reply {
        if revision > 0 && hash_revision != revision {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "member {:x} hashed revision {hash_revision}, not {revision}",
                    peer.id
                ),
            ));
        }
    }
    Ok(answer)
}
