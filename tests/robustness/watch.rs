//! Watchers of [`PREFIX`] from revision 1, and the check of etcd's watch guarantees.
//!
//! A watcher resumes from its last received revision + 1 after any error; a watch cancelled
//! with a `compact_revision` resumes from there (the revisions in between are excused, as a
//! client must expect). Every response is recorded with its events.
//!
//! The checks, per watcher (etcd's `tests/robustness/validate/watch.go` asks the same):
//! - **ordered**: revisions never go back within a response, and strictly increase from one
//!   response to the next (across reconnections too): no event is delivered twice;
//! - **atomic**: the events of one revision come in one response, all of them;
//! - **equal**: every event equals what the other watchers got for that revision;
//! - **complete**: every revision that touched the prefix (known from any watcher or from an
//!   acknowledged write) between revision 1 and the last one it received was delivered, unless
//!   excused by a compaction; and every watcher reached the final sentinel's revision.
//!
//! The merged history of all watchers is then replayed against the reads and the final state
//! (`checks.rs`).

use super::client::{connect, REQUEST_TIMEOUT};
use super::history::{Clock, KeyValue, Time};
use super::traffic::{Control, PREFIX};
use etcd_client::{EventType, WatchOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often a waiting watcher looks at the stop conditions.
const WATCH_POLL: Duration = Duration::from_millis(200);
/// Pause before a watcher reconnects.
const WATCH_BACKOFF: Duration = Duration::from_millis(200);
/// Violations printed per watcher and kind (the count is always given).
const SHOWN_PER_WATCHER: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    Put,
    Delete,
}

/// One event; a delete's kv carries the key and the delete's revision as `mod_revision`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WatchEvent {
    pub kind: EventKind,
    pub kv: KeyValue,
}

impl WatchEvent {
    pub fn revision(&self) -> i64 {
        self.kv.mod_revision
    }

    fn of(event: &etcd_client::Event) -> Option<WatchEvent> {
        let kv = event.kv()?;
        let mut kv = KeyValue::of(kv);
        let kind = match event.event_type() {
            EventType::Put => EventKind::Put,
            EventType::Delete => {
                kv.value = 0;
                EventKind::Delete
            }
        };
        Some(WatchEvent { kind, kv })
    }
}

impl std::fmt::Display for WatchEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            EventKind::Put => write!(f, "put {}", self.kv),
            EventKind::Delete => write!(f, "delete {}@{}", self.kv.key, self.kv.mod_revision),
        }
    }
}

#[derive(Clone, Debug)]
pub struct WatchResponseRecord {
    pub received: Time,
    pub header_revision: i64,
    pub events: Vec<WatchEvent>,
    pub canceled: bool,
    pub compact_revision: i64,
    pub cancel_reason: String,
}

/// One watch request and what came back on it.
#[derive(Clone, Debug, Default)]
pub struct WatchSession {
    pub start_revision: i64,
    pub started: Time,
    pub responses: Vec<WatchResponseRecord>,
    /// Why it ended.
    pub end: String,
}

#[derive(Clone, Debug)]
pub struct WatcherLog {
    pub id: usize,
    pub member: Option<usize>,
    pub sessions: Vec<WatchSession>,
    /// Events that could not be parsed (no kv).
    pub malformed: usize,
}

impl WatcherLog {
    pub fn name(&self) -> String {
        match self.member {
            Some(member) => format!("watcher {} (n{})", self.id, member + 1),
            None => format!("watcher {} (any member)", self.id),
        }
    }

    /// The highest revision received.
    pub fn last_revision(&self) -> i64 {
        self.sessions
            .iter()
            .flat_map(|session| &session.responses)
            .flat_map(|response| &response.events)
            .map(WatchEvent::revision)
            .max()
            .unwrap_or(0)
    }
}

/// When watchers stop: once they received `until` (set at the end of a run), or on `give_up`.
pub struct WatchStop {
    pub until: AtomicI64,
    pub give_up: AtomicBool,
}

impl WatchStop {
    pub fn new() -> WatchStop {
        WatchStop {
            until: AtomicI64::new(0),
            give_up: AtomicBool::new(false),
        }
    }

    fn done(&self, next: i64) -> bool {
        let until = self.until.load(Ordering::SeqCst);
        self.give_up.load(Ordering::SeqCst) || (until > 0 && next > until)
    }
}

