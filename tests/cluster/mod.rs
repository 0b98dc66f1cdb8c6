//! Multi-member cluster harness: N real `capstan` members on free 127.0.0.1 ports, started from
//! etcd's flags, with optional per-link fault injection on the raft peer connections.
//!
//! # Peer proxies
//!
//! With [`ClusterSpec::proxied`], every member listens for peers on its real peer port
//! (`--listen-peer-urls`) but advertises a proxy in front of it (`--initial-advertise-peer-urls`
//! and its `--initial-cluster` entry). Member and cluster ids are derived from the advertised
//! urls exactly as etcd derives them, so every member must list the same url for a member: one
//! proxy per DESTINATION member, not one per ordered pair. The proxy tells the links apart by the
//! connection's first 32 bytes, the peer handshake (`"CPRT"`, version, flags, cluster id,
//! from id, to id: see `src/peer/mod.rs`), so a test still controls each ordered pair i→j on
//! its own ([`Cluster::set_link`]). A member only ever writes on its outbound connection to a
//! peer (one connection per direction), so i→j carries exactly the raft messages i sends to j.
//!
//! Changing a link's [`Link`] closes every connection on that link, so a stream is never resumed
//! in the middle of a frame; the sender reconnects (and the proxy applies the new mode).
//!
//! Dropping a [`Cluster`] kills (SIGKILL, then reaps) every member, including SIGSTOPped ones,
//! stops and joins every proxy thread, and removes the data directories.
#![allow(dead_code)]

use crate::common::{capstan_binary, free_port, require_tool, READY_LINE, READY_TIMEOUT};
use etcd_client::{Client, ConnectOptions, GetOptions};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Upper bound for anything the cluster is expected to do eventually (elect, converge, catch
/// up). Only there so that a broken build fails instead of hanging.
pub const EVENTUALLY: Duration = Duration::from_secs(30);
/// Upper bound for one client call made through etcd-client.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How often pollers look again.
pub const POLL: Duration = Duration::from_millis(100);
/// Log line of a member that refused a peer from another cluster.
pub const CLUSTER_ID_MISMATCH: &str = "cluster ID mismatch";
/// `--initial-cluster-token` when a spec does not set one (etcd's default).
pub const DEFAULT_TOKEN: &str = "etcd-cluster";

/// Cluster tests run one at a time: they start many processes on a 2-core machine and depend
/// on election timeouts. Hold the guard for the whole test.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Peer proxies
// ---------------------------------------------------------------------------------------------

/// What happens to the raft traffic one member sends to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// Forwarded unchanged.
    Pass,
    /// Connections are closed (the sender sees its connection fail and keeps reconnecting).
    Drop,
    /// Connections stay up but every byte vanishes (the sender notices nothing).
    Blackhole,
}

const HANDSHAKE_BYTES: usize = 32;
const HANDSHAKE_MAGIC: &[u8; 4] = b"CPRT";
/// How often a proxy thread looks at its link and the stop flag.
const PROXY_POLL: Duration = Duration::from_millis(50);
/// How long a new connection may take to send its handshake.
const PROXY_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
const PROXY_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const PROXY_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug)]
struct LinkState {
    mode: Link,
    /// Bumped on every change of `mode`: connections opened under another generation close.
    generation: u64,
}

struct ProxyShared {
    stop: AtomicBool,
    size: usize,
    /// Member ids by member index, as the members derive them.
    member_ids: Vec<u64>,
    /// Where member j really listens for peers.
    targets: Vec<SocketAddr>,
    /// Row-major `size * size`: entry `from * size + to`.
    links: Mutex<Vec<LinkState>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    live_threads: Arc<AtomicUsize>,
    /// Connections whose handshake named no member of this cluster (forwarded unchanged).
    unidentified: AtomicU64,
    /// Connections accepted, per link (`from * size + to`).
    accepted: Vec<AtomicU64>,
}

impl ProxyShared {
    fn link(&self, from: usize, to: usize) -> LinkState {
        self.links.lock().unwrap_or_else(|e| e.into_inner())[from * self.size + to]
    }

