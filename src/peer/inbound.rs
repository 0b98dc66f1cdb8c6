//! The peer port: accepting connections, checking their handshake, delivering their frames.
//!
//! Whatever a connection sends, the worst outcome is that this one connection is closed (and
//! logged); the remote member reconnects. A newer connection from the same member replaces the
//! older one, so a peer that restarted (or whose host vanished without closing its sockets)
//! never leaves a stale reader behind.
//!
//! On a TLS peer port ([`super::tls`]) the TLS handshake and its certificate checks run in the
//! connection's own task, never in the accept loop; the 32-byte handshake and the frames then
//! travel inside TLS unchanged. The two one-shot queries (a joining member's cluster query, a
//! restarting member's hash query) arrive on the same port, after the same TLS checks, and are
//! answered and closed without touching the raft connections.
//!
//! Refusals are logged one line each, at most one per [`REFUSAL_LOG_INTERVAL`] (the line
//! counts those not logged), so a peer retrying with a bad certificate, or a scanner, cannot
//! flood the log.

use super::frame_reader::{FrameError, FrameReader};
use super::hash_wire::{decode_hash_query_body, HashAnswer, HashReply, HASH_QUERY_BODY_BYTES};
use super::stream::PeerStream;
use super::tls::PeerTlsError;
use super::transport::Shared;
use super::wire::{Handshake, HandshakeError, Purpose, HANDSHAKE_BYTES};
use crate::shard::listen::{bind_listener, PortSharing};
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::task::JoinHandle;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Pending connections the kernel queues on the peer port.
pub const PEER_LISTEN_BACKLOG: i32 = 128;
/// Inbound connections served at once; more are closed on accept. Each member opens one.
pub const INBOUND_CONNECTIONS_MAX: usize = 256;
/// How long a new connection has to send its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
pub const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// At most one refused connection is logged per this interval.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);
/// Hash queries computed at once; more are answered `Unavailable` (each hashes the whole
/// history in the blocking pool, and a restarting member asks each peer once).
pub const HASH_QUERIES_AT_ONCE: usize = 4;

/// One inbound connection being served.
pub(super) struct InboundConnection {
    /// The remote member, once its handshake passed.
    pub from_id: Option<u64>,
    pub task: JoinHandle<()>,
}

/// Binds the peer port with SO_REUSEADDR (a restarted member is not kept off its port by
/// TIME-WAIT leftovers) but NOT SO_REUSEPORT: a second process on the same peer port must fail
/// rather than silently share it.
pub(super) fn bind_peer_listener(address: SocketAddr) -> io::Result<TcpListener> {
    bind_listener(address, PortSharing::Exclusive, PEER_LISTEN_BACKLOG)
}

/// Accepts connections until the task is cancelled by `stop`.
pub(super) async fn accept_loop(shared: Rc<Shared>, listener: TcpListener) {
    loop {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, "peer accept failed");
                glommio::timer::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let remote = stream.peer_addr().ok();
        if shared.inbound.borrow().len() >= INBOUND_CONNECTIONS_MAX {
            tracing::warn!(
                ?remote,
                limit = INBOUND_CONNECTIONS_MAX,
                "too many peer connections; closing the new one"
            );
            continue;
        }
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(?remote, %error, "set_nodelay failed");
        }
        let number = shared.next_connection.get();
        shared.next_connection.set(number.wrapping_add(1));
        let task =
            glommio::spawn_local(serve_connection(shared.clone(), number, stream, remote)).detach();
        shared.inbound.borrow_mut().insert(
            number,
            InboundConnection {
                from_id: None,
                task,
            },
        );
    }
}

/// Why an inbound connection was closed.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Tls(#[from] PeerTlsError),
    #[error("no handshake within {HANDSHAKE_TIMEOUT:?}")]
    HandshakeTimeout,
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    #[error("cluster ID mismatch")]
    ClusterMismatch,
    #[error("handshake is for member {0:x}, not this one")]
    WrongTarget(u64),
    #[error("handshake claims to come from member {0:x}")]
    BadSender(u64),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("replaced by a newer connection from the same member")]
    Replaced,
}

