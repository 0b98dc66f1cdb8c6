//! A linearizability checker for key-value histories: Wing & Gong's search with Lowe's
//! memoisation (the algorithm of Knossos and Porcupine), written here so that the test depends
//! on no external checker.
//!
//! # Histories
//!
//! A history is a list of [`Op`]s, each with its invocation and response times on one monotonic
//! clock, its [`Input`] and its [`Output`]. An operation that timed out or failed without saying
//! whether it happened has [`Output::Unknown`]: it may or may not have taken effect, at any
//! moment after its invocation (its response time is open-ended). An operation whose error says
//! that it did not happen has [`Output::Failed`]: the checker drops it from the search (so a
//! history that needs its effect is not linearizable) and reports any read of the value it was
//! to write. Which error is which is decided in one place, [`classify_error`]; a recorder that
//! does not trust the server's definite errors may record every error as unknown.
//!
//! # Model
//!
//! Each key is a register checked on its own (linearizability is local: a history is
//! linearizable if and only if its restriction to every object is). The register holds a value
//! or nothing; values are unique per write, so an observed value names the write that produced
//! it. The state also carries a lower bound on the store's revision, so that along a
//! linearization of one key the header revisions never go back and every write makes a new one
//! (the revision is global, so this per-key part is a necessary condition, not a full check).
//!
//! Across keys, [`check`] asserts what the revision counter implies globally: acknowledged writes
//! have distinct revisions, an operation that starts after another one finished never reports an
//! older revision, and every observed `(value, mod_revision)` agrees with the write of that value.
//!
//! # Keeping the search small
//!
//! - An unknown write whose value nobody observed is dropped: if it took effect, it was
//!   overwritten unobserved (by unknown writes: an acknowledged put, delete or txn reports what
//!   it replaced), and removing it from any linearization leaves a linearization (the revision
//!   bounds only loosen). An unknown write whose value was observed did take effect, before the
//!   first response that observed it: it becomes a required operation with that response time.
//!   A successful compare observes the value it compared with, and so does an unknown txn that
//!   took effect.
//! - Failed reads are dropped (they change nothing).
//! - Pending unknown operations with identical inputs (deletes) are interchangeable: only the
//!   earliest-invoked of them is tried at each point.
//! - The search counts its steps and gives up with [`FailureKind::Budget`] instead of hanging.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

#[cfg(test)]
mod tests;

/// Nanoseconds on the test's monotonic clock.
pub type Time = u64;
/// A written value; every write writes a value no other write writes.
pub type Value = u64;

/// A value as a read returned it. `mod_revision` 0 means "not recorded" (hand-made histories).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Kv {
    pub value: Value,
    pub mod_revision: i64,
}

impl Kv {
    pub fn new(value: Value, mod_revision: i64) -> Kv {
        Kv {
            value,
            mod_revision,
        }
    }
}

/// What an operation asked for. Every operation touches one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    /// Put with `prev_kv`.
    Put { value: Value },
    /// Linearizable get.
    Get,
    /// Delete with `prev_kv`.
    Delete,
    /// Txn: if the key holds `expect` (`None`: the key is absent), put `value`; else get the key.
    /// (A compare on the value, or on the mod revision the client saw with `expect`.)
    Cas { expect: Option<Value>, value: Value },
}

/// What an operation returned. `revision` is the response header's revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Put {
        prev: Option<Kv>,
        revision: i64,
    },
    Get {
        kv: Option<Kv>,
        revision: i64,
    },
    Delete {
        prev: Option<Kv>,
        revision: i64,
    },
    /// `current` is what the else branch's get returned (`None` when `succeeded`).
    Cas {
        succeeded: bool,
        current: Option<Kv>,
        revision: i64,
    },
    /// Timed out or failed without saying whether it happened (see [`classify_error`]): it may
    /// or may not have taken effect.
    Unknown,
    /// Failed with an error that says it did not happen (see [`classify_error`]): it never
    /// takes effect, and its value must never be read.
    Failed,
}

/// What an error says about whether its request took effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorClass {
    /// The request did not take effect: recorded as [`Output::Failed`].
    Definite,
    /// It may or may not have taken effect: recorded as [`Output::Unknown`].
    Unknown,
}