    fn current(&self, from: Option<usize>, to: usize) -> LinkState {
        match from {
            Some(from) => self.link(from, to),
            None => LinkState {
                mode: Link::Pass,
                generation: 0,
            },
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// Counts a proxy thread as live until it returns.
struct LiveThread(Arc<AtomicUsize>);

impl Drop for LiveThread {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn spawn_counted(
    live: &Arc<AtomicUsize>,
    name: String,
    body: impl FnOnce() + Send + 'static,
) -> JoinHandle<()> {
    live.fetch_add(1, Ordering::SeqCst);
    let guard = LiveThread(live.clone());
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let _guard = guard;
            body();
        })
        .expect("spawn proxy thread")
}

/// One listener per member, in front of its real peer port.
pub struct PeerProxies {
    shared: Arc<ProxyShared>,
    /// The address that stands for member j (its advertised peer url).
    pub addresses: Vec<SocketAddr>,
    accept_threads: Vec<JoinHandle<()>>,
}

impl PeerProxies {
    /// Binds the listeners (kept for the proxies' whole life, so no other process can take
    /// them). Threads start with [`start`](Self::start), once the member ids are known.
    fn bind(size: usize) -> (Vec<TcpListener>, Vec<SocketAddr>) {
        let listeners: Vec<TcpListener> = (0..size)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a peer proxy"))
            .collect();
        let addresses = listeners
            .iter()
            .map(|listener| listener.local_addr().expect("proxy address"))
            .collect();
        (listeners, addresses)
    }

    fn start(
        listeners: Vec<TcpListener>,
        addresses: Vec<SocketAddr>,
        member_ids: Vec<u64>,
        targets: Vec<SocketAddr>,
    ) -> PeerProxies {
        let size = listeners.len();
        let shared = Arc::new(ProxyShared {
            stop: AtomicBool::new(false),
            size,
            member_ids,
            targets,
            links: Mutex::new(vec![
                LinkState {
                    mode: Link::Pass,
                    generation: 0,
                };
                size * size
            ]),
            threads: Mutex::new(Vec::new()),
            live_threads: Arc::new(AtomicUsize::new(0)),
            unidentified: AtomicU64::new(0),
            accepted: (0..size * size).map(|_| AtomicU64::new(0)).collect(),
        });
        let accept_threads = listeners
            .into_iter()
            .enumerate()
            .map(|(to, listener)| {
                let shared_for_thread = shared.clone();
                spawn_counted(
                    &shared.live_threads,
                    format!("proxy-accept-{to}"),
                    move || accept_loop(shared_for_thread, listener, to),
                )
            })
            .collect();
        PeerProxies {
            shared,
            addresses,
            accept_threads,
        }
    }

    fn set_link(&self, from: usize, to: usize, mode: Link) {
        let mut links = self.shared.links.lock().unwrap_or_else(|e| e.into_inner());
        let state = &mut links[from * self.shared.size + to];
        if state.mode != mode {
            state.mode = mode;
            state.generation += 1;
        }
    }

    fn link(&self, from: usize, to: usize) -> Link {
        self.shared.link(from, to).mode
    }
}

impl Drop for PeerProxies {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for thread in self.accept_threads.drain(..) {
            let _ = thread.join();
        }
        // No accept thread is left to spawn more connection threads.
        let threads: Vec<JoinHandle<()>> = self
            .shared
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for thread in threads {
            let _ = thread.join();
        }
    }
}

fn accept_loop(shared: Arc<ProxyShared>, listener: TcpListener, to: usize) {
    listener
        .set_nonblocking(true)
        .expect("non-blocking proxy listener");
    while !shared.stopping() {
        match listener.accept() {
            Ok((stream, _)) => {
                if stream.set_nonblocking(false).is_err() {
                    continue;
                }
                let shared_for_thread = shared.clone();
                let thread = spawn_counted(
                    &shared.live_threads,
                    format!("proxy-conn-{to}"),
                    move || serve_connection(shared_for_thread, stream, to),
                );
                let mut threads = shared.threads.lock().unwrap_or_else(|e| e.into_inner());
                threads.retain(|thread| !thread.is_finished());
                threads.push(thread);
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn is_timeout(error: &std::io::Error) -> bool {
    matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Reads the 32-byte handshake; `None` if the connection closed, stalled or the proxy stops.
fn read_handshake(shared: &ProxyShared, stream: &mut TcpStream) -> Option<[u8; HANDSHAKE_BYTES]> {
    let mut bytes = [0u8; HANDSHAKE_BYTES];
    let mut filled = 0;
    let deadline = Instant::now() + PROXY_HANDSHAKE_TIMEOUT;
    while filled < HANDSHAKE_BYTES {
        if shared.stopping() || Instant::now() > deadline {
            return None;
        }
        match stream.read(&mut bytes[filled..]) {
            Ok(0) => return None,
            Ok(count) => filled += count,
            Err(error) if is_timeout(&error) => {}
            Err(_) => return None,
        }
    }
    Some(bytes)
}

fn serve_connection(shared: Arc<ProxyShared>, mut downstream: TcpStream, to: usize) {
    if downstream.set_read_timeout(Some(PROXY_POLL)).is_err() {
        return;
    }
    let Some(handshake) = read_handshake(&shared, &mut downstream) else {
        return;
    };
    let from = if &handshake[0..4] == HANDSHAKE_MAGIC {
        let mut id = [0u8; 8];
        id.copy_from_slice(&handshake[16..24]);
        let id = u64::from_be_bytes(id);
        shared.member_ids.iter().position(|member| *member == id)
    } else {
        None
    };
    match from {
        Some(from) => {
            shared.accepted[from * shared.size + to].fetch_add(1, Ordering::SeqCst);
        }
        None => {
            shared.unidentified.fetch_add(1, Ordering::SeqCst);
        }
    }
    let state = shared.current(from, to);
    let unchanged =
        || !shared.stopping() && shared.current(from, to).generation == state.generation;
    let mut buffer = vec![0u8; 64 * 1024];
    match state.mode {
        // Closing the connection is the whole point.
        Link::Drop => {}
        Link::Blackhole => {
            while unchanged() {
                match downstream.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(error) if is_timeout(&error) => {}
                    Err(_) => break,
                }
            }
        }
        Link::Pass => {
            let Ok(mut upstream) =
                TcpStream::connect_timeout(&shared.targets[to], PROXY_CONNECT_TIMEOUT)
            else {
                return;
            };
            let _ = upstream.set_nodelay(true);
            let _ = downstream.set_nodelay(true);
            if upstream
                .set_write_timeout(Some(PROXY_WRITE_TIMEOUT))
                .is_err()
                || upstream.write_all(&handshake).is_err()
            {
                return;
            }
            // The receiving member never writes: its side only ever closes. Pass the close on so
            // that the sender reconnects at once, as it would without a proxy.
            let watcher = match (upstream.try_clone(), downstream.try_clone()) {
                (Ok(mut upstream), Ok(downstream)) => Some(spawn_counted(
                    &shared.live_threads,
                    format!("proxy-watch-{to}"),
                    move || {
                        let mut probe = [0u8; 64];
                        loop {
                            match upstream.read(&mut probe) {
                                Ok(0) => break,
                                Ok(_) => {}
                                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                                Err(_) => break,
                            }
                        }
                        let _ = downstream.shutdown(Shutdown::Both);
                    },
                )),
                _ => None,
            };
            while unchanged() {
                match downstream.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(count) => {
                        // Bytes read after the link changed belong to the new mode: a message
                        // sent after `set_link` returned never crosses a cut.
                        if !unchanged() || upstream.write_all(&buffer[..count]).is_err() {
                            break;
                        }
                    }
                    Err(error) if is_timeout(&error) => {}
                    Err(_) => break,
                }
            }
            let _ = upstream.shutdown(Shutdown::Both);
            let _ = downstream.shutdown(Shutdown::Both);
            if let Some(watcher) = watcher {
                let _ = watcher.join();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Members
// ---------------------------------------------------------------------------------------------

/// One member process with its ports, data directory and log.
pub struct Member {
    pub index: usize,
    pub name: String,
    pub client_port: u16,
    /// The real peer port (`--listen-peer-urls`).
    pub peer_port: u16,
    /// `--initial-advertise-peer-urls`: the proxy in front of it when proxied.
    pub advertised_peer_url: String,
    pub token: String,
    /// The member id, derived from the advertised url and the token as the member derives it.
    pub id: u64,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    initial_cluster: String,
    shards: usize,
    /// Extra flags (a joining member's `--initial-cluster-state existing`).
    extra_args: Vec<String>,
    /// The server program; `None`: capstan. Another program (etcd) gets etcd's flags only.
    program: Option<PathBuf>,
    child: Option<Child>,
    paused: bool,
}

impl Member {
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Everything the member logged, across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn ready_lines(&self) -> usize {
        self.log().matches(READY_LINE).count()
    }

    fn launch(&mut self) {
        self.launch_with_env(&[]);
    }

    /// Starts the process with `env` added to its environment (after the harness removed
    /// `CAPSTAN_LOG` and every `ETCD_*` variable), for this start only.
    fn launch_with_env(&mut self, env: &[(&str, &str)]) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let client_url = self.url();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open member log");
        let log_err = log.try_clone().expect("clone log handle");
        let mut command = match &self.program {
            Some(program) => Command::new(program),
            None => Command::new(capstan_binary()),
        };
        command
            .arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(format!("http://127.0.0.1:{}", self.peer_port))
            .arg("--initial-advertise-peer-urls")
            .arg(&self.advertised_peer_url)
            .arg("--initial-cluster")
            .arg(&self.initial_cluster);
        if self.program.is_none() {
            command.arg("--shards").arg(self.shards.to_string());
        }
        command.args(&self.extra_args);
        if self.token != DEFAULT_TOKEN {
            command.arg("--initial-cluster-token").arg(&self.token);
        }
        command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .env_remove("CAPSTAN_LOG");
        for (key, _) in std::env::vars() {
            if key.starts_with("ETCD_") {
                command.env_remove(key);
            }
        }
        command.envs(env.iter().copied());
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", self.name));
        self.child = Some(child);
        self.paused = false;
    }

    fn signal(&self, signal: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on our own, not yet reaped child.
            let result = unsafe { libc::kill(pid as i32, signal) };
            assert_eq!(result, 0, "kill({pid}, {signal}) failed");
        }
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// Waits for the member's `ready_before + 1`-th ready line: `Ok` once it printed it,
    /// `Err(status)` (reaped) if the process exited first; panics (with the log) after
    /// [`READY_TIMEOUT`].
    fn wait_ready_or_exit(&mut self, ready_before: usize) -> Result<(), ExitStatus> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if self.ready_lines() > ready_before {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    self.paused = false;
                    return Err(status);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{} not ready in {READY_TIMEOUT:?}; log:\n{}",
            self.name,
            self.log()
        );
    }

    /// Waits for the member's `ready_before + 1`-th ready line; panics (with the log) if it
    /// exits or takes longer than [`READY_TIMEOUT`].
    fn wait_ready(&mut self, ready_before: usize) {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if self.ready_lines() > ready_before {
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    panic!(
                        "{} exited with {status} before it was ready; log:\n{}",
                        self.name,
                        self.log()
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{} not ready in {READY_TIMEOUT:?}; log:\n{}",
            self.name,
            self.log()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------------------------

/// How to start a cluster.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    pub size: usize,
    pub proxied: bool,
    /// `--initial-cluster-token` per member.
    pub tokens: Vec<String>,
    pub shards: usize,
    /// Members whose ready line [`Cluster::start`] waits for.
    pub wait_ready: Vec<usize>,
    /// Flags every member gets (and [`Cluster::start_joiner`] passes on to joiners).
    pub extra_args: Vec<String>,
    /// Flags one member gets on top of `extra_args` (e.g. its own `--listen-metrics-urls`).
    pub member_args: Vec<Vec<String>>,
    /// The server program every member runs; `None`: capstan. See [`ClusterSpec::program`].
    pub program: Option<PathBuf>,
}

impl ClusterSpec {
    pub fn new(size: usize) -> ClusterSpec {
        ClusterSpec {
            size,
            proxied: false,
            tokens: vec![DEFAULT_TOKEN.to_string(); size],
            shards: 1,
            wait_ready: (0..size).collect(),
            extra_args: Vec::new(),
            member_args: vec![Vec::new(); size],
            program: None,
        }
    }

    /// Members run `program` (an etcd binary) instead of capstan, with the same etcd flags
    /// minus capstan's own `--shards`. Peer proxies only understand capstan's peer handshake
    /// (etcd's peers speak HTTP both ways), so such a cluster is not [`proxied`](Self::proxied).
    pub fn program(mut self, program: impl Into<PathBuf>) -> ClusterSpec {
        self.program = Some(program.into());
        self
    }

    /// Adds flags every member (and every joiner) is started with.
    pub fn flags(mut self, args: &[&str]) -> ClusterSpec {
        self.extra_args
            .extend(args.iter().map(|arg| arg.to_string()));
        self
    }

    /// Adds flags that only `member` is started with.
    pub fn member_flags(mut self, member: usize, args: &[&str]) -> ClusterSpec {
        self.member_args[member].extend(args.iter().map(|arg| arg.to_string()));
        self
    }

    /// Peer traffic goes through controllable proxies.
    pub fn proxied(mut self) -> ClusterSpec {
        self.proxied = true;
        self
    }

    pub fn token(mut self, member: usize, token: &str) -> ClusterSpec {
        self.tokens[member] = token.to_string();
        self
    }

    pub fn wait_ready(mut self, members: &[usize]) -> ClusterSpec {
        self.wait_ready = members.to_vec();
        self
    }
}

/// One member's answer to Maintenance.Status, as `etcdctl endpoint status -w json` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    pub endpoint: String,
    pub cluster_id: u64,
    pub member_id: u64,
    pub revision: i64,
    pub leader: u64,
    pub raft_term: u64,
    pub raft_index: u64,
    pub raft_applied_index: u64,
}

/// A leader every asked member agrees on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leadership {
    pub leader: usize,
    pub leader_id: u64,
    pub term: u64,
}

/// One key as a range returns it: key, value, create revision, mod revision, version.
pub type Kv = (Vec<u8>, Vec<u8>, i64, i64, i64);

/// A full `get --prefix ""` on one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dump {
    pub revision: i64,
    pub kvs: Vec<Kv>,
}

impl Dump {
    pub fn value(&self, key: &str) -> Option<&[u8]> {
        self.kv(key).map(|kv| kv.1.as_slice())
    }

    pub fn kv(&self, key: &str) -> Option<&Kv> {
        self.kvs.iter().find(|kv| kv.0 == key.as_bytes())
    }
}

pub struct Cluster {
    pub members: Vec<Member>,
    proxies: Option<PeerProxies>,
    dir: tempfile::TempDir,
    /// The spec's flags for every member, passed on to joiners.
    common_args: Vec<String>,
}

impl Cluster {
    /// `size` members without proxies, all ready.
    pub fn start_plain(size: usize) -> Cluster {
        Cluster::start(ClusterSpec::new(size))
    }

    pub fn start(spec: ClusterSpec) -> Cluster {
        require_tool("etcdctl", "etcd-client");
        assert!(
            spec.program.is_none() || !spec.proxied,
            "peer proxies understand capstan's peer handshake only"
        );
        let dir = tempfile::tempdir().expect("cluster tempdir");
        let size = spec.size;
        // Proxies first: their listeners stay bound, so no member port can collide with them.
        let (listeners, proxy_addresses) = if spec.proxied {
            let (listeners, addresses) = PeerProxies::bind(size);
            (Some(listeners), addresses)
        } else {
            (None, Vec::new())
        };
        let ports = distinct_free_ports(2 * size);
        let (peer_ports, client_ports) = ports.split_at(size);
        let (peer_ports, client_ports) = (peer_ports.to_vec(), client_ports.to_vec());
        let advertised: Vec<String> = (0..size)
            .map(|i| match proxy_addresses.get(i) {
                Some(address) => format!("http://{address}"),
                None => format!("http://127.0.0.1:{}", peer_ports[i]),
            })
            .collect();
        let initial_cluster = (0..size)
            .map(|i| format!("n{}={}", i + 1, advertised[i]))
            .collect::<Vec<_>>()
            .join(",");
        let mut members: Vec<Member> = (0..size)
            .map(|i| {
                let token = spec.tokens[i].clone();
                Member {
                    index: i,
                    name: format!("n{}", i + 1),
                    client_port: client_ports[i],
                    peer_port: peer_ports[i],
                    advertised_peer_url: advertised[i].clone(),
                    id: capstan::config::member_id_of(std::slice::from_ref(&advertised[i]), &token),
                    token,
                    data_dir: dir.path().join(format!("n{}.data", i + 1)),
                    log_path: dir.path().join(format!("n{}.log", i + 1)),
                    initial_cluster: initial_cluster.clone(),
                    shards: spec.shards,
                    extra_args: spec
                        .extra_args
                        .iter()
                        .chain(&spec.member_args[i])
                        .cloned()
                        .collect(),
                    program: spec.program.clone(),
                    child: None,
                    paused: false,
                }
            })
            .collect();
        let proxies = listeners.map(|listeners| {
            PeerProxies::start(
                listeners,
                proxy_addresses,
                members.iter().map(|member| member.id).collect(),
                peer_ports
                    .iter()
                    .map(|port| SocketAddr::from(([127, 0, 0, 1], *port)))
                    .collect(),
            )
        });
        for member in &mut members {
            member.launch();
        }
        let mut cluster = Cluster {
            members,
            proxies,
            dir,
            common_args: spec.extra_args.clone(),
        };
        for &i in &spec.wait_ready {
            cluster.members[i].wait_ready(0);
        }
        cluster
    }

    pub fn size(&self) -> usize {
        self.members.len()
    }

    pub fn all(&self) -> Vec<usize> {
        (0..self.size()).collect()
    }

    /// Every member but `excluded`.
    pub fn others(&self, excluded: &[usize]) -> Vec<usize> {
        self.all()
            .into_iter()
            .filter(|i| !excluded.contains(i))
            .collect()
    }

    pub fn endpoint(&self, i: usize) -> String {
        self.members[i].endpoint()
    }

    pub fn endpoints(&self, members: &[usize]) -> String {
        members
            .iter()
            .map(|&i| self.endpoint(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn index_of_id(&self, id: u64) -> Option<usize> {
        self.members.iter().position(|member| member.id == id)
    }

    pub fn log(&self, i: usize) -> String {
        self.members[i].log()
    }

    // --- processes --------------------------------------------------------------------------

    /// SIGKILL, then reap.
    pub fn kill9(&mut self, i: usize) {
        self.members[i].kill9();
    }

    /// Starts a member that joins the running cluster after `member add` named it with
    /// `peer_port`: `--initial-cluster` lists `current` members plus itself, with
    /// `--initial-cluster-state existing`. Waits for its ready line; returns its index.
    pub fn start_joiner(&mut self, name: &str, peer_port: u16, current: &[usize]) -> usize {
        self.start_joiner_with(name, peer_port, current, &[])
    }

    /// [`start_joiner`](Self::start_joiner) with `extra` flags for the joiner only; it runs
    /// the program of the cluster's first member.
    pub fn start_joiner_with(
        &mut self,
        name: &str,
        peer_port: u16,
        current: &[usize],
        extra: &[&str],
    ) -> usize {
        let advertised = format!("http://127.0.0.1:{peer_port}");
        let mut initial: Vec<String> = current
            .iter()
            .map(|&i| {
                format!(
                    "{}={}",
                    self.members[i].name, self.members[i].advertised_peer_url
                )
            })
            .collect();
        initial.push(format!("{name}={advertised}"));
        let index = self.members.len();
        let mut member = Member {
            index,
            name: name.to_string(),
            client_port: free_port(),
            peer_port,
            id: capstan::config::member_id_of(std::slice::from_ref(&advertised), DEFAULT_TOKEN),
            advertised_peer_url: advertised,
            token: DEFAULT_TOKEN.to_string(),
            data_dir: self.dir.path().join(format!("{name}.data")),
            log_path: self.dir.path().join(format!("{name}.log")),
            initial_cluster: initial.join(","),
            shards: 1,
            extra_args: [
                vec![
                    "--initial-cluster-state".to_string(),
                    "existing".to_string(),
                ],
                self.common_args.clone(),
                extra.iter().map(|arg| arg.to_string()).collect(),
            ]
            .concat(),
            program: self.members.first().and_then(|first| first.program.clone()),
            child: None,
            paused: false,
        };
        member.launch();
        member.wait_ready(0);
        self.members.push(member);
        index
    }

    /// Waits up to `timeout` for member `i` to exit by itself; its exit status, reaped.
    pub fn wait_exit(&mut self, i: usize, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        let member = &mut self.members[i];
        while Instant::now() < deadline {
            let status = member
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if let Some(status) = status {
                member.child = None;
                return Some(status);
            }
            std::thread::sleep(POLL);
        }
        None
    }

    /// SIGSTOP: the process freezes with its sockets open.
    pub fn pause(&mut self, i: usize) {
        self.members[i].signal(libc::SIGSTOP);
        self.members[i].paused = true;
    }

    /// SIGCONT.
    pub fn resume(&mut self, i: usize) {
        self.members[i].signal(libc::SIGCONT);
        self.members[i].paused = false;
    }

    /// Kills the member if it runs, starts it again on the same ports and data directory, and
    /// waits for a new ready line.
    pub fn restart(&mut self, i: usize) {
        let member = &mut self.members[i];
        member.kill9();
        let ready_before = member.ready_lines();
        member.launch();
        member.wait_ready(ready_before);
    }

    /// Like [`restart`](Self::restart), with `env` added to the member's environment for this
    /// start only (a later `restart` starts it without): e.g. `CAPSTAN_FAILPOINTS`. `Err` with
    /// the exit status if the process exited before its ready line (it is then reaped).
    pub fn restart_with_env(&mut self, i: usize, env: &[(&str, &str)]) -> Result<(), ExitStatus> {
        let member = &mut self.members[i];
        member.kill9();
        let ready_before = member.ready_lines();
        member.launch_with_env(env);
        member.wait_ready_or_exit(ready_before)
    }

    /// The exit status of member `i` if its process exited by itself (then reaped: the member
    /// counts as not running); `None` while it runs or if it was not running.
    pub fn poll_exit(&mut self, i: usize) -> Option<ExitStatus> {
        let member = &mut self.members[i];
        let status = member.child.as_mut()?.try_wait().ok().flatten()?;
        member.child = None;
        member.paused = false;
        Some(status)
    }

    /// Kills every member in `members` that runs, starts them all again on the same ports and
    /// data directories, then waits for a new ready line from each (a member alone cannot get
    /// ready: it needs a quorum to know a leader).
    pub fn restart_together(&mut self, members: &[usize]) {
        let mut ready_before = Vec::new();
        for &i in members {
            self.members[i].kill9();
        }
        for &i in members {
            ready_before.push(self.members[i].ready_lines());
            self.members[i].launch();
        }
        for (&i, before) in members.iter().zip(ready_before) {
            self.members[i].wait_ready(before);
        }
    }

    // --- links ------------------------------------------------------------------------------

    fn proxies(&self) -> &PeerProxies {
        self.proxies
            .as_ref()
            .expect("this cluster was started without peer proxies")
    }

    /// Sets what happens to the raft traffic `from` sends to `to`.
    pub fn set_link(&self, from: usize, to: usize, mode: Link) {
        assert_ne!(from, to);
        self.proxies().set_link(from, to, mode);
    }

    pub fn link(&self, from: usize, to: usize) -> Link {
        self.proxies().link(from, to)
    }

    /// Cuts both directions between `member` and every other member.
    pub fn isolate(&self, member: usize, mode: Link) {
        for other in self.others(&[member]) {
            self.set_link(member, other, mode);
            self.set_link(other, member, mode);
        }
    }

    /// Every link passes again.
    pub fn heal(&self) {
        for from in self.all() {
            for to in self.others(&[from]) {
                self.set_link(from, to, Link::Pass);
            }
        }
    }

    /// Peer connections whose handshake named no member of this cluster.
    pub fn unidentified_peer_connections(&self) -> u64 {
        self.proxies().shared.unidentified.load(Ordering::SeqCst)
    }

    /// Connections the proxy accepted on link `from`→`to`.
    pub fn accepted_connections(&self, from: usize, to: usize) -> u64 {
        let shared = &self.proxies().shared;
        shared.accepted[from * shared.size + to].load(Ordering::SeqCst)
    }

    /// Counter of live proxy threads (0 once the cluster is dropped).
    pub fn proxy_threads(&self) -> Arc<AtomicUsize> {
        self.proxies().shared.live_threads.clone()
    }

    pub fn data_root(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub fn proxy_ports(&self) -> Vec<u16> {
        self.proxies
            .as_ref()
            .map(|proxies| proxies.addresses.iter().map(SocketAddr::port).collect())
            .unwrap_or_default()
    }

    // --- etcdctl ----------------------------------------------------------------------------

    /// Runs etcdctl 3.4 against `members` with a command timeout.
    pub fn etcdctl(&self, members: &[usize], timeout: Duration, args: &[&str]) -> Output {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoints(members)))
            .arg("--dial-timeout=2s")
            .arg(format!("--command-timeout={}ms", timeout.as_millis()))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("run etcdctl")
    }

    /// `etcdctl endpoint status -w json` over `members`: the statuses that answered, by member
    /// index, plus etcdctl's raw output.
    pub fn statuses(&self, members: &[usize]) -> (Vec<Option<MemberStatus>>, String) {
        let output = self.etcdctl(
            members,
            Duration::from_secs(3),
            &["endpoint", "status", "-w", "json"],
        );
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let raw = format!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
        let mut statuses = vec![None; self.size()];
        let Ok(serde_json::Value::Array(entries)) =
            serde_json::from_str::<serde_json::Value>(stdout.trim())
        else {
            return (statuses, raw);
        };
        for entry in entries {
            if let Some(status) = parse_status(&entry) {
                if let Some(i) = self
                    .members
                    .iter()
                    .position(|member| member.endpoint() == status.endpoint)
                {
                    statuses[i] = Some(status);
                }
            }
        }
        (statuses, raw)
    }

    pub fn status(&self, i: usize) -> Option<MemberStatus> {
        self.statuses(&[i]).0.swap_remove(i)
    }

    /// Waits until every member in `members` answers, they all name the same leader and term,
    /// and the leader is one of them.
    pub fn wait_for_leader(&self, members: &[usize]) -> Leadership {
        let deadline = Instant::now() + EVENTUALLY;
        let mut last = String::new();
        while Instant::now() < deadline {
            let (statuses, raw) = self.statuses(members);
            if let Some(leadership) = self.agreement(members, &statuses) {
                return leadership;
            }
            last = raw;
            std::thread::sleep(POLL);
        }
        panic!(
            "members {members:?} did not agree on a leader among themselves in {EVENTUALLY:?}; \
             last status:\n{last}\n{}",
            self.log_tails(40)
        );
    }

    /// The leader `members` agree on in `statuses`, if they do.
    pub fn agreement(
        &self,
        members: &[usize],
        statuses: &[Option<MemberStatus>],
    ) -> Option<Leadership> {
        let mut agreed: Option<(u64, u64)> = None;
        for &i in members {
            let status = statuses[i].as_ref()?;
            if status.leader == 0 {
                return None;
            }
            match agreed {
                None => agreed = Some((status.leader, status.raft_term)),
                Some(pair) if pair == (status.leader, status.raft_term) => {}
                Some(_) => return None,
            }
        }
        let (leader_id, term) = agreed?;
        let leader = self.index_of_id(leader_id)?;
        members.contains(&leader).then_some(Leadership {
            leader,
            leader_id,
            term,
        })
    }

    /// The last `lines` lines of every member's log, for failure messages.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut text = String::new();
        for member in &self.members {
            let log = member.log();
            let all: Vec<&str> = log.lines().collect();
            let start = all.len().saturating_sub(lines);
            text.push_str(&format!(
                "--- {} (id {:x}, client {}, last {} lines) ---\n{}\n",
                member.name,
                member.id,
                member.endpoint(),
                all.len() - start,
                all[start..].join("\n")
            ));
        }
        text
    }

    // --- etcd-client ------------------------------------------------------------------------

    /// An etcd-client connected to member `i` only.
    pub async fn client(&self, i: usize) -> Client {
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(CALL_TIMEOUT);
        Client::connect([self.members[i].url()], Some(options))
            .await
            .expect("connect etcd-client")
    }

    /// Waits until every member in `members` returns the same full serializable dump, at a
    /// revision of at least `min_revision`.
    pub async fn wait_converged(&self, members: &[usize], min_revision: i64) -> Dump {
        let mut clients = Vec::new();
        for &i in members {
            clients.push(self.client(i).await);
        }
        let last = match converge_clients(&mut clients, min_revision).await {
            Ok(dump) => return dump,
            Err(last) => last,
        };
        let summary: Vec<String> = members
            .iter()
            .zip(&last)
            .map(|(i, dump)| match dump {
                Ok(dump) => format!(
                    "n{}: revision {} with {} keys",
                    i + 1,
                    dump.revision,
                    dump.kvs.len()
                ),
                Err(error) => format!("n{}: {error}", i + 1),
            })
            .collect();
        panic!(
            "members {members:?} did not converge at revision >= {min_revision} in \
             {EVENTUALLY:?}: {summary:?}\n{}",
            self.log_tails(40)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "cluster logs at the time of the failure:\n{}",
                self.log_tails(60)
            );
        }
        for member in &mut self.members {
            member.kill9();
        }
        // Proxies, then the temporary directory, drop with the fields.
    }
}

/// `count` distinct ports that were free a moment ago (all held at once while picking).
fn distinct_free_ports(count: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    held.iter()
        .map(|listener| listener.local_addr().expect("local addr").port())
        .collect()
}

fn parse_status(entry: &serde_json::Value) -> Option<MemberStatus> {
    let status = entry.get("Status")?;
    let header = status.get("header")?;
    let number = |value: &serde_json::Value, field: &str| -> u64 {
        value.get(field).and_then(|v| v.as_u64()).unwrap_or(0)
    };
    Some(MemberStatus {
        endpoint: entry.get("Endpoint")?.as_str()?.to_string(),
        cluster_id: number(header, "cluster_id"),
        member_id: number(header, "member_id"),
        revision: header.get("revision").and_then(|v| v.as_i64()).unwrap_or(0),
        leader: number(status, "leader"),
        raft_term: number(status, "raftTerm"),
        raft_index: number(status, "raftIndex"),
        raft_applied_index: number(status, "raftAppliedIndex"),
    })
}

// ---------------------------------------------------------------------------------------------
// etcdctl helpers
// ---------------------------------------------------------------------------------------------

/// etcdctl's `--command-timeout` for calls expected to succeed.
pub const CTL_TIMEOUT: Duration = Duration::from_secs(10);

/// An etcdctl run's exit status, stdout and stderr, for failure messages.
pub fn ctl_text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs etcdctl against `members`; its stdout, or a panic with its output and the members'
/// log tails.
pub fn ctl_ok(cluster: &Cluster, members: &[usize], args: &[&str]) -> String {
    let output = cluster.etcdctl(members, CTL_TIMEOUT, args);
    assert!(
        output.status.success(),
        "etcdctl {args:?}: {}\n{}",
        ctl_text(&output),
        cluster.log_tails(30)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

// ---------------------------------------------------------------------------------------------
// etcd-client helpers
// ---------------------------------------------------------------------------------------------

/// Polls every client until all return the same full serializable dump at a revision of at
/// least `min_revision` (within [`EVENTUALLY`]); otherwise each client's last answer.
pub async fn converge_clients(
    clients: &mut [Client],
    min_revision: i64,
) -> Result<Dump, Vec<Result<Dump, String>>> {
    let deadline = Instant::now() + EVENTUALLY;
    let mut last: Vec<Result<Dump, String>> = Vec::new();
    while Instant::now() < deadline {
        last.clear();
        for client in clients.iter_mut() {
            last.push(dump(client, true).await);
        }
        if let Some(Ok(first)) = last.first() {
            if first.revision >= min_revision && last.iter().all(|dump| dump.as_ref() == Ok(first))
            {
                return Ok(first.clone());
            }
        }
        tokio::time::sleep(POLL).await;
    }
    Err(last)
}

/// A full range over every key; serializable (local to the member) or linearizable.
pub async fn dump(client: &mut Client, serializable: bool) -> Result<Dump, String> {
    let mut options = GetOptions::new().with_all_keys();
    if serializable {
        options = options.with_serializable();
    }
    let response = tokio::time::timeout(CALL_TIMEOUT, client.get("", Some(options)))
        .await
        .map_err(|_| "range timed out".to_string())?
        .map_err(|error| format!("range failed: {error}"))?;
    Ok(Dump {
        revision: response.header().map_or(0, |header| header.revision()),
        kvs: response
            .kvs()
            .iter()
            .map(|kv| {
                (
                    kv.key().to_vec(),
                    kv.value().to_vec(),
                    kv.create_revision(),
                    kv.mod_revision(),
                    kv.version(),
                )
            })
            .collect(),
    })
}

/// One put; `Ok(revision)` when acknowledged.
pub async fn put(client: &mut Client, key: &str, value: &str) -> Result<i64, String> {
    let response = tokio::time::timeout(CALL_TIMEOUT, client.put(key, value, None))
        .await
        .map_err(|_| "put timed out".to_string())?
        .map_err(|error| format!("put failed: {error}"))?;
    Ok(response.header().map_or(0, |header| header.revision()))
}

/// Puts until one attempt is acknowledged (a leader change may fail an attempt); returns the
/// acknowledged revision.
pub async fn put_eventually(client: &mut Client, key: &str, value: &str) -> i64 {
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        match put(client, key, value).await {
            Ok(revision) => return revision,
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "put {key} never acknowledged in {EVENTUALLY:?}: {error}"
                );
                eprintln!("put {key}: {error}; retrying");
                tokio::time::sleep(POLL).await;
            }
        }
    }
}

/// A linearizable get of one key: `(value, mod_revision)` if present, and the header revision.
pub async fn get(
    client: &mut Client,
    key: &str,
    serializable: bool,
) -> Result<(Option<(Vec<u8>, i64)>, i64), String> {
    let options = serializable.then(|| GetOptions::new().with_serializable());
    let response = tokio::time::timeout(CALL_TIMEOUT, client.get(key, options))
        .await
        .map_err(|_| "get timed out".to_string())?
        .map_err(|error| format!("get failed: {error}"))?;
    let revision = response.header().map_or(0, |header| header.revision());
    let found = response
        .kvs()
        .first()
        .map(|kv| (kv.value().to_vec(), kv.mod_revision()));
    Ok((found, revision))
}