async fn serve_connection(
    shared: Rc<Shared>,
    number: u64,
    stream: TcpStream,
    remote: Option<SocketAddr>,
) {
    let result = match shared.tls.accept(stream, remote).await {
        Ok(mut stream) => serve_frames(&shared, number, &mut stream, remote).await,
        Err(error) => Err(error.into()),
    };
    let from_id = shared
        .inbound
        .borrow_mut()
        .remove(&number)
        .and_then(|connection| connection.from_id);
    let from = from_id.map(|id| format!("{id:x}"));
    match result {
        Ok(()) => tracing::debug!(?remote, ?from, "peer closed its connection"),
        // Logged where it was found, with both ids.
        Err(Refusal::ClusterMismatch) => {}
        Err(Refusal::Replaced) => {}
        Err(error) if is_clean_tls_end(&error) => {
            tracing::debug!(?remote, ?from, "peer closed its connection")
        }
        Err(error) => {
            if let Some(not_logged) = shared.refusal_log.allow() {
                tracing::warn!(?remote, ?from, %error, not_logged, "closing peer connection")
            }
        }
    }
}

/// A TLS peer that goes away without `close_notify` between frames (it was stopped or
/// killed) ended its connection, it did not break the protocol.
fn is_clean_tls_end(error: &Refusal) -> bool {
    matches!(error, Refusal::Frame(FrameError::Io(error)) if error.kind() == io::ErrorKind::UnexpectedEof)
}

/// Rate limit of the "closing peer connection" lines.
#[derive(Default)]
pub(super) struct RefusalLog {
    logged_at: std::cell::Cell<Option<Instant>>,
    not_logged: std::cell::Cell<u64>,
}

impl RefusalLog {
    /// `Some(refusals not logged since the last line)` when this one may be logged.
    fn allow(&self) -> Option<u64> {
        let due = self
            .logged_at
            .get()
            .is_none_or(|at| at.elapsed() >= REFUSAL_LOG_INTERVAL);
        if due {
            self.logged_at.set(Some(Instant::now()));
            Some(self.not_logged.replace(0))
        } else {
            self.not_logged.set(self.not_logged.get().saturating_add(1));
            None
        }
    }
}

/// A joining member asks which cluster this member is in: answer with our handshake, close.
async fn answer_cluster_query(
    shared: &Shared,
    stream: &mut PeerStream,
    remote: Option<SocketAddr>,
    query: Handshake,
) -> Result<(), Refusal> {
    if query.to_id != shared.local_id {
        return Err(Refusal::WrongTarget(query.to_id));
    }
    tracing::info!(
        ?remote,
        from = format!("{:x}", query.from_id),
        "answering a joining member's cluster query"
    );
    let answer = Handshake {
        cluster_id: shared.cluster_id,
        from_id: shared.local_id,
        to_id: query.from_id,
    };
    stream.write_all(&answer.encode()).await?;
    stream.flush().await?;
    Ok(())
}

/// A restarting member's initial corruption check asks for our HashKV at a revision: answer
/// with the owner shard's current read view, hashed in the blocking pool, and close. Only
/// members of our cluster get a hash; another cluster is told so (etcd's 412), and logged.
async fn answer_hash_query(
    shared: &Shared,
    stream: &mut PeerStream,
    remote: Option<SocketAddr>,
    query: Handshake,
) -> Result<(), Refusal> {
    let mut body = [0u8; HASH_QUERY_BODY_BYTES];
    read_exact_in_time(stream, &mut body).await?;
    let revision = decode_hash_query_body(body);
    if query.to_id != shared.local_id {
        return Err(Refusal::WrongTarget(query.to_id));
    }
    if query.from_id == shared.local_id || query.from_id == 0 {
        return Err(Refusal::BadSender(query.from_id));
    }
    let from = format!("{:x}", query.from_id);
    let mut answer = if query.cluster_id != shared.cluster_id {
        tracing::error!(
            ?remote,
            from,
            "cluster ID mismatch: hash query for cluster {:x}, this member is in cluster {:x}",
            query.cluster_id,
            shared.cluster_id
        );
        unavailable(HashReply::ClusterMismatch)
    } else {
        tracing::info!(?remote, from, revision, "answering a member's hash query");
        hash_now(shared, revision).await
    };
    answer.member_id = shared.local_id;
    stream.write_all(&answer.encode()).await?;
    stream.flush().await?;
    Ok(())
}

/// An answer without a hash.
fn unavailable(reply: HashReply) -> HashAnswer {
    HashAnswer {
        member_id: 0,
        current_revision: 0,
        reply,
    }
}

