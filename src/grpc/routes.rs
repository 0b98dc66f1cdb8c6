//! Dispatch by `:path`: every method Capstan serves, in one table.

use super::call::{send_http_status, send_status_only, streaming, unary, CallLimits};
use super::timeout::parse_grpc_timeout;
use super::Status;
use crate::membership::MembershipError;
use crate::server::ServerError;
use crate::shard::ShardContext;
use bytes::Bytes;
use capstan_proto::method;
use h2::server::SendResponse;
use h2::RecvStream;
use http::Request;
use std::rc::Rc;
use std::time::Duration;

fn is_grpc(request: &http::request::Parts) -> bool {
    request.method == http::Method::POST
        && request
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/grpc"))
}

/// Consecutive leaderless election timeouts after which a `hasleader` stream is cancelled
/// (etcd's `maxNoLeaderCnt`).
pub const NO_LEADER_CHECKS_BEFORE_CANCEL: u32 = 3;

/// Resolves with etcd's "no leader" status once the member has had no leader for
/// `NO_LEADER_CHECKS_BEFORE_CANCEL` election timeouts in a row; never when not required.
pub async fn leader_lost(context: &ShardContext, require_leader: bool) -> Status {
    if !require_leader {
        return futures::future::pending().await;
    }
    let period = Duration::from_millis(context.config.election_timeout_ms);
    let mut leaderless_checks = 0;
    loop {
        glommio::timer::sleep(period).await;
        if context.raft_status.leader_id() == raft::INVALID_ID {
            leaderless_checks += 1;
            if leaderless_checks >= NO_LEADER_CHECKS_BEFORE_CANCEL {
                return ServerError::NoLeader.into();
            }
        } else {
            leaderless_checks = 0;
        }
    }
}

/// The status a call to `method` gets before it runs, as etcd's interceptors answer it: with
/// `hasleader` metadata and no leader, unary calls fail at once (streams end later, see
/// [`leader_lost`]); a learner refuses writes, the lease service, Alarm and the hashes. Shared
/// by the gRPC routes and the JSON gateway (`http::gateway`), so both refuse alike.
pub fn refusal_before_call(
    context: &ShardContext,
    method: &str,
    require_leader: bool,
) -> Option<Status> {
    let is_stream = matches!(
        method,
        method::WATCH_WATCH
            | method::LEASE_LEASE_KEEP_ALIVE
            | method::HEALTH_WATCH
            | method::ELECTION_OBSERVE
    );
    if require_leader && !is_stream && context.raft_status.leader_id() == raft::INVALID_ID {
        return Some(ServerError::NoLeader.into());
    }
    // A learner serves serializable reads (Range and MemberList check their own flag), Status,
    // Watch and health; like etcd it refuses writes, the lease service, Alarm and the hashes.
    let learner_refuses = matches!(
        method,
        method::KV_PUT
            | method::KV_DELETE_RANGE
            | method::KV_TXN
            | method::KV_COMPACT
            | method::LEASE_LEASE_GRANT
            | method::LEASE_LEASE_REVOKE
            | method::LEASE_LEASE_KEEP_ALIVE
            | method::LEASE_LEASE_TIME_TO_LIVE
            | method::LEASE_LEASE_LEASES
            | method::CLUSTER_MEMBER_ADD
            | method::CLUSTER_MEMBER_REMOVE
            | method::CLUSTER_MEMBER_UPDATE
            | method::CLUSTER_MEMBER_PROMOTE
            | method::LOCK_LOCK
            | method::LOCK_UNLOCK
            | method::ELECTION_CAMPAIGN
            | method::ELECTION_PROCLAIM
            | method::ELECTION_RESIGN
            | method::MAINTENANCE_ALARM
            | method::MAINTENANCE_HASH
            | method::MAINTENANCE_HASH_KV
    );
    if learner_refuses && context.is_learner() {
        return Some(MembershipError::NotSupportedForLearner.into());
    }
    None
}