/// gRPC status codes that say a request was refused before it did anything.
const GRPC_INVALID_ARGUMENT: i32 = 3;
const GRPC_NOT_FOUND: i32 = 5;
const GRPC_PERMISSION_DENIED: i32 = 7;
const GRPC_FAILED_PRECONDITION: i32 = 9;
const GRPC_OUT_OF_RANGE: i32 = 11;

/// The one table from an etcd error to what it says about its request: `grpc_code` is the gRPC
/// status code (`None` for an error that never got a status: a transport error, a client-side
/// deadline), `message` the status message (or the error's text).
///
/// **Definite** ("did not happen"): etcd refuses these before the request is proposed, or the
/// request is invalid, so a write with such an error must never be seen to have taken effect:
/// - `etcdserver: leader changed`, `etcdserver: no leader`, `etcdserver: not leader`;
/// - `etcdserver: too many requests`, `etcdserver: database space exceeded`,
///   `etcdserver: request is too large`;
/// - any `InvalidArgument`, `FailedPrecondition`, `OutOfRange`, `NotFound` or
///   `PermissionDenied` status (a failed compare is not an error: it is a txn response).
///
/// **Unknown** (may or may not have happened): everything else, among them
/// `etcdserver: request timed out` and `etcdserver: request timed out, possibly due to previous
/// leader failure` (the proposal may still commit), `etcdserver: server stopped`, transport
/// errors, a reset stream, and the client's own deadline.
pub fn classify_error(grpc_code: Option<i32>, message: &str) -> ErrorClass {
    const DEFINITE_MESSAGES: [&str; 6] = [
        "etcdserver: leader changed",
        "etcdserver: no leader",
        "etcdserver: not leader",
        "etcdserver: too many requests",
        "etcdserver: database space exceeded",
        "etcdserver: request is too large",
    ];
    // Exact messages only: "etcdserver: request timed out, possibly due to previous leader
    // failure" must not match "leader" words of a definite one.
    if DEFINITE_MESSAGES.contains(&message.trim()) {
        return ErrorClass::Definite;
    }
    match grpc_code {
        Some(
            GRPC_INVALID_ARGUMENT
            | GRPC_NOT_FOUND
            | GRPC_PERMISSION_DENIED
            | GRPC_FAILED_PRECONDITION
            | GRPC_OUT_OF_RANGE,
        ) => ErrorClass::Definite,
        _ => ErrorClass::Unknown,
    }
}

impl Output {
    pub fn is_unknown(&self) -> bool {
        matches!(self, Output::Unknown)
    }

    /// Failed definitely: did not happen.
    pub fn is_failed(&self) -> bool {
        matches!(self, Output::Failed)
    }

    /// A response that says what happened (neither unknown nor failed).
    pub fn is_ok(&self) -> bool {
        !self.is_unknown() && !self.is_failed()
    }

    /// The header revision of a successful response.
    pub fn revision(&self) -> Option<i64> {
        match *self {
            Output::Put { revision, .. }
            | Output::Get { revision, .. }
            | Output::Delete { revision, .. }
            | Output::Cas { revision, .. } => Some(revision),
            Output::Unknown | Output::Failed => None,
        }
    }

    /// The revision this response says it created, if it wrote.
    pub fn created_revision(&self) -> Option<i64> {
        match *self {
            Output::Put { revision, .. } => Some(revision),
            Output::Delete {
                prev: Some(_),
                revision,
            } => Some(revision),
            Output::Cas {
                succeeded: true,
                revision,
                ..
            } => Some(revision),
            _ => None,
        }
    }

    /// Every value this response observed.
    pub fn observed(&self) -> Option<Kv> {
        match *self {
            Output::Put { prev, .. } | Output::Delete { prev, .. } => prev,
            Output::Get { kv, .. } => kv,
            Output::Cas { current, .. } => current,
            Output::Unknown | Output::Failed => None,
        }
    }
}

impl Input {
    /// The value this operation writes, if any.
    pub fn written(&self) -> Option<Value> {
        match *self {
            Input::Put { value } | Input::Cas { value, .. } => Some(value),
            Input::Get | Input::Delete => None,
        }
    }
}

