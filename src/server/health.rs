//! `grpc.health.v1.Health`, as etcd registers grpc-go's health server: one service, `""`
//! (all of them), SERVING while the raft group serves. Any other service name is unknown:
//! `Check` fails with NOT_FOUND `unknown service`, and `Watch` sends SERVICE_UNKNOWN and then
//! stays open (grpc-go would send a new status if that service were ever registered; none
//! is).

use crate::grpc::call::{RequestStream, ResponseSink};
use crate::grpc::{Code, Status};
use crate::shard::ShardContext;
use capstan_proto::grpc_health_v1::health_check_response::ServingStatus;
use capstan_proto::grpc_health_v1::{HealthCheckRequest, HealthCheckResponse};
use std::time::Duration;

/// How often a Health.Watch stream re-reads the status.
const HEALTH_WATCH_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// The one service name with a status: the whole server.
const ALL_SERVICES: &str = "";
/// grpc-go's answer to `Check` for a service it has no status of.
const UNKNOWN_SERVICE_MESSAGE: &str = "unknown service";

impl ShardContext {
    /// The status of `service`; `None` for a service with none.
    fn serving_status(&self, service: &str) -> Option<ServingStatus> {
        if service != ALL_SERVICES {
            return None;
        }
        Some(
            if self.raft_status.is_serving() && !self.raft_status.is_failed() {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            },
        )
    }

    pub async fn health_check(
        &self,
        request: HealthCheckRequest,
    ) -> Result<HealthCheckResponse, Status> {
        match self.serving_status(&request.service) {
            Some(status) => Ok(HealthCheckResponse {
                status: status as i32,
            }),
            None => Err(Status::new(Code::NotFound, UNKNOWN_SERVICE_MESSAGE)),
        }
    }

    /// Sends the status now and again whenever it changes, until the client goes away.
    pub async fn health_watch(
        &self,
        mut requests: RequestStream<HealthCheckRequest>,
        responses: ResponseSink<HealthCheckResponse>,
    ) -> Result<(), Status> {
        let service = match requests.next().await {
            Some(request) => request?.service,
            None => String::new(),
        };
        let mut last = None;
        loop {
            let status = self
                .serving_status(&service)
                .unwrap_or(ServingStatus::ServiceUnknown);
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
