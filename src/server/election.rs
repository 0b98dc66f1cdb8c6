//! The Election service (`v3electionpb.Election`), with the semantics of etcd's `v3election`
//! server, which runs clientv3's `concurrency.Election` for the caller:
//!
//! - **Campaign(name, lease, value)** queues the session key `name/<lease hex>` holding
//!   `value` (or finds it queued by the same lease, and proclaims `value` if it differs) and
//!   returns once every key under `name/` created before it is gone. The returned `LeaderKey`
//!   (name, key, create revision, lease) is the leadership. A Campaign that ends while waiting
//!   because its client went away (cancel, deadline) resigns, as etcd does.
//! - **Proclaim(leader, value)** overwrites the leader's value if the key still has the
//!   leader's create revision, else fails with "election: not leader".
//! - **Leader(name)** is the oldest key under `name/`, or "election: no leader".
//! - **Observe(name)** streams the leader's key-value every time the leader or its value
//!   changes, waiting for a first leader if there is none.
//! - **Resign(leader)** deletes the key if it still has the leader's create revision.
//!
//! Lease 0 in Campaign or Proclaim gets a fresh 60 s lease that nobody keeps alive, and Resign
//! with lease 0 grants one that is not used, all as in etcd.

use super::recipe::{
    created_at, delete_op, first_created, get_op, header_revision, key_prefix, prefix_end, put_op,
    session_key, txn_range_kvs,
};
use super::ServerError;
use crate::grpc::call::{RequestStream, ResponseSink};
use crate::grpc::Status;
use crate::shard::ShardContext;
use crate::watch::InternalWatch;
use bytes::Bytes;
use capstan_proto::etcdserverpb::{
    watch_create_request, ResponseHeader, TxnRequest, WatchCreateRequest,
};
use capstan_proto::mvccpb::{event::EventType, KeyValue};
use capstan_proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use std::rc::Rc;

/// Queue `key` with `value` unless it exists; read it back otherwise.
fn queue_txn(key: &Bytes, value: Bytes, lease: i64) -> TxnRequest {
    TxnRequest {
        compare: vec![created_at(key, 0)],
        success: vec![put_op(key, value, lease)],
        failure: vec![get_op(key)],
    }
}

/// etcd's `Election.Resign`: delete the key only while it is still the same session key.
fn resign_txn(key: &Bytes, create_revision: i64) -> TxnRequest {
    TxnRequest {
        compare: vec![created_at(key, create_revision)],
        success: vec![delete_op(key)],
        failure: Vec::new(),
    }
}

fn proclaim_txn(key: &Bytes, create_revision: i64, value: Bytes, lease: i64) -> TxnRequest {
    TxnRequest {
        compare: vec![created_at(key, create_revision)],
        success: vec![put_op(key, value, lease)],
        failure: Vec::new(),
    }
}

impl ShardContext {
    pub async fn campaign(
        self: Rc<Self>,
        request: CampaignRequest,
    ) -> Result<CampaignResponse, Status> {
        self.campaign_inner(request)
            .await
            .map_err(Status::through_embedded_client)
    }

    async fn campaign_inner(
        self: &Rc<Self>,
        request: CampaignRequest,
    ) -> Result<CampaignResponse, Status> {
        let lease = self.session_lease(request.lease).await?;
        let prefix = key_prefix(&request.name);
        let key = session_key(&prefix, lease);
        let queued = self
            .txn(queue_txn(&key, request.value.clone(), lease))
            .await?;
        let mut leader_revision = header_revision(&queued.header);
        if !queued.succeeded {
            let Some(existing) = txn_range_kvs(&queued, 0).first() else {
                return Err(ServerError::ElectionNotLeader.into());
            };
            leader_revision = existing.create_revision;
            if existing.value != request.value {
                let proclaimed = self
                    .proclaim_value(&key, leader_revision, request.value.clone(), lease)
                    .await;
                if let Err(status) = proclaimed {
                    if let Err(resign) = self.txn(resign_txn(&key, leader_revision)).await {
                        tracing::debug!(?resign, "could not resign after a failed Campaign");
                    }
                    return Err(status);
                }
            }
        }
        let waiting = self.release_unless_kept(resign_txn(&key, leader_revision));
        let waited = self.wait_deletes(&prefix, leader_revision - 1).await;
        // On an error (not a cancel) etcd keeps the key: the caller still holds a place.
        waiting.keep();
        waited?;
        Ok(CampaignResponse {
            header: queued.header,
            leader: Some(LeaderKey {
                name: request.name,
                key,
                rev: leader_revision,
                lease,
            }),
        })
    }

    /// Puts `value` on the leader key if it still has `create_revision`.
    async fn proclaim_value(
        &self,
        key: &Bytes,
        create_revision: i64,
        value: Bytes,
        lease: i64,
    ) -> Result<Option<ResponseHeader>, Status> {
        let response = self
            .txn(proclaim_txn(key, create_revision, value, lease))
            .await?;
        if !response.succeeded {
            return Err(ServerError::ElectionNotLeader.into());
        }
        Ok(response.header)
    }

    pub async fn proclaim(&self, request: ProclaimRequest) -> Result<ProclaimResponse, Status> {
        let Some(leader) = request.leader else {
            return Err(ServerError::MissingLeaderKey.into());
        };
        let proclaimed = async {
            let lease = self.session_lease(leader.lease).await?;
            self.proclaim_value(&leader.key, leader.rev, request.value, lease)
                .await
        }
        .await
        .map_err(Status::through_embedded_client)?;
        Ok(ProclaimResponse { header: proclaimed })
    }