impl Op {
    /// Every value this operation saw the key hold: what a response returned, and the value a
    /// successful compare matched (its mod revision unrecorded).
    pub fn observations(&self) -> Vec<Kv> {
        let mut seen: Vec<Kv> = self.output.observed().into_iter().collect();
        if let (
            Input::Cas {
                expect: Some(value),
                ..
            },
            Output::Cas {
                succeeded: true, ..
            },
        ) = (self.input, self.output)
        {
            seen.push(Kv::new(value, 0));
        }
        seen
    }
}

/// One operation of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    pub client: usize,
    pub key: String,
    /// Invocation time.
    pub call: Time,
    /// Response time (for an [`Output::Unknown`], when the failure was seen; the checker treats
    /// its response as open-ended).
    pub ret: Time,
    pub input: Input,
    pub output: Output,
    /// Free text for reports (the txn's compare, the error).
    pub note: String,
}

/// The register of one key, plus a lower bound on the store's revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub value: Option<Value>,
    pub revision: i64,
}

impl State {
    pub const INITIAL: State = State {
        value: None,
        revision: 0,
    };
}

fn value_of(kv: Option<Kv>) -> Option<Value> {
    kv.map(|kv| kv.value)
}

/// The model's transition: the state after `input` with `output` applied to `state`, or `None`
/// if that response is impossible in `state`. Unknown outputs are the operation taking effect.
pub fn step(state: State, input: Input, output: Output) -> Option<State> {
    let holds = |expect: Option<Value>| state.value == expect;
    match (input, output) {
        (Input::Put { value }, Output::Put { prev, revision }) => {
            (value_of(prev) == state.value && revision > state.revision).then_some(State {
                value: Some(value),
                revision,
            })
        }
        (Input::Put { value }, Output::Unknown) => Some(State {
            value: Some(value),
            revision: state.revision + 1,
        }),
        (Input::Get, Output::Get { kv, revision }) => {
            (value_of(kv) == state.value && revision >= state.revision).then_some(State {
                value: state.value,
                revision,
            })
        }
        (Input::Get, Output::Unknown) => Some(state),
        (Input::Delete, Output::Delete { prev, revision }) => {
            let fresh = if prev.is_some() {
                revision > state.revision
            } else {
                revision >= state.revision
            };
            (value_of(prev) == state.value && fresh).then_some(State {
                value: None,
                revision,
            })
        }
        (Input::Delete, Output::Unknown) => Some(match state.value {
            Some(_) => State {
                value: None,
                revision: state.revision + 1,
            },
            None => state,
        }),
        (
            Input::Cas { expect, value },
            Output::Cas {
                succeeded: true,
                revision,
                ..
            },
        ) => (holds(expect) && revision > state.revision).then_some(State {
            value: Some(value),
            revision,
        }),
        (
            Input::Cas { expect, .. },
            Output::Cas {
                succeeded: false,
                current,
                revision,
            },
        ) => (!holds(expect) && value_of(current) == state.value && revision >= state.revision)
            .then_some(State {
                value: state.value,
                revision,
            }),
        (Input::Cas { expect, value }, Output::Unknown) => Some(if holds(expect) {
            State {
                value: Some(value),
                revision: state.revision + 1,
            }
        } else {
            state
        }),
        // An output of another kind than its input.
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Reports
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// No linearization of one key's operations exists.
    NotLinearizable,
    /// Revisions contradict real time or each other (across keys).
    Revisions,
    /// The search gave up after its step budget.
    Budget,
    /// The history itself is malformed (a test bug, not a server bug).
    Malformed,
}

#[derive(Clone, Debug)]
pub struct Failure {
    pub kind: FailureKind,
    pub key: Option<String>,
    /// What went wrong, with the relevant slice of the history.
    pub report: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.kind)?;
        if let Some(key) = &self.key {
            write!(f, " on key {key:?}")?;
        }
        write!(f, ":\n{}", self.report)
    }
}

