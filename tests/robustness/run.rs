//! One run: a 3-member cluster, the traffic and watchers for the run's seconds while the
//! driver injects one fault per round, then healing, the final reads and every check.

use super::checks::{self, Violations};
use super::client::connect;
use super::faults::{self, Driver, FailpointResult, FaultKind, CAPSTAN_FAULTS, PROCESS_FAULTS};
use super::history::{ms, Actor, Clock, KeyValue, Outcome, Record, Request, Response, Time};
use super::traffic::{self, Control, TaskLog, CLIENTS, PREFIX, SENTINEL_KEY};
use super::watch::{self, WatchStop, WatcherLog};
use crate::cluster::{converge_clients, Cluster, ClusterSpec, Dump, EVENTUALLY, POLL};
use crate::common::tokio_runtime;
use crate::linearizability::{self, FailureKind};
use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const MEMBERS: usize = 3;
/// Small on purpose: raft snapshots, log compaction and snapshot installs happen all the time.
pub const SNAPSHOT_COUNT: &str = "100";
/// capstan only (etcd has no such flag): small WAL segments, so segments rotate and are
/// released behind snapshots all the time (the `walBeforeRotate`/`raftAfterWALRelease` points).
pub const WAL_SEGMENT_BYTES: &str = "65536";
/// etcd's defaults: shorter ones elect spuriously on a loaded 2-core machine.
pub const HEARTBEAT_INTERVAL_MS: &str = "100";
pub const ELECTION_TIMEOUT_MS: &str = "1000";
/// Search steps per key before the linearizability checker gives up.
const CHECK_BUDGET: u64 = 10_000_000;
/// Healthy time after the last fault, before the traffic stops.
const CALM_TAIL: Duration = Duration::from_secs(1);
/// A run lasts at least this many rounds; more for longer runs (one per this many seconds).
const ROUNDS_MIN: usize = 3;
const SECONDS_PER_ROUND: u64 = 7;
/// Longest text kept of a panic that aborted a run.
const PANIC_TEXT_MAX: usize = 6000;

/// The server program under test.
#[derive(Clone, Debug)]
pub struct ServerKind {
    /// For reports: `capstan`, `etcd 3.4`, ...
    pub label: String,
    /// `None`: capstan (behind peer proxies, with failpoints); else an etcd binary.
    pub program: Option<PathBuf>,
}

impl ServerKind {
    pub fn capstan() -> ServerKind {
        ServerKind {
            label: "capstan".to_string(),
            program: None,
        }
    }

    pub fn etcd(program: PathBuf) -> ServerKind {
        let version = std::process::Command::new(&program)
            .arg("--version")
            .output()
            .ok()
            .and_then(|output| {
                String::from_utf8_lossy(&output.stdout)
                    .lines()
                    .next()
                    .and_then(|line| line.split_whitespace().nth(2).map(str::to_string))
            })
            .unwrap_or_else(|| "?".to_string());
        ServerKind {
            label: format!("etcd {version}"),
            program: Some(program),
        }
    }

    pub fn is_capstan(&self) -> bool {
        self.program.is_none()
    }

    /// The fault kinds this server gets.
    pub fn faults(&self) -> &'static [FaultKind] {
        if self.is_capstan() {
            &CAPSTAN_FAULTS
        } else {
            &PROCESS_FAULTS
        }
    }
}

pub fn rounds_for(seconds: u64) -> usize {
    ROUNDS_MIN.max((seconds / SECONDS_PER_ROUND) as usize)
}

/// One restart of every member: from the start to the first acknowledged write.
#[derive(Clone, Copy, Debug)]
pub struct RestartFigure {
    /// A fresh probe client that writes until acknowledged.
    pub probe: Option<Duration>,
    /// The first write of the traffic's clients (they reconnect with back-off).
    pub traffic: Option<Duration>,
}

