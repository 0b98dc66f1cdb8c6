//! Reading one HTTP/1.1 request from a stream: the head with `httparse`, then the body
//! (`Content-Length` or chunked), every part bounded in size and time.
//!
//! The head is parsed only once its end (an empty line) has arrived, so a client trickling a
//! large head costs one scan of each new byte, not a re-parse per read. Bytes after the
//! request stay in the [`Inbound`] buffer for the next one (pipelining).

use super::query::{percent_decode, Query};
use super::{
    MAX_REQUEST_BODY_BYTES, MAX_REQUEST_HEADERS, MAX_REQUEST_HEAD_BYTES, REQUEST_BODY_TIMEOUT,
    REQUEST_HEAD_TIMEOUT,
};
use futures::io::{AsyncRead, AsyncReadExt};
use std::time::{Duration, Instant};

/// Bytes asked of the stream per read.
const READ_CHUNK_BYTES: usize = 16 * 1024;
/// Longest chunk-size line or trailer line of a chunked body.
const MAX_CHUNK_LINE_BYTES: usize = 4096;
/// Most trailer lines after a chunked body.
const MAX_TRAILER_LINES: usize = 64;

/// One parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The target's path, percent-decoded (Go's `URL.Path`); `/` for an absolute-form target
    /// without one.
    pub path: String,
    /// The target's query as sent, without the `?`.
    pub raw_query: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Header names as sent, values as raw bytes.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_slice())
    }

    /// Every value of header `name`.
    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(known, _)| known.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_slice())
    }

    pub fn query(&self) -> Query {
        Query::parse(&self.raw_query)
    }

    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// Whether a `Connection` header lists `token`.
    pub fn connection_has(&self, token: &str) -> bool {
        self.header_values("connection").any(|value| {
            value
                .split(|byte| *byte == b',')
                .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    }

    /// Whether the connection stays open after this request: HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    pub fn keeps_alive(&self) -> bool {
        if self.connection_has("close") {
            return false;
        }
        self.minor_version >= 1 || self.connection_has("keep-alive")
    }
}

/// Why no request could be read. Each maps to Go's answer (or to none: the connection just
/// closes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// Malformed; the detail goes after `400 Bad Request: ` as Go writes it.
    BadRequest(Option<&'static str>),
    HeadTooLarge,
    VersionNotSupported,
    UnsupportedTransferEncoding,
    BodyTooLarge,
    /// The client took too long: closed without an answer, as Go does.
    TimedOut,
    /// The stream failed or ended inside a request: closed without an answer.
    Io,
}

/// What reading the next request gave.
#[derive(Debug)]
pub enum ReadOutcome {
    Request(Request),
    /// The client closed (or stayed silent past the idle timeout) between requests.
    Closed,
    Failed(RequestError),
}

/// The bytes read from one connection and not yet used.
pub struct Inbound {
    buffer: Vec<u8>,
    /// The largest request body read; beyond it the answer is 413.
    body_bytes_max: usize,
}

impl Default for Inbound {
    fn default() -> Inbound {
        Inbound::with_body_limit(MAX_REQUEST_BODY_BYTES)
    }
}

enum Filled {
    Bytes(usize),
    Eof,
    TimedOut,
    Failed,
}

impl Inbound {
    /// An empty buffer that reads request bodies of up to `body_bytes_max` bytes.
    pub fn with_body_limit(body_bytes_max: usize) -> Inbound {
        Inbound {
            buffer: Vec::new(),
            body_bytes_max,
        }
    }

