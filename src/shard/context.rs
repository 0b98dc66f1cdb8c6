//! The state one shard's call handlers see. Nothing in here is shared mutably with another
//! shard: the read view and raft status are published by the owner shard as immutable snapshots
//! and atomics.

use super::owner_link::OwnerLink;
use super::ShardId;
use crate::config::ServerConfig;
use crate::membership::MemberList;
use crate::mvcc::KvStore;
use crate::raft::RaftStatus;
use crate::watch::WatchHub;
use arc_swap::ArcSwap;
use std::cell::{Cell, RefCell};
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
