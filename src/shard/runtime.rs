//! Starting the shards.
//!
//! All cross-shard channels are created here, before any executor starts, and are bounded:
//! shard i → owner (proposals, read-index requests) and owner → shard i (answers). The owner
//! shard talks to its own raft loop through local channels. Start-up order:
//! 0. the client sockets are bound, one per shard (SO_REUSEPORT), before anything is read from
//!    disk: from here on the kernel queues clients' connections instead of refusing them; the
//!    page store is loaded, and with `--feature-gates=InitialCorruptCheck=true` the member
//!    compares its HashKV with the other members' and stops on a mismatch, before its peer
//!    port is bound (`server::corrupt_check`);
//! 1. every shard starts and connects its channel ends (concurrently: `connect` waits for the
//!    peer end);
//! 2. the owner shard opens the WAL, replays it, and runs the raft group until it leads or
//!    follows a leader with everything applied up to an entry of the leader's term;
//! 3. every shard builds its context, catches up with the leader (one read index) and starts
//!    accepting on its socket; the last one logs `ready to serve client requests`.
//!
//! Like etcd, which accepts on its client listener only once ready: a connection made during
//! start-up waits in the kernel's queue and is served as soon as the member is, so a client
//! does not fall into its reconnect backoff, and no call ever sees a state the member has not
//! caught up to. A gRPC client with several endpoints does not count a member as ready before
//! its HTTP/2 handshake (grpc-go waits for the server's preface), so it keeps sending calls to
//! members that serve while one restarts.

