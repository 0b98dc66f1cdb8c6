//! Errors as grpc-gateway v1 (the gateway of etcd 3.4 and 3.5) writes them.
//!
//! - A gRPC status from the server (`etcdserver: requested lease not found`): the HTTP status
//!   of [`http_status_of`], body `{"error":M,"message":M,"code":N}`, sent chunked and ended
//!   with the trailer `Grpc-Trailer-Content-Type: application/grpc` (grpc-gateway forwards
//!   the call's trailer metadata, announced in a `Trailer` header).
//! - An error of the gateway itself (a body that is not JSON): the same body with a
//!   `Content-Length` and no trailer; a request it cannot decode is `InvalidArgument` (400),
//!   the first message of a stream it cannot decode is `Unknown` (500), as grpc-gateway's
//!   generated handlers answer them.
//! - An error after a stream's first message: one more piece,
//!   `{"error":{"grpc_code":N,"http_code":H,"message":M,"http_status":T}}`.
//! - A path it does not serve: Go's `http.Error` with `Not Found` (404); a served path with
//!   another method than POST: `Method Not Allowed` (405).
//!
//! etcd 3.6's gateway (grpc-gateway v2) writes `{"code":N, "message":M}` instead, answers
//! `FailedPrecondition` with 400 rather than 412, and another method with 501; Capstan answers
//! as etcd 3.4 does.

use super::codec::json_string;
use crate::grpc::{Code, Status};
use crate::http::response::{reason_phrase, Response};
use futures::stream::StreamExt;

pub const APPLICATION_JSON: &str = "application/json";

/// grpc-gateway's `HTTPStatusFromCode` (v1).
pub fn http_status_of(code: Code) -> u16 {
    match code {
        Code::Ok => 200,
        Code::Cancelled => 408,
        Code::Unknown => 500,
        Code::InvalidArgument => 400,
        Code::DeadlineExceeded => 504,
        Code::NotFound => 404,
        Code::AlreadyExists => 409,
        Code::PermissionDenied => 403,
        Code::Unauthenticated => 401,
        Code::ResourceExhausted => 429,
        Code::FailedPrecondition => 412,
        Code::Aborted => 409,
        Code::OutOfRange => 400,
        Code::Unimplemented => 501,
        Code::Internal => 500,
        Code::Unavailable => 503,
        Code::DataLoss => 500,
    }
}

/// `{"error":M,"message":M,"code":N}`.
pub fn error_body(status: &Status) -> Vec<u8> {
    let message = json_string(&status.message);
    format!(
        "{{\"error\":{message},\"message\":{message},\"code\":{}}}",
        status.code as u8
    )
    .into_bytes()
}

/// A status the server returned for a call.
pub fn from_server(status: &Status) -> Response {
    let body = error_body(status);
    Response::new(http_status_of(status.code))
        .with_header("Content-Type", APPLICATION_JSON)
        .with_header("Trailer", "Grpc-Trailer-Content-Type")
        .with_chunked_body(
            futures::stream::iter([body]).boxed_local(),
            vec![("Grpc-Trailer-Content-Type", "application/grpc".to_string())],
        )
}

/// An error of the gateway itself, before any call.
pub fn from_gateway(status: &Status) -> Response {
    Response::new(http_status_of(status.code))
        .with_header("Content-Type", APPLICATION_JSON)
        .with_body(error_body(status))
}

/// A request body that is not the request message.
pub fn undecodable(message: String) -> Response {
    from_gateway(&Status::new(Code::InvalidArgument, message))
}

/// The piece a stream ends with when its call fails after it sent a message.
pub fn stream_error_piece(status: &Status) -> Vec<u8> {
    let http_code = http_status_of(status.code);
    format!(
        "{{\"error\":{{\"grpc_code\":{},\"http_code\":{http_code},\"message\":{},\"http_status\":{}}}}}",
        status.code as u8,
        json_string(&status.message),
        json_string(reason_phrase(http_code)),
    )
    .into_bytes()
}

/// grpc-gateway's answer to a path it has no pattern for.
pub fn not_found() -> Response {
    Response::go_error(404, "Not Found")
}

/// grpc-gateway's answer to a known path with another method.
pub fn method_not_allowed() -> Response {
    Response::go_error(405, "Method Not Allowed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_grpc_gateways() {
        let status = Status::new(Code::NotFound, "etcdserver: requested lease not found");
        assert_eq!(
            String::from_utf8(error_body(&status)).expect("utf-8"),
            "{\"error\":\"etcdserver: requested lease not found\",\
             \"message\":\"etcdserver: requested lease not found\",\"code\":5}"
        );
        assert_eq!(
            String::from_utf8(stream_error_piece(&status)).expect("utf-8"),
            "{\"error\":{\"grpc_code\":5,\"http_code\":404,\
             \"message\":\"etcdserver: requested lease not found\",\"http_status\":\"Not Found\"}}"
        );
        let response = from_server(&status);
        assert_eq!(response.status, 404);
        assert!(response.chunked.is_some());
        assert_eq!(http_status_of(Code::FailedPrecondition), 412);
        assert_eq!(http_status_of(Code::ResourceExhausted), 429);
    }
}