    /// Reads more bytes (at most up to `limit` buffered) before `deadline`.
    async fn fill<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        limit: usize,
        deadline: Instant,
    ) -> Filled {
        let start = self.buffer.len();
        let room = limit.saturating_sub(start).min(READ_CHUNK_BYTES);
        if room == 0 {
            return Filled::Failed;
        }
        self.buffer.resize(start + room, 0);
        let read = futures_lite::future::or(
            async { Some(stream.read(&mut self.buffer[start..]).await) },
            async {
                glommio::timer::sleep(deadline.saturating_duration_since(Instant::now())).await;
                None
            },
        )
        .await;
        let filled = match read {
            None => Filled::TimedOut,
            Some(Ok(0)) => Filled::Eof,
            Some(Ok(count)) => Filled::Bytes(count),
            Some(Err(_)) => Filled::Failed,
        };
        let kept = match filled {
            Filled::Bytes(count) => start + count,
            _ => start,
        };
        self.buffer.truncate(kept);
        filled
    }

    /// Reads the next request: waits up to `idle_timeout` for its first byte, then
    /// [`REQUEST_HEAD_TIMEOUT`] for the rest of its head and [`REQUEST_BODY_TIMEOUT`] for its
    /// body.
    pub async fn next_request<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        idle_timeout: Duration,
    ) -> ReadOutcome {
        if self.buffer.is_empty() {
            match self
                .fill(
                    stream,
                    MAX_REQUEST_HEAD_BYTES,
                    Instant::now() + idle_timeout,
                )
                .await
            {
                Filled::Bytes(_) => {}
                Filled::Eof | Filled::TimedOut | Filled::Failed => return ReadOutcome::Closed,
            }
        }
        let head_deadline = Instant::now() + REQUEST_HEAD_TIMEOUT;
        let mut scanned = 0;
        let head_end = loop {
            if let Some(end) = find_head_end(&self.buffer, scanned) {
                break end;
            }
            scanned = self.buffer.len();
            if self.buffer.len() >= MAX_REQUEST_HEAD_BYTES {
                return ReadOutcome::Failed(RequestError::HeadTooLarge);
            }
            match self
                .fill(stream, MAX_REQUEST_HEAD_BYTES, head_deadline)
                .await
            {
                Filled::Bytes(_) => {}
                Filled::TimedOut => return ReadOutcome::Failed(RequestError::TimedOut),
                Filled::Eof | Filled::Failed => return ReadOutcome::Failed(RequestError::Io),
            }
        };
        let mut request = match parse_head(&self.buffer[..head_end]) {
            Ok(request) => request,
            Err(error) => return ReadOutcome::Failed(error),
        };
        self.buffer.drain(..head_end);
        let framing = match body_framing(&request, self.body_bytes_max) {
            Ok(framing) => framing,
            Err(error) => return ReadOutcome::Failed(error),
        };
        let body_deadline = Instant::now() + REQUEST_BODY_TIMEOUT;
        let body = match framing {
            BodyFraming::None => Ok(Vec::new()),
            BodyFraming::Length(length) => self.read_exact(stream, length, body_deadline).await,
            BodyFraming::Chunked => self.read_chunked(stream, body_deadline).await,
        };
        match body {
            Ok(body) => {
                request.body = body;
                ReadOutcome::Request(request)
            }
            Err(error) => ReadOutcome::Failed(error),
        }
    }

    /// Takes `length` bytes (already checked against the body limit).
    async fn read_exact<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        length: usize,
        deadline: Instant,
    ) -> Result<Vec<u8>, RequestError> {
        while self.buffer.len() < length {
            self.fill_or_fail(stream, length, deadline).await?;
        }
        Ok(self.buffer.drain(..length).collect())
    }

    async fn fill_or_fail<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        limit: usize,
        deadline: Instant,
    ) -> Result<(), RequestError> {
        match self.fill(stream, limit, deadline).await {
            Filled::Bytes(_) => Ok(()),
            Filled::TimedOut => Err(RequestError::TimedOut),
            Filled::Eof | Filled::Failed => Err(RequestError::Io),
        }
    }

    /// Takes one line (without its line end) of at most [`MAX_CHUNK_LINE_BYTES`].
    async fn read_line<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        deadline: Instant,
    ) -> Result<Vec<u8>, RequestError> {
        loop {
            if let Some(newline) = self.buffer.iter().position(|byte| *byte == b'\n') {
                let mut line: Vec<u8> = self.buffer.drain(..=newline).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.buffer.len() > MAX_CHUNK_LINE_BYTES {
                return Err(RequestError::BadRequest(None));
            }
            self.fill_or_fail(stream, MAX_CHUNK_LINE_BYTES + 2, deadline)
                .await?;
        }
    }

    /// A chunked body: `size[;ext] CRLF data CRLF` ... `0 CRLF` trailers `CRLF`.
    async fn read_chunked<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        deadline: Instant,
    ) -> Result<Vec<u8>, RequestError> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line(stream, deadline).await?;
            let size = chunk_size(&line)?;
            if size == 0 {
                break;
            }
            if body.len() + size > self.body_bytes_max {
                return Err(RequestError::BodyTooLarge);
            }
            let data = self.read_exact(stream, size, deadline).await?;
            body.extend_from_slice(&data);
            if !self.read_line(stream, deadline).await?.is_empty() {
                return Err(RequestError::BadRequest(None));
            }
        }
        for _ in 0..MAX_TRAILER_LINES {
            if self.read_line(stream, deadline).await?.is_empty() {
                return Ok(body);
            }
        }
        Err(RequestError::BadRequest(None))
    }
}