/// Runs one call to completion on this shard.
pub async fn dispatch(
    context: Rc<ShardContext>,
    request: Request<RecvStream>,
    respond: SendResponse<Bytes>,
) {
    let (parts, body) = request.into_parts();
    if let Some(identity) = parts.extensions.get::<crate::tls::ClientIdentity>() {
        tracing::debug!(
            common_name = identity.common_name.as_deref().unwrap_or(""),
            path = parts.uri.path(),
            "call on a connection with a verified client certificate"
        );
    }
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
        method: crate::metrics::MethodId::of_path(parts.uri.path()),
    };
    // etcd's `hasleader` metadata (clientv3.WithRequireLeader; kube-apiserver sets it on every
    // watch): unary calls fail at once without a leader, streams end after a few election
    // timeouts without one.
    let require_leader = parts
        .headers
        .get("hasleader")
        .is_some_and(|value| value.as_bytes() == b"true");
    let ctx = &context;
    let path = parts.uri.path();
    if let Some(refusal) = refusal_before_call(ctx, path, require_leader) {
        send_status_only(respond, &refusal);
        return;
    }
    let unary_timer = crate::logging::slow::UnaryTimer::start();
    match path {
        method::KV_RANGE => unary(body, respond, limits, |r| ctx.range(r)).await,
        method::KV_PUT => unary(body, respond, limits, |r| ctx.put(r)).await,
        method::KV_DELETE_RANGE => unary(body, respond, limits, |r| ctx.delete_range(r)).await,
        method::KV_TXN => unary(body, respond, limits, |r| ctx.txn(r)).await,
        method::KV_COMPACT => unary(body, respond, limits, |r| ctx.compact(r)).await,
        method::MAINTENANCE_STATUS => unary(body, respond, limits, |r| ctx.status(r)).await,
        method::MAINTENANCE_SNAPSHOT => {
            streaming(body, respond, limits, futures::future::pending(), |r, s| {
                ctx.snapshot(r, s)
            })
            .await
        }
        method::MAINTENANCE_ALARM => unary(body, respond, limits, |r| ctx.alarm(r)).await,
        method::MAINTENANCE_DEFRAGMENT => unary(body, respond, limits, |r| ctx.defragment(r)).await,
        method::MAINTENANCE_HASH => unary(body, respond, limits, |r| ctx.hash(r)).await,
        method::MAINTENANCE_HASH_KV => unary(body, respond, limits, |r| ctx.hash_kv(r)).await,
        method::MAINTENANCE_MOVE_LEADER => {
            unary(body, respond, limits, |r| ctx.move_leader(r)).await
        }
        method::WATCH_WATCH => {
            streaming(
                body,
                respond,
                limits,
                leader_lost(ctx, require_leader),
                |r, s| ctx.watch(r, s),
            )
            .await
        }
        method::LEASE_LEASE_GRANT => unary(body, respond, limits, |r| ctx.lease_grant(r)).await,
        method::LEASE_LEASE_REVOKE => unary(body, respond, limits, |r| ctx.lease_revoke(r)).await,
        method::LEASE_LEASE_KEEP_ALIVE => {
            streaming(
                body,
                respond,
                limits,
                leader_lost(ctx, require_leader),
                |r, s| ctx.lease_keep_alive(r, s),
            )
            .await
        }
        method::LEASE_LEASE_TIME_TO_LIVE => {
            unary(body, respond, limits, |r| ctx.lease_time_to_live(r)).await
        }
        method::LEASE_LEASE_LEASES => unary(body, respond, limits, |r| ctx.lease_leases(r)).await,
        method::CLUSTER_MEMBER_LIST => unary(body, respond, limits, |r| ctx.member_list(r)).await,
        method::CLUSTER_MEMBER_ADD => unary(body, respond, limits, |r| ctx.member_add(r)).await,
        method::CLUSTER_MEMBER_REMOVE => {
            unary(body, respond, limits, |r| ctx.member_remove(r)).await
        }
        method::CLUSTER_MEMBER_UPDATE => {
            unary(body, respond, limits, |r| ctx.member_update(r)).await
        }
        method::CLUSTER_MEMBER_PROMOTE => {
            unary(body, respond, limits, |r| ctx.member_promote(r)).await
        }
        method::HEALTH_CHECK => unary(body, respond, limits, |r| ctx.health_check(r)).await,
        method::HEALTH_WATCH => {
            streaming(
                body,
                respond,
                limits,
                leader_lost(ctx, require_leader),
                |r, s| ctx.health_watch(r, s),
            )
            .await
        }
        method::LOCK_LOCK => unary(body, respond, limits, |r| ctx.clone().lock(r)).await,
        method::LOCK_UNLOCK => unary(body, respond, limits, |r| ctx.unlock(r)).await,
        method::ELECTION_CAMPAIGN => {
            unary(body, respond, limits, |r| ctx.clone().campaign(r)).await
        }
        method::ELECTION_PROCLAIM => unary(body, respond, limits, |r| ctx.proclaim(r)).await,
        method::ELECTION_LEADER => unary(body, respond, limits, |r| ctx.leader(r)).await,
        method::ELECTION_OBSERVE => {
            streaming(
                body,
                respond,
                limits,
                leader_lost(ctx, require_leader),
                |r, s| ctx.observe(r, s),
            )
            .await
        }
        method::ELECTION_RESIGN => unary(body, respond, limits, |r| ctx.resign(r)).await,
        unknown => send_status_only(respond, &Status::unimplemented(unknown)),
    }
    if !STREAMING_METHODS.contains(&path) {
        unary_timer.finish(path);
    }
}

/// Methods that stream; the others are unary, and timed for etcd's `request stats` warning.
const STREAMING_METHODS: &[&str] = &[
    method::WATCH_WATCH,
    method::LEASE_LEASE_KEEP_ALIVE,
    method::HEALTH_WATCH,
    method::ELECTION_OBSERVE,
    method::MAINTENANCE_SNAPSHOT,
];