/// One watcher's loop.
pub async fn watcher_loop(
    id: usize,
    member: Option<usize>,
    urls: Vec<String>,
    clock: Clock,
    control: Arc<Control>,
    stop: Arc<WatchStop>,
) -> WatcherLog {
    let mut log = WatcherLog {
        id,
        member,
        sessions: Vec::new(),
        malformed: 0,
    };
    let mut client = match connect(&urls).await {
        Ok(client) => client,
        Err(error) => {
            log.sessions.push(WatchSession {
                end: error,
                ..WatchSession::default()
            });
            return log;
        }
    };
    let mut next = 1i64;
    while !stop.done(next) {
        let mut session = WatchSession {
            start_revision: next,
            started: clock.now(),
            ..WatchSession::default()
        };
        let options = WatchOptions::new().with_prefix().with_start_revision(next);
        let created = tokio::time::timeout(REQUEST_TIMEOUT, client.watch(PREFIX, Some(options)));
        let (_watcher, mut stream) = match created.await {
            Ok(Ok(pair)) => pair,
            Ok(Err(error)) => {
                session.end = format!("watch failed: {error}");
                log.sessions.push(session);
                tokio::time::sleep(WATCH_BACKOFF).await;
                continue;
            }
            Err(_) => {
                session.end = "watch creation timed out".to_string();
                log.sessions.push(session);
                continue;
            }
        };
        session.end = loop {
            if stop.done(next) {
                break "stopped".to_string();
            }
            let message = match tokio::time::timeout(WATCH_POLL, stream.message()).await {
                Err(_) => continue,
                Ok(Ok(Some(message))) => message,
                Ok(Ok(None)) => break "stream closed".to_string(),
                Ok(Err(error)) => break format!("stream error: {error}"),
            };
            let mut events = Vec::new();
            for event in message.events() {
                match WatchEvent::of(event) {
                    Some(event) => events.push(event),
                    None => log.malformed += 1,
                }
            }
            if let Some(last) = events.iter().map(WatchEvent::revision).max() {
                next = next.max(last + 1);
                control.watch_progress[id].fetch_max(last, Ordering::SeqCst);
            }
            let canceled = message.canceled();
            let compact_revision = message.compact_revision();
            session.responses.push(WatchResponseRecord {
                received: clock.now(),
                header_revision: message.header().map_or(0, |header| header.revision()),
                events,
                canceled,
                compact_revision,
                cancel_reason: message.cancel_reason().to_string(),
            });
            if canceled {
                if compact_revision > 0 {
                    next = next.max(compact_revision);
                }
                break format!(
                    "canceled (compact_revision {compact_revision}, reason {:?})",
                    message.cancel_reason()
                );
            }
        };
        log.sessions.push(session);
    }
    log
}

/// The events of each revision, as the watchers received them, and where they disagree.
pub struct Merged {
    pub events: BTreeMap<i64, Vec<WatchEvent>>,
    pub violations: Vec<String>,
}

/// The events of each response, grouped by revision (in order of arrival).
fn revision_groups(events: &[WatchEvent]) -> Vec<(i64, Vec<WatchEvent>)> {
    let mut groups: Vec<(i64, Vec<WatchEvent>)> = Vec::new();
    for event in events {
        match groups.last_mut() {
            Some((revision, group)) if *revision == event.revision() => group.push(event.clone()),
            _ => groups.push((event.revision(), vec![event.clone()])),
        }
    }
    groups
}

/// Merges every watcher's events: the first complete delivery of a revision stands, and
/// another watcher's different delivery of the same revision is a violation.
pub fn merge(watchers: &[WatcherLog]) -> Merged {
    let mut events: BTreeMap<i64, (Vec<WatchEvent>, String)> = BTreeMap::new();
    let mut violations = Vec::new();
    for watcher in watchers {
        for session in &watcher.sessions {
            for response in &session.responses {
                for (revision, group) in revision_groups(&response.events) {
                    match events.get(&revision) {
                        None => {
                            events.insert(revision, (group, watcher.name()));
                        }
                        Some((first, from)) if *first != group => violations.push(format!(
                            "watchers disagree on revision {revision}: {from} got [{}], {} got \
                             [{}]",
                            list(first),
                            watcher.name(),
                            list(&group)
                        )),
                        Some(_) => {}
                    }
                }
            }
        }
    }
    Merged {
        events: events
            .into_iter()
            .map(|(revision, (group, _))| (revision, group))
            .collect(),
        violations,
    }
}

