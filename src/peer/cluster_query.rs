//! How a member joining an existing cluster learns the cluster id: before it starts, it asks
//! the members named in `--initial-cluster` over their peer ports (a handshake with
//! [`FLAG_CLUSTER_QUERY`](super::wire::FLAG_CLUSTER_QUERY)); the first to answer tells it.
//! Blocking std sockets: this runs once, before any executor starts. A member at an `https://`
//! peer url is asked over TLS (a blocking rustls stream), with the same client configuration
//! as the peer transport's.

use super::blocking::{exchange, Timeouts};
use super::transport::PeerAddress;
use super::wire::{Handshake, HANDSHAKE_BYTES};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Time for one member to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between rounds over all members.
const ROUND_PAUSE: Duration = Duration::from_millis(200);

/// Asks `peer` which cluster it is in; `tls` is the peer client configuration, needed when
/// its url is `https://`.
pub fn ask(
    peer: &PeerAddress,
    local_id: u64,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> io::Result<u64> {
    let peer_id = peer.id;
    let query = Handshake {
        cluster_id: 0,
        from_id: local_id,
        to_id: peer_id,
    }
    .encode_query();
    let mut bytes = [0u8; HANDSHAKE_BYTES];
    let timeouts = Timeouts {
        connect: ANSWER_TIMEOUT,
        answer: ANSWER_TIMEOUT,
    };
    exchange(peer, tls, timeouts, &query, &mut bytes)?;
    let answer = Handshake::decode(&bytes)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error.to_string()))?;
    if answer.from_id != peer_id || answer.to_id != local_id || answer.cluster_id == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "unexpected answer from member {:x} to {:x} (cluster {:x})",
                answer.from_id, answer.to_id, answer.cluster_id
            ),
        ));
    }
    Ok(answer.cluster_id)
}

/// Asks `peers` in turn until one answers or `patience` runs out.
pub fn discover(
    local_id: u64,
    peers: &[PeerAddress],
    tls: Option<&Arc<rustls::ClientConfig>>,
    patience: Duration,
) -> Result<u64, String> {
    let deadline = Instant::now() + patience;
    let mut last_error = String::from("no other member in --initial-cluster");
    loop {
        for peer in peers {
            match ask(peer, local_id, tls) {
                Ok(cluster_id) => return Ok(cluster_id),
                Err(error) => {
                    last_error = format!("member {:x} at {}: {error}", peer.id, peer.address)
                }
            }
        }
        if peers.is_empty() || Instant::now() >= deadline {
            return Err(format!(
                "could not learn the cluster id from any member of --initial-cluster: {last_error}"
            ));
        }
        std::thread::sleep(ROUND_PAUSE);
    }
}