use super::context::ShardContext;
use super::listen::{
    bind_client_socket, client_listener_urls, listener_on_this_shard, wait_until_port_is_free,
};
use super::message::{ToOwner, ToShard};
use super::owner_link::{OwnerLink, OwnerSender};
use super::{ShardId, Shutdown, OWNER_SHARD};
use crate::config::ServerConfig;
use crate::durable::{DurableHandle, LoadedState};
use crate::grpc::connection::{serve_listener, ClientListener};
use crate::membership::change::ChangeRules;
use crate::membership::MemberList;
use crate::mvcc::KvStore;
use crate::peer::{Deliver, PeerAddress, PeerTransport, TransportConfig};
use crate::raft::group::{RaftGroupParts, RaftMessageSink};
use crate::raft::log_store::LogStore;
use crate::raft::{RaftGroup, RaftStatus};
use crate::watch::{HubConfig, WatchHub};
use arc_swap::ArcSwap;
use capstan_proto::capstanpb::MemberPublish;
use glommio::channels::local_channel;
use glommio::channels::shared_channel::{self, ConnectedReceiver, SharedReceiver, SharedSender};
use glommio::{LocalExecutorBuilder, Placement};
use raft::Storage;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Depth of each shard → owner channel.
pub const TO_OWNER_QUEUE_DEPTH: usize = 4_096;
/// Depth of each owner → shard channel.
pub const TO_SHARD_QUEUE_DEPTH: usize = 4_096;
/// Depth of the owner's merged inbox.
pub const OWNER_INBOX_DEPTH: usize = 16_384;
/// io_uring registered-buffer memory per shard; small enough for a default `ulimit -l`.
pub const IO_MEMORY_BYTES_PER_SHARD: usize = 1024 * 1024;
/// How often a shard looks whether the raft group is ready during start-up.
const STARTUP_POLL_INTERVAL: Duration = Duration::from_millis(5);
/// Pause before a shard asks again for the read index it catches up to before serving.
const STARTUP_READ_INDEX_RETRY: Duration = Duration::from_millis(100);
/// Time given to connections to send GOAWAY and finish after shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(300);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Startup(String),
    #[error("cannot start shard {shard}: {reason}")]
    Executor { shard: ShardId, reason: String },
    #[error("listen on {address}: {reason}")]
    Listen { address: String, reason: String },
    #[error(transparent)]
    Raft(#[from] crate::raft::RaftGroupError),
    #[error(transparent)]
    Log(#[from] crate::raft::log_store::LogStoreError),
    #[error("cannot open the page store: {0}")]
    Store(String),
}

/// The message sink of a member alone in its cluster and started without `--listen-peer-urls`:
/// raft has nobody to talk to, and the member refuses to add anyone (see
/// [`start_peer_transport`]).
struct NoPeers;

impl RaftMessageSink for NoPeers {
    fn send(&self, to: u64, _message: bytes::Bytes) {
        tracing::warn!(
            to = format!("{to:x}"),
            "raft message for an unknown member dropped"
        );
    }

    fn add_peer(&self, id: u64, url: &crate::config::ClientUrl) {
        tracing::error!(
            member = format!("{id:x}"),
            url = %url.original,
            "this member was started alone without --listen-peer-urls, so it has no peer \
             transport; restart it with --listen-peer-urls to reach the new member"
        );
    }

    fn remove_peer(&self, _id: u64) {}

    fn queued_bytes(&self, _to: u64) -> Option<usize> {
        None
    }

    fn reaches_peers(&self) -> bool {
        false
    }
}

impl RaftMessageSink for PeerTransport {
    fn send(&self, to: u64, message: bytes::Bytes) {
        PeerTransport::send(self, to, message);
    }

    fn add_peer(&self, id: u64, url: &crate::config::ClientUrl) {
        PeerTransport::add_peer(self, PeerAddress::from_url(id, url));
    }

    fn remove_peer(&self, id: u64) {
        PeerTransport::remove_peer(self, id);
    }

    fn queued_bytes(&self, to: u64) -> Option<usize> {
        PeerTransport::queued_bytes(self, to)
    }

    fn connected_peers(&self) -> Vec<u64> {
        PeerTransport::connected_peers(self)
    }
}

/// Whether raft's replayed configuration names a member other than `local_id` (the cluster
/// grew after it was bootstrapped from `--initial-cluster`).
fn configuration_names_others(log: &LogStore, local_id: u64) -> bool {
    let Ok(state) = log.storage().initial_state() else {
        return false;
    };
    let conf = &state.conf_state;
    conf.voters
        .iter()
        .chain(&conf.learners)
        .chain(&conf.voters_outgoing)
        .chain(&conf.learners_next)
        .any(|id| *id != local_id)
}

/// Starts the peer transport, listening on `--listen-peer-urls`, when there are or may be
/// other members: `--initial-cluster` names others, the replayed log does, or
/// `--listen-peer-urls` was given (a lone member that may grow with `member add`, as etcd's
/// always may). Only a lone member left on etcd's default peer url runs without one, so that
/// several single-member servers on one machine do not contend for port 2380. Received raft
/// messages go to the owner's inbox (dropped when it is full: raft retransmits).
fn start_peer_transport(
    config: &ServerConfig,
    log: &LogStore,
    inbox: Rc<local_channel::LocalSender<ToOwner>>,
    read_view: &Arc<ArcSwap<KvStore>>,
) -> Result<Box<dyn RaftMessageSink>, RunError> {
    let local_id = config.member_id();
    let peers = initial_peers(config)?;
    if peers.is_empty()
        && !config.listen_peer_url_given
        && !configuration_names_others(log, local_id)
    {
        super::startup_log::now_serving(config, false);
        return Ok(Box::new(NoPeers));
    }
    let deliver: Deliver = Rc::new(move |from: u64, data: bytes::Bytes| {
        if inbox.try_send(ToOwner::Peer { from, data }).is_err() {
            tracing::debug!("owner inbox full: raft message dropped");
        }
    });
    let listen = config.listen_peer_url.address;
    let transport = PeerTransport::start(
        TransportConfig {
            local_id,
            cluster_id: config.cluster_id(),
            listen,
            peers,
            tls: peer_tls(config)?,
            hashes: Some(crate::server::corrupt_check::hash_source(read_view.clone())),
        },
        deliver,
    )
    .map_err(|error| RunError::Listen {
        address: config.listen_peer_url.original.clone(),
        reason: error.to_string(),
    })?;
    super::startup_log::now_serving(config, true);
    Ok(Box::new(transport))
}

/// The other members of `--initial-cluster`, over TLS where their peer url is `https://`.
fn initial_peers(config: &ServerConfig) -> Result<Vec<PeerAddress>, RunError> {
    let local_id = config.member_id();
    let mut peers = Vec::new();
    for (id, name, url) in config.initial_members() {
        if id == local_id {
            continue;
        }
        let url = crate::config::ClientUrl::parse(&url)
            .map_err(|reason| RunError::Startup(format!("peer {name}: {reason}")))?;
        peers.push(PeerAddress::from_url(id, &url));
    }
    Ok(peers)
}

/// The peer TLS settings (`--peer-*`, an https `--listen-peer-urls`) made ready to use.
fn peer_tls(config: &ServerConfig) -> Result<crate::peer::PeerTls, RunError> {
    let listen = &config.listen_peer_url;
    let hosts = vec![crate::peer::tls::url_host(&listen.original).to_string()];
    crate::peer::PeerTls::from_settings(&config.security, listen.tls, &config.data_dir, &hosts)
        .map_err(RunError::Startup)
}

/// How long a joining member keeps asking the cluster for its id.
const CLUSTER_QUERY_PATIENCE: Duration = Duration::from_secs(30);

/// The cluster id of the cluster this member joins: the one it learned before (kept in the data
/// directory), or asked now from the members of `--initial-cluster` and kept.
fn joined_cluster_id(config: &ServerConfig) -> Result<u64, RunError> {
    let path = config.cluster_id_path();
    if let Ok(text) = std::fs::read_to_string(&path) {
        return u64::from_str_radix(text.trim(), 16).map_err(|error| {
            RunError::Startup(format!("{}: not a cluster id: {error}", path.display()))
        });
    }
    let local_id = config.member_id();
    let peers = initial_peers(config)?;
    let tls = peer_tls(config)?.client_config();
    let cluster_id = crate::peer::cluster_query::discover(
        local_id,
        &peers,
        tls.as_ref(),
        CLUSTER_QUERY_PATIENCE,
    )
    .map_err(RunError::Startup)?;
    tracing::info!(
        cluster_id = format!("{cluster_id:x}"),
        "joining an existing cluster"
    );
    write_durably(&path, format!("{cluster_id:x}\n").as_bytes())
        .map_err(|error| RunError::Startup(format!("{}: {error}", path.display())))?;
    Ok(cluster_id)
}

/// etcd's initial corruption check (`--feature-gates=InitialCorruptCheck=true`) on the state
/// the page store holds, before anything is served or replayed: see `server::corrupt_check`.
/// A member without state yet has nothing to compare (etcd checks only initialized members).
fn initial_corrupt_check(
    config: &ServerConfig,
    loaded: Option<&LoadedState>,
) -> Result<(), RunError> {
    use crate::server::corrupt_check::{initial_check, peers_to_ask, PeerToAsk};
    if !config.initial_corrupt_check {
        return Ok(());
    }
    let Some(loaded) = loaded else {
        tracing::info!("initial corruption check skipped: this member has no data yet");
        return Ok(());
    };
    let local_id = config.member_id();
    let mut peers = peers_to_ask(&loaded.members, local_id);
    if loaded.members.members().is_empty() {
        peers = initial_peers(config)?
            .into_iter()
            .map(|address| PeerToAsk {
                id: address.id,
                addresses: vec![address],
            })
            .collect();
    }
    let asker = crate::peer::hash_query::Asker {
        local_id,
        cluster_id: config.cluster_id(),
    };
    let tls = peer_tls(config)?.client_config();
    initial_check(asker, &loaded.kv, &peers, tls.as_ref())
        .map(drop)
        .map_err(RunError::Startup)
}

/// Writes a small file so that it is either absent or complete after a crash.
fn write_durably(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("no parent directory"))?;
    std::fs::create_dir_all(dir)?;
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// What every shard shares (all `Send + Sync`).
#[derive(Clone)]
struct Shared {
    config: Arc<ServerConfig>,
    read_view: Arc<ArcSwap<KvStore>>,
    raft_status: Arc<RaftStatus>,
    members: Arc<ArcSwap<MemberList>>,
    shutdown: Shutdown,
    shards_serving: Arc<AtomicUsize>,
    shard_count: usize,
    incarnation: u64,
    /// The page store's writer (Status sizes, Defragment, checkpoints).
    durable: DurableHandle,
    /// What the page store held at start-up, taken by the raft group.
    loaded: Arc<std::sync::Mutex<Option<LoadedState>>>,
    /// The TLS configuration of the `https://` client listeners (see `shard::client_tls`).
    client_tls: Option<Arc<rustls::ServerConfig>>,
}

/// Opens (or creates) the page store, reads the state it holds and starts its writer thread.
/// A damaged store refuses the start, naming the file and byte offset.
fn open_page_store(
    config: &ServerConfig,
) -> Result<
    (
        DurableHandle,
        Option<LoadedState>,
        std::thread::JoinHandle<()>,
    ),
    RunError,
> {
    let path = config.store_path();
    let fail = |detail: String| RunError::Store(format!("{}: {detail}", path.display()));
    if let Some(member_dir) = path.parent() {
        std::fs::create_dir_all(member_dir).map_err(|error| fail(error.to_string()))?;
    }
    let started = std::time::Instant::now();
    let store = crate::store::Store::open(&path, crate::store::StoreOptions::default())
        .map_err(|error| RunError::Store(error.to_string()))?;
    // etcd's line for opening its bolt database; here the page store.
    tracing::info!(
        path = %path.display(),
        took = crate::logging::go_duration(started.elapsed()),
        "opened backend db"
    );
    if let Some(ignored) = &store.open_report().ignored_meta {
        tracing::warn!(
            ignored,
            "page store: one meta slot did not verify (a torn commit?)"
        );
    }
    let loaded = crate::durable::load(&store.read()).map_err(|error| fail(error.to_string()))?;
    if let Some(loaded) = &loaded {
        tracing::info!(
            applied_index = loaded.applied_index,
            revision = loaded.kv.current_revision(),
            keys = loaded.kv.key_count(),
            owed_deletes = loaded.owed_deletes.len(),
            load_ms = started.elapsed().as_millis() as u64,
            "page store loaded"
        );
    }
    let owed = loaded
        .as_ref()
        .map(|loaded| loaded.owed_deletes.clone())
        .unwrap_or_default();
    let (handle, thread) =
        crate::durable::spawn_writer(store, owed).map_err(|error| fail(error.to_string()))?;
    Ok((handle, loaded, thread))
}

/// The CPUs this process may run on (its affinity mask).
fn usable_cpus() -> Vec<usize> {
    // SAFETY: `cpu_set_t` is plain data; zeroed is a valid empty set, and sched_getaffinity
    // writes at most `size_of::<cpu_set_t>()` bytes into it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is this thread; the pointer and size describe `set` exactly.
    let result =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    let mut cpus = Vec::new();
    if result == 0 {
        for cpu in 0..libc::CPU_SETSIZE as usize {
            // SAFETY: `cpu` is below CPU_SETSIZE, the bound of `set`.
            if unsafe { libc::CPU_ISSET(cpu, &set) } {
                cpus.push(cpu);
            }
        }
    }
    if cpus.is_empty() {
        let count = std::thread::available_parallelism().map_or(1, usize::from);
        cpus = (0..count).collect();
    }
    cpus
}

fn install_signal_handler(shutdown: Shutdown) -> Result<(), RunError> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|error| RunError::Startup(format!("cannot install signal handlers: {error}")))?;
    std::thread::Builder::new()
        .name("signals".to_string())
        .spawn(move || {
            for signal in signals.forever() {
                if shutdown.is_triggered() {
                    tracing::warn!(signal, "second signal: exiting immediately");
                    std::process::exit(130);
                }
                // etcd's line (osutil.HandleInterrupts), with Go's name for the signal.
                let name = if signal == SIGINT {
                    "interrupt"
                } else {
                    "terminated"
                };
                tracing::info!(signal = name, "received signal; shutting down");
                shutdown.trigger();
            }
        })
        .map_err(|error| RunError::Startup(format!("cannot start signal thread: {error}")))?;
    Ok(())
}