/// What a successful check looked at.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub ops: usize,
    pub keys: usize,
    /// Unknown operations (timed out, or failed without saying whether they happened).
    pub unknown: usize,
    /// Operations that failed definitely (did not happen).
    pub failed: usize,
    /// Unknown writes that were observed, so took effect.
    pub unknown_took_effect: usize,
    /// Search steps, over all keys.
    pub steps: u64,
    /// The largest per-key search.
    pub max_key_ops: usize,
}

fn kv_text(kv: Option<Kv>) -> String {
    match kv {
        None => "nil".to_string(),
        Some(kv) if kv.mod_revision == 0 => format!("{}", kv.value),
        Some(kv) => format!("{}@{}", kv.value, kv.mod_revision),
    }
}

fn ms(time: Time) -> String {
    format!("{:.3}", time as f64 / 1e6)
}

/// One line per operation: `#index c<client> [call..ret ms] <key> <input> -> <output>`.
pub fn describe(index: usize, op: &Op) -> String {
    let input = match op.input {
        Input::Put { value } => format!("put {value}"),
        Input::Get => "get".to_string(),
        Input::Delete => "delete".to_string(),
        Input::Cas { expect, value } => format!(
            "txn if {} then put {value} else get",
            expect.map_or("absent".to_string(), |v| format!("=={v}"))
        ),
    };
    let output = match op.output {
        Output::Put { prev, revision } => format!("ok prev={} rev={revision}", kv_text(prev)),
        Output::Get { kv, revision } => format!("ok {} rev={revision}", kv_text(kv)),
        Output::Delete { prev, revision } => {
            format!("ok prev={} rev={revision}", kv_text(prev))
        }
        Output::Cas {
            succeeded: true,
            revision,
            ..
        } => format!("ok succeeded rev={revision}"),
        Output::Cas {
            succeeded: false,
            current,
            revision,
        } => format!("ok failed, got {} rev={revision}", kv_text(current)),
        Output::Unknown => "UNKNOWN".to_string(),
        Output::Failed => "FAILED (definite: did not happen)".to_string(),
    };
    let note = if op.note.is_empty() {
        String::new()
    } else {
        format!("  ({})", op.note)
    };
    format!(
        "#{index} c{} [{}..{} ms] {} {input} -> {output}{note}",
        op.client,
        ms(op.call),
        if op.output.is_unknown() {
            format!("{}?", ms(op.ret))
        } else {
            ms(op.ret)
        },
        op.key
    )
}

fn describe_all(ops: &[Op], indices: &[usize]) -> String {
    let mut text = String::new();
    for &i in indices {
        let _ = writeln!(text, "  {}", describe(i, &ops[i]));
    }
    text
}

// ---------------------------------------------------------------------------------------------
// Checks across keys
// ---------------------------------------------------------------------------------------------

fn failure(kind: FailureKind, key: Option<&str>, report: String) -> Failure {
    Failure {
        kind,
        key: key.map(str::to_string),
        report,
    }
}

/// Values are unique and every write names its key: `(key, value)` → writing op.
fn writers(ops: &[Op]) -> Result<HashMap<Value, usize>, Failure> {
    let mut writers = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        if let Some(value) = op.input.written() {
            if let Some(other) = writers.insert(value, i) {
                return Err(failure(
                    FailureKind::Malformed,
                    None,
                    format!(
                        "value {value} written twice:\n{}",
                        describe_all(ops, &[other, i])
                    ),
                ));
            }
        }
        if op.ret < op.call {
            return Err(failure(
                FailureKind::Malformed,
                None,
                format!("responds before its call:\n{}", describe_all(ops, &[i])),
            ));
        }
    }
    Ok(writers)
}

/// Observed values against their writes: same key, written before the observation completed,
/// one mod revision per value, and that of the write when the write's response is known.
fn check_observations(ops: &[Op], writers: &HashMap<Value, usize>) -> Result<(), Failure> {
    let mut mod_revisions: HashMap<Value, (i64, usize)> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        for kv in op.observations() {
            check_observation(ops, writers, &mut mod_revisions, i, kv)?;
        }
    }
    Ok(())
}

