//! `/livez` and `/readyz` (etcd 3.6, `etcdhttp/health.go`), Kubernetes-style probes made of
//! named checks:
//!
//! | probe | checks |
//! | --- | --- |
//! | `/livez` | `serializable_read` |
//! | `/readyz` | `data_corruption`, `serializable_read`, `linearizable_read`, `non_learner` |
//!
//! - `/<probe>` runs every check not named by an `?exclude=` (names that match no check are
//!   ignored); `/<probe>/<check>` runs that one check (`?exclude=` is ignored there); any other
//!   sub-path is 404. GET only (else 405, `Allow: GET`).
//! - All passed: 200, `text/plain; charset=utf-8`, `nosniff`, body `ok\n`, preceded with
//!   `?verbose` (any value) by one `[+]<check> ok` line per check run.
//! - One failed: 503 through `http.Error`, whose body always lists every check run
//!   (`[+]<check> ok` or `[-]<check> failed: <error>`) and ends with an empty line.
//!
//! etcd runs its checks in Go map order (it varies between requests); here they run in the
//! table's order. Failure messages are etcd's: `alarm activated: CORRUPT`, `not supported for
//! learner`, and the read's error (`etcdserver: request timed out` when a linearizable read
//! finds no quorum within the request timeout).

use super::member::{MemberView, ReadFailure};
use super::request::Request;
use super::response::{Response, TEXT_PLAIN_UTF8};
use capstan_proto::etcdserverpb::AlarmType;
use std::fmt::Write;

/// One named check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    DataCorruption,
    SerializableRead,
    LinearizableRead,
    NonLearner,
}

impl Check {
    pub fn name(self) -> &'static str {
        match self {
            Check::DataCorruption => "data_corruption",
            Check::SerializableRead => "serializable_read",
            Check::LinearizableRead => "linearizable_read",
            Check::NonLearner => "non_learner",
        }
    }

    async fn run(self, member: &MemberView) -> Result<(), String> {
        match self {
            Check::DataCorruption => {
                if member
                    .alarms()
                    .iter()
                    .any(|alarm| alarm.alarm == AlarmType::Corrupt as i32)
                {
                    Err("alarm activated: CORRUPT".to_string())
                } else {
                    Ok(())
                }
            }
            Check::SerializableRead => read(member, true).await,
            Check::LinearizableRead => read(member, false).await,
            Check::NonLearner => {
                if member.is_learner() {
                    Err("not supported for learner".to_string())
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// A read check. etcd gives these reads no deadline of their own; the server's request
/// timeout bounds them, and so it does here.
async fn read(member: &MemberView, serializable: bool) -> Result<(), String> {
    match member
        .read(serializable, member.config.request_timeout())
        .await
    {
        Ok(()) => Ok(()),
        Err(ReadFailure::DeadlineExceeded) => Err("etcdserver: request timed out".to_string()),
        Err(ReadFailure::Server(message)) => Err(message),
    }
}

/// `/livez` or `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Livez,
    Readyz,
}

impl Probe {
    /// The probe's name as in its path and in etcd's metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Probe::Livez => "livez",
            Probe::Readyz => "readyz",
        }
    }

    pub fn checks(self) -> &'static [Check] {
        match self {
            Probe::Livez => &[Check::SerializableRead],
            Probe::Readyz => &[
                Check::DataCorruption,
                Check::SerializableRead,
                Check::LinearizableRead,
                Check::NonLearner,
            ],
        }
    }

    /// The probe a path names, and the check of a sub-path (`None` for the probe itself);
    /// `None` overall for a path that is neither.
    pub fn route(path: &str) -> Option<(Probe, Option<Check>)> {
        for probe in [Probe::Livez, Probe::Readyz] {
            let Some(rest) = path
                .strip_prefix('/')
                .and_then(|rest| rest.strip_prefix(probe.name()))
            else {
                continue;
            };
            if rest.is_empty() {
                return Some((probe, None));
            }
            let name = rest.strip_prefix('/')?;
            return probe
                .checks()
                .iter()
                .find(|check| check.name() == name)
                .map(|check| (probe, Some(*check)));
        }
        None
    }
}

pub async fn respond_probe(
    request: &Request,
    member: &MemberView,
    probe: Probe,
    only: Option<Check>,
) -> Response {
    if request.method != "GET" {
        return Response::get_only();
    }
    let query = request.query();
    let checks: Vec<Check> = match only {
        Some(check) => vec![check],
        None => {
            let excluded: Vec<&str> = query.all("exclude").collect();
            probe
                .checks()
                .iter()
                .copied()
                .filter(|check| !excluded.contains(&check.name()))
                .collect()
        }
    };
    let mut report = String::new();
    let mut failed = false;
    for check in checks {
        let outcome = check.run(member).await;
        member
            .counters
            .borrow_mut()
            .record_check(probe.name(), check.name(), outcome.is_ok());
        // Writing to a String cannot fail.
        let _ = match outcome {
            Ok(()) => writeln!(report, "[+]{} ok", check.name()),
            Err(error) => {
                failed = true;
                writeln!(report, "[-]{} failed: {error}", check.name())
            }
        };
    }
    if failed {
        tracing::warn!(probe = probe.name(), %report, "health check failed");
        return Response::go_error(503, &report);
    }
    let mut body = String::new();
    if query.has("verbose") {
        body.push_str(&report);
    }
    body.push_str("ok\n");
    Response::new(200)
        .with_header("Content-Type", TEXT_PLAIN_UTF8)
        .with_header("X-Content-Type-Options", "nosniff")
        .with_body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_probes_and_their_checks() {
        assert_eq!(Probe::route("/livez"), Some((Probe::Livez, None)));
        assert_eq!(
            Probe::route("/livez/serializable_read"),
            Some((Probe::Livez, Some(Check::SerializableRead)))
        );
        assert_eq!(
            Probe::route("/readyz/data_corruption"),
            Some((Probe::Readyz, Some(Check::DataCorruption)))
        );
        assert_eq!(Probe::route("/livez/linearizable_read"), None);
        assert_eq!(Probe::route("/livez/"), None);
        assert_eq!(Probe::route("/readyz/non_learner/x"), None);
        assert_eq!(Probe::route("/livezz"), None);
        assert_eq!(Probe::route("/health"), None);
    }
}
