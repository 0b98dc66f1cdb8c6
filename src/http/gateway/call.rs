//! One gateway call: the same checks and the same `ShardContext` methods as a gRPC call
//! (`grpc::routes`), with JSON instead of protobuf on both sides.
//!
//! grpc-gateway forwards `Grpc-Metadata-*` headers as gRPC metadata and `Grpc-Timeout` as the
//! call's deadline; here `Grpc-Metadata-Hasleader: true` asks for a leader as the `hasleader`
//! metadata does, and `Grpc-Timeout` bounds a unary call. A decoded request larger than the
//! gRPC port would accept (`--max-request-bytes` plus gRPC's overhead, measured encoded)
//! gets the gRPC port's `ResourceExhausted`, as etcd's gateway, a gRPC client of its own
//! server, does.
//!
//! Auth is not implemented yet: its paths answer `Unimplemented` (501), as its gRPC methods
//! do. `Maintenance.Downgrade` likewise.

use super::codec;
use super::errors::{self, APPLICATION_JSON};
use super::stream;
use crate::grpc::frame::FrameError;
use crate::grpc::routes::refusal_before_call;
use crate::grpc::timeout::parse_grpc_timeout;
use crate::grpc::Status;
use crate::http::{Request, Response};
use crate::shard::ShardContext;
use capstan_proto::method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

/// What applies to one call besides its body.
#[derive(Debug, Clone, Copy)]
pub struct CallOptions {
    /// `Grpc-Metadata-Hasleader: true`.
    pub require_leader: bool,
    /// From `Grpc-Timeout`.
    pub deadline: Option<Duration>,
    /// The largest request message accepted, encoded (the gRPC port's limit).
    pub receive_bytes_max: usize,
}

impl CallOptions {
    pub fn of(context: &ShardContext, request: &Request) -> CallOptions {
        let header_text = |name: &str| {
            request
                .header(name)
                .and_then(|value| std::str::from_utf8(value).ok())
                .map(str::trim)
        };
        CallOptions {
            require_leader: header_text("grpc-metadata-hasleader") == Some("true"),
            deadline: header_text("grpc-timeout").and_then(parse_grpc_timeout),
            receive_bytes_max: context.config.grpc_receive_bytes_max(),
        }
    }

    /// The gRPC port's answer to a message of `encoded_bytes`, if too large.
    pub fn refuse_size(&self, encoded_bytes: usize) -> Option<Status> {
        (encoded_bytes > self.receive_bytes_max).then(|| {
            FrameError::TooLarge {
                declared_bytes: encoded_bytes,
                limit_bytes: self.receive_bytes_max,
            }
            .into()
        })
    }
}