/// Refuses to start when another process already serves a client port.
fn check_ports_free(config: &ServerConfig) -> Result<(), RunError> {
    for (url, _) in client_listener_urls(config) {
        wait_until_port_is_free(url.address).map_err(|reason| RunError::Listen {
            address: url.original.clone(),
            reason,
        })?;
    }
    Ok(())
}

/// One shard's listening sockets, one per client listener (`shard::listen::client_listener_urls`).
type ClientSockets = Vec<socket2::Socket>;

/// Binds every shard's client sockets, on this thread, before the page store and the WAL are
/// read: from here on the kernel queues clients' connections until the shard accepts (see
/// `shard::listen`).
fn bind_client_sockets(
    config: &ServerConfig,
    shard_count: usize,
) -> Result<Vec<ClientSockets>, RunError> {
    let mut per_shard: Vec<ClientSockets> = (0..shard_count).map(|_| Vec::new()).collect();
    for (url, traffic) in client_listener_urls(config) {
        for sockets in &mut per_shard {
            let socket = bind_client_socket(url.address).map_err(|error| RunError::Listen {
                address: url.original.clone(),
                reason: error.to_string(),
            })?;
            sockets.push(socket);
        }
        tracing::info!(
            address = %url.address,
            shards = shard_count,
            ?traffic,
            "listening for client connections; they are served once the member is"
        );
    }
    Ok(per_shard)
}