/// The hex size at the start of a chunk-size line.
fn chunk_size(line: &[u8]) -> Result<usize, RequestError> {
    let digits = line
        .split(|byte| *byte == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if digits.is_empty() || digits.len() > 8 {
        return Err(RequestError::BadRequest(None));
    }
    let text = std::str::from_utf8(digits).map_err(|_| RequestError::BadRequest(None))?;
    usize::from_str_radix(text, 16).map_err(|_| RequestError::BadRequest(None))
}

/// The end of the head (just past its empty line), looking at bytes from about `from` on.
fn find_head_end(buffer: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    let mut index = start;
    while index < buffer.len() {
        if buffer[index] == b'\n' {
            if buffer.get(index + 1) == Some(&b'\n') {
                return Some(index + 2);
            }
            if buffer.get(index + 1) == Some(&b'\r') && buffer.get(index + 2) == Some(&b'\n') {
                return Some(index + 3);
            }
        }
        index += 1;
    }
    None
}

fn parse_head(head: &[u8]) -> Result<Request, RequestError> {
    let mut headers = vec![httparse::EMPTY_HEADER; MAX_REQUEST_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(RequestError::BadRequest(None)),
        Err(httparse::Error::TooManyHeaders) => return Err(RequestError::HeadTooLarge),
        // Go answers the HTTP/2 preface (h2c prior knowledge) with a plain 400.
        Err(httparse::Error::Version) if head.starts_with(b"PRI * HTTP/2.0") => {
            return Err(RequestError::BadRequest(None))
        }
        Err(httparse::Error::Version) => return Err(RequestError::VersionNotSupported),
        Err(_) => return Err(RequestError::BadRequest(None)),
    }
    let (Some(method), Some(target), Some(minor_version)) =
        (parsed.method, parsed.path, parsed.version)
    else {
        return Err(RequestError::BadRequest(None));
    };
    let (path, raw_query) = split_target(target)?;
    let request = Request {
        method: method.to_string(),
        path,
        raw_query,
        minor_version,
        headers: parsed
            .headers
            .iter()
            .map(|header| (header.name.to_string(), header.value.to_vec()))
            .collect(),
        body: Vec::new(),
    };
    if request.minor_version >= 1 {
        match request.header_values("host").count() {
            0 => {
                return Err(RequestError::BadRequest(Some(
                    "missing required Host header",
                )))
            }
            1 => {}
            _ => return Err(RequestError::BadRequest(Some("too many Host headers"))),
        }
    }
    Ok(request)
}

/// The decoded path and the raw query of an origin-form (`/path?query`) or absolute-form
/// (`http://host/path?query`) target.
fn split_target(target: &str) -> Result<(String, String), RequestError> {
    let after_authority = if target.starts_with('/') {
        target
    } else {
        let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
        let rest = if lower.starts_with("http://") {
            &target[7..]
        } else if lower.starts_with("https://") {
            &target[8..]
        } else {
            return Err(RequestError::BadRequest(None));
        };
        match rest.find(['/', '?']) {
            Some(index) => &rest[index..],
            None => "",
        }
    };
    let (raw_path, raw_query) = match after_authority.split_once('?') {
        Some((path, query)) => (path, query),
        None => (after_authority, ""),
    };
    let decoded = percent_decode(raw_path, false).ok_or(RequestError::BadRequest(None))?;
    let mut path = String::from_utf8_lossy(&decoded).into_owned();
    if path.is_empty() {
        path.push('/');
    }
    Ok((path, raw_query.to_string()))
}

/// How the body of a request is delimited.
#[derive(Debug, PartialEq, Eq)]
enum BodyFraming {
    None,
    Length(usize),
    Chunked,
}

fn body_framing(request: &Request, body_bytes_max: usize) -> Result<BodyFraming, RequestError> {
    let mut encodings = request.header_values("transfer-encoding").peekable();
    let chunked = if encodings.peek().is_some() {
        let all: Vec<&[u8]> = encodings.collect();
        if all.len() != 1 || !all[0].trim_ascii().eq_ignore_ascii_case(b"chunked") {
            return Err(RequestError::UnsupportedTransferEncoding);
        }
        true
    } else {
        false
    };
    let mut length = None;
    for value in request.header_values("content-length") {
        let text = std::str::from_utf8(value.trim_ascii()).map_err(|_| bad_length())?;
        if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(bad_length());
        }
        let parsed: u64 = text.parse().map_err(|_| bad_length())?;
        if length.is_some_and(|known| known != parsed) {
            return Err(bad_length());
        }
        length = Some(parsed);
    }
    match (chunked, length) {
        // Both at once is a request-smuggling shape: refused.
        (true, Some(_)) => Err(RequestError::BadRequest(None)),
        (true, None) => Ok(BodyFraming::Chunked),
        (false, None) | (false, Some(0)) => Ok(BodyFraming::None),
        (false, Some(length)) => match usize::try_from(length) {
            Ok(length) if length <= body_bytes_max => Ok(BodyFraming::Length(length)),
            _ => Err(RequestError::BodyTooLarge),
        },
    }
}

