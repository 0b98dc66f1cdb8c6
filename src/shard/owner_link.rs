//! One shard's end of the conversation with the raft group's owner shard.
//!
//! A call that writes (or needs a read index) gets a request id, registers a one-shot slot,
//! sends its message to the owner, and waits for the owner's answer under the request timeout.
//! Proposals also carry the process's incarnation, so an entry proposed before a restart and
//! committed after it can never complete a new call that reuses its id.

use super::message::{Answer, ToOwner, WriteOutcome};
use super::ShardId;
use crate::server::ServerError;
use bytes::Bytes;
use capstan_proto::capstanpb::{
    internal_request, InternalRequest, MembershipAnswer, MembershipRequest,
};
use futures::channel::oneshot;
use glommio::channels::local_channel::LocalSender;
use glommio::channels::shared_channel::ConnectedSender;
use glommio::sync::Semaphore;
use prost::Message;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Bytes etcd's `InternalRaftRequest` spends on its header: field 100 (2-byte tag, 1-byte
/// length) holding a `RequestHeader` whose 64-bit id is a 9-byte varint (tag 1 byte).
const ETCD_RAFT_HEADER_BYTES: usize = 13;

/// The size etcd compares with `--max-request-bytes`: the request inside etcd's own
/// `InternalRaftRequest` (a 1-byte field tag, its length varint, the bytes) plus the header.
/// Measuring etcd's envelope rather than ours keeps the cut-off exactly where etcd's is.
pub fn etcd_request_bytes(request: &internal_request::Request) -> usize {
    let inner_bytes = match request {
        internal_request::Request::Put(put) => put.encoded_len(),
        internal_request::Request::DeleteRange(delete) => delete.encoded_len(),
        internal_request::Request::Txn(txn) => txn.encoded_len(),
        internal_request::Request::Compaction(compaction) => compaction.encoded_len(),
        internal_request::Request::LeaseGrant(grant) => grant.encoded_len(),
        internal_request::Request::LeaseRevoke(revoke) => revoke.encoded_len(),
        internal_request::Request::MemberPublish(publish) => publish.encoded_len(),
        internal_request::Request::LeaseCheckpoint(checkpoint) => checkpoint.encoded_len(),
        internal_request::Request::MemberUpdate(update) => update.encoded_len(),
        internal_request::Request::Alarm(alarm) => alarm.encoded_len(),
    };
    ETCD_RAFT_HEADER_BYTES + 1 + prost::length_delimiter_len(inner_bytes) + inner_bytes
}

/// Pause before asking a lease question again while the cluster has no (reachable) leader.
const LEASE_RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Calls of one shard waiting on the owner at once; bounds the owner's reply queues.
pub const INFLIGHT_REQUESTS_PER_SHARD_MAX: u64 = 16_384;

/// How a shard reaches the owner: a local channel on the owner shard itself, a shared
/// (cross-core) channel elsewhere.
pub enum OwnerSender {
    Local(Rc<LocalSender<ToOwner>>),
    Remote(ConnectedSender<ToOwner>),
}

impl OwnerSender {
    async fn send(&self, message: ToOwner) -> Result<(), ServerError> {
        let sent = match self {
            OwnerSender::Local(sender) => sender.send(message).await.is_ok(),
            OwnerSender::Remote(sender) => {
                crate::metrics::count(crate::metrics::Counter::CrossShardHops, 1);
                sender.send(message).await.is_ok()
            }
        };
        if sent {
            Ok(())
        } else {
            Err(ServerError::Stopped)
        }
    }
}

pub struct OwnerLink {
    shard: ShardId,
    sender: OwnerSender,
    waiting: RefCell<HashMap<u64, oneshot::Sender<Answer>>>,
    next_sequence: Cell<u64>,
    incarnation: u64,
    inflight: Semaphore,
    request_timeout: Duration,
    max_request_bytes: usize,
}

/// Removes a call's slot when the call ends for any reason (answer, timeout, client gone).
struct WaitingSlot<'a> {
    link: &'a OwnerLink,
    id: u64,
}

impl Drop for WaitingSlot<'_> {
    fn drop(&mut self) {
        self.link.waiting.borrow_mut().remove(&self.id);
        crate::metrics::gauge_add(crate::metrics::Gauge::OwnerRequestsInFlight, -1);
    }
}

impl OwnerLink {
    pub fn new(
        shard: ShardId,
        sender: OwnerSender,
        incarnation: u64,
        request_timeout: Duration,
        max_request_bytes: usize,
    ) -> OwnerLink {
        OwnerLink {
            shard,
            sender,
            waiting: RefCell::new(HashMap::new()),
            next_sequence: Cell::new(0),
            incarnation,
            inflight: Semaphore::new(INFLIGHT_REQUESTS_PER_SHARD_MAX),
            request_timeout,
            max_request_bytes,
        }
    }

    fn next_id(&self) -> u64 {
        let sequence = self.next_sequence.get();
        self.next_sequence.set(sequence + 1);
        sequence
    }

    async fn call(&self, id: u64, message: ToOwner) -> Result<Answer, ServerError> {
        self.call_within(id, message, self.request_timeout).await
    }

    async fn call_within(
        &self,
        id: u64,
        message: ToOwner,
        timeout: Duration,
    ) -> Result<Answer, ServerError> {
        let _permit = self
            .inflight
            .acquire_permit(1)
            .await
            .map_err(|_| ServerError::Stopped)?;
        let (answer_sender, answer) = oneshot::channel();
        self.waiting.borrow_mut().insert(id, answer_sender);
        let _slot = WaitingSlot { link: self, id };
        crate::metrics::gauge_add(crate::metrics::Gauge::OwnerRequestsInFlight, 1);
        self.sender.send(message).await?;
        let answered = futures_lite::future::or(async { Some(answer.await) }, async {
            glommio::timer::sleep(timeout).await;
            None
        })
        .await;
        match answered {
            None => Err(ServerError::TimedOut),
            Some(Err(_canceled)) => Err(ServerError::Stopped),
            Some(Ok(Answer::Failed { error, .. })) => Err(error),
            Some(Ok(answer)) => Ok(answer),
        }
    }

