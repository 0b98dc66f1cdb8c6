//! The Cluster service (MemberList so far).

use crate::grpc::Status;
use crate::shard::ShardContext;
use capstan_proto::etcdserverpb::{MemberListRequest, MemberListResponse};

impl ShardContext {
    pub async fn member_list(
        &self,
        request: MemberListRequest,
    ) -> Result<MemberListResponse, Status> {
        if request.linearizable {
            self.owner.read_index().await?;
        }
        let members = self.members.load();
        let revision = self.read_view.load().current_revision();
        Ok(MemberListResponse {
            header: Some(self.header(revision, self.raft_status.term())),
            members: members.members().to_vec(),
        })
    }
}
