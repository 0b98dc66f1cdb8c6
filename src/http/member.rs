//! What the HTTP endpoints read of the member: raft status, alarms, membership and page store
//! sizes (published by the owner shard, readable without locks), and real reads through the
//! shard's context once it serves.
//!
//! The metrics listener starts before the member serves (as etcd serves its probes before it
//! has a leader), so the shard's context is not there yet: a serializable read then reads the
//! published view directly, and a linearizable read waits for the context (within its
//! deadline) before it asks for a read index, as a gRPC Range would.

use crate::config::ServerConfig;
use crate::durable::DurableStats;
use crate::grpc::Status;
use crate::membership::MemberList;
use crate::mvcc::KvStore;
use crate::raft::RaftStatus;
use crate::shard::ShardContext;
use arc_swap::ArcSwap;
use capstan_proto::etcdserverpb::{AlarmMember, AlarmType, RangeRequest};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// The shard's context, filled in once the shard serves.
pub type ContextSlot = RefCell<Option<Rc<ShardContext>>>;

/// How often a read made before the shard serves looks whether it serves now.
const CONTEXT_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Why a probe's read failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadFailure {
    /// The caller's deadline passed first.
    DeadlineExceeded,
    /// The server refused or failed the read; etcd's message.
    Server(String),
}

/// Results of etcd's health checks so far, for `/metrics` (`etcd_server_health_success`,
/// `etcd_server_healthcheck`, ...). Only the shard serving the metrics listener writes them.
#[derive(Debug, Default, Clone)]
pub struct HealthCounters {
    /// `/health` answers that were healthy and unhealthy.
    pub health_success: u64,
    pub health_failures: u64,
    /// (probe type, check name) -> (last result was success, successes, failures).
    pub checks: BTreeMap<(&'static str, &'static str), CheckCounts>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct CheckCounts {
    pub last_ok: bool,
    pub successes: u64,
    pub failures: u64,
}

impl HealthCounters {
    pub fn record_check(&mut self, probe: &'static str, check: &'static str, ok: bool) {
        let counts = self.checks.entry((probe, check)).or_default();
        counts.last_ok = ok;
        if ok {
            counts.successes += 1;
        } else {
            counts.failures += 1;
        }
    }
}

/// The member as the HTTP endpoints see it, on one shard.
pub struct MemberView {
    pub config: Arc<ServerConfig>,
    pub member_id: u64,
    pub raft_status: Arc<RaftStatus>,
    pub read_view: Arc<ArcSwap<KvStore>>,
    pub members: Arc<ArcSwap<MemberList>>,
    pub durable_stats: Arc<DurableStats>,
    pub context: Rc<ContextSlot>,
    pub counters: RefCell<HealthCounters>,
}

impl MemberView {
    pub fn new(
        config: Arc<ServerConfig>,
        raft_status: Arc<RaftStatus>,
        read_view: Arc<ArcSwap<KvStore>>,
        members: Arc<ArcSwap<MemberList>>,
        durable_stats: Arc<DurableStats>,
    ) -> MemberView {
        // The one place the HTTP side reads the config before serving: `--metrics extensive`
        // turns on the per-call timing of `grpc_server_handling_seconds`.
        crate::metrics::set_extensive(config.metrics_extensive);
        MemberView {
            member_id: config.member_id(),
            config,
            raft_status,
            read_view,
            members,
            durable_stats,
            context: Rc::new(RefCell::new(None)),
            counters: RefCell::new(HealthCounters::default()),
        }
    }

    /// The leader's member id, 0 when none is known.
    pub fn leader_id(&self) -> u64 {
        self.raft_status.leader_id()
    }

    /// Every raised alarm, of every member (etcd's `srv.Alarms()`).
    pub fn alarms(&self) -> Vec<AlarmMember> {
        self.read_view.load().alarms().list(AlarmType::None)
    }

    pub fn is_learner(&self) -> bool {
        self.members.load().is_learner(self.member_id)
    }

    fn serving_context(&self) -> Option<Rc<ShardContext>> {
        self.context.borrow().clone()
    }

    /// etcd's probe read: `Range{keys_only, limit 1}` of the empty key, serializable or
    /// linearizable (a read index through the leader, then the local view), within `timeout`.
    pub async fn read(&self, serializable: bool, timeout: Duration) -> Result<(), ReadFailure> {
        let read = async {
            if serializable {
                return self.read_local();
            }
            let context = loop {
                if let Some(context) = self.serving_context() {
                    break context;
                }
                glommio::timer::sleep(CONTEXT_POLL_INTERVAL).await;
            };
            context
                .owner
                .read_index()
                .await
                .map_err(|error| ReadFailure::Server(Status::from(error).message))?;
            self.read_local()
        };
        futures_lite::future::or(read, async {
            glommio::timer::sleep(timeout).await;
            Err(ReadFailure::DeadlineExceeded)
        })
        .await
    }

    fn read_local(&self) -> Result<(), ReadFailure> {
        let request = RangeRequest {
            keys_only: true,
            limit: 1,
            ..RangeRequest::default()
        };
        self.read_view
            .load()
            .range(&request)
            .map(|_| ())
            .map_err(|error| ReadFailure::Server(Status::from(error).message))
    }
}
