//! The checks of a finished run's history, each a pure function of what was recorded:
//! - [`register_ops`]: the register keys' requests, as the linearizability checker's history;
//! - [`check_writes`]: every acknowledged write is in the watched history at its revision, no
//!   definitely failed write's value ever is, and no value comes from nowhere;
//! - [`replay`]: the watched history replayed revision by revision obeys MVCC's rules, and
//!   every read (linearizable or serializable, one key or the prefix) returned exactly the
//!   state at its header revision;
//! - the figures: the longest time without an acknowledged write, the longest wait for a
//!   definite answer.

use super::faults::{FaultKind, FaultWindow};
use super::history::{Actor, KeyValue, Outcome, Record, Request, Response, Time, Value};
use super::traffic::REGISTER_KEYS;
use super::watch::{list, EventKind, WatchEvent};
use crate::linearizability::{Input, Op, Output};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Violations of one kind printed in full (the count is always given).
const SHOWN_PER_KIND: usize = 5;

/// Keeps the first few violations of each kind, and counts them all.
#[derive(Default)]
pub struct Violations {
    kinds: BTreeMap<&'static str, (usize, Vec<String>)>,
}

impl Violations {
    pub fn add(&mut self, kind: &'static str, text: String) {
        let entry = self.kinds.entry(kind).or_default();
        entry.0 += 1;
        if entry.1.len() < SHOWN_PER_KIND {
            entry.1.push(text);
        }
    }

    pub fn into_texts(self) -> Vec<String> {
        self.kinds
            .into_iter()
            .map(|(kind, (count, shown))| format!("{count} x {kind}:\n  {}", shown.join("\n  ")))
            .collect()
    }
}

fn actor_number(actor: Actor) -> usize {
    match actor {
        Actor::Client(client) => client,
        Actor::Maintenance => 100,
        Actor::Final => 101,
    }
}

fn note_of(record: &Record) -> String {
    let via = record.member.map_or("via any".to_string(), |member| {
        format!("via n{}", member + 1)
    });
    match record.outcome.error() {
        Some(error) => format!("{via}; error: {error}"),
        None => via,
    }
}

fn output_of(outcome: &Outcome, known: impl FnOnce(&Response) -> Option<Output>) -> Option<Output> {
    match outcome {
        Outcome::Ok(response) => known(response),
        Outcome::Failed(_) => Some(Output::Failed),
        Outcome::Unknown(_) => Some(Output::Unknown),
    }
}

/// The requests on [`REGISTER_KEYS`] as the linearizability checker's history: puts without a
/// lease, linearizable gets, deletes, compare-and-set txns, and every acknowledged linearizable
/// prefix range as one get per register key.
pub fn register_ops(records: &[Record]) -> Vec<Op> {
    let is_register = |key: &str| REGISTER_KEYS.contains(&key);
    let mut ops = Vec::new();
    for record in records {
        let op = |key: &str, input: Input, output: Output| Op {
            client: actor_number(record.actor),
            key: key.to_string(),
            call: record.call,
            ret: record.ret,
            input,
            output,
            note: note_of(record),
        };
        match &record.request {
            Request::Put {
                key,
                value,
                lease: 0,
            } if is_register(key) => {
                let output = output_of(&record.outcome, |response| match response {
                    Response::Put { prev, revision } => Some(Output::Put {
                        prev: prev.as_ref().map(KeyValue::register),
                        revision: *revision,
                    }),
                    _ => None,
                });
                ops.extend(output.map(|output| op(key, Input::Put { value: *value }, output)));
            }
            Request::Get {
                key,
                serializable: false,
            } if is_register(key) => {
                let output = output_of(&record.outcome, |response| match response {
                    Response::Range { kvs, revision } => Some(Output::Get {
                        kv: kvs.first().map(KeyValue::register),
                        revision: *revision,
                    }),
                    _ => None,
                });
                ops.extend(output.map(|output| op(key, Input::Get, output)));
            }
            Request::Range {
                serializable: false,
                ..
            } => {
                if let Outcome::Ok(Response::Range { kvs, revision }) = &record.outcome {
                    for key in REGISTER_KEYS {
                        let kv = kvs.iter().find(|kv| kv.key == key).map(KeyValue::register);
                        ops.push(op(
                            key,
                            Input::Get,
                            Output::Get {
                                kv,
                                revision: *revision,
                            },
                        ));
                    }
                }
            }
            Request::Delete { key } if is_register(key) => {
                let output = output_of(&record.outcome, |response| match response {
                    Response::Delete { prev, revision, .. } => Some(Output::Delete {
                        prev: prev.first().map(KeyValue::register),
                        revision: *revision,
                    }),
                    _ => None,
                });
                ops.extend(output.map(|output| op(key, Input::Delete, output)));
            }
            Request::Cas {
                key, expect, value, ..
            } if is_register(key) => {
                let output = output_of(&record.outcome, |response| match response {
                    Response::Cas {
                        succeeded,
                        current,
                        revision,
                    } => Some(Output::Cas {
                        succeeded: *succeeded,
                        current: current.as_ref().map(KeyValue::register),
                        revision: *revision,
                    }),
                    _ => None,
                });
                let input = Input::Cas {
                    expect: *expect,
                    value: *value,
                };
                ops.extend(output.map(|output| op(key, input, output)));
            }
            _ => {}
        }
    }
    ops
}