pub fn list(events: &[WatchEvent]) -> String {
    events
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Collects one kind of violation of one watcher, keeping a few for the report.
struct Findings {
    watcher: String,
    kinds: BTreeMap<&'static str, (usize, Vec<String>)>,
}

impl Findings {
    fn add(&mut self, kind: &'static str, text: String) {
        let entry = self.kinds.entry(kind).or_default();
        entry.0 += 1;
        if entry.1.len() < SHOWN_PER_WATCHER {
            entry.1.push(text);
        }
    }

    fn into_violations(self) -> Vec<String> {
        self.kinds
            .into_iter()
            .map(|(kind, (count, shown))| {
                format!(
                    "{}: {count} x watch {kind}:\n    {}",
                    self.watcher,
                    shown.join("\n    ")
                )
            })
            .collect()
    }
}

/// Checks one watcher against the merged history. `expected` holds every revision known to
/// touch the prefix; `end_revision` is the sentinel's revision every watcher must reach.
pub fn check_watcher(
    watcher: &WatcherLog,
    merged: &BTreeMap<i64, Vec<WatchEvent>>,
    expected: &BTreeSet<i64>,
    end_revision: i64,
) -> Vec<String> {
    let mut findings = Findings {
        watcher: watcher.name(),
        kinds: BTreeMap::new(),
    };
    if watcher.malformed > 0 {
        findings.add(
            "event without a kv",
            format!("{} events carried no kv", watcher.malformed),
        );
    }
    let mut delivered: BTreeSet<i64> = BTreeSet::new();
    let mut excused: Vec<(i64, i64)> = Vec::new();
    let mut last = 0i64;
    for session in &watcher.sessions {
        for response in &session.responses {
            if response.canceled && response.compact_revision > 0 {
                excused.push((session.start_revision, response.compact_revision - 1));
            }
            let Some(first) = response.events.first() else {
                continue;
            };
            if first.revision() <= last {
                findings.add(
                    "order (an event at or before one already delivered)",
                    format!(
                        "response at {} starts at revision {} after revision {last} was \
                         delivered: [{}]",
                        super::history::ms(response.received),
                        first.revision(),
                        list(&response.events)
                    ),
                );
            }
            if first.revision() < session.start_revision {
                findings.add(
                    "order (an event before the watch's start revision)",
                    format!(
                        "watch from revision {} received [{}]",
                        session.start_revision,
                        list(&response.events)
                    ),
                );
            }
            let groups = revision_groups(&response.events);
            if groups.windows(2).any(|pair| pair[0].0 >= pair[1].0) {
                findings.add(
                    "order (within one response)",
                    format!("[{}]", list(&response.events)),
                );
            }
            let highest = response.events.iter().map(WatchEvent::revision).max();
            if let Some(highest) = highest {
                if response.header_revision < highest {
                    findings.add(
                        "header revision below its events",
                        format!(
                            "header revision {} with [{}]",
                            response.header_revision,
                            list(&response.events)
                        ),
                    );
                }
            }
            for (revision, group) in groups {
                if !delivered.insert(revision) {
                    findings.add("duplicate", format!("revision {revision} delivered again"));
                }
                match merged.get(&revision) {
                    Some(all) if *all == group => {}
                    Some(all) => findings.add(
                        "split or different revision",
                        format!(
                            "revision {revision}: received [{}] in one response, the revision \
                             holds [{}]",
                            list(&group),
                            list(all)
                        ),
                    ),
                    None => {}
                }
            }
            last = last.max(highest.unwrap_or(last));
        }
    }
    let is_excused = |revision: i64| {
        excused
            .iter()
            .any(|&(from, to)| from <= revision && revision <= to)
    };
    for &revision in expected.range(1..=last) {
        if !delivered.contains(&revision) && !is_excused(revision) {
            findings.add(
                "gap",
                format!(
                    "revision {revision} [{}] never delivered (last delivered {last})",
                    merged.get(&revision).map_or(String::new(), |all| list(all))
                ),
            );
        }
    }
    if last < end_revision {
        findings.add(
            "stalled",
            format!(
                "last revision {last} < the final revision {end_revision}; sessions ended: {:?}",
                watcher
                    .sessions
                    .iter()
                    .rev()
                    .take(3)
                    .map(|session| session.end.as_str())
                    .collect::<Vec<_>>()
            ),
        );
    }
    findings.into_violations()
}
