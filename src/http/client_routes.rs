//! The HTTP/1.1 routes of a client port (`--listen-client-urls`, or the
//! `--listen-client-http-urls` when given), as etcd 3.6 serves them there:
//!
//! | path | answer |
//! | --- | --- |
//! | `/health` | [`super::health`] |
//! | `/livez[/<check>]`, `/readyz[/<check>]` | [`super::checks`] |
//! | `/metrics` | [`super::metrics`] |
//! | `/version` | [`super::version`] |
//! | `/v3/...` (and `/v3beta/...`, rewritten to `/v3/`) | the JSON gateway ([`super::gateway`]); `404 page not found` with `--enable-grpc-gateway=false` |
//! | `/v3` | redirected (307) to `/v3/` while the gateway is on (Go's `ServeMux` for a subtree) |
//! | anything else | `404 page not found` |
//!
//! Before the routes, etcd's access controller (`embed/serve.go`): `/v3beta/` becomes `/v3/`,
//! and with the default `--cors=*` every answer carries the three `Access-Control-Allow-*`
//! headers and any `OPTIONS` request is answered 200 with an empty body. Then Go's `ServeMux`
//! redirects (307) a path that is not clean (see [`super::routes`]).
//!
//! Answers to requests that could not be read (Go's 400, 431, ...) come from
//! [`super::connection`] and carry no CORS headers, as etcd's do not.
//!
//! etcd also serves `/debug/vars` (Go's expvar) here; Capstan does not (404).

use super::checks::{respond_probe, Probe};
use super::connection::Handler;
use super::health::respond_health;
use super::member::MemberView;
use super::metrics::respond_metrics;
use super::request::Request;
use super::response::Response;
use super::routes::{clean_path, redirect};
use super::version::respond_version;
use crate::shard::ShardContext;
use std::rc::Rc;

/// What etcd's access controller adds to every answer with `--cors=*` (the default), in the
/// order Go writes them (sorted, so before any other header a handler sets).
const CORS_HEADERS: [(&str, &str); 3] = [
    (
        "Access-Control-Allow-Headers",
        "accept, content-type, authorization",
    ),
    (
        "Access-Control-Allow-Methods",
        "POST, GET, OPTIONS, PUT, DELETE",
    ),
    ("Access-Control-Allow-Origin", "*"),
];

/// The prefix of the JSON gateway's paths, and the deprecated one rewritten to it.
const GATEWAY_PREFIX: &str = "/v3/";
const GATEWAY_BETA_PREFIX: &str = "/v3beta/";

/// The HTTP/1.1 handler of one shard's client listeners.
/// Room in a gateway body for JSON field names and punctuation beyond the base64 of its bytes.
pub const GATEWAY_JSON_SLACK_BYTES: usize = 64 * 1024;

pub struct ClientRoutes {
    member: MemberView,
    context: Rc<ShardContext>,
    /// `--enable-grpc-gateway`.
    gateway_enabled: bool,
}

impl ClientRoutes {
    /// The routes of the shard whose context is `context` (which already serves).
    pub fn new(context: Rc<ShardContext>) -> ClientRoutes {
        let member = MemberView::new(
            context.config.clone(),
            context.raft_status.clone(),
            context.read_view.clone(),
            context.members.clone(),
            context.durable.stats.clone(),
        );
        *member.context.borrow_mut() = Some(context.clone());
        ClientRoutes {
            gateway_enabled: context.config.enable_grpc_gateway,
            member,
            context,
        }
    }

    async fn route(&self, mut request: Request) -> Response {
        if request.method == "OPTIONS" {
            return Response::new(200);
        }
        if let Some(rest) = request.path.strip_prefix(GATEWAY_BETA_PREFIX) {
            request.path = format!("{GATEWAY_PREFIX}{rest}");
        }
        let clean = clean_path(&request.path);
        if clean != request.path {
            return redirect(&clean, &request);
        }
        let member = &self.member;
        match request.path.as_str() {
            "/health" => respond_health(&request, member).await,
            "/version" => respond_version(&request),
            "/metrics" => respond_metrics(member),
            "/v3" if self.gateway_enabled => redirect(GATEWAY_PREFIX, &request),
            path if path.starts_with(GATEWAY_PREFIX) => {
                if self.gateway_enabled {
                    // The JSON gateway (`src/http/gateway/`).
                    super::gateway::respond(&self.context, request).await
                } else {
                    Response::not_found()
                }
            }
            path => match Probe::route(path) {
                Some((probe, only)) => respond_probe(&request, member, probe, only).await,
                None => Response::not_found(),
            },
        }
    }
}

impl Handler for ClientRoutes {
    async fn respond(&self, request: Request) -> Response {
        let mut response = self.route(request).await;
        with_cors(&mut response);
        response
    }

    /// A gateway request carries a gRPC request (up to `--max-request-bytes` plus gRPC's
    /// overhead, as on the gRPC port) as JSON: bytes in base64 (4/3) plus field names.
    fn body_bytes_max(&self) -> usize {
        let grpc_bytes_max = self.context.config.grpc_receive_bytes_max();
        grpc_bytes_max.saturating_mul(3) / 2 + GATEWAY_JSON_SLACK_BYTES
    }
}

/// Puts etcd's CORS headers first in `response`.
fn with_cors(response: &mut Response) {
    let cors = CORS_HEADERS
        .iter()
        .map(|(name, value)| (*name, value.to_string()));
    response.headers.splice(0..0, cors);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_headers_come_first() {
        let mut response = Response::get_only();
        with_cors(&mut response);
        let names: Vec<&str> = response.headers.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            [
                "Access-Control-Allow-Headers",
                "Access-Control-Allow-Methods",
                "Access-Control-Allow-Origin",
                "Allow",
                "Content-Type",
                "X-Content-Type-Options"
            ]
        );
    }
}