/// A number no earlier run of this data directory used: the start time in nanoseconds, mixed
/// with the pid.
fn process_incarnation() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 48)
}

fn initial_member_list(config: &ServerConfig) -> MemberList {
    MemberList::from_initial_cluster(config.initial_cluster.iter().map(|(name, urls)| {
        (
            crate::config::member_id_of(urls, &config.initial_cluster_token),
            name.clone(),
            urls.clone(),
        )
    }))
}

/// Runs the server until SIGINT/SIGTERM or a fatal error.
pub fn run(mut config: ServerConfig) -> Result<(), RunError> {
    let client_tls = super::client_tls::client_tls_config(&config).map_err(RunError::Startup)?;
    check_ports_free(&config)?;
    let cpus = usable_cpus();
    let shard_count = if config.shards == 0 {
        cpus.len()
    } else {
        config.shards
    };
    super::startup_log::starting(&config, shard_count, &cpus);
    let mut client_sockets = bind_client_sockets(&config, shard_count)?.into_iter();
    let metrics_sockets = crate::http::bind_metrics_sockets(&config).map_err(RunError::Startup)?;
    if config.join_existing {
        config.cluster_id_override = Some(joined_cluster_id(&config)?);
    }
    let shutdown = Shutdown::default();
    install_signal_handler(shutdown.clone())?;
    let incarnation = process_incarnation();
    let members = initial_member_list(&config);
    let (durable, loaded, pages_thread) = open_page_store(&config)?;
    if let Err(error) = initial_corrupt_check(&config, loaded.as_ref()) {
        durable.send(crate::durable::Command::Finish);
        let _ = pages_thread.join();
        return Err(error);
    }
    let shared = Shared {
        config: Arc::new(config),
        // The loaded state from the start, so the peer port's hash queries are answered from
        // it before the raft group publishes its first view.
        read_view: Arc::new(ArcSwap::from_pointee(
            loaded
                .as_ref()
                .map_or_else(KvStore::new, |loaded| loaded.kv.clone()),
        )),
        raft_status: Arc::new(RaftStatus::default()),
        members: Arc::new(ArcSwap::from_pointee(members)),
        shutdown,
        shards_serving: Arc::new(AtomicUsize::new(0)),
        shard_count,
        incarnation,
        durable,
        loaded: Arc::new(std::sync::Mutex::new(loaded)),
        client_tls,
    };
    let mut owner_inboxes: Vec<SharedReceiver<ToOwner>> = Vec::new();
    let mut owner_outboxes: Vec<SharedSender<ToShard>> = Vec::new();
    let mut shard_ends = Vec::new();
    for _ in 1..shard_count {
        let (to_owner, owner_inbox) = shared_channel::new_bounded(TO_OWNER_QUEUE_DEPTH);
        let (owner_outbox, from_owner) = shared_channel::new_bounded(TO_SHARD_QUEUE_DEPTH);
        owner_inboxes.push(owner_inbox);
        owner_outboxes.push(owner_outbox);
        shard_ends.push((to_owner, from_owner));
    }
    tracing::info!(
        shards = shard_count,
        cpus = ?cpus,
        member_id = format!("{:x}", shared.config.member_id()),
        cluster_id = format!("{:x}", shared.config.cluster_id()),
        "starting shards"
    );
    let mut handles = Vec::new();
    let builder = |shard: ShardId| {
        LocalExecutorBuilder::new(Placement::Fixed(cpus[shard % cpus.len()]))
            .name(&format!("shard-{shard}"))
            .io_memory(IO_MEMORY_BYTES_PER_SHARD)
    };
    let owner_shared = shared.clone();
    let owner_sockets = client_sockets.next().unwrap_or_default();
    handles.push(
        builder(OWNER_SHARD)
            .spawn(move || {
                owner_shard(
                    owner_shared,
                    owner_inboxes,
                    owner_outboxes,
                    owner_sockets,
                    metrics_sockets,
                )
            })
            .map_err(|error| RunError::Executor {
                shard: OWNER_SHARD,
                reason: error.to_string(),
            })?,
    );
    for (index, (to_owner, from_owner)) in shard_ends.into_iter().enumerate() {
        let shard = index + 1;
        let shard_shared = shared.clone();
        let sockets = client_sockets.next().unwrap_or_default();
        let handle = builder(shard)
            .spawn(move || remote_shard(shard, shard_shared, to_owner, from_owner, sockets))
            .map_err(|error| RunError::Executor {
                shard,
                reason: error.to_string(),
            });
        match handle {
            Ok(handle) => handles.push(handle),
            Err(error) => {
                shared.shutdown.trigger();
                return Err(error);
            }
        }
    }
    let mut first_error = None;
    for handle in handles {
        let outcome = handle.join().map_err(|error| RunError::Executor {
            shard: OWNER_SHARD,
            reason: error.to_string(),
        });
        if let Err(error) | Ok(Err(error)) = outcome {
            first_error.get_or_insert(error);
        }
    }
    // Every shard has stopped: the writer commits what is queued and ends.
    shared.durable.send(crate::durable::Command::Finish);
    drop(shared);
    if pages_thread.join().is_err() {
        tracing::error!("page store writer panicked");
    }
    tracing::info!("closed etcd server");
    first_error.map_or(Ok(()), Err)
}