/// What a run did and found.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    pub server: String,
    pub seed: u64,
    pub seconds: u64,
    /// (request kind, outcome) → count.
    pub ops: BTreeMap<(String, String), usize>,
    /// Errors by outcome and message.
    pub errors: BTreeMap<String, usize>,
    pub faults: BTreeMap<String, usize>,
    pub failpoints: Vec<FailpointResult>,
    pub violations: Vec<String>,
    /// Things that make a check inconclusive without being violations (the search budget).
    pub notes: Vec<String>,
    pub longest_write_gap: Duration,
    pub longest_write_gap_at: Time,
    /// The faults in effect during that gap.
    pub longest_write_gap_faults: String,
    pub longest_definite_write_wait: Duration,
    /// See [`checks::longest_follower_write_answer`].
    pub longest_follower_write_answer: Duration,
    pub restarts: Vec<RestartFigure>,
    pub watch_events: usize,
    pub timeline: String,
    pub elapsed: Duration,
}

impl RunReport {
    pub fn operations(&self) -> usize {
        self.ops.values().sum()
    }

    pub fn faults_injected(&self) -> usize {
        self.faults.values().sum()
    }
}

/// Runs one seed; a panic anywhere (the harness panics when a member will not start or no
/// leader appears) becomes a violation of this run, and every process is gone on return.
pub fn run(server: &ServerKind, seed: u64, seconds: u64) -> RunReport {
    let started = Instant::now();
    let mut report =
        match std::panic::catch_unwind(AssertUnwindSafe(|| run_inner(server, seed, seconds))) {
            Ok(report) => report,
            Err(panic) => {
                let text = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
                    .unwrap_or_else(|| "(no message)".to_string());
                let cut = text
                    .char_indices()
                    .nth(PANIC_TEXT_MAX)
                    .map_or(text.len(), |(cut, _)| cut);
                RunReport {
                    server: server.label.clone(),
                    seed,
                    seconds,
                    violations: vec![format!("the run aborted: {}", &text[..cut])],
                    ..RunReport::default()
                }
            }
        };
    report.elapsed = started.elapsed();
    report
}

fn cluster_spec(server: &ServerKind) -> ClusterSpec {
    let spec = ClusterSpec::new(MEMBERS).flags(&[
        "--snapshot-count",
        SNAPSHOT_COUNT,
        "--heartbeat-interval",
        HEARTBEAT_INTERVAL_MS,
        "--election-timeout",
        ELECTION_TIMEOUT_MS,
    ]);
    match &server.program {
        None => spec
            .proxied()
            .flags(&["--wal-segment-bytes", WAL_SEGMENT_BYTES]),
        Some(program) => spec.program(program.clone()),
    }
}

/// Everything the tasks recorded.
struct Recorded {
    records: Vec<Record>,
    anomalies: Vec<String>,
    watchers: Vec<WatcherLog>,
}

