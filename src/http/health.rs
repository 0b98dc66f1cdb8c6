//! `/health`, as etcd 3.6 answers it (`etcdhttp/health.go`):
//!
//! - GET only (anything else: 405 `Method Not Allowed`, `Allow: GET`);
//! - checks in order: alarms (skipping those named by `?exclude=`), a leader (skipped with
//!   `?serializable=true`), then a `Range{keys_only, limit 1}` (serializable with
//!   `?serializable=true`) within the request timeout;
//! - healthy: 200 and `{"health":"true","reason":""}` (no newline, `text/plain`);
//!   unhealthy: 503 through `http.Error`, i.e. the JSON and a newline, with `nosniff`.
//!   Reasons: `ALARM NOSPACE`, `ALARM CORRUPT`, `ALARM UNKNOWN`, `RAFT NO LEADER`,
//!   `RANGE ERROR:<error>` (`context deadline exceeded` when the read times out).

use super::member::{MemberView, ReadFailure};
use super::request::Request;
use super::response::{Response, TEXT_PLAIN_UTF8};
use capstan_proto::etcdserverpb::AlarmType;

/// The verdict of one `/health` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub healthy: bool,
    pub reason: String,
}

impl Health {
    fn ok() -> Health {
        Health {
            healthy: true,
            reason: String::new(),
        }
    }

    fn failed(reason: impl Into<String>) -> Health {
        Health {
            healthy: false,
            reason: reason.into(),
        }
    }

    /// etcd's JSON: `{"health":"true","reason":""}`.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"health\":\"{}\",\"reason\":{}}}",
            self.healthy,
            json_string(&self.reason)
        )
    }
}

pub async fn respond_health(request: &Request, member: &MemberView) -> Response {
    if request.method != "GET" {
        return Response::get_only();
    }
    let query = request.query();
    let excluded: Vec<&str> = query.all("exclude").collect();
    let serializable = query.first("serializable") == Some("true");
    let health = check_health(member, &excluded, serializable).await;
    {
        let mut counters = member.counters.borrow_mut();
        if health.healthy {
            counters.health_success += 1;
        } else {
            counters.health_failures += 1;
        }
    }
    if !health.healthy {
        tracing::warn!(reason = %health.reason, "serving /health false");
        return Response::go_error(503, &health.to_json());
    }
    Response::new(200)
        .with_header("Content-Type", TEXT_PLAIN_UTF8)
        .with_body(health.to_json())
}

async fn check_health(member: &MemberView, excluded: &[&str], serializable: bool) -> Health {
    for alarm in member.alarms() {
        let name = AlarmType::try_from(alarm.alarm)
            .map(|alarm| alarm.as_str_name())
            .unwrap_or("");
        if excluded.contains(&name) {
            continue;
        }
        return Health::failed(match AlarmType::try_from(alarm.alarm) {
            Ok(AlarmType::Nospace) => "ALARM NOSPACE",
            Ok(AlarmType::Corrupt) => "ALARM CORRUPT",
            _ => "ALARM UNKNOWN",
        });
    }
    if !serializable && member.leader_id() == raft::INVALID_ID {
        return Health::failed("RAFT NO LEADER");
    }
    match member
        .read(serializable, member.config.request_timeout())
        .await
    {
        Ok(()) => Health::ok(),
        Err(ReadFailure::DeadlineExceeded) => {
            Health::failed("RANGE ERROR:context deadline exceeded")
        }
        // The read index's own timeout races the request's deadline (both are the request
        // timeout); etcd's context wins that race.
        Err(ReadFailure::Server(message)) if message == "etcdserver: request timed out" => {
            Health::failed("RANGE ERROR:context deadline exceeded")
        }
        Err(ReadFailure::Server(message)) => Health::failed(format!("RANGE ERROR:{message}")),
    }
}

/// `text` as a JSON string the way Go's `encoding/json` writes it (HTML-safe: `<`, `>`, `&`,
/// U+2028 and U+2029 escaped too).
pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_etcds() {
        assert_eq!(Health::ok().to_json(), r#"{"health":"true","reason":""}"#);
        assert_eq!(
            Health::failed("RAFT NO LEADER").to_json(),
            r#"{"health":"false","reason":"RAFT NO LEADER"}"#
        );
        assert_eq!(
            json_string("a\"b\\<c>\n\u{1}"),
            r#""a\"b\\\u003cc\u003e\n\u0001""#
        );
    }
}
