//! The state one shard's call handlers see ([`ShardContext`]), and the gate calls wait at until
//! it exists ([`ServingGate`]). Nothing in here is shared mutably with another shard: the read
//! view and raft status are published by the owner shard as immutable snapshots and atomics.

use super::owner_link::OwnerLink;
use super::{ShardId, Shutdown};
use crate::config::ServerConfig;
use crate::membership::MemberList;
use crate::mvcc::KvStore;
use crate::raft::RaftStatus;
use crate::watch::WatchHub;
use arc_swap::ArcSwap;
use futures::channel::oneshot;
use futures::future::{FutureExt, Shared};
use std::cell::{Cell, OnceCell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

pub struct ShardContext {
    pub shard_id: ShardId,
    pub config: Arc<ServerConfig>,
    pub cluster_id: u64,
    pub member_id: u64,
    /// The newest applied state, published by the owner after every applied batch.
    pub read_view: Arc<ArcSwap<KvStore>>,
    pub raft_status: Arc<RaftStatus>,
    /// The member list, published by the owner.
    pub members: Arc<ArcSwap<MemberList>>,
    /// The page store's writer: sizes for Status, Defragment.
    pub durable: crate::durable::DurableHandle,
    pub owner: OwnerLink,
    /// State of this shard's lease id generator (see `server::lease`).
    pub lease_id_state: Cell<u64>,
    /// This shard's watchers.
    pub watch_hub: RefCell<WatchHub>,
}

/// A shard's client port from the moment it is bound, before the member serves: connections
/// are accepted and their calls wait here until the shard's [`ShardContext`] exists, which is
/// once the raft group has caught up (replayed its log, knows a leader, applied everything
/// committed). So a restarted member never answers from a state it has not caught up to — not
/// even a serializable read — and a client that connects early is served the moment the member
/// is ready instead of being refused and backing off.
pub struct ServingGate {
    pub shard_id: ShardId,
    pub config: Arc<ServerConfig>,
    pub raft_status: Arc<RaftStatus>,
    pub shutdown: Shutdown,
    context: OnceCell<Rc<ShardContext>>,
    opened: Shared<oneshot::Receiver<()>>,
    open_signal: Cell<Option<oneshot::Sender<()>>>,
}

impl ServingGate {
    pub fn new(
        shard_id: ShardId,
        config: Arc<ServerConfig>,
        raft_status: Arc<RaftStatus>,
        shutdown: Shutdown,
    ) -> ServingGate {
        let (open_signal, opened) = oneshot::channel();
        ServingGate {
            shard_id,
            config,
            raft_status,
            shutdown,
            context: OnceCell::new(),
            opened: opened.shared(),
            open_signal: Cell::new(Some(open_signal)),
        }
    }

    /// The member serves: hands every waiting and later call `context`. Opens once.
    pub fn open(&self, context: Rc<ShardContext>) {
        assert!(
            self.context.set(context).is_ok(),
            "shard {}: the serving gate opened twice",
            self.shard_id
        );
        if let Some(signal) = self.open_signal.take() {
            // Nobody waiting is fine: later calls find the context without waiting.
            let _ = signal.send(());
        }
    }

    /// The shard's context, once the member serves.
    pub fn context(&self) -> Option<Rc<ShardContext>> {
        self.context.get().cloned()
    }

    /// Resolves with the context once the member serves; never before.
    pub async fn serving(&self) -> Rc<ShardContext> {
        loop {
            if let Some(context) = self.context() {
                return context;
            }
            // The sender lives as long as the gate and fires only after the context is set.
            if self.opened.clone().await.is_err() {
                return futures::future::pending().await;
            }
        }
    }
}
