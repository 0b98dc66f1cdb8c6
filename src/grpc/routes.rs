//! Dispatch by `:path`: every method Capstan serves, in one table.

use super::call::{send_http_status, send_status_only, streaming, unary, CallLimits};
use super::timeout::parse_grpc_timeout;
use super::Status;
use crate::shard::ShardContext;
use bytes::Bytes;
use capstan_proto::method;
use h2::server::SendResponse;
use h2::RecvStream;
use http::Request;
use std::rc::Rc;

fn is_grpc(request: &http::request::Parts) -> bool {
    request.method == http::Method::POST
        && request
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/grpc"))
}

/// Runs one call to completion on this shard.
pub async fn dispatch(
    context: Rc<ShardContext>,
    request: Request<RecvStream>,
    respond: SendResponse<Bytes>,
) {
    let (parts, body) = request.into_parts();
    if !is_grpc(&parts) {
        send_http_status(respond, http::StatusCode::UNSUPPORTED_MEDIA_TYPE);
        return;
    }
    let limits = CallLimits {
        receive_bytes_max: context.config.grpc_receive_bytes_max(),
        deadline: parts
            .headers
            .get("grpc-timeout")
            .and_then(|value| value.to_str().ok())
            .and_then(parse_grpc_timeout),
    };
    let ctx = &context;
    match parts.uri.path() {
        method::KV_RANGE => unary(body, respond, limits, |r| ctx.range(r)).await,
        method::KV_PUT => unary(body, respond, limits, |r| ctx.put(r)).await,
        method::KV_DELETE_RANGE => unary(body, respond, limits, |r| ctx.delete_range(r)).await,
        method::KV_TXN => unary(body, respond, limits, |r| ctx.txn(r)).await,
        method::KV_COMPACT => unary(body, respond, limits, |r| ctx.compact(r)).await,
        method::MAINTENANCE_STATUS => unary(body, respond, limits, |r| ctx.status(r)).await,
        method::WATCH_WATCH => streaming(body, respond, limits, |r, s| ctx.watch(r, s)).await,
        method::LEASE_LEASE_GRANT => unary(body, respond, limits, |r| ctx.lease_grant(r)).await,
        method::LEASE_LEASE_REVOKE => unary(body, respond, limits, |r| ctx.lease_revoke(r)).await,
        method::LEASE_LEASE_KEEP_ALIVE => {
            streaming(body, respond, limits, |r, s| ctx.lease_keep_alive(r, s)).await
        }
        method::LEASE_LEASE_TIME_TO_LIVE => {
            unary(body, respond, limits, |r| ctx.lease_time_to_live(r)).await
        }
        method::LEASE_LEASE_LEASES => unary(body, respond, limits, |r| ctx.lease_leases(r)).await,
        method::CLUSTER_MEMBER_LIST => unary(body, respond, limits, |r| ctx.member_list(r)).await,
        method::HEALTH_CHECK => unary(body, respond, limits, |r| ctx.health_check(r)).await,
        method::HEALTH_WATCH => {
            streaming(body, respond, limits, |r, s| ctx.health_watch(r, s)).await
        }
        unknown => send_status_only(respond, &Status::unimplemented(unknown)),
    }
}
