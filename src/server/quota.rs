//! The space quota at the API layer (etcd's `quotaKVServer` and `quotaLeaseServer`).
//!
//! Before a Put, a Txn or a LeaseGrant is proposed, its cost (see [`crate::mvcc::quota`]) is
//! added to the size of this member's state (`KvStore::approximate_bytes`: the retained
//! versions, not the page store file Status reports as `dbSize`, so compaction alone makes
//! room again; etcd charges its file and needs a defrag too). If the sum reaches `--quota-backend-bytes`, the request fails with etcd's
//! "database space exceeded" and this member raises the NOSPACE alarm through raft, which
//! makes every member refuse growing writes at apply time until the alarm is disarmed.
//!
//! As in etcd the check is this member's own, made before proposing: writes that pass it
//! together may take the store somewhat past the quota, and the next one raises the alarm.
//! etcd also checks again after applying and then answers NOSPACE for a write it did apply;
//! Capstan does not.

use crate::grpc::Status;
use crate::mvcc::quota::fits_quota;
use crate::mvcc::MvccError;
use crate::shard::ShardContext;
use capstan_proto::capstanpb::internal_request::Request;
use capstan_proto::etcdserverpb::alarm_request::AlarmAction;
use capstan_proto::etcdserverpb::{AlarmRequest, AlarmType};

impl ShardContext {
    /// Refuses a write of `cost_bytes` that would take the store to the quota, raising the
    /// NOSPACE alarm for this member first (unless it is already raised).
    pub(crate) async fn check_quota(&self, cost_bytes: u64) -> Result<(), Status> {
        let Some(quota_bytes) = self.config.quota_bytes() else {
            return Ok(());
        };
        let (size_bytes, already_raised) = {
            let view = self.read_view.load();
            (
                view.approximate_bytes(),
                view.alarms()
                    .is_raised_by(self.member_id, AlarmType::Nospace),
            )
        };
        if fits_quota(size_bytes, cost_bytes, quota_bytes) {
            return Ok(());
        }
        if !already_raised {
            tracing::warn!(
                size_bytes,
                cost_bytes,
                quota_bytes,
                "space quota reached; raising the NOSPACE alarm"
            );
            let raise = AlarmRequest {
                action: AlarmAction::Activate as i32,
                member_id: self.member_id,
                alarm: AlarmType::Nospace as i32,
            };
            // Like etcd, the request fails with NOSPACE whether or not the alarm got through.
            if let Err(error) = self.owner.propose(Request::Alarm(raise)).await {
                tracing::warn!(%error, "the NOSPACE alarm was not raised");
            }
        }
        Err(MvccError::NoSpace.into())
    }
}