fn bad_length() -> RequestError {
    RequestError::BadRequest(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Request, RequestError> {
        parse_head(text.as_bytes())
    }

    #[test]
    fn parses_origin_and_absolute_targets() {
        let request = head("GET /heal%74h?exclude=NOSPACE HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("valid request");
        assert_eq!(request.path, "/health");
        assert_eq!(request.raw_query, "exclude=NOSPACE");
        let request = head("GET http://x:1/livez?verbose HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("absolute form");
        assert_eq!(request.path, "/livez");
        assert_eq!(request.raw_query, "verbose");
        let request = head("GET http://x HTTP/1.1\r\nHost: x\r\n\r\n").expect("no path");
        assert_eq!(request.path, "/");
    }

    #[test]
    fn refuses_what_go_refuses() {
        assert_eq!(
            head("GET /health HTTP/1.1\r\n\r\n"),
            Err(RequestError::BadRequest(Some(
                "missing required Host header"
            )))
        );
        assert_eq!(
            head("GET /health HTTP/2.0\r\nHost: x\r\n\r\n"),
            Err(RequestError::VersionNotSupported)
        );
        assert_eq!(
            head("GET * HTTP/1.1\r\nHost: x\r\n\r\n"),
            Err(RequestError::BadRequest(None))
        );
        assert_eq!(
            head("GET /health%zz HTTP/1.1\r\nHost: x\r\n\r\n"),
            Err(RequestError::BadRequest(None))
        );
        assert_eq!(head("garbage\r\n\r\n"), Err(RequestError::BadRequest(None)));
        assert!(head("GET /health HTTP/1.0\r\n\r\n").is_ok());
        assert_eq!(
            head("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            Err(RequestError::BadRequest(None))
        );
    }

    #[test]
    fn body_framing_follows_the_headers() {
        let with = |extra: &str| {
            let request =
                head(&format!("POST / HTTP/1.1\r\nHost: x\r\n{extra}\r\n")).expect("valid head");
            body_framing(&request, MAX_REQUEST_BODY_BYTES)
        };
        assert_eq!(with(""), Ok(BodyFraming::None));
        assert_eq!(with("Content-Length: 5\r\n"), Ok(BodyFraming::Length(5)));
        assert_eq!(
            with("Content-Length: abc\r\n"),
            Err(RequestError::BadRequest(None))
        );
        assert_eq!(
            with("Content-Length: 5\r\nContent-Length: 6\r\n"),
            Err(RequestError::BadRequest(None))
        );
        assert_eq!(
            with("Content-Length: 99999999999999999999999\r\n"),
            Err(RequestError::BadRequest(None))
        );
        assert_eq!(
            with("Content-Length: 2000000\r\n"),
            Err(RequestError::BodyTooLarge)
        );
        assert_eq!(
            with("Transfer-Encoding: chunked\r\n"),
            Ok(BodyFraming::Chunked)
        );
        assert_eq!(
            with("Transfer-Encoding: gzip\r\n"),
            Err(RequestError::UnsupportedTransferEncoding)
        );
    }

    #[test]
    fn finds_the_end_of_a_head_across_reads() {
        let text = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nrest";
        assert_eq!(find_head_end(text, 0), Some(text.len() - 4));
        assert_eq!(find_head_end(text, 26), Some(text.len() - 4));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\nHost: x\n\n", 0), Some(24));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: x\r\n", 0), None);
    }

    #[test]
    fn keep_alive_follows_version_and_connection() {
        let request = head("GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("valid");
        assert!(request.keeps_alive());
        let request =
            head("GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n").expect("valid");
        assert!(!request.keeps_alive());
        let request = head("GET / HTTP/1.0\r\n\r\n").expect("valid");
        assert!(!request.keeps_alive());
        let request = head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").expect("valid");
        assert!(request.keeps_alive());
    }

    #[test]
    fn chunk_sizes_are_hex_and_bounded() {
        assert_eq!(chunk_size(b"1a;name=value"), Ok(26));
        assert_eq!(chunk_size(b"0"), Ok(0));
        assert!(chunk_size(b"").is_err());
        assert!(chunk_size(b"zz").is_err());
        assert!(chunk_size(b"fffffffff").is_err());
    }
}