    pub async fn leader(&self, request: LeaderRequest) -> Result<LeaderResponse, Status> {
        let prefix = key_prefix(&request.name);
        let mut response = self
            .range(first_created(&prefix))
            .await
            .map_err(Status::through_embedded_client)?;
        if response.kvs.is_empty() {
            return Err(ServerError::ElectionNoLeader.into());
        }
        Ok(LeaderResponse {
            header: response.header,
            kv: Some(response.kvs.swap_remove(0)),
        })
    }

    pub async fn resign(&self, request: ResignRequest) -> Result<ResignResponse, Status> {
        let Some(leader) = request.leader else {
            return Err(ServerError::MissingLeaderKey.into());
        };
        let resigned = async {
            // etcd opens a session here too: lease 0 grants an unused lease.
            self.session_lease(leader.lease).await?;
            self.txn(resign_txn(&leader.key, leader.rev)).await
        }
        .await
        .map_err(Status::through_embedded_client)?;
        Ok(ResignResponse {
            header: resigned.header,
        })
    }

    /// etcd's `Election.Observe`: find the leader (or wait for the first put under the
    /// prefix), send it, send every new value of its key, and start over when it is deleted.
    pub async fn observe(
        &self,
        mut requests: RequestStream<LeaderRequest>,
        responses: ResponseSink<LeaderResponse>,
    ) -> Result<(), Status> {
        let request = match requests.next().await {
            Some(request) => request?,
            None => return Ok(()),
        };
        let prefix = key_prefix(&request.name);
        let observing = async {
            let mut sink = &responses;
            loop {
                self.observe_once(&prefix, &mut sink).await?;
            }
        };
        // A server-streaming call ends when its client goes away, whatever it waits on.
        let client_gone = async {
            responses.closed().await;
            Ok(())
        };
        futures_lite::future::or(observing, client_gone).await
    }

    /// One round of Observe: send the leader (waiting for one if there is none), then its new
    /// values until its key is deleted. Returns early if an internal watcher ends (compaction
    /// overtook it): the next round reads the leader again.
    pub(crate) async fn observe_once<Sink: LeaderSink>(
        &self,
        prefix: &Bytes,
        responses: &mut Sink,
    ) -> Result<(), Status> {
        let leader = self
            .range(first_created(prefix))
            .await
            .map_err(Status::through_embedded_client)?;
        let read_revision = header_revision(&leader.header);
        let (header, kv) = match leader.kvs.into_iter().next() {
            Some(kv) => (leader.header, kv),
            None => match self.first_put(prefix, read_revision).await {
                Some(found) => found,
                None => return Ok(()),
            },
        };
        let key = kv.key.clone();
        let revision = header_revision(&header);
        responses
            .send_leader(&LeaderResponse {
                header,
                kv: Some(kv),
            })
            .await?;
        self.follow_leader(&key, revision, responses).await
    }

    /// The first key put under `prefix` after `revision`, with the header etcd sends for it
    /// (the watch response's, with the revision of that put). `None` if the watcher ended.
    async fn first_put(
        &self,
        prefix: &Bytes,
        revision: i64,
    ) -> Option<(Option<ResponseHeader>, KeyValue)> {
        let request = WatchCreateRequest {
            key: prefix.clone(),
            range_end: prefix_end(prefix),
            start_revision: revision + 1,
            filters: vec![watch_create_request::FilterType::Nodelete as i32],
            ..WatchCreateRequest::default()
        };
        let view = self.read_view.load_full();
        let mut watch = InternalWatch::open(&self.watch_hub, &request, &view);
        drop(view);
        let response = watch.next_events().await?;
        let kv = response.events.into_iter().next()?.kv?;
        let header = response.header.map(|header| ResponseHeader {
            revision: kv.mod_revision,
            ..header
        });
        Some((header, kv))
    }

    /// Sends every put on the leader's `key` after `revision`; returns when the key is deleted
    /// (or the watcher ended, after which the caller reads the leader again).
    async fn follow_leader<Sink: LeaderSink>(
        &self,
        key: &Bytes,
        revision: i64,
        responses: &mut Sink,
    ) -> Result<(), Status> {
        let request = WatchCreateRequest {
            key: key.clone(),
            start_revision: revision + 1,
            ..WatchCreateRequest::default()
        };
        let view = self.read_view.load_full();
        let mut watch = InternalWatch::open(&self.watch_hub, &request, &view);
        drop(view);
        while let Some(response) = watch.next_events().await {
            for event in response.events {
                if event.r#type == EventType::Delete as i32 {
                    return Ok(());
                }
                responses
                    .send_leader(&LeaderResponse {
                        header: response.header,
                        kv: event.kv,
                    })
                    .await?;
            }
        }
        Ok(())
    }
}

/// Where Observe's answers go: a gRPC stream, or the JSON gateway's chunked body.
pub(crate) trait LeaderSink {
    /// Sends one answer; an error once the client is gone (Observe then ends).
    async fn send_leader(&mut self, response: &LeaderResponse) -> Result<(), Status>;
}

impl LeaderSink for &ResponseSink<LeaderResponse> {
    async fn send_leader(&mut self, response: &LeaderResponse) -> Result<(), Status> {
        self.send(response).await
    }
}
