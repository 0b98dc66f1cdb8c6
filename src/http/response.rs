//! Responses and their bytes on the wire, with Go net/http's conventions: a `Date` header,
//! `Content-Length` for a body known in advance, `Connection: close` when the connection ends
//! after it, no body for HEAD, and `http.Error`'s shape for error bodies.
//!
//! A [`ChunkedBody`] is produced while it is sent (the JSON gateway's streamed calls, and its
//! error answers that end with trailers, as grpc-gateway writes them): the head carries
//! `Transfer-Encoding: chunked` instead of `Content-Length`, each piece is one chunk, and the
//! last chunk carries the trailers. [`super::connection`] writes it piece by piece at the
//! pace the client reads.

use super::request::RequestError;
use futures::stream::LocalBoxStream;
use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;

pub const TEXT_PLAIN_UTF8: &str = "text/plain; charset=utf-8";

/// One response, built by a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The reason phrase; Go's answers to malformed requests append a detail to it.
    pub reason: Cow<'static, str>,
    /// Headers in the order written; `Date`, `Content-Length` and `Connection` are added.
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// The connection closes after this response.
    pub close: bool,
    /// A body sent as it is produced, instead of `body`.
    pub chunked: Option<Rc<ChunkedBody>>,
}

/// A body sent with chunked transfer coding, one chunk per piece the stream yields, then the
/// trailers. Shared by `Rc` so that a `Response` stays `Clone`; the stream is taken once, by
/// the connection that sends it.
pub struct ChunkedBody {
    pieces: RefCell<Option<LocalBoxStream<'static, Vec<u8>>>>,
    /// Trailer fields after the last chunk (announced in a `Trailer` header by the handler).
    pub trailers: Vec<(&'static str, String)>,
}

impl ChunkedBody {
    pub fn new(
        pieces: LocalBoxStream<'static, Vec<u8>>,
        trailers: Vec<(&'static str, String)>,
    ) -> ChunkedBody {
        ChunkedBody {
            pieces: RefCell::new(Some(pieces)),
            trailers,
        }
    }

    /// The pieces, the first time; `None` after.
    pub fn take_pieces(&self) -> Option<LocalBoxStream<'static, Vec<u8>>> {
        self.pieces.borrow_mut().take()
    }

    /// One chunk on the wire: its size in hex, CRLF, the bytes, CRLF. Empty pieces are not
    /// chunks (an empty chunk would end the body): they encode to nothing.
    pub fn encode_chunk(piece: &[u8]) -> Vec<u8> {
        if piece.is_empty() {
            return Vec::new();
        }
        let mut bytes = format!("{:x}\r\n", piece.len()).into_bytes();
        bytes.extend_from_slice(piece);
        bytes.extend_from_slice(b"\r\n");
        bytes
    }

    /// The last chunk and the trailers.
    pub fn encode_end(&self) -> Vec<u8> {
        let mut end = String::from("0\r\n");
        for (name, value) in &self.trailers {
            push_header(&mut end, name, value);
        }
        end.push_str("\r\n");
        end.into_bytes()
    }
}

impl std::fmt::Debug for ChunkedBody {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ChunkedBody")
            .field("trailers", &self.trailers)
            .finish_non_exhaustive()
    }
}