fn events_text(events: Option<&Vec<WatchEvent>>) -> String {
    events.map_or("nothing".to_string(), |events| {
        format!("[{}]", list(events))
    })
}

/// Acknowledged writes against the watched history; definitely failed and foreign values.
pub fn check_writes(
    records: &[Record],
    events: &BTreeMap<i64, Vec<WatchEvent>>,
    final_revision: i64,
    violations: &mut Violations,
) {
    let has = |revision: i64, kind: EventKind, key: &str, value: Option<Value>| {
        events.get(&revision).is_some_and(|group| {
            group.iter().any(|event| {
                event.kind == kind
                    && event.kv.key == key
                    && value.is_none_or(|v| event.kv.value == v)
            })
        })
    };
    for record in records {
        let Outcome::Ok(response) = &record.outcome else {
            continue;
        };
        let expected = match (&record.request, response) {
            (Request::Put { key, value, .. }, Response::Put { revision, .. }) => {
                Some((*revision, EventKind::Put, key, Some(*value)))
            }
            (
                Request::Cas { key, value, .. },
                Response::Cas {
                    succeeded: true,
                    revision,
                    ..
                },
            ) => Some((*revision, EventKind::Put, key, Some(*value))),
            (
                Request::Delete { key },
                Response::Delete {
                    deleted, revision, ..
                },
            ) if *deleted > 0 => Some((*revision, EventKind::Delete, key, None)),
            _ => None,
        };
        let Some((revision, kind, key, value)) = expected else {
            continue;
        };
        if revision > final_revision {
            violations.add(
                "acknowledged write beyond the final revision",
                format!(
                    "final revision {final_revision}, acknowledged: {}",
                    record.describe()
                ),
            );
        }
        if !has(revision, kind, key, value) {
            violations.add(
                "acknowledged write missing from the history",
                format!(
                    "{}\n    the watched history holds {} at revision {revision}",
                    record.describe(),
                    events_text(events.get(&revision))
                ),
            );
        }
    }
    // Who wrote each value, and how that ended.
    let mut writers: HashMap<(&str, Value), &Record> = HashMap::new();
    for record in records {
        if let Some((key, value)) = record.request.written() {
            writers.insert((key, value), record);
        }
    }
    for (revision, group) in events {
        for event in group.iter().filter(|event| event.kind == EventKind::Put) {
            match writers.get(&(event.kv.key.as_str(), event.kv.value)) {
                None => violations.add(
                    "value no client wrote",
                    format!("revision {revision}: {event}"),
                ),
                Some(writer) if matches!(writer.outcome, Outcome::Failed(_)) => violations.add(
                    "write that failed definitely took effect",
                    format!(
                        "revision {revision}: {event}\n    written by {}",
                        writer.describe()
                    ),
                ),
                Some(_) => {}
            }
        }
    }
}

/// Whether a read's key range holds `key`.
fn read_covers(request: &Request, key: &str) -> bool {
    match request {
        Request::Get { key: read, .. } => read == key,
        Request::Range { prefix, .. } => key.starts_with(prefix.as_str()),
        _ => false,
    }
}