fn run_inner(server: &ServerKind, seed: u64, seconds: u64) -> RunReport {
    let clock = Clock::start();
    let mut cluster = Cluster::start(cluster_spec(server));
    let runtime = tokio_runtime();
    let all = cluster.all();
    cluster.wait_for_leader(&all);
    let urls: Vec<String> = cluster.members.iter().map(|member| member.url()).collect();

    // Watchers first (from revision 1), then the clients and the maintenance task.
    let watcher_members: Vec<Option<usize>> = (0..MEMBERS).map(Some).chain([None]).collect();
    let control = Arc::new(Control::new(watcher_members.len()));
    let watch_stop = Arc::new(WatchStop::new());
    let watchers: Vec<_> = watcher_members
        .iter()
        .enumerate()
        .map(|(id, member)| {
            let urls = member.map_or(urls.clone(), |member| vec![urls[member].clone()]);
            runtime.spawn(watch::watcher_loop(
                id,
                *member,
                urls,
                clock,
                control.clone(),
                watch_stop.clone(),
            ))
        })
        .collect();
    let traffic_start = clock.now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let member = traffic::client_member(client, MEMBERS);
            let urls = member.map_or(urls.clone(), |member| vec![urls[member].clone()]);
            runtime.spawn(traffic::client_loop(
                client,
                member,
                urls,
                seed,
                clock,
                control.clone(),
            ))
        })
        .collect();
    let maintenance = runtime.spawn(traffic::maintenance_loop(
        urls.clone(),
        seed,
        clock,
        control.clone(),
    ));

    // The faults.
    let plan = faults::plan(seed, rounds_for(seconds), server.faults(), MEMBERS);
    let mut driver = Driver::new(&mut cluster, &runtime, clock, control.clone());
    driver.note(format!(
        "{} seed {seed}: {} rounds: {:?}",
        server.label,
        plan.len(),
        plan.iter()
            .map(|fault| match &fault.failpoint {
                Some(failpoint) => format!("{} {}", fault.kind.name(), failpoint.env_value()),
                None => fault.kind.name().to_string(),
            })
            .collect::<Vec<_>>()
    ));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    for (round, fault) in plan.iter().enumerate() {
        driver.note(format!("round {}: {}", round + 1, fault.kind.name()));
        driver.run(fault, server.is_capstan());
    }
    let left = deadline.saturating_duration_since(Instant::now());
    driver.sleep_watching(left);
    if server.is_capstan() {
        driver.cluster.heal();
    }
    driver.revive();
    driver.sleep_watching(CALM_TAIL);
    control.stop.store(true, Ordering::SeqCst);
    let traffic_end = clock.now();
    driver.note(format!(
        "traffic stops after {} requests",
        control.sent.load(Ordering::SeqCst)
    ));

    let mut recorded = Recorded {
        records: Vec::new(),
        anomalies: Vec::new(),
        watchers: Vec::new(),
    };
    for task in clients.into_iter().chain([maintenance]) {
        match runtime.block_on(task) {
            Ok(TaskLog { records, anomalies }) => {
                recorded.records.extend(records);
                recorded.anomalies.extend(anomalies);
            }
            Err(error) => recorded
                .anomalies
                .push(format!("a traffic task failed: {error}")),
        }
    }

    // The end: a sentinel write every watcher must reach, a final linearizable range.
    let mut violations = Violations::default();
    // Leases still granted would expire after the end and delete keys past the sentinel.
    let mut leases: BTreeSet<i64> = recorded
        .records
        .iter()
        .filter_map(|record| match record.outcome {
            Outcome::Ok(Response::LeaseGrant { id, .. }) => Some(id),
            _ => None,
        })
        .collect();
    for record in &recorded.records {
        // Revoked, or refused as not found: gone already.
        if let (Request::LeaseRevoke { id }, Outcome::Ok(_) | Outcome::Failed(_)) =
            (&record.request, &record.outcome)
        {
            leases.remove(id);
        }
    }
    let (revokes, sentinel, final_range) = runtime.block_on(final_requests(&urls, clock, &leases));
    recorded.records.extend(revokes);
    let end_revision = match sentinel.last().map(|record| &record.outcome) {
        Some(Outcome::Ok(Response::Put { revision, .. })) => *revision,
        _ => panic!("the sentinel write was never acknowledged: {sentinel:?}"),
    };
    recorded.records.extend(sentinel);
    recorded.records.extend(final_range.iter().cloned());
    watch_stop.until.store(end_revision, Ordering::SeqCst);
    // A watcher that cannot reach the end in time is stopped and reported as stalled.
    let mut pending = futures::future::join_all(watchers);
    let joined = runtime.block_on(async {
        match tokio::time::timeout(EVENTUALLY, &mut pending).await {
            Ok(joined) => joined,
            Err(_) => {
                watch_stop.give_up.store(true, Ordering::SeqCst);
                pending.await
            }
        }
    });
    for watcher in joined {
        match watcher {
            Ok(log) => recorded.watchers.push(log),
            Err(error) => violations.add("watcher task failed", error.to_string()),
        }
    }
    driver.note(format!(
        "every watcher stopped (end revision {end_revision})"
    ));

    let final_state = check_history(&recorded, end_revision, &final_range, &mut violations);
    let summary = check_linearizable(&recorded.records, &mut violations);
    let mut notes = Vec::new();
    if let Some(note) = summary {
        notes.push(note);
    }
    for anomaly in &recorded.anomalies {
        violations.add("malformed response", anomaly.clone());
    }
    check_members(
        &mut driver,
        &runtime,
        end_revision,
        &final_state,
        &mut violations,
    );

    let restarts = driver
        .restarts
        .iter()
        .map(|sample| RestartFigure {
            probe: sample
                .probe_acknowledged
                .map(|at| Duration::from_nanos(at - sample.started)),
            traffic: checks::first_write_after(&recorded.records, sample.started)
                .map(|at| Duration::from_nanos(at - sample.started)),
        })
        .collect();
    let (gap, gap_at) = checks::longest_write_gap(&recorded.records, traffic_start, traffic_end);
    let mut violations = violations.into_texts();
    violations.append(&mut driver.violations);
    let mut ops: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    // The figures count the traffic's requests, not the end's.
    for record in recorded
        .records
        .iter()
        .filter(|record| record.actor != Actor::Final)
    {
        *ops.entry((
            record.request.kind().to_string(),
            record.outcome.kind().to_string(),
        ))
        .or_default() += 1;
        if let Some(error) = record.outcome.error() {
            *errors
                .entry(format!("{}: {}", record.outcome.kind(), error))
                .or_default() += 1;
        }
    }
    RunReport {
        server: server.label.clone(),
        seed,
        seconds,
        ops,
        errors,
        faults: driver
            .injected
            .iter()
            .map(|(kind, count)| (kind.to_string(), *count))
            .collect(),
        failpoints: driver.failpoints.clone(),
        violations,
        notes,
        longest_write_gap: gap,
        longest_write_gap_at: gap_at,
        longest_write_gap_faults: checks::faults_during(
            &driver.windows,
            gap_at,
            gap_at + gap.as_nanos() as u64,
        ),
        longest_definite_write_wait: checks::longest_definite_write_wait(&recorded.records),
        longest_follower_write_answer: checks::longest_follower_write_answer(
            &recorded.records,
            &driver.windows,
        ),
        restarts,
        watch_events: recorded
            .watchers
            .iter()
            .flat_map(|watcher| &watcher.sessions)
            .flat_map(|session| &session.responses)
            .map(|response| response.events.len())
            .sum(),
        timeline: driver.timeline_text(),
        elapsed: Duration::ZERO,
    }
}