/// The hash source's answer, computed in the blocking pool, at most
/// [`HASH_QUERIES_AT_ONCE`] at a time.
async fn hash_now(shared: &Shared, revision: i64) -> HashAnswer {
    let Some(source) = shared.hashes.clone() else {
        return unavailable(HashReply::Unavailable);
    };
    let running = shared.hash_queries_running.get();
    if running >= HASH_QUERIES_AT_ONCE {
        tracing::warn!(
            limit = HASH_QUERIES_AT_ONCE,
            "too many hash queries at once; answering unavailable"
        );
        return unavailable(HashReply::Unavailable);
    }
    shared.hash_queries_running.set(running + 1);
    let _running = RunningHash(&shared.hash_queries_running);
    glommio::executor()
        .spawn_blocking(move || source(revision))
        .await
}

/// Counts one hash query as running until dropped (also when its task is cancelled).
struct RunningHash<'a>(&'a std::cell::Cell<usize>);

impl Drop for RunningHash<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// Fills `bytes` within [`HANDSHAKE_TIMEOUT`].
async fn read_exact_in_time(stream: &mut PeerStream, bytes: &mut [u8]) -> Result<(), Refusal> {
    let read = futures_lite::future::or(async { Some(stream.read_exact(bytes).await) }, async {
        glommio::timer::sleep(HANDSHAKE_TIMEOUT).await;
        None
    })
    .await;
    match read {
        Some(Ok(())) => Ok(()),
        Some(Err(error)) => Err(error.into()),
        None => Err(Refusal::HandshakeTimeout),
    }
}

async fn read_handshake(stream: &mut PeerStream) -> Result<(Handshake, Purpose), Refusal> {
    let mut bytes = [0u8; HANDSHAKE_BYTES];
    read_exact_in_time(stream, &mut bytes).await?;
    Ok(Handshake::decode_any(&bytes)?)
}

/// Checks the handshake, then delivers frames until the connection ends.
async fn serve_frames(
    shared: &Shared,
    number: u64,
    stream: &mut PeerStream,
    remote: Option<SocketAddr>,
) -> Result<(), Refusal> {
    let (handshake, purpose) = read_handshake(stream).await?;
    match purpose {
        Purpose::Raft => {}
        Purpose::ClusterQuery => {
            return answer_cluster_query(shared, stream, remote, handshake).await
        }
        Purpose::HashQuery => return answer_hash_query(shared, stream, remote, handshake).await,
    }
    if handshake.cluster_id != shared.cluster_id {
        tracing::error!(
            ?remote,
            from = format!("{:x}", handshake.from_id),
            "cluster ID mismatch: peer says cluster {:x}, this member is in cluster {:x}; \
             refusing the connection",
            handshake.cluster_id,
            shared.cluster_id
        );
        return Err(Refusal::ClusterMismatch);
    }
    if handshake.to_id != shared.local_id {
        return Err(Refusal::WrongTarget(handshake.to_id));
    }
    if handshake.from_id == shared.local_id || handshake.from_id == 0 {
        return Err(Refusal::BadSender(handshake.from_id));
    }
    let from_id = handshake.from_id;
    replace_older_connections(shared, number, from_id);
    tracing::info!(
        ?remote,
        from = format!("{from_id:x}"),
        tls = stream.is_tls(),
        "accepted peer connection"
    );
    let mut reader = FrameReader::default();
    while let Some(frame) = reader.next(stream).await? {
        // `deliver` may have stopped the transport; buffered frames are not delivered after.
        if shared.is_stopped() {
            break;
        }
        crate::metrics::peer_received(from_id, frame.len());
        (shared.deliver)(from_id, frame);
    }
    Ok(())
}

/// Marks connection `number` as `from_id`'s and closes any older one from the same member.
fn replace_older_connections(shared: &Shared, number: u64, from_id: u64) {
    let mut inbound = shared.inbound.borrow_mut();
    if let Some(connection) = inbound.get_mut(&number) {
        connection.from_id = Some(from_id);
    }
    let older: Vec<u64> = inbound
        .iter()
        .filter(|(other, connection)| **other != number && connection.from_id == Some(from_id))
        .map(|(other, _)| *other)
        .collect();
    for other in older {
        if let Some(connection) = inbound.remove(&other) {
            tracing::info!(
                from = format!("{from_id:x}"),
                reason = %Refusal::Replaced,
                "closing older peer connection"
            );
            connection.task.cancel();
        }
    }
}