fn check_observation(
    ops: &[Op],
    writers: &HashMap<Value, usize>,
    mod_revisions: &mut HashMap<Value, (i64, usize)>,
    i: usize,
    kv: Kv,
) -> Result<(), Failure> {
    let op = &ops[i];
    let Some(&w) = writers.get(&kv.value) else {
        return Err(failure(
            FailureKind::NotLinearizable,
            Some(&op.key),
            format!(
                "read value {} that no operation wrote:\n{}",
                kv.value,
                describe_all(ops, &[i])
            ),
        ));
    };
    let writer = &ops[w];
    if writer.output.is_failed() {
        return Err(failure(
            FailureKind::NotLinearizable,
            Some(&op.key),
            format!(
                "read value {} of a write that failed with a definite error (it did not \
                 happen):\n{}",
                kv.value,
                describe_all(ops, &[w, i])
            ),
        ));
    }
    if writer.key != op.key {
        return Err(failure(
            FailureKind::NotLinearizable,
            Some(&op.key),
            format!(
                "read a value written to another key:\n{}",
                describe_all(ops, &[w, i])
            ),
        ));
    }
    if op.ret < writer.call {
        return Err(failure(
            FailureKind::NotLinearizable,
            Some(&op.key),
            format!(
                "read a value before its write was invoked:\n{}",
                describe_all(ops, &[i, w])
            ),
        ));
    }
    if kv.mod_revision == 0 {
        return Ok(());
    }
    let written_at = match writer.output {
        Output::Put { revision, .. } => Some(revision),
        Output::Cas {
            succeeded: true,
            revision,
            ..
        } => Some(revision),
        _ => None,
    };
    if let Some(revision) = written_at {
        if revision != kv.mod_revision {
            return Err(failure(
                FailureKind::Revisions,
                Some(&op.key),
                format!(
                    "read mod_revision {} of a value written at revision {revision}:\n{}",
                    kv.mod_revision,
                    describe_all(ops, &[w, i])
                ),
            ));
        }
    }
    match mod_revisions.get(&kv.value) {
        Some(&(seen, first)) if seen != kv.mod_revision => {
            return Err(failure(
                FailureKind::Revisions,
                Some(&op.key),
                format!(
                    "value {} read with mod_revisions {seen} and {}:\n{}",
                    kv.value,
                    kv.mod_revision,
                    describe_all(ops, &[w, first, i])
                ),
            ));
        }
        Some(_) => {}
        None => {
            mod_revisions.insert(kv.value, (kv.mod_revision, i));
        }
    }
    Ok(())
}

