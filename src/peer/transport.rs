//! [`PeerTransport`]: the address book, the per-peer queues and the tasks behind them.

use super::inbound::{accept_loop, bind_peer_listener, InboundConnection, RefusalLog};
use super::outbound::{run_outbound, OutboundIdentity};
use super::queue::{PeerQueue, Pushed, PEER_QUEUE_BYTES_MAX};
use super::tls::{url_host, PeerTls};
use super::wire::FRAME_BYTES_MAX;
use bytes::Bytes;
use glommio::task::JoinHandle;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;

// A queued message always fits one frame.
const _: () = assert!(PEER_QUEUE_BYTES_MAX <= FRAME_BYTES_MAX);

/// One member's address book entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAddress {
    pub id: u64,
    pub address: SocketAddr,
    /// For an `https://` peer url, the url's host: the name (or IP) the member's certificate
    /// is verified against. `None`: plain `http://`.
    pub tls_host: Option<String>,
}

impl PeerAddress {
    /// A plain-TCP (`http://`) peer.
    pub fn plain(id: u64, address: SocketAddr) -> PeerAddress {
        PeerAddress {
            id,
            address,
            tls_host: None,
        }
    }

    /// A peer at a parsed peer url: TLS when it is `https://`.
    pub fn from_url(id: u64, url: &crate::config::ClientUrl) -> PeerAddress {
        PeerAddress {
            id,
            address: url.address,
            tls_host: url.tls.then(|| url_host(&url.original).to_string()),
        }
    }
}

#[derive(Clone)]
pub struct TransportConfig {
    pub local_id: u64,
    pub cluster_id: u64,
    /// `--listen-peer-urls`; port 0 picks a free port (see [`PeerTransport::local_address`]).
    pub listen: SocketAddr,
    /// Every OTHER member.
    pub peers: Vec<PeerAddress>,
    /// TLS on the peer port and for https peer urls ([`PeerTls::plain`]: none).
    pub tls: PeerTls,
    /// Answers hash queries (the initial corruption check of restarting members); `None`:
    /// they are answered [`HashReply::Unavailable`](super::hash_wire::HashReply::Unavailable).
    pub hashes: Option<HashSource>,
}

impl std::fmt::Debug for TransportConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportConfig")
            .field("local_id", &self.local_id)
            .field("cluster_id", &self.cluster_id)
            .field("listen", &self.listen)
            .field("peers", &self.peers)
            .field("tls", &self.tls)
            .field("hashes", &self.hashes.is_some())
            .finish()
    }
}

/// Called for every message received, with the sender's member id.
pub type Deliver = Rc<dyn Fn(u64, Bytes)>;

/// etcd's HashKV at a revision (0 or less: the current one) of the member's current state.
/// Runs in the executor's blocking pool, never on the reactor, so it may take long; the
/// answer's `member_id` is filled in by the transport.
pub type HashSource =
    std::sync::Arc<dyn Fn(i64) -> super::hash_wire::HashAnswer + Send + Sync + 'static>;

/// One remote member as the sender side sees it.
pub(super) struct Peer {
    pub id: u64,
    pub address: SocketAddr,
    /// `Some(host)`: connect with TLS, verifying the certificate for `host`.
    pub tls_host: Option<String>,
    pub queue: PeerQueue,
    /// An outbound connection is established and handshaken.
    pub connected: Cell<bool>,
    task: RefCell<Option<JoinHandle<()>>>,
}

/// State shared by the transport handle and its tasks.
pub(super) struct Shared {
    pub local_id: u64,
    pub cluster_id: u64,
    pub deliver: Deliver,
    pub tls: PeerTls,
    pub hashes: Option<HashSource>,
    /// Hash queries being computed now (at most `inbound::HASH_QUERIES_AT_ONCE`).
    pub hash_queries_running: Cell<usize>,
    pub refusal_log: RefusalLog,
    peers: RefCell<HashMap<u64, Rc<Peer>>>,
    /// Live inbound connections by connection number.
    pub inbound: RefCell<HashMap<u64, InboundConnection>>,
    pub next_connection: Cell<u64>,
    accept_task: RefCell<Option<JoinHandle<()>>>,
    stopped: Cell<bool>,
    dropped: Cell<u64>,
}

impl Shared {
    fn add_peer(&self, peer: PeerAddress) {
        if self.stopped.get() {
            return;
        }
        if peer.id == self.local_id || peer.id == 0 {
            tracing::warn!(
                peer_id = format!("{:x}", peer.id),
                "not adding self or id 0 as a peer"
            );
            return;
        }
        if let Some(existing) = self.peers.borrow().get(&peer.id) {
            if existing.address == peer.address && existing.tls_host == peer.tls_host {
                return;
            }
        }
        self.remove_peer(peer.id);
        let state = Rc::new(Peer {
            id: peer.id,
            address: peer.address,
            tls_host: peer.tls_host,
            queue: PeerQueue::default(),
            connected: Cell::new(false),
            task: RefCell::new(None),
        });
        let identity = OutboundIdentity {
            local_id: self.local_id,
            cluster_id: self.cluster_id,
            tls: self.tls.clone(),
        };
        let task = glommio::spawn_local(run_outbound(identity, state.clone())).detach();
        *state.task.borrow_mut() = Some(task);
        self.peers.borrow_mut().insert(peer.id, state);
    }

