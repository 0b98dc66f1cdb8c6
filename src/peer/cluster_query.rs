//! How a member joining an existing cluster learns the cluster id: before it starts, it asks
//! the members named in `--initial-cluster` over their peer ports (a handshake with
//! [`FLAG_CLUSTER_QUERY`](super::wire::FLAG_CLUSTER_QUERY)); the first to answer tells it.
//! Blocking std sockets: this runs once, before any executor starts.

use super::wire::{Handshake, HANDSHAKE_BYTES};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Time for one member to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between rounds over all members.
const ROUND_PAUSE: Duration = Duration::from_millis(200);

/// Asks member `peer_id` at `address` which cluster it is in.
pub fn ask(address: SocketAddr, local_id: u64, peer_id: u64) -> io::Result<u64> {
    let mut stream = TcpStream::connect_timeout(&address, ANSWER_TIMEOUT)?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    stream.set_write_timeout(Some(ANSWER_TIMEOUT))?;
    let query = Handshake {
        cluster_id: 0,
        from_id: local_id,
        to_id: peer_id,
    };
    stream.write_all(&query.encode_query())?;
    let mut bytes = [0u8; HANDSHAKE_BYTES];
    stream.read_exact(&mut bytes)?;
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

/// Asks `peers` (id, address) in turn until one answers or `patience` runs out.
pub fn discover(
    local_id: u64,
    peers: &[(u64, SocketAddr)],
    patience: Duration,
) -> Result<u64, String> {
    let deadline = Instant::now() + patience;
    let mut last_error = String::from("no other member in --initial-cluster");
    loop {
        for (peer_id, address) in peers {
            match ask(*address, local_id, *peer_id) {
                Ok(cluster_id) => return Ok(cluster_id),
                Err(error) => last_error = format!("member {peer_id:x} at {address}: {error}"),
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
