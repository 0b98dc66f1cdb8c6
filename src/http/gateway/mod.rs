//! etcd's JSON gateway (grpc-gateway's HTTP/JSON mapping of the v3 API) on the client port.
//!
//! Work in progress: every path answers 404 until the routes land.

use crate::http::{Request, Response};
use crate::shard::ShardContext;
use std::rc::Rc;

/// Answers one gateway request (a path under `/v3/` or `/v3beta/`).
pub async fn respond(context: &Rc<ShardContext>, request: Request) -> Response {
    let _ = (context, &request);
    Response::not_found()
}