/// At the end: every lease revoked (so none expires later), the sentinel put, and one
/// acknowledged linearizable range of the prefix; each retried until answered, every attempt
/// recorded.
async fn final_requests(
    urls: &[String],
    clock: Clock,
    leases: &BTreeSet<i64>,
) -> (Vec<Record>, Vec<Record>, Vec<Record>) {
    let mut client = connect(urls).await.expect("connect the final client");
    let mut revokes = Vec::new();
    for &id in leases {
        // Revoked, or not found (expired or revoked before): either way gone.
        let revoke = Request::LeaseRevoke { id };
        revokes.extend(until_answered(&mut client, clock, revoke, known).await);
    }
    let sentinel = until_answered(
        &mut client,
        clock,
        Request::Put {
            key: SENTINEL_KEY.to_string(),
            value: super::history::ValueSource::new(1000).next(),
            lease: 0,
        },
        acknowledged,
    )
    .await;
    let range = until_answered(
        &mut client,
        clock,
        Request::Range {
            prefix: PREFIX.to_string(),
            serializable: false,
        },
        acknowledged,
    )
    .await;
    (revokes, sentinel, range)
}

/// Whether an outcome ends the retries of [`until_answered`].
type Accept = fn(&Outcome) -> bool;

fn acknowledged(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Ok(_))
}

fn known(outcome: &Outcome) -> bool {
    !matches!(outcome, Outcome::Unknown(_))
}