/// Acknowledged writes have distinct revisions; an operation invoked after another one
/// responded reports at least its revision, and more if it wrote.
fn check_revisions(ops: &[Op]) -> Result<(), Failure> {
    let mut created: BTreeMap<i64, usize> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        if let Some(revision) = op.output.created_revision() {
            if let Some(other) = created.insert(revision, i) {
                return Err(failure(
                    FailureKind::Revisions,
                    None,
                    format!(
                        "two acknowledged writes at revision {revision}:\n{}",
                        describe_all(ops, &[other, i])
                    ),
                ));
            }
        }
    }
    let known: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].output.is_ok()).collect();
    let mut by_ret = known.clone();
    by_ret.sort_by_key(|&i| ops[i].ret);
    let mut by_call = known;
    by_call.sort_by_key(|&i| ops[i].call);
    // The op with the largest revision among those that responded before the current call.
    let mut highest: Option<usize> = None;
    let mut next = 0;
    for &b in &by_call {
        while next < by_ret.len() && ops[by_ret[next]].ret < ops[b].call {
            let a = by_ret[next];
            if highest.is_none_or(|h| ops[a].output.revision() > ops[h].output.revision()) {
                highest = Some(a);
            }
            next += 1;
        }
        let Some(a) = highest else { continue };
        let before = ops[a].output.revision().unwrap_or(0);
        let after = ops[b].output.revision().unwrap_or(0);
        let wrote = ops[b].output.created_revision().is_some();
        if after < before || (wrote && after == before) {
            return Err(failure(
                FailureKind::Revisions,
                Some(&ops[b].key),
                format!(
                    "revision {after} reported after revision {before} had been{}:\n{}",
                    if wrote {
                        " (by a write, which must create a newer one)"
                    } else {
                        ""
                    },
                    describe_all(ops, &[a, b])
                ),
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The search, one key at a time
// ---------------------------------------------------------------------------------------------

/// One operation as the search sees it.
#[derive(Clone, Debug)]
struct Event {
    /// Index in the full history.
    index: usize,
    input: Input,
    output: Output,
    call: Time,
    /// `None`: optional (unknown, never observed to take effect), open-ended.
    ret: Option<Time>,
}

/// Drops what cannot matter and pins unknown writes that were observed; see the module docs.
/// Returns the events of each key, and how many unknown writes took effect.
fn prepare(ops: &[Op]) -> (BTreeMap<String, Vec<Event>>, usize) {
    // Earliest response that observed each value.
    let mut first_seen: HashMap<Value, Time> = HashMap::new();
    for op in ops {
        for kv in op.observations() {
            let seen = first_seen.entry(kv.value).or_insert(op.ret);
            *seen = (*seen).min(op.ret);
        }
    }
    // An unknown txn that took effect matched its compare, so the value it compared with was
    // there before it: seen no later than the txn took effect. To a fixed point (chains of
    // unknown txns).
    loop {
        let mut changed = false;
        for op in ops.iter().filter(|op| op.output.is_unknown()) {
            let Input::Cas {
                expect: Some(expect),
                value,
            } = op.input
            else {
                continue;
            };
            let Some(&seen) = first_seen.get(&value) else {
                continue;
            };
            let at = seen.max(op.call);
            if first_seen.get(&expect).is_none_or(|&before| at < before) {
                first_seen.insert(expect, at);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut keys: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    let mut took_effect = 0;
    for (index, op) in ops.iter().enumerate() {
        if op.output.is_failed() {
            // Did not happen: left out of the search, so a history that needs it fails.
            continue;
        }
        let ret = if op.output.is_unknown() {
            match op.input {
                Input::Get => continue,
                Input::Put { value } | Input::Cas { value, .. } => match first_seen.get(&value) {
                    None => continue,
                    Some(&seen) => {
                        took_effect += 1;
                        Some(seen.max(op.call))
                    }
                },
                Input::Delete => None,
            }
        } else {
            Some(op.ret)
        };
        keys.entry(op.key.clone()).or_default().push(Event {
            index,
            input: op.input,
            output: op.output,
            call: op.call,
            ret,
        });
    }
    (keys, took_effect)
}

const NONE: usize = usize::MAX;
const HEAD: usize = 0;

/// A node of the doubly linked list of calls and returns, ordered by time.
#[derive(Clone, Copy, Debug)]
struct Node {
    /// Event index; unused for the head.
    event: usize,
    is_call: bool,
    /// For a call: its return node, if the event has one.
    partner: usize,
    prev: usize,
    next: usize,
}

struct List {
    nodes: Vec<Node>,
}

impl List {
    fn new(events: &[Event]) -> (List, Vec<usize>) {
        // (time, calls before returns at equal times, event, is_call)
        let mut points: Vec<(Time, u8, usize)> = Vec::new();
        for (e, event) in events.iter().enumerate() {
            points.push((event.call, 0, e));
            if let Some(ret) = event.ret {
                points.push((ret, 1, e));
            }
        }
        points.sort();
        let mut nodes = vec![Node {
            event: NONE,
            is_call: false,
            partner: NONE,
            prev: NONE,
            next: NONE,
        }];
        let mut call_node = vec![NONE; events.len()];
        for (_, kind, e) in points {
            let n = nodes.len();
            let prev = n - 1;
            nodes[prev].next = n;
            nodes.push(Node {
                event: e,
                is_call: kind == 0,
                partner: NONE,
                prev,
                next: NONE,
            });
            if kind == 0 {
                call_node[e] = n;
            } else {
                nodes[call_node[e]].partner = n;
            }
        }
        (List { nodes }, call_node)
    }

    fn unlink(&mut self, n: usize) {
        let Node { prev, next, .. } = self.nodes[n];
        self.nodes[prev].next = next;
        if next != NONE {
            self.nodes[next].prev = prev;
        }
    }

    fn relink(&mut self, n: usize) {
        let Node { prev, next, .. } = self.nodes[n];
        self.nodes[prev].next = n;
        if next != NONE {
            self.nodes[next].prev = n;
        }
    }

    /// Removes a call and its return.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        let partner = self.nodes[call].partner;
        if partner != NONE {
            self.unlink(partner);
        }
    }

    /// Undoes the latest [`lift`](Self::lift).
    fn unlift(&mut self, call: usize) {
        let partner = self.nodes[call].partner;
        if partner != NONE {
            self.relink(partner);
        }
        self.relink(call);
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(len: usize) -> Bits {
        Bits(vec![0; len.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
}

/// The deepest point the search reached, for the report.
struct Deepest {
    linearized: Vec<(usize, State)>,
    remaining: usize,
    /// The first response reached there that could not be linearized.
    blocked: Option<usize>,
}

/// Checks one key's events; `Ok(steps)` or a failure with a slice of the history.
fn check_key(ops: &[Op], key: &str, events: &[Event], budget: u64) -> Result<u64, Failure> {
    let (mut list, _) = List::new(events);
    // Optional events with the same input: only the earliest-invoked pending one is tried
    // (in the list's order: by call time, then event).
    let mut twins: HashMap<Input, Vec<usize>> = HashMap::new();
    for (e, event) in events.iter().enumerate() {
        if event.ret.is_none() {
            twins.entry(event.input).or_default().push(e);
        }
    }
    for group in twins.values_mut() {
        group.sort_by_key(|&e| (events[e].call, e));
    }
    let mut remaining = events.iter().filter(|event| event.ret.is_some()).count();
    let mut linearized = Bits::new(events.len());
    let mut cache: HashSet<(Bits, State)> = HashSet::new();
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state = State::INITIAL;
    let mut steps = 0u64;
    let mut deepest = Deepest {
        linearized: Vec::new(),
        remaining: usize::MAX,
        blocked: None,
    };
    let mut node = list.nodes[HEAD].next;
    while remaining > 0 {
        steps += 1;
        if steps > budget {
            return Err(failure(
                FailureKind::Budget,
                Some(key),
                format!(
                    "the search gave up after {budget} steps over {} operations ({} still \
                     to place); shorten the run or raise the budget",
                    events.len(),
                    remaining
                ),
            ));
        }
        let current = if node == NONE {
            None
        } else {
            Some(list.nodes[node])
        };
        match current {
            Some(n) if n.is_call => {
                let e = n.event;
                let event = &events[e];
                let shadowed = event.ret.is_none()
                    && twins[&event.input]
                        .iter()
                        .find(|&&twin| !linearized.get(twin))
                        .is_some_and(|&first| first != e);
                if !shadowed {
                    if let Some(next_state) = step(state, event.input, event.output) {
                        linearized.set(e);
                        if cache.insert((linearized.clone(), next_state)) {
                            stack.push((node, state));
                            state = next_state;
                            list.lift(node);
                            if event.ret.is_some() {
                                remaining -= 1;
                            }
                            if remaining < deepest.remaining {
                                deepest.remaining = remaining;
                                deepest.linearized = stack
                                    .iter()
                                    .enumerate()
                                    .map(|(depth, &(call, _))| {
                                        let after = stack
                                            .get(depth + 1)
                                            .map_or(state, |&(_, before)| before);
                                        (events[list.nodes[call].event].index, after)
                                    })
                                    .collect();
                                deepest.blocked = None;
                            }
                            node = list.nodes[HEAD].next;
                            continue;
                        }
                        linearized.clear(e);
                    }
                }
                node = n.next;
            }
            _ => {
                // A response whose operation is not linearized yet: back up.
                if let Some(n) = current {
                    if deepest.blocked.is_none() && remaining == deepest.remaining {
                        deepest.blocked = Some(events[n.event].index);
                    }
                }
                let Some((call, before)) = stack.pop() else {
                    return Err(not_linearizable(ops, key, events, &deepest, steps));
                };
                let e = list.nodes[call].event;
                linearized.clear(e);
                state = before;
                list.unlift(call);
                if events[e].ret.is_some() {
                    remaining += 1;
                }
                node = list.nodes[call].next;
            }
        }
    }
    Ok(steps)
}

/// The report: the end of the longest linearizable prefix found, and the operations around the
/// response that could not be placed after it.
fn not_linearizable(
    ops: &[Op],
    key: &str,
    events: &[Event],
    deepest: &Deepest,
    steps: u64,
) -> Failure {
    const PREFIX: usize = 8;
    const WINDOW: usize = 40;
    let mut report = format!("every order tried ({steps} search steps)\n");
    let placed: HashSet<usize> = deepest.linearized.iter().map(|&(i, _)| i).collect();
    let _ = writeln!(
        report,
        "longest linearizable prefix: {} of {} operations on this key; its last {}, with the \
         state after each:",
        deepest.linearized.len(),
        events.len(),
        deepest.linearized.len().min(PREFIX)
    );
    let start = deepest.linearized.len().saturating_sub(PREFIX);
    for &(i, after) in &deepest.linearized[start..] {
        let _ = writeln!(
            report,
            "  {}   => {} (rev >= {})",
            describe(i, &ops[i]),
            after.value.map_or("nil".to_string(), |v| v.to_string()),
            after.revision
        );
    }
    let Some(blocked) = deepest.blocked.or_else(|| {
        events
            .iter()
            .filter(|event| event.ret.is_some() && !placed.contains(&event.index))
            .min_by_key(|event| event.ret)
            .map(|event| event.index)
    }) else {
        return failure(FailureKind::NotLinearizable, Some(key), report);
    };
    let _ = writeln!(
        report,
        "no operation can come next: this one must respond first but cannot be placed:\n  {}",
        describe(blocked, &ops[blocked])
    );
    // Not-yet-placed operations invoked before it responded (the candidates), plus placed ones
    // overlapping it.
    let (from, to) = (ops[blocked].call, ops[blocked].ret);
    let mut window: Vec<usize> = events
        .iter()
        .filter(|event| {
            let op = &ops[event.index];
            event.index != blocked
                && op.call <= to
                && (!placed.contains(&event.index) || op.ret >= from)
        })
        .map(|event| event.index)
        .collect();
    window.sort_by_key(|&i| ops[i].call);
    let skipped = window.len().saturating_sub(WINDOW);
    let _ = writeln!(
        report,
        "operations on this key invoked before it responded, not placed in the prefix or \
         overlapping it{}:",
        if skipped > 0 {
            format!(" (the last {WINDOW} of {})", window.len())
        } else {
            String::new()
        }
    );
    if window.is_empty() {
        report.push_str("  (none)\n");
    }
    report.push_str(&describe_all(ops, &window[skipped..]));
    // Where the values it saw came from.
    for kv in ops[blocked].observations() {
        let writer = ops
            .iter()
            .position(|op| op.input.written() == Some(kv.value));
        let _ = match writer {
            Some(w) => writeln!(
                report,
                "value {} was written by:\n  {}",
                kv.value,
                describe(w, &ops[w])
            ),
            None => writeln!(report, "value {} was written by no operation", kv.value),
        };
    }
    failure(FailureKind::NotLinearizable, Some(key), report)
}

/// Checks a whole history: the checks across keys, then every key's search with at most
/// `budget` steps each.
pub fn check(ops: &[Op], budget: u64) -> Result<Summary, Failure> {
    let writers = writers(ops)?;
    check_observations(ops, &writers)?;
    check_revisions(ops)?;
    let (keys, took_effect) = prepare(ops);
    let mut summary = Summary {
        ops: ops.len(),
        keys: keys.len(),
        unknown: ops.iter().filter(|op| op.output.is_unknown()).count(),
        failed: ops.iter().filter(|op| op.output.is_failed()).count(),
        unknown_took_effect: took_effect,
        ..Summary::default()
    };
    for (key, events) in &keys {
        summary.steps += check_key(ops, key, events, budget)?;
        summary.max_key_ops = summary.max_key_ops.max(events.len());
    }
    Ok(summary)
}
