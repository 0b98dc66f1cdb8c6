//! The Cluster service. MemberList is answered from this member's applied member list (after a
//! read index when linearizable); the writes go to the leader, which validates them with etcd's
//! rules, proposes them through raft and answers once they applied.

use crate::grpc::Status;
use crate::membership::MembershipError;
use crate::shard::ShardContext;
use capstan_proto::capstanpb::{membership_request, MembershipAnswer, MembershipRequest};
use capstan_proto::etcdserverpb::{
    MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse, ResponseHeader,
};

impl ShardContext {
    pub fn is_learner(&self) -> bool {
        self.members.load().is_learner(self.member_id)
    }

    /// etcd's "rpc not supported for learner", for writes and linearizable reads on a learner.
    pub fn refuse_if_learner(&self) -> Result<(), Status> {
        if self.is_learner() {
            return Err(MembershipError::NotSupportedForLearner.into());
        }
        Ok(())
    }

    pub async fn member_list(
        &self,
        request: MemberListRequest,
    ) -> Result<MemberListResponse, Status> {
        if request.linearizable {
            self.refuse_if_learner()?;
            self.owner.read_index().await?;
        }
        let members = self.members.load();
        Ok(MemberListResponse {
            header: Some(self.cluster_header()),
            members: members.members().to_vec(),
        })
    }

    async fn change_membership(
        &self,
        request: membership_request::Request,
    ) -> Result<(ResponseHeader, MembershipAnswer), Status> {
        let answer = self
            .owner
            .change_membership(MembershipRequest {
                request: Some(request),
            })
            .await?;
        Ok((self.cluster_header(), answer))
    }

    /// The header of the Cluster service's answers: like etcd's, without a revision (the
    /// membership is not part of the key space).
    fn cluster_header(&self) -> ResponseHeader {
        self.header(0, self.raft_status.term())
    }

    pub async fn member_add(&self, request: MemberAddRequest) -> Result<MemberAddResponse, Status> {
        let (header, answer) = self
            .change_membership(membership_request::Request::Add(request))
            .await?;
        Ok(MemberAddResponse {
            header: Some(header),
            member: answer.member,
            members: answer.members,
        })
    }

    pub async fn member_remove(
        &self,
        request: MemberRemoveRequest,
    ) -> Result<MemberRemoveResponse, Status> {
        let (header, answer) = self
            .change_membership(membership_request::Request::Remove(request))
            .await?;
        Ok(MemberRemoveResponse {
            header: Some(header),
            members: answer.members,
        })
    }

    pub async fn member_update(
        &self,
        request: MemberUpdateRequest,
    ) -> Result<MemberUpdateResponse, Status> {
        let (header, answer) = self
            .change_membership(membership_request::Request::Update(request))
            .await?;
        Ok(MemberUpdateResponse {
            header: Some(header),
            members: answer.members,
        })
    }

    pub async fn member_promote(
        &self,
        request: MemberPromoteRequest,
    ) -> Result<MemberPromoteResponse, Status> {
        let (header, answer) = self
            .change_membership(membership_request::Request::Promote(request))
            .await?;
        Ok(MemberPromoteResponse {
            header: Some(header),
            members: answer.members,
        })
    }
}