/// Runs the call to `method` with the request in `body`.
pub async fn dispatch(
    context: &Rc<ShardContext>,
    method: &'static str,
    options: CallOptions,
    body: Vec<u8>,
) -> Response {
    if let Some(refusal) = refusal_before_call(context, method, options.require_leader) {
        return errors::from_server(&refusal);
    }
    let ctx = context;
    let body = &body[..];
    match method {
        method::KV_RANGE => unary(body, options, |r| ctx.range(r)).await,
        method::KV_PUT => unary(body, options, |r| ctx.put(r)).await,
        method::KV_DELETE_RANGE => unary(body, options, |r| ctx.delete_range(r)).await,
        method::KV_TXN => unary(body, options, |r| ctx.txn(r)).await,
        method::KV_COMPACT => unary(body, options, |r| ctx.compact(r)).await,
        method::WATCH_WATCH => stream::watch(ctx.clone(), body, options),
        method::LEASE_LEASE_GRANT => unary(body, options, |r| ctx.lease_grant(r)).await,
        method::LEASE_LEASE_REVOKE => unary(body, options, |r| ctx.lease_revoke(r)).await,
        method::LEASE_LEASE_KEEP_ALIVE => stream::keep_alive(ctx.clone(), body, options),
        method::LEASE_LEASE_TIME_TO_LIVE => {
            unary(body, options, |r| ctx.lease_time_to_live(r)).await
        }
        method::LEASE_LEASE_LEASES => unary(body, options, |r| ctx.lease_leases(r)).await,
        method::CLUSTER_MEMBER_ADD => unary(body, options, |r| ctx.member_add(r)).await,
        method::CLUSTER_MEMBER_REMOVE => unary(body, options, |r| ctx.member_remove(r)).await,
        method::CLUSTER_MEMBER_UPDATE => unary(body, options, |r| ctx.member_update(r)).await,
        method::CLUSTER_MEMBER_LIST => unary(body, options, |r| ctx.member_list(r)).await,
        method::CLUSTER_MEMBER_PROMOTE => unary(body, options, |r| ctx.member_promote(r)).await,
        method::MAINTENANCE_ALARM => unary(body, options, |r| ctx.alarm(r)).await,
        method::MAINTENANCE_STATUS => unary(body, options, |r| ctx.status(r)).await,
        method::MAINTENANCE_DEFRAGMENT => unary(body, options, |r| ctx.defragment(r)).await,
        method::MAINTENANCE_HASH => unary(body, options, |r| ctx.hash(r)).await,
        method::MAINTENANCE_HASH_KV => unary(body, options, |r| ctx.hash_kv(r)).await,
        method::MAINTENANCE_SNAPSHOT => stream::snapshot(ctx.clone(), body, options),
        method::MAINTENANCE_MOVE_LEADER => unary(body, options, |r| ctx.move_leader(r)).await,
        method::LOCK_LOCK => unary(body, options, |r| ctx.clone().lock(r)).await,
        method::LOCK_UNLOCK => unary(body, options, |r| ctx.unlock(r)).await,
        method::ELECTION_CAMPAIGN => unary(body, options, |r| ctx.clone().campaign(r)).await,
        method::ELECTION_PROCLAIM => unary(body, options, |r| ctx.proclaim(r)).await,
        method::ELECTION_LEADER => unary(body, options, |r| ctx.leader(r)).await,
        method::ELECTION_OBSERVE => stream::observe(ctx.clone(), body, options),
        method::ELECTION_RESIGN => unary(body, options, |r| ctx.resign(r)).await,
        unimplemented => {
            // grpc-gateway decodes the body before it calls: a body that is not JSON is its
            // 400 even for a method the server does not implement.
            if let Err(message) = codec::decode_one::<serde_json::Map<String, Value>>(body) {
                return errors::undecodable(message);
            }
            errors::from_server(&Status::unimplemented(unimplemented))
        }
    }
}

/// A unary call: decode, check the size, run under the deadline, answer.
async fn unary<Req, Resp, Work>(
    body: &[u8],
    options: CallOptions,
    handler: impl FnOnce(Req) -> Work,
) -> Response
where
    Req: DeserializeOwned + Default + prost::Message,
    Resp: Serialize,
    Work: Future<Output = Result<Resp, Status>>,
{
    let request: Req = match codec::decode_one(body) {
        Ok(request) => request,
        Err(message) => return errors::undecodable(message),
    };
    if let Some(status) = options.refuse_size(request.encoded_len()) {
        return errors::from_server(&status);
    }
    let outcome = match options.deadline {
        None => handler(request).await,
        Some(deadline) => {
            futures_lite::future::or(handler(request), async move {
                glommio::timer::sleep(deadline).await;
                Err(Status::deadline_exceeded())
            })
            .await
        }
    };
    match outcome {
        Ok(response) => success(codec::encode(&response)),
        Err(status) => errors::from_server(&status),
    }
}

/// A unary call's answer: the JSON, and the server's header metadata as grpc-gateway forwards
/// it.
fn success(json: Vec<u8>) -> Response {
    Response::new(200)
        .with_header("Content-Type", APPLICATION_JSON)
        .with_header("Grpc-Metadata-Content-Type", "application/grpc")
        .with_body(json)
}
