//! The Maintenance service: Status and MoveLeader so far.

use crate::config::ETCD_API_VERSION;
use crate::grpc::Status;
use crate::shard::ShardContext;
use capstan_proto::etcdserverpb::{
    MoveLeaderRequest, MoveLeaderResponse, StatusRequest, StatusResponse,
};

impl ShardContext {
    /// etcd's MoveLeader: only the leader may hand over leadership, only to a voter.
    pub async fn move_leader(
        &self,
        request: MoveLeaderRequest,
    ) -> Result<MoveLeaderResponse, Status> {
        self.owner.move_leader(request.target_id).await?;
        let view = self.read_view.load();
        Ok(MoveLeaderResponse {
            header: Some(self.header(view.current_revision(), self.raft_status.term())),
        })
    }

    pub async fn status(&self, _request: StatusRequest) -> Result<StatusResponse, Status> {
        let raft = self.raft_status.snapshot();
        let view = self.read_view.load();
        let db_size = i64::try_from(view.approximate_bytes()).unwrap_or(i64::MAX);
        Ok(StatusResponse {
            header: Some(self.header(view.current_revision(), raft.term)),
            version: ETCD_API_VERSION.to_string(),
            db_size,
            leader: raft.leader_id,
            raft_index: raft.commit_index,
            raft_term: raft.term,
            raft_applied_index: raft.applied_index,
            errors: Vec::new(),
            db_size_in_use: db_size,
            is_learner: self.is_learner(),
            storage_version: ETCD_API_VERSION.to_string(),
            // No quota is enforced until the page store lands.
            db_size_quota: 0,
            downgrade_info: None,
        })
    }
}