async fn owner_shard(
    shared: Shared,
    inboxes: Vec<SharedReceiver<ToOwner>>,
    outboxes: Vec<SharedSender<ToShard>>,
    client_sockets: ClientSockets,
    metrics_sockets: crate::http::MetricsSockets,
) -> Result<(), RunError> {
    let (inbox_sender, inbox) = local_channel::new_bounded(OWNER_INBOX_DEPTH);
    let inbox_sender = Rc::new(inbox_sender);
    let (connected_inboxes, connected_outboxes) = futures::join!(
        futures::future::join_all(inboxes.into_iter().map(SharedReceiver::connect)),
        futures::future::join_all(outboxes.into_iter().map(SharedSender::connect)),
    );
    for remote_inbox in connected_inboxes {
        let forward = inbox_sender.clone();
        glommio::spawn_local(async move {
            while let Some(message) = remote_inbox.recv().await {
                if forward.send(message).await.is_err() {
                    break;
                }
            }
        })
        .detach();
    }
    let (own_reply_sender, own_replies) = local_channel::new_unbounded();
    let mut replies = vec![own_reply_sender];
    for remote_outbox in connected_outboxes {
        let (reply_sender, reply_queue) = local_channel::new_unbounded::<ToShard>();
        replies.push(reply_sender);
        glommio::spawn_local(async move {
            while let Some(answer) = reply_queue.recv().await {
                if remote_outbox.send(answer).await.is_err() {
                    break;
                }
            }
        })
        .detach();
    }
    let config = shared.config.clone();
    // A joining member does not bootstrap: its log and configuration come from the leader.
    let member_ids: Vec<u64> = if config.join_existing {
        Vec::new()
    } else {
        config
            .initial_members()
            .iter()
            .map(|(id, _, _)| *id)
            .collect()
    };
    let opened = LogStore::open(
        config.wal_dir(),
        config.snap_dir(),
        config.wal_segment_bytes,
        &member_ids,
    )
    .await;
    let (log, summary) = match opened {
        Ok(opened) => opened,
        Err(error) => {
            shared.raft_status.set_failed();
            shared.shutdown.trigger();
            return Err(error.into());
        }
    };
    if let Some(offset) = summary.torn_tail_offset {
        tracing::warn!(offset, "wal had a torn tail; it was truncated");
    }
    tracing::info!(
        records = summary.records,
        last_index = summary.last_index,
        commit_index = summary.commit_index,
        bootstrapped = summary.bootstrapped,
        "wal replayed"
    );
    let restarting = !summary.bootstrapped && summary.records > 0;
    super::startup_log::local_member(&config, restarting, summary.commit_index);
    let peers = match start_peer_transport(&config, &log, inbox_sender.clone(), &shared.read_view) {
        Ok(peers) => peers,
        Err(error) => {
            shared.raft_status.set_failed();
            shared.shutdown.trigger();
            return Err(error);
        }
    };
    let group = RaftGroup::new(RaftGroupParts {
        member_id: config.member_id(),
        election_ticks: config.election_ticks(),
        tick_interval: Duration::from_millis(config.heartbeat_interval_ms),
        election_timeout: Duration::from_millis(config.election_timeout_ms),
        members: shared.members.clone(),
        own_publication: MemberPublish {
            member_id: config.member_id(),
            name: config.name.clone(),
            client_urls: config.advertise_client_urls.clone(),
        },
        incarnation: shared.incarnation,
        log,
        read_view: shared.read_view.clone(),
        status: shared.raft_status.clone(),
        replies,
        inbox,
        peers,
        change_rules: ChangeRules {
            cluster_token: config.initial_cluster_token.clone(),
            max_learners: config.max_learners,
            strict_reconfig_check: config.strict_reconfig_check,
        },
        snapshot_count: config.snapshot_count,
        durable: shared.durable.clone(),
        loaded: shared
            .loaded
            .lock()
            .map(|mut loaded| loaded.take())
            .unwrap_or_default(),
    });
    let group = match group {
        Ok(group) => group,
        Err(error) => {
            shared.raft_status.set_failed();
            shared.shutdown.trigger();
            return Err(error.into());
        }
    };
    let group_shutdown = shared.shutdown.clone();
    let group_status = shared.raft_status.clone();
    let group_task = glommio::spawn_local(async move {
        let result = group.run(group_shutdown.clone()).await;
        if result.is_err() || group_status.is_failed() {
            group_shutdown.trigger();
        }
        result
    });
    // The probes answer from here on, before the member has a leader (as etcd's do).
    let probe_context = crate::http::start_metrics_listeners(
        metrics_sockets,
        crate::http::MemberView::new(
            shared.config.clone(),
            shared.raft_status.clone(),
            shared.read_view.clone(),
            shared.members.clone(),
            shared.durable.stats.clone(),
        ),
        &shared.shutdown,
    );
    let served = serve_shard(
        OWNER_SHARD,
        shared,
        OwnerSender::Local(inbox_sender),
        Replies::Local(own_replies),
        client_sockets,
        Some(probe_context),
    )
    .await;
    group_task.await?;
    served
}

