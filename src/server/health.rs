//! `grpc.health.v1.Health`: SERVING while the raft group serves.

use crate::grpc::call::{RequestStream, ResponseSink};
use crate::grpc::Status;
use crate::shard::ShardContext;
use capstan_proto::grpc_health_v1::health_check_response::ServingStatus;
use capstan_proto::grpc_health_v1::{HealthCheckRequest, HealthCheckResponse};
use std::time::Duration;

/// How often a Health.Watch stream re-reads the status.
const HEALTH_WATCH_POLL_INTERVAL: Duration = Duration::from_millis(500);

impl ShardContext {
    fn serving_status(&self) -> ServingStatus {
        if self.raft_status.is_serving() && !self.raft_status.is_failed() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        }
    }

    pub async fn health_check(
        &self,
        _request: HealthCheckRequest,
    ) -> Result<HealthCheckResponse, Status> {
        Ok(HealthCheckResponse {
            status: self.serving_status() as i32,
        })
    }

    /// Sends the status now and again whenever it changes, until the client goes away.
    pub async fn health_watch(
        &self,
        mut requests: RequestStream<HealthCheckRequest>,
        responses: ResponseSink<HealthCheckResponse>,
    ) -> Result<(), Status> {
        if let Some(request) = requests.next().await {
            request?;
        }
        let mut last = None;
        loop {
            let status = self.serving_status();
            if last != Some(status) {
                responses
                    .send(&HealthCheckResponse {
                        status: status as i32,
                    })
                    .await?;
                last = Some(status);
            }
            let closed = futures_lite::future::or(
                async {
                    responses.closed().await;
                    true
                },
                async {
                    glommio::timer::sleep(HEALTH_WATCH_POLL_INTERVAL).await;
                    false
                },
            )
            .await;
            if closed {
                return Ok(());
            }
        }
    }
}