    fn remove_peer(&self, id: u64) {
        let removed = self.peers.borrow_mut().remove(&id);
        if let Some(peer) = removed {
            peer.queue.close();
            peer.connected.set(false);
            if let Some(task) = peer.task.borrow_mut().take() {
                task.cancel();
            }
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.get()
    }

    fn count_dropped(&self, count: usize) {
        self.dropped
            .set(self.dropped.get().saturating_add(count as u64));
    }

    fn stop(&self) {
        if self.stopped.replace(true) {
            return;
        }
        if let Some(task) = self.accept_task.borrow_mut().take() {
            task.cancel();
        }
        let ids: Vec<u64> = self.peers.borrow().keys().copied().collect();
        for id in ids {
            self.remove_peer(id);
        }
        let connections: Vec<InboundConnection> =
            self.inbound.borrow_mut().drain().map(|(_, c)| c).collect();
        for connection in connections {
            connection.task.cancel();
        }
        tracing::info!(
            local_id = format!("{:x}", self.local_id),
            "peer transport stopped"
        );
    }
}

/// Owns the tasks: dropping the last [`PeerTransport`] clone stops the transport.
struct Handle {
    shared: Rc<Shared>,
    local_address: SocketAddr,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.stop();
    }
}

/// The raft peer transport of one member. Cheap to clone; lives on one executor (`!Send`).
#[derive(Clone)]
pub struct PeerTransport {
    handle: Rc<Handle>,
}

impl PeerTransport {
    /// Binds the peer port, starts the accept loop and one sender task per peer. `deliver` is
    /// called synchronously on this executor for every message received, with the sender's
    /// id; it must not block (hand the bytes to the raft loop through a bounded queue and drop
    /// on overflow — raft retransmits).
    pub fn start(config: TransportConfig, deliver: Deliver) -> std::io::Result<PeerTransport> {
        let listener = bind_peer_listener(config.listen)?;
        let local_address = listener.local_addr()?;
        let shared = Rc::new(Shared {
            local_id: config.local_id,
            cluster_id: config.cluster_id,
            deliver,
            tls: config.tls,
            hashes: config.hashes,
            hash_queries_running: Cell::new(0),
            refusal_log: RefusalLog::default(),
            peers: RefCell::new(HashMap::new()),
            inbound: RefCell::new(HashMap::new()),
            next_connection: Cell::new(0),
            accept_task: RefCell::new(None),
            stopped: Cell::new(false),
            dropped: Cell::new(0),
        });
        let accept = glommio::spawn_local(accept_loop(shared.clone(), listener)).detach();
        *shared.accept_task.borrow_mut() = Some(accept);
        for peer in config.peers {
            shared.add_peer(peer);
        }
        tracing::info!(
            local_id = format!("{:x}", config.local_id),
            cluster_id = format!("{:x}", config.cluster_id),
            address = %local_address,
            tls = shared.tls.serves_tls(),
            "peer transport listening"
        );
        Ok(PeerTransport {
            handle: Rc::new(Handle {
                shared,
                local_address,
            }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    /// Queues one message for `to`; never blocks. A full queue drops its OLDEST messages to
    /// make room; a message for an unknown peer, one larger than the whole queue, or one sent
    /// after [`stop`](Self::stop) is dropped. Every drop is counted
    /// ([`dropped_messages`](Self::dropped_messages)); raft retransmits.
    pub fn send(&self, to: u64, message: Bytes) {
        let shared = self.shared();
        let peer = shared.peers.borrow().get(&to).cloned();
        let Some(peer) = peer else {
            shared.count_dropped(1);
            tracing::debug!(
                to = format!("{to:x}"),
                "message for an unknown peer dropped"
            );
            return;
        };
        let dropped = match peer.queue.push(message) {
            Pushed::Queued { dropped_oldest } => dropped_oldest,
            Pushed::Refused => 1,
        };
        if dropped > 0 {
            shared.count_dropped(dropped);
            crate::metrics::peer_send_failed(to, dropped as u64);
            let total = peer.queue.dropped();
            // Log when the count passes 1, 2, 4, 8, ... so a dead peer cannot flood the log.
            let before = total.saturating_sub(dropped as u64);
            if before.leading_zeros() != total.leading_zeros() {
                tracing::warn!(
                    to = format!("{to:x}"),
                    dropped_total = total,
                    queued = peer.queue.len(),
                    queued_bytes = peer.queue.bytes(),
                    "peer queue full: dropping messages"
                );
            }
        }
    }

    /// Adds a member (or moves it to a new address: its queue starts over).
    pub fn add_peer(&self, peer: PeerAddress) {
        self.shared().add_peer(peer);
    }

    /// Forgets a member: its sender task stops, its queue is dropped.
    pub fn remove_peer(&self, id: u64) {
        self.shared().remove_peer(id);
    }

    /// Stops every task and closes every socket (on the executor's next turn). Idempotent;
    /// also happens when the last clone is dropped.
    pub fn stop(&self) {
        self.shared().stop();
    }

    /// Ids of peers with a live outbound connection right now, ascending.
    pub fn connected_peers(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .shared()
            .peers
            .borrow()
            .values()
            .filter(|peer| peer.connected.get())
            .map(|peer| peer.id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The address the peer port is bound to (the real port when configured with port 0).
    pub fn local_address(&self) -> SocketAddr {
        self.handle.local_address
    }

    /// Messages dropped by [`send`](Self::send) since start.
    pub fn dropped_messages(&self) -> u64 {
        self.shared().dropped.get()
    }

    /// Payload bytes waiting in `to`'s queue; `None` for an unknown peer.
    pub fn queued_bytes(&self, to: u64) -> Option<usize> {
        self.shared()
            .peers
            .borrow()
            .get(&to)
            .map(|peer| peer.queue.bytes())
    }

    /// Messages waiting in `to`'s queue (0 for an unknown peer).
    pub fn queued_messages(&self, to: u64) -> usize {
        self.shared()
            .peers
            .borrow()
            .get(&to)
            .map_or(0, |peer| peer.queue.len())
    }
}