fn kvs_text(kvs: &[&KeyValue]) -> String {
    kvs.iter()
        .map(|kv| kv.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Replays `events` in revision order: every event must follow MVCC's rules from the state
/// before it, and every acknowledged read must have returned the state at its header revision.
/// Returns the final state of the prefix.
pub fn replay(
    records: &[Record],
    events: &BTreeMap<i64, Vec<WatchEvent>>,
    violations: &mut Violations,
) -> BTreeMap<String, KeyValue> {
    let mut reads: Vec<(i64, &Record, &Vec<KeyValue>)> = records
        .iter()
        .filter_map(|record| match (&record.request, &record.outcome) {
            (
                Request::Get { .. } | Request::Range { .. },
                Outcome::Ok(Response::Range { kvs, revision }),
            ) => Some((*revision, record, kvs)),
            _ => None,
        })
        .collect();
    reads.sort_by_key(|(revision, record, _)| (*revision, record.call));
    let mut state: BTreeMap<String, KeyValue> = BTreeMap::new();
    let mut next_read = 0;
    for (&revision, group) in events {
        answer_reads(&reads, &mut next_read, &state, Some(revision), violations);
        for event in group {
            apply(&mut state, revision, event, violations);
        }
    }
    answer_reads(&reads, &mut next_read, &state, None, violations);
    state
}

/// Checks the reads from `reads[*next]` on whose revision is below `below` (all if `None`)
/// against `state`, the history up to that revision.
fn answer_reads(
    reads: &[(i64, &Record, &Vec<KeyValue>)],
    next: &mut usize,
    state: &BTreeMap<String, KeyValue>,
    below: Option<i64>,
    violations: &mut Violations,
) {
    while *next < reads.len() && below.is_none_or(|revision| reads[*next].0 < revision) {
        let (revision, record, returned) = reads[*next];
        *next += 1;
        let expected: Vec<&KeyValue> = state
            .values()
            .filter(|kv| read_covers(&record.request, &kv.key))
            .collect();
        let got: Vec<&KeyValue> = returned.iter().collect();
        if got != expected {
            violations.add(
                "read that does not match the history at its revision",
                format!(
                    "{}\n    returned [{}]\n    the history at revision {revision} holds [{}]",
                    record.describe(),
                    kvs_text(&got),
                    kvs_text(&expected)
                ),
            );
        }
    }
}

fn apply(
    state: &mut BTreeMap<String, KeyValue>,
    revision: i64,
    event: &WatchEvent,
    violations: &mut Violations,
) {
    let previous = state.get(&event.kv.key);
    match event.kind {
        EventKind::Put => {
            let (create_revision, version) = match previous {
                Some(kv) => (kv.create_revision, kv.version + 1),
                None => (revision, 1),
            };
            if event.kv.create_revision != create_revision
                || event.kv.version != version
                || event.kv.mod_revision != revision
            {
                violations.add(
                    "event that contradicts the key's history",
                    format!(
                        "revision {revision}: {event}, but the key held {} before (expected \
                         create {create_revision}, version {version})",
                        previous.map_or("nothing".to_string(), |kv| kv.to_string())
                    ),
                );
            }
            state.insert(event.kv.key.clone(), event.kv.clone());
        }
        EventKind::Delete => {
            if previous.is_none() {
                violations.add(
                    "delete event of an absent key",
                    format!("revision {revision}: {event}"),
                );
            }
            state.remove(&event.kv.key);
        }
    }
}

/// The longest time without an acknowledged write, between `from` and `to`: its length and
/// where it started.
pub fn longest_write_gap(records: &[Record], from: Time, to: Time) -> (Duration, Time) {
    let mut acknowledged: Vec<Time> = records
        .iter()
        .filter(|record| {
            record.request.is_kv_write()
                && matches!(record.outcome, Outcome::Ok(_))
                && record.ret >= from
                && record.ret <= to
        })
        .map(|record| record.ret)
        .collect();
    acknowledged.sort_unstable();
    let mut points = vec![from];
    points.extend(acknowledged);
    points.push(to);
    points
        .windows(2)
        .map(|pair| (Duration::from_nanos(pair[1] - pair[0]), pair[0]))
        .max()
        .unwrap_or((Duration::ZERO, from))
}

/// The longest time one write waited for a definite answer (acknowledged, or refused with an
/// error that says it did not happen).
pub fn longest_definite_write_wait(records: &[Record]) -> Duration {
    records
        .iter()
        .filter(|record| {
            record.request.is_kv_write() && !matches!(record.outcome, Outcome::Unknown(_))
        })
        .map(|record| Duration::from_nanos(record.ret - record.call))
        .max()
        .unwrap_or(Duration::ZERO)
}

/// The faults whose windows overlap `[from, to]`, by name ("none" if no fault did).
pub fn faults_during(windows: &[FaultWindow], from: Time, to: Time) -> String {
    let names: Vec<&str> = windows
        .iter()
        .filter(|window| window.from <= to && window.to >= from)
        .map(|window| window.kind.name())
        .collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(" + ")
    }
}

/// The longest time a write sent to a follower waited for any answer (acknowledged, refused,
/// or the client's deadline) while the leader was killed or stopped: the requests sent during
/// such a window to a member the fault did not hit.
pub fn longest_follower_write_answer(records: &[Record], windows: &[FaultWindow]) -> Duration {
    windows
        .iter()
        .filter(|window| matches!(window.kind, FaultKind::KillLeader | FaultKind::PauseLeader))
        .flat_map(|window| {
            records.iter().filter(move |record| {
                record.request.is_kv_write()
                    && record.actor != Actor::Final
                    && matches!(record.member, Some(member) if Some(member) != window.member)
                    && record.call >= window.from
                    && record.call <= window.to
            })
        })
        .map(|record| Duration::from_nanos(record.ret - record.call))
        .max()
        .unwrap_or(Duration::ZERO)
}

/// The first acknowledged write of the traffic that responded after `at`.
pub fn first_write_after(records: &[Record], at: Time) -> Option<Time> {
    records
        .iter()
        .filter(|record| {
            record.request.is_kv_write()
                && matches!(record.outcome, Outcome::Ok(_))
                && record.ret > at
        })
        .map(|record| record.ret)
        .min()
}
