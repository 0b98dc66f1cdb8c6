//! The Maintenance service: Status, Defragment, Alarm, Hash, HashKV and MoveLeader (Snapshot is
//! in `snapshot`). Downgrade is not served (Unimplemented).

use crate::config::ETCD_API_VERSION;
use crate::grpc::{Code, Status};
use crate::mvcc::{KvStore, WriteResponse};
use crate::server::ServerError;
use crate::shard::ShardContext;
use capstan_proto::capstanpb::internal_request::Request;
use capstan_proto::etcdserverpb::alarm_request::AlarmAction;
use capstan_proto::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest, DefragmentResponse,
    DowngradeInfo, HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest,
    MoveLeaderResponse, StatusRequest, StatusResponse,
};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// An alarm as etcd lists it in `Status.errors`: Go's compact protobuf text of the
/// `AlarmMember`, zero fields left out, each field followed by a space
/// (`memberID:10276657743932975437 alarm:NOSPACE `).
pub fn alarm_status_text(alarm: &AlarmMember) -> String {
    let mut text = String::new();
    if alarm.member_id != 0 {
        text.push_str(&format!("memberID:{} ", alarm.member_id));
    }
    if alarm.alarm != 0 {
        let name = AlarmType::try_from(alarm.alarm)
            .map(|alarm| alarm.as_str_name().to_string())
            .unwrap_or_else(|_| alarm.alarm.to_string());
        text.push_str(&format!("alarm:{name} "));
    }
    text
}

impl ShardContext {
    /// etcd's MoveLeader: only the leader may hand over leadership, only to a voter.
    pub async fn move_leader(
        &self,
        request: MoveLeaderRequest,
    ) -> Result<MoveLeaderResponse, Status> {
        self.owner.move_leader(request.target_id).await?;
        // etcd answers MoveLeader and Defragment without a header.
        Ok(MoveLeaderResponse { header: None })
    }

    pub async fn status(&self, _request: StatusRequest) -> Result<StatusResponse, Status> {
        let raft = self.raft_status.snapshot();
        let view = self.read_view.load();
        // The page store file and the bytes of its pages in use (what a defrag would leave).
        let stats = &self.durable.stats;
        let db_size = i64::try_from(stats.size_bytes.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        let db_size_in_use =
            i64::try_from(stats.in_use_bytes.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        let mut errors = Vec::new();
        if raft.leader_id == raft::INVALID_ID {
            errors.push("etcdserver: no leader".to_string());
        }
        errors.extend(
            view.alarms()
                .list(AlarmType::None)
                .iter()
                .map(alarm_status_text),
        );
        // etcd 3.6.6+ reports the quota in force (a negative one when it is off).
        let db_size_quota = match self.config.quota_bytes() {
            Some(bytes) => i64::try_from(bytes).unwrap_or(i64::MAX),
            None => self.config.quota_backend_bytes,
        };
        Ok(StatusResponse {
            header: Some(self.header(view.current_revision(), raft.term)),
            version: ETCD_API_VERSION.to_string(),
            db_size,
            leader: raft.leader_id,
            raft_index: raft.commit_index,
            raft_term: raft.term,
            raft_applied_index: raft.applied_index,
            errors,
            db_size_in_use,
            is_learner: self.is_learner(),
            storage_version: ETCD_API_VERSION.to_string(),
            db_size_quota,
            // etcd 3.6 always reports one (not enabled, no target) while no downgrade runs.
            downgrade_info: Some(DowngradeInfo::default()),
        })
    }

    /// etcd's Defragment: shrinks this member's page store while it keeps serving (the store
    /// copies a snapshot of its live pages to a new file, replays the commits made meanwhile
    /// and switches files). Like etcd, it is per member and not replicated.
    pub async fn defragment(
        &self,
        _request: DefragmentRequest,
    ) -> Result<DefragmentResponse, Status> {
        self.durable
            .defragment()
            .await
            .map_err(|error| Status::new(Code::Unknown, format!("capstan: defrag: {error}")))?;
        Ok(DefragmentResponse { header: None })
    }

    /// etcd's Alarm: GET lists the raised alarms (of one type, or all for NONE) as of a
    /// linearizable read; ACTIVATE and DEACTIVATE go through raft and answer with the alarm
    /// they raised or cleared.
    pub async fn alarm(&self, request: AlarmRequest) -> Result<AlarmResponse, Status> {
        if request.action == AlarmAction::Get as i32 {
            self.owner.read_index().await?;
            let view = self.read_view.load();
            let alarm = AlarmType::try_from(request.alarm).unwrap_or(AlarmType::None);
            return Ok(AlarmResponse {
                header: Some(self.header(view.current_revision(), self.raft_status.term())),
                alarms: view.alarms().list(alarm),
            });
        }
        let outcome = self.owner.propose(Request::Alarm(request)).await?;
        match outcome.response {
            WriteResponse::Alarm(mut response) => {
                response.header = Some(self.header(outcome.revision, outcome.raft_term));
                Ok(response)
            }
            other => Err(Status::new(
                Code::Internal,
                format!("capstan: unexpected apply result {other:?}"),
            )),
        }
    }

    /// etcd's Hash ("for testing only"): a checksum of this member's whole state; see
    /// `mvcc::hash`. Computed off the reactor thread.
    pub async fn hash(&self, _request: HashRequest) -> Result<HashResponse, Status> {
        let view = self.read_view.load_full();
        let revision = view.current_revision();
        let hash = off_reactor(view, |store| store.hash_all()).await;
        Ok(HashResponse {
            header: Some(self.header(revision, self.raft_status.term())),
            hash,
        })
    }

    /// etcd's HashKV: a checksum of the MVCC history up to a revision on this member (no
    /// read index, as etcd); see `mvcc::hash`. Computed off the reactor thread.
    pub async fn hash_kv(&self, request: HashKvRequest) -> Result<HashKvResponse, Status> {
        let view = self.read_view.load_full();
        let current_revision = view.current_revision();
        let revision = request.revision;
        let hashed = off_reactor(view, move |store| store.hash_kv(revision))
            .await
            .map_err(ServerError::Mvcc)?;
        Ok(HashKvResponse {
            header: Some(self.header(current_revision, self.raft_status.term())),
            hash: hashed.hash,
            compact_revision: hashed.compact_revision,
            hash_revision: hashed.hash_revision,
        })
    }
}

/// Runs `work` on an immutable snapshot in glommio's blocking pool, so a long hash does not
/// stall this shard's connections.
async fn off_reactor<R: Send + 'static>(
    view: Arc<KvStore>,
    work: impl FnOnce(&KvStore) -> R + Send + 'static,
) -> R {
    glommio::executor()
        .spawn_blocking(move || work(&view))
        .await
}