    /// Proposes a write through raft and waits until it has been applied.
    pub async fn propose(
        &self,
        request: internal_request::Request,
    ) -> Result<WriteOutcome, ServerError> {
        if etcd_request_bytes(&request) > self.max_request_bytes {
            return Err(ServerError::RequestTooLarge);
        }
        let id = self.next_id();
        let internal = InternalRequest {
            id,
            origin_shard: self.shard as u64,
            proposer_incarnation: self.incarnation,
            request: Some(request),
        };
        let data = Bytes::from(internal.encode_to_vec());
        let origin = self.shard;
        match self.call(id, ToOwner::Propose { origin, id, data }).await? {
            Answer::Applied { outcome, .. } => outcome.map_err(ServerError::Mvcc),
            other => unreachable!("owner answered a proposal with {other:?}"),
        }
    }

    /// Waits until this member has applied everything committed before the call started.
    pub async fn read_index(&self) -> Result<(), ServerError> {
        let id = self.next_id();
        let origin = self.shard;
        match self.call(id, ToOwner::ReadIndex { origin, id }).await? {
            Answer::ReadReady { .. } => Ok(()),
            other => unreachable!("owner answered a read index with {other:?}"),
        }
    }

    /// A Cluster-service write, decided and proposed by the leader; the leader's answer once
    /// the change applied there (a refusal becomes the leader's status).
    pub async fn change_membership(
        &self,
        request: MembershipRequest,
    ) -> Result<MembershipAnswer, ServerError> {
        let id = self.next_id();
        let origin = self.shard;
        let message = ToOwner::Membership {
            origin,
            id,
            request,
        };
        match self.call(id, message).await? {
            Answer::Membership { answer, .. } if answer.code == 0 => Ok(answer),
            Answer::Membership { answer, .. } => Err(ServerError::Remote {
                code: answer.code,
                message: answer.message,
            }),
            other => unreachable!("owner answered a membership change with {other:?}"),
        }
    }

    /// Hands leadership to `target` (this member must lead); returns once it leads.
    pub async fn move_leader(&self, target: u64) -> Result<(), ServerError> {
        let id = self.next_id();
        let origin = self.shard;
        match self
            .call(id, ToOwner::MoveLeader { origin, id, target })
            .await?
        {
            Answer::Done { .. } => Ok(()),
            other => unreachable!("owner answered a leader move with {other:?}"),
        }
    }

    /// Renews a lease by the leader's clock; its granted TTL, or 0 when it no longer exists.
    pub async fn lease_keep_alive(&self, lease_id: i64) -> Result<i64, ServerError> {
        self.ask_lease_ttl(|origin, id| ToOwner::LeaseKeepAlive {
            origin,
            id,
            lease_id,
        })
        .await
    }

    /// Seconds a lease has left by the leader's clock, -1 when it does not exist.
    pub async fn lease_time_to_live(&self, lease_id: i64) -> Result<i64, ServerError> {
        self.ask_lease_ttl(|origin, id| ToOwner::LeaseTimeToLive {
            origin,
            id,
            lease_id,
        })
        .await
    }

    /// Asks the leader's lease clock, through this member's raft group (which forwards to the
    /// leader when it is not the leader). While there is no leader, or the leader changes under
    /// the question, it is asked again until the request timeout, as etcd's followers do.
    async fn ask_lease_ttl(
        &self,
        question: impl Fn(ShardId, u64) -> ToOwner,
    ) -> Result<i64, ServerError> {
        let deadline = Instant::now() + self.request_timeout;
        loop {
            let id = self.next_id();
            let left = deadline.saturating_duration_since(Instant::now());
            match self.call_within(id, question(self.shard, id), left).await {
                Ok(Answer::LeaseTtl { ttl, .. }) => return Ok(ttl),
                Ok(other) => unreachable!("owner answered a lease question with {other:?}"),
                Err(ServerError::NotLeader | ServerError::NoLeader)
                    if Instant::now() + LEASE_RETRY_PAUSE < deadline =>
                {
                    glommio::timer::sleep(LEASE_RETRY_PAUSE).await;
                }
                Err(ServerError::NotLeader | ServerError::NoLeader) => {
                    return Err(ServerError::TimedOut)
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Hands an answer from the owner to the call waiting for it (if it still waits).
    pub fn complete(&self, answer: Answer) {
        let waiting = self.waiting.borrow_mut().remove(&answer.id());
        if let Some(slot) = waiting {
            let _gone_is_fine = slot.send(answer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_proto::etcdserverpb::PutRequest;

    #[test]
    fn etcd_size_of_a_put_matches_etcds_cut_off() {
        // etcd 3.4 accepts a 1-byte key with a 1,572,840-byte value and refuses one byte more.
        let put = |value_bytes: usize| {
            internal_request::Request::Put(PutRequest {
                key: Bytes::from_static(b"b"),
                value: Bytes::from(vec![b'x'; value_bytes]),
                ..PutRequest::default()
            })
        };
        assert_eq!(etcd_request_bytes(&put(1_572_840)), 1_572_864);
        assert_eq!(etcd_request_bytes(&put(1_572_841)), 1_572_865);
    }
}
