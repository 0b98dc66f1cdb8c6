//! One peer's sender task: connect, handshake, then write everything queued as one batch of
//! frames per write; on any error close, back off and reconnect.
//!
//! To an `https://` peer url the connection speaks TLS ([`super::tls`]): connect, TLS
//! handshake, then the same handshake and frames inside it.
//!
//! The connection is write-only. While the queue is empty the task also waits for the socket
//! to become readable: the peer never writes, so readability means it closed the connection
//! (or broke the protocol), and the task reconnects at once instead of losing the next batch
//! to a dead socket. A batch whose write fails is lost (raft retransmits); messages queued
//! meanwhile wait in the queue, within its bounds.

use super::stream::PeerStream;
use super::tls::PeerTls;
use super::transport::Peer;
use super::wire::{append_frame, Handshake};
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long one connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one write may stall (peer not reading, host gone) before the connection is
/// dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// First wait before reconnecting; doubles on every failure up to [`RECONNECT_BACKOFF_MAX`].
pub const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest wait between connection attempts. Short: when a whole cluster restarts, a member
/// can hold no election before it reaches its peers, so every moment a peer listens unseen is
/// added to the outage (etcd's peer streams redial every 100 ms). An attempt on a peer that is
/// down costs a refused connect, or at most [`CONNECT_TIMEOUT`] on an unreachable host.
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_millis(200);
/// A connection that lived at least this long resets the backoff to the minimum; shorter ones
/// (a peer that accepts and then refuses us) keep it growing.
pub const CONNECTION_STABLE_AFTER: Duration = Duration::from_secs(2);
/// Write-buffer capacity in bytes kept between batches; a larger buffer (after a burst) is
/// freed.
pub const WRITE_BUFFER_RETAIN_BYTES: usize = 1024 * 1024;
/// Bytes read at a time when checking whether the peer closed the connection.
const CLOSE_PROBE_BYTES: usize = 64;

/// Who this member is, for the handshake, and its TLS for https peers.
#[derive(Clone, Debug)]
pub(super) struct OutboundIdentity {
    pub local_id: u64,
    pub cluster_id: u64,
    pub tls: PeerTls,
}

/// Why an established connection ended.
#[derive(Debug, thiserror::Error)]
enum ConnectionEnd {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("peer closed the connection")]
    PeerClosed,
    #[error("peer sent {0} unexpected bytes on a write-only connection")]
    UnexpectedBytes(usize),
    #[error("transport stopping")]
    Stopping,
}

/// Runs until the peer is removed or the transport stops (the task is cancelled).
pub(super) async fn run_outbound(identity: OutboundIdentity, peer: Rc<Peer>) {
    let mut backoff = RECONNECT_BACKOFF_MIN;
    let mut failures: u64 = 0;
    while !peer.queue.is_closed() {
        match connect(&identity, &peer).await {
            Ok(stream) => {
                let connected_at = Instant::now();
                peer.connected.set(true);
                // While connections keep ending at once (a peer that refuses our certificate
                // after a TLS 1.3 handshake), log like failed connects: 1st, 2nd, 4th, ...
                let log = failures == 0 || (failures + 1).is_power_of_two();
                if log {
                    tracing::info!(
                        peer_id = format!("{:x}", peer.id),
                        address = %peer.address,
                        tls = stream.is_tls(),
                        "connected to peer"
                    );
                }
                let end = pump(&peer, stream).await;
                peer.connected.set(false);
                if matches!(end, ConnectionEnd::Stopping) {
                    return;
                }
                if log {
                    tracing::warn!(
                        peer_id = format!("{:x}", peer.id),
                        address = %peer.address,
                        reason = %end,
                        "lost connection to peer"
                    );
                }
                if connected_at.elapsed() >= CONNECTION_STABLE_AFTER {
                    backoff = RECONNECT_BACKOFF_MIN;
                    failures = 0;
                } else {
                    failures += 1;
                }
            }
            Err(error) => {
                failures += 1;
                // First failure and then every 2^n-th: a peer that is down does not flood the log.
                let log = failures.is_power_of_two();
                if log {
                    tracing::warn!(
                        peer_id = format!("{:x}", peer.id),
                        address = %peer.address,
                        %error,
                        failures,
                        "cannot connect to peer"
                    );
                }
            }
        }
        glommio::timer::sleep(backoff).await;
        backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
    }
}

async fn connect(identity: &OutboundIdentity, peer: &Peer) -> io::Result<PeerStream> {
    let tcp = TcpStream::connect_timeout(peer.address, CONNECT_TIMEOUT).await?;
    tcp.set_nodelay(true)?;
    tcp.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let mut stream = match &peer.tls_host {
        None => PeerStream::Plain(tcp),
        Some(host) => identity.tls.connect(tcp, host).await?,
    };
    let handshake = Handshake {
        cluster_id: identity.cluster_id,
        from_id: identity.local_id,
        to_id: peer.id,
    };
    stream.write_all(&handshake.encode()).await?;
    stream.flush().await?;
    Ok(stream)
}

enum Wake {
    Queued,
    Readable(io::Result<usize>),
}

/// Writes batches until the connection fails or the queue closes.
async fn pump(peer: &Peer, mut stream: PeerStream) -> ConnectionEnd {
    let mut batch: Vec<u8> = Vec::new();
    let mut probe = [0u8; CLOSE_PROBE_BYTES];
    loop {
        if peer.queue.is_empty() {
            let wake = futures_lite::future::or(
                async {
                    peer.queue.ready().await;
                    Wake::Queued
                },
                async { Wake::Readable(stream.read(&mut probe).await) },
            )
            .await;
            match wake {
                Wake::Queued => {}
                Wake::Readable(Ok(0)) => return ConnectionEnd::PeerClosed,
                Wake::Readable(Ok(count)) => return ConnectionEnd::UnexpectedBytes(count),
                Wake::Readable(Err(error)) => return ConnectionEnd::Io(error),
            }
        }
        if peer.queue.is_closed() {
            return ConnectionEnd::Stopping;
        }
        batch.clear();
        let mut messages: u64 = 0;
        for message in peer.queue.take_all() {
            append_frame(&mut batch, &message);
            messages += 1;
        }
        if let Err(error) = write_batch(&mut stream, &batch).await {
            crate::metrics::peer_send_failed(peer.id, messages);
            return ConnectionEnd::Io(error);
        }
        crate::metrics::peer_sent(peer.id, batch.len());
        if batch.capacity() > WRITE_BUFFER_RETAIN_BYTES {
            batch = Vec::new();
        }
    }
}

async fn write_batch(stream: &mut PeerStream, batch: &[u8]) -> io::Result<()> {
    stream.write_all(batch).await?;
    stream.flush().await
}
