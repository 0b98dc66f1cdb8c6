//! The Lease service. Grants and revokes go through raft; keep-alives and remaining-TTL
//! questions go to the leader's lease clock on the owner shard.

use crate::grpc::call::{RequestStream, ResponseSink};
use crate::grpc::{Code, Status};
use crate::lease::{min_ttl_seconds, LEASE_TTL_SECONDS_MAX};
use crate::mvcc::quota::lease_grant_cost_bytes;
use crate::mvcc::{MvccError, WriteResponse};
use crate::server::ServerError;
use crate::shard::ShardContext;
use capstan_proto::capstanpb::internal_request::Request;
use capstan_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};

/// Attempts at a server-chosen lease id before giving up (a collision is vanishingly rare).
const SERVER_CHOSEN_ID_ATTEMPTS: usize = 3;

impl ShardContext {
    /// A positive, non-zero lease id from this shard's generator.
    fn next_lease_id(&self) -> i64 {
        let mut state = self.lease_id_state.get();
        // xorshift64*: cheap, and seeded per process and shard so members and restarts differ.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        self.lease_id_state.set(state);
        let id = (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 1) as i64;
        id.max(1)
    }

    pub async fn lease_grant(
        &self,
        request: LeaseGrantRequest,
    ) -> Result<LeaseGrantResponse, Status> {
        self.check_quota(lease_grant_cost_bytes()).await?;
        if request.ttl > LEASE_TTL_SECONDS_MAX {
            return Err(ServerError::LeaseTtlTooLarge.into());
        }
        let ttl = request
            .ttl
            .max(min_ttl_seconds(self.config.election_timeout_ms));
        let attempts = if request.id == 0 {
            SERVER_CHOSEN_ID_ATTEMPTS
        } else {
            1
        };
        let mut last_error = ServerError::Mvcc(MvccError::LeaseExists);
        for _ in 0..attempts {
            let id = if request.id == 0 {
                self.next_lease_id()
            } else {
                request.id
            };
            let grant = LeaseGrantRequest { ttl, id };
            match self.owner.propose(Request::LeaseGrant(grant)).await {
                Ok(outcome) => match outcome.response {
                    WriteResponse::LeaseGrant(mut response) => {
                        response.header = Some(self.header(outcome.revision, outcome.raft_term));
                        return Ok(response);
                    }
                    other => {
                        return Err(Status::new(
                            Code::Internal,
                            format!("capstan: unexpected apply result {other:?}"),
                        ))
                    }
                },
                Err(error @ ServerError::Mvcc(MvccError::LeaseExists)) => last_error = error,
                Err(error) => return Err(error.into()),
            }
        }
        Err(last_error.into())
    }

    pub async fn lease_revoke(
        &self,
        request: LeaseRevokeRequest,
    ) -> Result<LeaseRevokeResponse, Status> {
        let outcome = self.owner.propose(Request::LeaseRevoke(request)).await?;
        match outcome.response {
            WriteResponse::LeaseRevoke(mut response) => {
                response.header = Some(self.header(outcome.revision, outcome.raft_term));
                Ok(response)
            }
            other => Err(Status::new(
                Code::Internal,
                format!("capstan: unexpected apply result {other:?}"),
            )),
        }
    }

    /// Each request renews one lease; each answer carries its TTL (0: the lease is gone).
    pub async fn lease_keep_alive(
        &self,
        mut requests: RequestStream<LeaseKeepAliveRequest>,
        responses: ResponseSink<LeaseKeepAliveResponse>,
    ) -> Result<(), Status> {
        while let Some(request) = requests.next().await {
            let request = request?;
            let ttl = self.owner.lease_keep_alive(request.id).await?;
            let revision = self.read_view.load().current_revision();
            responses
                .send(&LeaseKeepAliveResponse {
                    header: Some(self.header(revision, self.raft_status.term())),
                    id: request.id,
                    ttl,
                })
                .await?;
        }
        Ok(())
    }

    pub async fn lease_time_to_live(
        &self,
        request: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, Status> {
        let ttl = self.owner.lease_time_to_live(request.id).await?;
        let view = self.read_view.load();
        let header = Some(self.header(view.current_revision(), self.raft_status.term()));
        let lease = view.lease(request.id);
        match lease {
            Some(lease) if ttl >= 0 => Ok(LeaseTimeToLiveResponse {
                header,
                id: request.id,
                ttl,
                granted_ttl: lease.granted_ttl,
                keys: if request.keys { lease.keys } else { Vec::new() },
            }),
            _ => Ok(LeaseTimeToLiveResponse {
                header,
                id: request.id,
                ttl: -1,
                ..LeaseTimeToLiveResponse::default()
            }),
        }
    }

    pub async fn lease_leases(
        &self,
        _request: LeaseLeasesRequest,
    ) -> Result<LeaseLeasesResponse, Status> {
        let view = self.read_view.load();
        Ok(LeaseLeasesResponse {
            header: Some(self.header(view.current_revision(), self.raft_status.term())),
            leases: view
                .lease_ids()
                .into_iter()
                .map(|id| LeaseStatus { id })
                .collect(),
        })
    }
}