async fn remote_shard(
    shard: ShardId,
    shared: Shared,
    to_owner: SharedSender<ToOwner>,
    from_owner: SharedReceiver<ToShard>,
    client_sockets: ClientSockets,
) -> Result<(), RunError> {
    let (to_owner, from_owner) = futures::join!(to_owner.connect(), from_owner.connect());
    serve_shard(
        shard,
        shared,
        OwnerSender::Remote(to_owner),
        Replies::Remote(from_owner),
        client_sockets,
        None,
    )
    .await
}

enum Replies {
    Local(local_channel::LocalReceiver<ToShard>),
    Remote(ConnectedReceiver<ToShard>),
}

/// Waits until this shard's read view holds everything the cluster committed before now — one
/// read index through the leader — so that the first calls it accepts, serializable reads
/// included, see no older state than a client may already have seen acknowledged elsewhere (a
/// member that restarts into a running cluster may know the leader before it has the entries
/// it missed). Retried until it succeeds; `false` if the member stops first.
async fn catch_up_with_the_leader(context: &ShardContext, shared: &Shared) -> bool {
    loop {
        let read =
            futures_lite::future::or(async { Some(context.owner.read_index().await) }, async {
                shared.shutdown.wait().await;
                None
            })
            .await;
        match read {
            None => return false,
            Some(Ok(())) => return true,
            Some(Err(error)) => {
                if shared.shutdown.is_triggered() || shared.raft_status.is_failed() {
                    return false;
                }
                tracing::info!(
                    shard = context.shard_id,
                    %error,
                    "start-up read index failed; asking again"
                );
                glommio::timer::sleep(STARTUP_READ_INDEX_RETRY).await;
            }
        }
    }
}