/// Sends `request` until `accept` takes its outcome or [`EVENTUALLY`] passed; every attempt.
async fn until_answered(
    client: &mut etcd_client::Client,
    clock: Clock,
    request: Request,
    accept: Accept,
) -> Vec<Record> {
    let deadline = Instant::now() + EVENTUALLY;
    let mut records = Vec::new();
    let mut anomalies = Vec::new();
    loop {
        let record = super::client::execute(
            client,
            &clock,
            Actor::Final,
            None,
            request.clone(),
            &mut anomalies,
        )
        .await;
        let done = accept(&record.outcome);
        records.push(record);
        if done || Instant::now() > deadline {
            return records;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The watch checks, the writes against the watched history, and the replay of every read.
fn check_history(
    recorded: &Recorded,
    end_revision: i64,
    final_range: &[Record],
    violations: &mut Violations,
) -> BTreeMap<String, KeyValue> {
    let merged = watch::merge(&recorded.watchers);
    for text in merged.violations {
        violations.add("watchers disagree", text);
    }
    // Every revision known to touch the prefix: watched, or created by an acknowledged write.
    let mut expected: BTreeSet<i64> = merged.events.keys().copied().collect();
    for record in &recorded.records {
        let created = match (&record.request, &record.outcome) {
            (Request::Put { .. }, Outcome::Ok(Response::Put { revision, .. })) => Some(*revision),
            (
                Request::Cas { .. },
                Outcome::Ok(Response::Cas {
                    succeeded: true,
                    revision,
                    ..
                }),
            ) => Some(*revision),
            (
                Request::Delete { .. },
                Outcome::Ok(Response::Delete {
                    deleted, revision, ..
                }),
            ) if *deleted > 0 => Some(*revision),
            _ => None,
        };
        expected.extend(created);
    }
    for watcher in &recorded.watchers {
        for text in watch::check_watcher(watcher, &merged.events, &expected, end_revision) {
            violations.add("watch guarantee broken", text);
        }
    }
    checks::check_writes(&recorded.records, &merged.events, end_revision, violations);
    let state = checks::replay(&recorded.records, &merged.events, violations);
    if let Err(text) = super::self_test::planted_faults_are_caught(
        &recorded.records,
        &merged.events,
        &expected,
        &recorded.watchers,
        end_revision,
    ) {
        violations.add("checker self-test (a planted fault went unnoticed)", text);
    }
    if let Some(Outcome::Ok(Response::Range { kvs, revision })) =
        final_range.last().map(|record| &record.outcome)
    {
        let replayed: Vec<&KeyValue> = state.values().collect();
        let read: Vec<&KeyValue> = kvs.iter().collect();
        if replayed != read {
            violations.add(
                "final range differs from the watched history",
                format!("final range at revision {revision}: {read:?}\n  replayed: {replayed:?}"),
            );
        }
    } else {
        violations.add(
            "no final range",
            "no linearizable range of the prefix succeeded after healing".to_string(),
        );
    }
    state
}

/// The linearizability check of the register keys; a note if the search gave up.
fn check_linearizable(records: &[Record], violations: &mut Violations) -> Option<String> {
    let ops = checks::register_ops(records);
    let started = Instant::now();
    match linearizability::check(&ops, CHECK_BUDGET) {
        Ok(summary) => {
            eprintln!(
                "linearizable: {summary:?}, checked in {:?}",
                started.elapsed()
            );
            None
        }
        Err(failure) if failure.kind == FailureKind::Budget => {
            Some(format!("linearizability inconclusive: {failure}"))
        }
        Err(failure) => {
            violations.add("not linearizable", failure.to_string());
            None
        }
    }
}

/// Every member: the same full dump and HashKV at one revision, its prefix equal to the
/// replayed history; no member exited on its own; no panic in any log.
fn check_members(
    driver: &mut Driver,
    runtime: &tokio::runtime::Runtime,
    end_revision: i64,
    final_state: &BTreeMap<String, KeyValue>,
    violations: &mut Violations,
) {
    driver.check_exits();
    let urls: Vec<String> = driver
        .cluster
        .members
        .iter()
        .map(|member| member.url())
        .collect();
    let converged = runtime.block_on(converge(&urls, end_revision));
    match converged {
        Err(text) => violations.add("members did not converge", text),
        Ok(dump) => {
            let prefix: Vec<(String, u64, i64, i64, i64)> = dump
                .kvs
                .iter()
                .filter(|kv| kv.0.starts_with(PREFIX.as_bytes()))
                .map(|kv| {
                    (
                        String::from_utf8_lossy(&kv.0).into_owned(),
                        super::history::parse_value(&kv.1),
                        kv.2,
                        kv.3,
                        kv.4,
                    )
                })
                .collect();
            let replayed: Vec<(String, u64, i64, i64, i64)> = final_state
                .values()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value,
                        kv.create_revision,
                        kv.mod_revision,
                        kv.version,
                    )
                })
                .collect();
            if prefix != replayed {
                violations.add(
                    "final dump differs from the watched history",
                    format!(
                        "dump at revision {} (the sentinel's: {end_revision}): {prefix:?}\n  \
                         replayed: {replayed:?}",
                        dump.revision
                    ),
                );
            }
            if let Err(text) = runtime.block_on(hash_kv_agree(&urls, dump.revision)) {
                violations.add("HashKV differs", text);
            }
        }
    }
    for member in driver.cluster.all() {
        let log = driver.cluster.log(member);
        let lines: Vec<&str> = log.lines().collect();
        if let Some(at) = lines
            .iter()
            .position(|line| line.contains("panicked at") || line.starts_with("panic: "))
        {
            violations.add(
                "panic in a member's log",
                format!(
                    "n{}:\n{}",
                    member + 1,
                    lines[at.saturating_sub(5)..(at + 30).min(lines.len())].join("\n")
                ),
            );
        }
    }
}

