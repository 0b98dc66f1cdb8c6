//! What the campaign records: every client request with its invocation and response times on
//! the run's clock, and how it ended (an answer, a definite error, or an unknown outcome).

use crate::linearizability::{self, classify_error, ErrorClass};
use std::time::Instant;

/// Nanoseconds since the run started.
pub type Time = u64;
/// A written value: unique per write in a run (see [`ValueSource`]).
pub type Value = u64;

/// A value no client wrote (what a value that does not parse as ours becomes).
pub const FOREIGN_VALUE: Value = u64::MAX;

/// The run's monotonic clock, shared by every task.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    epoch: Instant,
}

impl Clock {
    pub fn start() -> Clock {
        Clock {
            epoch: Instant::now(),
        }
    }

    pub fn now(&self) -> Time {
        self.epoch.elapsed().as_nanos() as Time
    }
}

pub fn ms(time: Time) -> String {
    format!("{:.1} ms", time as f64 / 1e6)
}

/// Hands out the values of one writer: writer `w` writes `(w + 1) * 10^9 + n`.
pub struct ValueSource {
    next: Value,
}

impl ValueSource {
    pub fn new(writer: usize) -> ValueSource {
        ValueSource {
            next: (writer as Value + 1) * 1_000_000_000,
        }
    }

    pub fn next(&mut self) -> Value {
        self.next += 1;
        self.next
    }
}

pub fn parse_value(bytes: &[u8]) -> Value {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(FOREIGN_VALUE)
}

/// One key as the server returned it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyValue {
    pub key: String,
    pub value: Value,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
}

impl KeyValue {
    pub fn of(kv: &etcd_client::KeyValue) -> KeyValue {
        KeyValue {
            key: String::from_utf8_lossy(kv.key()).into_owned(),
            value: parse_value(kv.value()),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
            version: kv.version(),
            lease: kv.lease(),
        }
    }

    pub fn register(&self) -> linearizability::Kv {
        linearizability::Kv::new(self.value, self.mod_revision)
    }
}

impl std::fmt::Display for KeyValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}={} (create {}, mod {}, version {}",
            self.key, self.value, self.create_revision, self.mod_revision, self.version
        )?;
        if self.lease != 0 {
            write!(f, ", lease {:x}", self.lease)?;
        }
        write!(f, ")")
    }
}

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Put with `prev_kv`; `lease` 0: no lease.
    Put {
        key: String,
        value: Value,
        lease: i64,
    },
    /// Get of one key, linearizable or serializable.
    Get {
        key: String,
        serializable: bool,
    },
    /// Range over a prefix, linearizable or serializable.
    Range {
        prefix: String,
        serializable: bool,
    },
    /// Delete of one key with `prev_kv`.
    Delete {
        key: String,
    },
    /// Txn: if the key holds `expect` (compared by value, or by the mod revision the client saw
    /// with it when `compare_mod_revision` is set; 0 for an absent key), put `value`; else get.
    Cas {
        key: String,
        expect: Option<Value>,
        compare_mod_revision: Option<i64>,
        value: Value,
    },
    LeaseGrant {
        ttl_seconds: i64,
    },
    LeaseRevoke {
        id: i64,
    },
    /// One keep-alive request on a fresh keep-alive stream.
    LeaseKeepAlive {
        id: i64,
    },
    Compact {
        revision: i64,
        physical: bool,
    },
    Defrag {
        member: usize,
    },
}

impl Request {
    /// The name used in the figures.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Put { lease: 0, .. } => "put",
            Request::Put { .. } => "put-with-lease",
            Request::Get {
                serializable: false,
                ..
            } => "get",
            Request::Get { .. } => "get-serializable",
            Request::Range {
                serializable: false,
                ..
            } => "range-prefix",
            Request::Range { .. } => "range-prefix-serializable",
            Request::Delete { .. } => "delete",
            Request::Cas { .. } => "txn-cas",
            Request::LeaseGrant { .. } => "lease-grant",
            Request::LeaseRevoke { .. } => "lease-revoke",
            Request::LeaseKeepAlive { .. } => "lease-keepalive",
            Request::Compact { .. } => "compact",
            Request::Defrag { .. } => "defrag",
        }
    }

    /// Whether it may change the key space (for the unavailability figures).
    pub fn is_kv_write(&self) -> bool {
        matches!(
            self,
            Request::Put { .. } | Request::Delete { .. } | Request::Cas { .. }
        )
    }

    /// The value it writes, if any.
    pub fn written(&self) -> Option<(&str, Value)> {
        match self {
            Request::Put { key, value, .. } | Request::Cas { key, value, .. } => {
                Some((key, *value))
            }
            _ => None,
        }
    }
}

