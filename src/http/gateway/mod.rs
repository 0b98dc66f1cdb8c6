//! etcd's JSON gateway on the client port: grpc-gateway's HTTP/JSON mapping of the v3 API,
//! answered as etcd 3.4's gateway (grpc-gateway v1) answers.
//!
//! `POST /v3/kv/put` with `{"key":"Zm9v","value":"YmFy"}` runs `KV.Put` and answers
//! `{"header":{"cluster_id":"…","member_id":"…","revision":"2","raft_term":"2"}}`. The path
//! of one request through this module:
//! 1. [`respond`] (called by `http::client_routes` for `/v3/…`; `/v3beta/…` is rewritten to
//!    `/v3/…`) finds the gRPC method in [`routes`] (404 `Not Found` if none, 405 for another
//!    method than POST);
//! 2. [`call`] applies the gRPC port's own refusals (`grpc::routes::refusal_before_call`:
//!    learner, `hasleader`), decodes the body with [`codec`] (the proto3 JSON mapping
//!    generated from our `.proto` files by pbjson in `capstan-proto`) and calls the same
//!    `ShardContext` method a gRPC call does;
//! 3. the answer is the response message in JSON, or [`errors`]' rendering of its status;
//! 4. the streaming methods (Watch, LeaseKeepAlive, Snapshot, Observe) are [`stream`]s: a
//!    chunked body of one `{"result":…}` line per message, for as long as the call runs and
//!    the client stays (`http::connection` ends the call when the client goes away).
//!
//! Bytes from clients never panic this module: a body that is not the request is a 400 with
//! Go's error text, and sizes are bounded by the HTTP reader and the gRPC port's limits.

pub mod call;
pub mod codec;
pub mod errors;
pub mod observe;
pub mod routes;
pub mod stream;

use crate::http::{Request, Response};
use crate::shard::ShardContext;
use std::rc::Rc;

/// The gateway's paths, and etcd 3.3's older prefix that etcd still rewrites to them.
pub const PREFIX: &str = "/v3/";
pub const BETA_PREFIX: &str = "/v3beta/";

/// Answers one gateway request (a path under `/v3/` or `/v3beta/`).
pub async fn respond(context: &Rc<ShardContext>, request: Request) -> Response {
    let path = match request.path.strip_prefix(BETA_PREFIX) {
        Some(rest) => format!("{PREFIX}{rest}"),
        None => request.path.clone(),
    };
    let Some(method) = routes::method_for(&path) else {
        return errors::not_found();
    };
    if request.method != "POST" {
        return errors::method_not_allowed();
    }
    let options = call::CallOptions::of(context, &request);
    call::dispatch(context, method, options, request.body).await
}