/// Waits until every member returns the same full serializable dump at a revision of at least
/// `min_revision`.
async fn converge(urls: &[String], min_revision: i64) -> Result<Dump, String> {
    let mut clients = Vec::new();
    for url in urls {
        clients.push(connect(std::slice::from_ref(url)).await?);
    }
    let last = match converge_clients(&mut clients, min_revision).await {
        Ok(dump) => return Ok(dump),
        Err(last) => last,
    };
    Err(format!(
        "no common dump at revision >= {min_revision} within {EVENTUALLY:?}: {:?}",
        last.iter()
            .enumerate()
            .map(|(i, dump)| match dump {
                Ok(dump) => format!(
                    "n{}: revision {}, {} keys",
                    i + 1,
                    dump.revision,
                    dump.kvs.len()
                ),
                Err(error) => format!("n{}: {error}", i + 1),
            })
            .collect::<Vec<_>>()
    ))
}

/// HashKV at `revision` on every member: equal hashes and compact revisions.
async fn hash_kv_agree(urls: &[String], revision: i64) -> Result<(), String> {
    let mut answers = Vec::new();
    for url in urls {
        let mut client = connect(std::slice::from_ref(url)).await?;
        let answer = tokio::time::timeout(super::client::REQUEST_TIMEOUT, client.hash_kv(revision))
            .await
            .map_err(|_| format!("HashKV on {url} timed out"))?
            .map_err(|error| format!("HashKV on {url}: {error}"))?;
        answers.push((answer.hash(), answer.compact_version()));
    }
    if answers.windows(2).all(|pair| pair[0] == pair[1]) {
        Ok(())
    } else {
        Err(format!(
            "HashKV at revision {revision} (hash, compact revision) per member: {answers:?}"
        ))
    }
}

/// A one-line summary of a run for the log.
pub fn one_line(report: &RunReport) -> String {
    format!(
        "{} seed {}: {} operations, {} faults {:?}, {} violations, longest write gap {} ({}), \
         longest follower write answer with the leader down {}, restarts {:?}, {:.1} s",
        report.server,
        report.seed,
        report.operations(),
        report.faults_injected(),
        report.faults,
        report.violations.len(),
        ms(report.longest_write_gap.as_nanos() as u64),
        report.longest_write_gap_faults,
        ms(report.longest_follower_write_answer.as_nanos() as u64),
        report
            .restarts
            .iter()
            .map(|restart| restart.probe.map(|probe| format!("{probe:?}")))
            .collect::<Vec<_>>(),
        report.elapsed.as_secs_f64()
    )
}
