//! gRPC status codes by name, the error of one call, and reading `grpc-status` /
//! `grpc-message` from headers or trailers.

use http::HeaderMap;
use std::time::Duration;

/// gRPC `UNIMPLEMENTED`: the server does not serve this method.
pub const CODE_UNIMPLEMENTED: u32 = 12;

/// The canonical name of a gRPC status code.
pub fn code_name(code: u32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES.get(code as usize).copied().unwrap_or("UNKNOWN_CODE")
}

/// Why one call did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The server answered with a non-zero `grpc-status`.
    #[error("gRPC {} ({code}): {message}", code_name(*code))]
    Status { code: u32, message: String },
    /// The connection or stream failed (reset, closed, refused).
    #[error("transport: {0}")]
    Transport(String),
    /// The server broke the gRPC protocol (bad prefix, missing status, undecodable message).
    #[error("protocol: {0}")]
    Protocol(String),
    /// No answer within `--request-timeout`.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

impl CallError {
    pub fn is_unimplemented(&self) -> bool {
        matches!(self, CallError::Status { code, .. } if *code == CODE_UNIMPLEMENTED)
    }
}

impl From<h2::Error> for CallError {
    fn from(error: h2::Error) -> CallError {
        CallError::Transport(error.to_string())
    }
}

/// The call's outcome from `grpc-status`, if the header is present: `Ok(())` for 0.
pub fn status_of(headers: &HeaderMap) -> Option<Result<(), CallError>> {
    let value = headers.get("grpc-status")?;
    let code = match value
        .to_str()
        .ok()
        .and_then(|text| text.parse::<u32>().ok())
    {
        Some(code) => code,
        None => {
            return Some(Err(CallError::Protocol(format!(
                "grpc-status {value:?} is not a number"
            ))))
        }
    };
    if code == 0 {
        return Some(Ok(()));
    }
    let message = headers
        .get("grpc-message")
        .map(|raw| percent_decode(raw.as_bytes()))
        .unwrap_or_default();
    Some(Err(CallError::Status { code, message }))
}

/// `grpc-message` is percent-encoded UTF-8; invalid escapes are kept as they are.
fn percent_decode(raw: &[u8]) -> String {
    let mut decoded = Vec::with_capacity(raw.len());
    let mut index = 0;
    while index < raw.len() {
        let byte = raw[index];
        let escape = raw.get(index + 1..index + 3).and_then(|hex| {
            std::str::from_utf8(hex)
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        });
        match (byte, escape) {
            (b'%', Some(value)) => {
                decoded.push(value);
                index += 3;
            }
            _ => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn status_zero_is_success_and_others_carry_their_message() {
        let mut headers = HeaderMap::new();
        assert!(status_of(&headers).is_none());
        headers.insert("grpc-status", HeaderValue::from_static("0"));
        assert!(matches!(status_of(&headers), Some(Ok(()))));
        headers.insert("grpc-status", HeaderValue::from_static("12"));
        headers.insert(
            "grpc-message",
            HeaderValue::from_static("unknown%20service%3A x"),
        );
        match status_of(&headers) {
            Some(Err(error)) => {
                assert!(error.is_unimplemented());
                assert_eq!(
                    error.to_string(),
                    "gRPC UNIMPLEMENTED (12): unknown service: x"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_codes_have_a_name() {
        assert_eq!(code_name(14), "UNAVAILABLE");
        assert_eq!(code_name(99), "UNKNOWN_CODE");
    }
}