/// Two chunked bodies are equal only when they are the same body.
impl PartialEq for ChunkedBody {
    fn eq(&self, other: &ChunkedBody) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for ChunkedBody {}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            reason: Cow::Borrowed(reason_phrase(status)),
            headers: Vec::new(),
            body: Vec::new(),
            close: false,
            chunked: None,
        }
    }

    /// The body becomes `pieces`, sent chunked, then `trailers`.
    pub fn with_chunked_body(
        mut self,
        pieces: LocalBoxStream<'static, Vec<u8>>,
        trailers: Vec<(&'static str, String)>,
    ) -> Response {
        self.body.clear();
        self.chunked = Some(Rc::new(ChunkedBody::new(pieces, trailers)));
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }

    /// Go's `http.Error(w, message, status)`: plain text, `nosniff`, the message and a
    /// newline.
    pub fn go_error(status: u16, message: &str) -> Response {
        Response::new(status)
            .with_header("Content-Type", TEXT_PLAIN_UTF8)
            .with_header("X-Content-Type-Options", "nosniff")
            .with_body(format!("{message}\n"))
    }

    /// Go's `http.NotFound`.
    pub fn not_found() -> Response {
        Response::go_error(404, "404 page not found")
    }

    /// What etcd's GET-only handlers answer to any other method.
    pub fn get_only() -> Response {
        let mut response = Response::go_error(405, "Method Not Allowed");
        response.headers.insert(0, ("Allow", "GET".to_string()));
        response
    }

    /// Go's answer to a request it could not read, if any (a timeout or a broken stream just
    /// closes the connection).
    pub fn for_request_error(error: &RequestError) -> Option<Response> {
        let (status, detail) = match error {
            RequestError::BadRequest(detail) => (400, *detail),
            RequestError::HeadTooLarge => (431, None),
            RequestError::VersionNotSupported => (505, Some("unsupported protocol version")),
            RequestError::UnsupportedTransferEncoding => {
                let mut response = Response::new(501)
                    .with_header("Content-Type", TEXT_PLAIN_UTF8)
                    .with_body("Unsupported transfer encoding");
                response.close = true;
                return Some(response);
            }
            RequestError::BodyTooLarge => (413, None),
            RequestError::TimedOut | RequestError::Io => return None,
        };
        let mut reason = reason_phrase(status).to_string();
        if let Some(detail) = detail {
            reason.push_str(": ");
            reason.push_str(detail);
        }
        let mut response = Response::new(status)
            .with_header("Content-Type", TEXT_PLAIN_UTF8)
            .with_body(format!("{status} {reason}"));
        response.reason = Cow::Owned(reason);
        response.close = true;
        Some(response)
    }

    /// The bytes of this response to a request of HTTP/1.`minor_version`; no body when
    /// `head_only` (HEAD), though `Content-Length` still tells the body's length. For a
    /// chunked body only the head: the connection sends the chunks (an HTTP/1.0 client gets
    /// them unframed, ended by the close, as Go does).
    pub fn encode(&self, minor_version: u8, head_only: bool, close: bool, date: &str) -> Vec<u8> {
        let mut head = String::with_capacity(256);
        head.push_str(if minor_version == 0 {
            "HTTP/1.0 "
        } else {
            "HTTP/1.1 "
        });
        head.push_str(&self.status.to_string());
        head.push(' ');
        head.push_str(&self.reason);
        head.push_str("\r\n");
        for (name, value) in &self.headers {
            push_header(&mut head, name, value);
        }
        push_header(&mut head, "Date", date);
        if self.chunked.is_none() {
            push_header(&mut head, "Content-Length", &self.body.len().to_string());
        }
        if close {
            push_header(&mut head, "Connection", "close");
        } else if minor_version == 0 {
            push_header(&mut head, "Connection", "keep-alive");
        }
        if self.chunked.is_some() && minor_version > 0 {
            push_header(&mut head, "Transfer-Encoding", "chunked");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if !head_only && self.chunked.is_none() {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

/// Writes `name: value`, with any line break in `value` (never expected) replaced so that a
/// header can never split the head.
fn push_header(head: &mut String, name: &str, value: &str) {
    head.push_str(name);
    head.push_str(": ");
    head.extend(
        value
            .chars()
            .map(|c| if c == '\r' || c == '\n' { ' ' } else { c }),
    );
    head.push_str("\r\n");
}

/// The standard reason phrase of `status` (those this server sends).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream::StreamExt;

    #[test]
    fn encodes_like_go() {
        let response = Response::get_only();
        let bytes = response.encode(1, false, false, "Mon, 07 Dec 2026 20:11:26 GMT");
        assert_eq!(
            String::from_utf8(bytes).expect("ascii"),
            "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\n\
             Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n\
             Date: Mon, 07 Dec 2026 20:11:26 GMT\r\nContent-Length: 19\r\n\r\n\
             Method Not Allowed\n"
        );
        let head_only = Response::not_found().encode(0, true, true, "d");
        assert_eq!(
            String::from_utf8(head_only).expect("ascii"),
            "HTTP/1.0 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n\
             X-Content-Type-Options: nosniff\r\nDate: d\r\nContent-Length: 19\r\n\
             Connection: close\r\n\r\n"
        );
    }

    #[test]
    fn chunked_bodies_encode_like_go() {
        let response = Response::new(400)
            .with_header("Content-Type", "application/json")
            .with_header("Trailer", "Grpc-Trailer-Content-Type")
            .with_chunked_body(
                futures::stream::empty().boxed_local(),
                vec![("Grpc-Trailer-Content-Type", "application/grpc".to_string())],
            );
        assert_eq!(
            String::from_utf8(response.encode(1, false, true, "d")).expect("ascii"),
            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\
             Trailer: Grpc-Trailer-Content-Type\r\nDate: d\r\nConnection: close\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        );
        assert_eq!(
            ChunkedBody::encode_chunk(b"{}\n"),
            b"3\r\n{}\n\r\n".to_vec()
        );
        assert!(ChunkedBody::encode_chunk(b"").is_empty());
        let body = response.chunked.as_ref().expect("chunked");
        assert_eq!(
            body.encode_end(),
            b"0\r\nGrpc-Trailer-Content-Type: application/grpc\r\n\r\n".to_vec()
        );
        assert!(body.take_pieces().is_some());
        assert!(body.take_pieces().is_none(), "sent once");
        // HTTP/1.0 has no chunked coding: the body is unframed and ends with the connection.
        let head = String::from_utf8(response.encode(0, false, true, "d")).expect("ascii");
        assert!(!head.contains("Transfer-Encoding") && !head.contains("Content-Length"));
    }

    #[test]
    fn request_errors_get_gos_answers() {
        let response = Response::for_request_error(&RequestError::BadRequest(Some(
            "missing required Host header",
        )))
        .expect("an answer");
        assert_eq!(response.reason, "Bad Request: missing required Host header");
        assert_eq!(
            response.body,
            b"400 Bad Request: missing required Host header".to_vec()
        );
        assert!(response.close);
        let response = Response::for_request_error(&RequestError::HeadTooLarge).expect("an answer");
        assert_eq!(
            response.body,
            b"431 Request Header Fields Too Large".to_vec()
        );
        assert!(Response::for_request_error(&RequestError::TimedOut).is_none());
    }
}
