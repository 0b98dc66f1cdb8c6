//! `lease-keepalive`: every client grants itself a lease (TTL 100 s) first; each call then
//! opens a `Lease/LeaseKeepAlive` stream, sends one keep-alive, waits for its answer and closes
//! the stream — etcd's `KeepAliveOnce`, as etcd's benchmark uses it.

use super::{measure, mode_text, MeasureSpec, RunContext, RunResult};
use crate::cli::LeaseKeepaliveArgs;
use crate::client::Pool;
use crate::driver::{Call, Outcome};
use crate::error::BenchError;
use crate::grpc::{CallError, Channel};
use capstan_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseRevokeRequest, LeaseRevokeResponse,
};
use capstan_proto::method::{LEASE_LEASE_GRANT, LEASE_LEASE_KEEP_ALIVE, LEASE_LEASE_REVOKE};
use std::sync::Arc;

/// TTL of the leases kept alive, in seconds (etcd's benchmark uses 100).
const LEASE_TTL_S: i64 = 100;

pub async fn run(
    _args: &LeaseKeepaliveArgs,
    context: &RunContext,
) -> Result<RunResult, BenchError> {
    let pool = Pool::connect(&context.connect).await?;
    let mut leases = Vec::with_capacity(context.clients);
    for client in 0..context.clients {
        let channel = pool.for_client(client);
        let request = LeaseGrantRequest {
            ttl: LEASE_TTL_S,
            id: 0,
        };
        let granted: LeaseGrantResponse = channel
            .unary(LEASE_LEASE_GRANT, &request)
            .await
            .map_err(|error| {
                BenchError::setup("lease grant", LEASE_LEASE_GRANT, channel.authority(), error)
            })?;
        leases.push(granted.id);
    }
    let leases = Arc::new(leases);
    let lease_of = leases.clone();
    let operation = Arc::new(move |call: Call| {
        let lease = lease_of[call.client];
        async move {
            Outcome {
                series: 0,
                result: keep_alive_once(&call.channel, lease).await,
            }
        }
    });
    let spec = MeasureSpec {
        series: &["lease-keepalive"],
        rate: None,
        method: LEASE_LEASE_KEEP_ALIVE,
    };
    let measurement = measure(context, &pool, spec, operation).await;
    revoke(&pool, &leases).await;
    let measurement = measurement?;
    let notes = vec!["each call opens a LeaseKeepAlive stream for one keep-alive".to_string()];
    Ok(RunResult {
        benchmark: "lease-keepalive".to_string(),
        mode: mode_text(None),
        series: measurement.series,
        notes,
        warmup: context.warmup,
        send_lag: measurement.send_lag,
    })
}

async fn keep_alive_once(channel: &Channel, lease: i64) -> Result<(), CallError> {
    let (mut sender, mut receiver) = channel
        .open_stream::<LeaseKeepAliveRequest, LeaseKeepAliveResponse>(LEASE_LEASE_KEEP_ALIVE)
        .await?;
    sender.send(&LeaseKeepAliveRequest { id: lease })?;
    sender.finish()?;
    match receiver.message().await? {
        Some(response) if response.ttl > 0 => Ok(()),
        Some(_) => Err(CallError::Protocol(format!(
            "lease {lease:x} not found (keep-alive answered TTL <= 0)"
        ))),
        None => Err(CallError::Protocol(
            "keep-alive stream ended without an answer".to_string(),
        )),
    }
}

/// Best effort: the leases expire by themselves after their TTL anyway.
async fn revoke(pool: &Pool, leases: &[i64]) {
    for (client, lease) in leases.iter().enumerate() {
        let request = LeaseRevokeRequest { id: *lease };
        let _ = pool
            .for_client(client)
            .unary::<_, LeaseRevokeResponse>(LEASE_LEASE_REVOKE, &request)
            .await;
    }
}