/// What the server answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Put {
        prev: Option<KeyValue>,
        revision: i64,
    },
    /// A get or a range.
    Range {
        kvs: Vec<KeyValue>,
        revision: i64,
    },
    Delete {
        prev: Vec<KeyValue>,
        deleted: i64,
        revision: i64,
    },
    /// `current`: what the else branch's get returned.
    Cas {
        succeeded: bool,
        current: Option<KeyValue>,
        revision: i64,
    },
    LeaseGrant {
        id: i64,
        revision: i64,
    },
    LeaseRevoke {
        revision: i64,
    },
    /// `ttl` 0: the lease was not found.
    LeaseKeepAlive {
        ttl: i64,
        revision: i64,
    },
    Compact {
        revision: i64,
    },
    Defrag,
}

impl Response {
    pub fn revision(&self) -> Option<i64> {
        match *self {
            Response::Put { revision, .. }
            | Response::Range { revision, .. }
            | Response::Delete { revision, .. }
            | Response::Cas { revision, .. }
            | Response::LeaseGrant { revision, .. }
            | Response::LeaseRevoke { revision }
            | Response::LeaseKeepAlive { revision, .. }
            | Response::Compact { revision } => Some(revision),
            Response::Defrag => None,
        }
    }
}

/// How a request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok(Response),
    /// An error that says the request did not happen ([`classify_error`]).
    Failed(String),
    /// It may or may not have happened: an unknown error or the client's deadline.
    Unknown(String),
}

impl Outcome {
    /// The name used in the figures.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Ok(_) => "ok",
            Outcome::Failed(_) => "definite error",
            Outcome::Unknown(_) => "unknown",
        }
    }

    pub fn response(&self) -> Option<&Response> {
        match self {
            Outcome::Ok(response) => Some(response),
            _ => None,
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            Outcome::Ok(_) => None,
            Outcome::Failed(error) | Outcome::Unknown(error) => Some(error),
        }
    }

    /// The outcome of an error from etcd-client, classified by the one table.
    pub fn of_error(error: &etcd_client::Error) -> Outcome {
        let (code, message) = match error {
            etcd_client::Error::GRpcStatus(status) => {
                (Some(i32::from(status.code())), status.message().to_string())
            }
            other => (None, other.to_string()),
        };
        let text = match code {
            Some(code) => format!("code {code}: {}", short(&message)),
            None => short(&message),
        };
        match classify_error(code, &message) {
            ErrorClass::Definite => Outcome::Failed(text),
            ErrorClass::Unknown => Outcome::Unknown(text),
        }
    }
}

fn short(text: &str) -> String {
    match text.char_indices().nth(160) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// Who sent a request: a traffic client, the maintenance task, or the checks at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Actor {
    Client(usize),
    Maintenance,
    Final,
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::Client(c) => write!(f, "c{c}"),
            Actor::Maintenance => write!(f, "maintenance"),
            Actor::Final => write!(f, "final"),
        }
    }
}

/// One request of the history.
#[derive(Clone, Debug)]
pub struct Record {
    pub actor: Actor,
    /// The member it was sent to; `None`: a client over every member.
    pub member: Option<usize>,
    pub call: Time,
    pub ret: Time,
    pub request: Request,
    pub outcome: Outcome,
}

impl Record {
    pub fn describe(&self) -> String {
        let via = match self.member {
            Some(member) => format!("n{}", member + 1),
            None => "any".to_string(),
        };
        let outcome = match &self.outcome {
            Outcome::Ok(response) => format!("{response:?}"),
            Outcome::Failed(error) => format!("FAILED (definite): {error}"),
            Outcome::Unknown(error) => format!("UNKNOWN: {error}"),
        };
        format!(
            "{} via {via} [{}..{}] {:?} -> {outcome}",
            self.actor,
            ms(self.call),
            ms(self.ret),
            self.request
        )
    }
}
