//! Maintenance.Snapshot: a consistent backup of the state at one revision, streamed in chunks
//! and ended with a sha256 (see `backup`), as `etcdctl snapshot save` expects.

use crate::backup;
use crate::config::ETCD_API_VERSION;
use crate::grpc::call::{RequestStream, ResponseSink};
use crate::grpc::Status;
use crate::shard::ShardContext;
use bytes::Bytes;
use capstan_proto::etcdserverpb::{SnapshotRequest, SnapshotResponse};

/// Bytes of backup per response (etcd sends 32 KiB blobs).
pub const SNAPSHOT_BLOB_BYTES: usize = 32 * 1024;

impl ShardContext {
    pub async fn snapshot(
        &self,
        mut requests: RequestStream<SnapshotRequest>,
        responses: ResponseSink<SnapshotResponse>,
    ) -> Result<(), Status> {
        if let Some(request) = requests.next().await {
            request?;
        }
        // etcd's `etcd_disk_backend_snapshot_duration_seconds`: the whole backup, sent.
        let started = std::time::Instant::now();
        for response in snapshot_responses(self.snapshot_archive().await) {
            responses.send(&response).await?;
        }
        crate::metrics::observe_duration(
            crate::metrics::Histogram::BackendSnapshotSeconds,
            started.elapsed(),
        );
        Ok(())
    }

    /// The backup of one immutable read view (every key at one revision, whatever is applied
    /// meanwhile), encoded off this shard's executor (a large store takes a while).
    pub async fn snapshot_archive(&self) -> Bytes {
        let view = self.read_view.load_full();
        let members = self.members.load_full();
        let raft = self.raft_status.snapshot();
        let archive = glommio::executor()
            .spawn_blocking(move || backup::archive(&view, &members, raft.applied_index, raft.term))
            .await;
        Bytes::from(archive)
    }
}

/// The answers that carry `archive`, in [`SNAPSHOT_BLOB_BYTES`] blobs, as etcd sends them
/// (without a header).
pub fn snapshot_responses(archive: Bytes) -> impl Iterator<Item = SnapshotResponse> {
    let total = archive.len();
    (0..total).step_by(SNAPSHOT_BLOB_BYTES).map(move |sent| {
        let end = (sent + SNAPSHOT_BLOB_BYTES).min(total);
        SnapshotResponse {
            header: None,
            remaining_bytes: (total - end) as u64,
            blob: archive.slice(sent..end),
            version: ETCD_API_VERSION.to_string(),
        }
    })
}