/// Waits until the member serves, then builds this shard's context, starts its loops, catches
/// up with the leader and starts accepting on the shard's client sockets. `probe_context`
/// (the metrics listeners' shard) receives the context for the probes' linearizable reads.
async fn serve_shard(
    shard: ShardId,
    shared: Shared,
    owner_sender: OwnerSender,
    replies: Replies,
    client_sockets: ClientSockets,
    probe_context: Option<Rc<crate::http::ContextSlot>>,
) -> Result<(), RunError> {
    while !shared.raft_status.is_serving() {
        if shared.shutdown.is_triggered() || shared.raft_status.is_failed() {
            return Ok(());
        }
        glommio::timer::sleep(STARTUP_POLL_INTERVAL).await;
    }
    let config = shared.config.clone();
    let context = Rc::new(ShardContext {
        shard_id: shard,
        config: config.clone(),
        cluster_id: config.cluster_id(),
        member_id: config.member_id(),
        read_view: shared.read_view.clone(),
        raft_status: shared.raft_status.clone(),
        members: shared.members.clone(),
        durable: shared.durable.clone(),
        owner: OwnerLink::new(
            shard,
            owner_sender,
            shared.incarnation,
            config.request_timeout(),
            config.max_request_bytes,
        ),
        lease_id_state: Cell::new(
            (shared.incarnation ^ (shard as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1,
        ),
        watch_hub: RefCell::new(WatchHub::new(
            HubConfig {
                cluster_id: config.cluster_id(),
                member_id: config.member_id(),
                raft_status: shared.raft_status.clone(),
                fragment_bytes: config.grpc_receive_bytes_max(),
            },
            shared.read_view.load().current_revision(),
        )),
    });
    if let Some(slot) = probe_context {
        *slot.borrow_mut() = Some(context.clone());
    }
    let pump_context = context.clone();
    glommio::spawn_local(async move {
        let handle = |message: ToShard| match message {
            ToShard::Answer(answer) => pump_context.owner.complete(answer),
            ToShard::Events(batch) => pump_context.watch_hub.borrow_mut().deliver(&batch),
        };
        match replies {
            Replies::Local(queue) => {
                while let Some(message) = queue.recv().await {
                    handle(message);
                }
            }
            Replies::Remote(queue) => {
                while let Some(message) = queue.recv().await {
                    handle(message);
                }
            }
        }
    })
    .detach();
    glommio::spawn_local(crate::server::watch::catch_up_loop(
        context.clone(),
        shared.shutdown.clone(),
    ))
    .detach();
    glommio::spawn_local(crate::server::watch::progress_loop(
        context.clone(),
        shared.shutdown.clone(),
    ))
    .detach();
    if shard == OWNER_SHARD {
        glommio::spawn_local(crate::server::auto_compaction::auto_compaction_loop(
            context.clone(),
            shared.shutdown.clone(),
        ))
        .detach();
    }
    if !catch_up_with_the_leader(&context, &shared).await {
        return Ok(());
    }
    let securities = super::client_tls::listener_securities(&config, shared.client_tls.as_ref());
    let http_routes = Rc::new(crate::http::ClientRoutes::new(context.clone()));
    let listeners = client_sockets
        .into_iter()
        .zip(securities)
        .zip(client_listener_urls(&config));
    for ((socket, security), (_, traffic)) in listeners {
        let listener = ClientListener {
            listener: listener_on_this_shard(socket),
            security,
            traffic,
            http_routes: http_routes.clone(),
        };
        glommio::spawn_local(serve_listener(
            context.clone(),
            listener,
            shared.shutdown.clone(),
        ))
        .detach();
    }
    tracing::debug!(shard, "shard serving client connections");
    if shared.shards_serving.fetch_add(1, Ordering::SeqCst) + 1 == shared.shard_count {
        let urls: Vec<&str> = client_listener_urls(&config)
            .into_iter()
            .map(|(url, _)| url.original.as_str())
            .collect();
        tracing::info!(
            urls = urls.join(","),
            member_id = format!("{:x}", context.member_id),
            "ready to serve client requests"
        );
        super::startup_log::serving_client_traffic(&config);
    }
    shared.shutdown.wait().await;
    glommio::timer::sleep(SHUTDOWN_GRACE).await;
    Ok(())
}
