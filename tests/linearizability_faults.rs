//! Linearizability under faults: six etcd-client clients, each talking to one member of a
//! three-member cluster, run concurrent puts, linearizable gets, deletes and compare-and-set
//! txns on four keys while a seeded schedule kills (-9) and restarts members, SIGSTOPs the
//! leader and cuts one member off (through the harness's peer proxies). Every operation is
//! recorded with its invocation and response times on one monotonic clock; a failed or timed
//! out one may or may not have taken effect. The history is then checked by our own WGL checker
//! (`linearizability/`), per key, with the revisions checked across keys.
//!
//! Puts and deletes ask for `prev_kv`, so they also tell what they replaced. A txn compares
//! either the value the client last saw on the key, or the mod revision it saw with it
//! (`mod_revision == 0` for an absent key): since every write writes a unique value, only that
//! value ever has that mod revision, and both are the register's compare-and-set.
//!
//! The seed comes from `CAPSTAN_TEST_SEED` (else it is random) and is printed at the start and
//! with every failure. It fixes the fault schedule and every client's choices, not the timing.
//!
//! The test asserts behaviour only: the history is linearizable, every member ends with the same
//! data, and the run meant something (the faults happened, most operations succeeded).
mod cluster;
mod common;
mod linearizability;

use cluster::*;
use common::*;

use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, KeyValue, PutOptions, Txn, TxnOp, TxnOpResponse,
};
use linearizability::{describe, Input, Kv, Op, Output, Value};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

const MEMBERS: usize = 3;
const CLIENTS: usize = 6;
const KEYS: [&str; 4] = ["lin/a", "lin/b", "lin/c", "lin/d"];
/// Per-request deadline: a request that has not answered by then is UNKNOWN.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Rounds of faults; each round injects two, then waits for the whole cluster to agree on a
/// leader again.
const ROUNDS: usize = 3;
const FAULTS_PER_ROUND: usize = 2;
/// Search steps allowed per key before the checker gives up (it never hangs).
const CHECK_BUDGET: u64 = 2_000_000;
/// The client id of the reads made after the workload.
const FINAL_CLIENT: usize = CLIENTS;

// ---------------------------------------------------------------------------------------------
// Clock, seed
// ---------------------------------------------------------------------------------------------

/// Nanoseconds since the test started, on one monotonic clock shared by every task.
fn now() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

fn ms(time: u64) -> String {
    format!("{:.1} ms", time as f64 / 1e6)
}

fn seed_from_env() -> u64 {
    match std::env::var("CAPSTAN_TEST_SEED") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("CAPSTAN_TEST_SEED={text:?} is not a u64")),
        Err(_) => rand::random(),
    }
}

/// Prints the seed again if the test panics anywhere (also in the harness).
struct SeedOnFailure(u64);

impl Drop for SeedOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "linearizability_faults FAILED with seed {0}; rerun with CAPSTAN_TEST_SEED={0}",
                self.0
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

/// A value no client wrote (the checker then reports the read).
const FOREIGN_VALUE: Value = u64::MAX;

fn parse_value(bytes: &[u8]) -> Value {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(FOREIGN_VALUE)
}

fn kv_of(kv: &KeyValue) -> Kv {
    Kv::new(parse_value(kv.value()), kv.mod_revision())
}

/// What one client did.
#[derive(Default)]
struct ClientLog {
    ops: Vec<Op>,
    /// Responses that are wrong on their own (e.g. a delete count that disagrees with prev_kv).
    anomalies: Vec<String>,
}

fn short_error(error: &etcd_client::Error) -> String {
    let text = error.to_string();
    match text.char_indices().nth(120) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

async fn timed<T>(
    future: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(REQUEST_TIMEOUT, future).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(error)) => Err(short_error(&error)),
        Err(_) => Err(format!("timed out after {REQUEST_TIMEOUT:?}")),
    }
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.map_or(0, |header| header.revision())
}

/// One operation against `client`, recorded.
async fn run_op(
    client: &mut Client,
    client_id: usize,
    member: usize,
    key: &str,
    input: Input,
    compare_mod_revision: Option<i64>,
    log: &mut ClientLog,
) -> Output {
    let mut note = format!("via n{}", member + 1);
    let call = now();
    let result: Result<Output, String> = match input {
        Input::Put { value } => timed(client.put(
            key,
            value.to_string(),
            Some(PutOptions::new().with_prev_key()),
        ))
        .await
        .map(|response| Output::Put {
            prev: response.prev_key().map(kv_of),
            revision: header_revision(response.header()),
        }),
        Input::Get => timed(client.get(key, None)).await.map(|response| {
            if response.kvs().len() > 1 {
                log.anomalies
                    .push(format!("get {key} returned {} kvs", response.kvs().len()));
            }
            Output::Get {
                kv: response.kvs().first().map(kv_of),
                revision: header_revision(response.header()),
            }
        }),
        Input::Delete => timed(client.delete(key, Some(DeleteOptions::new().with_prev_key())))
            .await
            .map(|response| {
                if response.deleted() != response.prev_kvs().len() as i64 {
                    log.anomalies.push(format!(
                        "delete {key}: deleted={} but {} prev_kvs",
                        response.deleted(),
                        response.prev_kvs().len()
                    ));
                }
                Output::Delete {
                    prev: response.prev_kvs().first().map(kv_of),
                    revision: header_revision(response.header()),
                }
            }),
        Input::Cas { expect, value } => {
            let compare = match (compare_mod_revision, expect) {
                (Some(revision), _) => {
                    note.push_str(&format!("; compare mod_revision=={revision}"));
                    Compare::mod_revision(key, CompareOp::Equal, revision)
                }
                (None, Some(expect)) => {
                    note.push_str("; compare value");
                    Compare::value(key, CompareOp::Equal, expect.to_string())
                }
                (None, None) => unreachable!("an absent key is compared by mod_revision 0"),
            };
            let txn = Txn::new()
                .when([compare])
                .and_then([TxnOp::put(key, value.to_string(), None)])
                .or_else([TxnOp::get(key, None)]);
            timed(client.txn(txn)).await.map(|response| {
                let current = if response.succeeded() {
                    None
                } else {
                    match response.op_responses().first() {
                        Some(TxnOpResponse::Get(get)) => get.kvs().first().map(kv_of),
                        other => {
                            log.anomalies.push(format!(
                                "txn on {key} failed its compare but answered {other:?}"
                            ));
                            None
                        }
                    }
                };
                Output::Cas {
                    succeeded: response.succeeded(),
                    current,
                    revision: header_revision(response.header()),
                }
            })
        }
    };
    let ret = now();
    let output = match result {
        Ok(output) => output,
        Err(error) => {
            note.push_str(&format!("; error: {error}"));
            Output::Unknown
        }
    };
    log.ops.push(Op {
        client: client_id,
        key: key.to_string(),
        call,
        ret,
        input,
        output,
        note,
    });
    output
}

/// A client's loop until `stop`: random operations on random keys, its choices from its seed.
async fn client_loop(
    mut client: Client,
    client_id: usize,
    member: usize,
    seed: u64,
    stop: Arc<AtomicBool>,
    progress: Arc<Vec<AtomicU64>>,
) -> ClientLog {
    let mut rng =
        StdRng::seed_from_u64(seed ^ (client_id as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut log = ClientLog::default();
    // The last value this client saw on each key, with its mod revision (None: absent).
    let mut last_seen: Vec<Option<Kv>> = vec![None; KEYS.len()];
    let mut next_value: Value = (client_id as Value + 1) * 1_000_000_000;
    while !stop.load(Ordering::SeqCst) {
        let k = rng.gen_range(0..KEYS.len());
        let key = KEYS[k];
        let mut compare_mod_revision = None;
        let input = match rng.gen_range(0..100) {
            0..=34 => Input::Get,
            35..=64 => {
                next_value += 1;
                Input::Put { value: next_value }
            }
            65..=84 => {
                next_value += 1;
                let expect = last_seen[k].map(|kv| kv.value);
                // A compare on the value needs a value; an absent key compares by mod_revision 0.
                if expect.is_none() || rng.gen_bool(0.5) {
                    compare_mod_revision = Some(last_seen[k].map_or(0, |kv| kv.mod_revision));
                }
                Input::Cas {
                    expect,
                    value: next_value,
                }
            }
            _ => Input::Delete,
        };
        let output = run_op(
            &mut client,
            client_id,
            member,
            key,
            input,
            compare_mod_revision,
            &mut log,
        )
        .await;
        if !output.is_unknown() {
            let call = log.ops.last().map_or(0, |op| op.call);
            progress[client_id].store(call, Ordering::SeqCst);
        }
        match output {
            Output::Unknown | Output::Failed => {
                // Do not spin against a dead member.
                tokio::time::sleep(Duration::from_millis(rng.gen_range(50..150))).await;
                continue;
            }
            Output::Get { kv, .. } => last_seen[k] = kv,
            Output::Put { revision, .. } => {
                last_seen[k] = input.written().map(|value| Kv::new(value, revision))
            }
            Output::Delete { .. } => last_seen[k] = None,
            Output::Cas {
                succeeded: true,
                revision,
                ..
            } => last_seen[k] = input.written().map(|value| Kv::new(value, revision)),
            Output::Cas { current, .. } => last_seen[k] = current,
        }
        let think = rng.gen_range(0..12);
        tokio::time::sleep(Duration::from_millis(think)).await;
    }
    log
}

// ---------------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FaultKind {
    /// kill -9 a member, then restart it on the same data directory.
    Kill,
    /// SIGSTOP the leader, then SIGCONT it.
    PauseLeader,
    /// Cut one member off from both others, then heal.
    Partition,
}

#[derive(Clone, Copy, Debug)]
struct Fault {
    kind: FaultKind,
    /// Kill or partition the leader rather than `member`.
    at_leader: bool,
    member: usize,
    link: Link,
    /// Healthy time before the fault.
    calm: Duration,
    /// How long the fault lasts.
    hold: Duration,
}

fn plan_faults(rng: &mut StdRng) -> Vec<Fault> {
    let mut kinds: Vec<FaultKind> = [
        FaultKind::Kill,
        FaultKind::PauseLeader,
        FaultKind::Partition,
    ]
    .iter()
    .cycle()
    .take(ROUNDS * FAULTS_PER_ROUND)
    .copied()
    .collect();
    kinds.shuffle(rng);
    kinds
        .into_iter()
        .map(|kind| Fault {
            kind,
            at_leader: rng.gen_bool(0.5),
            member: rng.gen_range(0..MEMBERS),
            link: if rng.gen_bool(0.5) {
                Link::Drop
            } else {
                Link::Blackhole
            },
            calm: Duration::from_millis(rng.gen_range(700..1500)),
            hold: Duration::from_millis(rng.gen_range(1500..3000)),
        })
        .collect()
}

/// What the nemesis did, on the history's clock.
#[derive(Default)]
struct Timeline {
    events: Vec<(u64, String)>,
}

impl Timeline {
    fn note(&mut self, text: String) {
        eprintln!("[{}] {text}", ms(now()));
        self.events.push((now(), text));
    }

    fn text(&self) -> String {
        self.events
            .iter()
            .map(|(time, text)| format!("  [{}] {text}\n", ms(*time)))
            .collect()
    }
}

/// Injects one fault and heals it; returns once the member is back (not necessarily caught up).
fn inject(cluster: &mut Cluster, fault: &Fault, timeline: &mut Timeline) {
    let all = cluster.all();
    let leader = cluster.wait_for_leader(&all).leader;
    let target = if fault.at_leader || fault.kind == FaultKind::PauseLeader {
        leader
    } else {
        fault.member
    };
    let name = format!("n{}", target + 1);
    let role = if target == leader {
        "leader"
    } else {
        "follower"
    };
    match fault.kind {
        FaultKind::Kill => {
            timeline.note(format!("kill -9 {name} ({role})"));
            cluster.kill9(target);
            std::thread::sleep(fault.hold);
            timeline.note(format!("restart {name}"));
            cluster.restart(target);
            timeline.note(format!("{name} ready"));
        }
        FaultKind::PauseLeader => {
            timeline.note(format!("SIGSTOP {name} ({role})"));
            cluster.pause(target);
            std::thread::sleep(fault.hold);
            cluster.resume(target);
            timeline.note(format!("SIGCONT {name}"));
        }
        FaultKind::Partition => {
            timeline.note(format!("isolate {name} ({role}), links {:?}", fault.link));
            cluster.isolate(target, fault.link);
            std::thread::sleep(fault.hold);
            cluster.heal();
            timeline.note("heal".to_string());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

/// The history is rich enough for the check to mean something: with one read made stale (it
/// returns a value that an acknowledged write had replaced before the read began, with that
/// value's true mod revision), the checker must reject it.
fn assert_stale_read_is_caught(ops: &[Op], seed: u64) {
    let acked_write = |op: &Op| match op.output {
        Output::Put { revision, .. }
        | Output::Cas {
            succeeded: true,
            revision,
            ..
        } => op.input.written().map(|value| Kv::new(value, revision)),
        _ => None,
    };
    let stale = ops.iter().enumerate().rev().find_map(|(r, read)| {
        if !matches!(read.output, Output::Get { .. }) {
            return None;
        }
        // A write of the same key replaced by another acknowledged write, both before the read.
        ops.iter().find_map(|old| {
            let old_kv = acked_write(old).filter(|_| old.key == read.key)?;
            ops.iter()
                .any(|newer| {
                    newer.key == read.key
                        && acked_write(newer).is_some()
                        && newer.call > old.ret
                        && newer.ret < read.call
                })
                .then_some((r, old_kv))
        })
    });
    let Some((r, old_kv)) = stale else {
        panic!("seed {seed}: no read followed two acknowledged writes of its key");
    };
    let mut corrupted = ops.to_vec();
    if let Output::Get { kv, .. } = &mut corrupted[r].output {
        *kv = Some(old_kv);
    }
    match linearizability::check(&corrupted, CHECK_BUDGET) {
        Err(failure) if failure.kind == linearizability::FailureKind::NotLinearizable => {
            eprintln!(
                "with #{r} made stale the history is rejected: {}",
                failure.report.lines().next().unwrap_or_default()
            );
        }
        other => panic!(
            "seed {seed}: the checker did not reject the history with #{r} made stale \
             (reading {old_kv:?}): {:?}",
            other.map_err(|failure| failure.to_string())
        ),
    }
}

/// What the clients did, for the log and the failure messages.
struct Stats {
    total: usize,
    ok: usize,
    gets: usize,
    puts: usize,
    deletes: usize,
    deletes_present: usize,
    txns_succeeded: usize,
    txns_failed: usize,
    /// Unknown outcomes by the first words of their error.
    errors: BTreeMap<String, usize>,
    /// Per client: operations, and the last one.
    clients: Vec<String>,
}

impl Stats {
    fn of(ops: &[Op]) -> Stats {
        let count =
            |pred: &dyn Fn(&Output) -> bool| ops.iter().filter(|op| pred(&op.output)).count();
        let mut errors: BTreeMap<String, usize> = BTreeMap::new();
        for op in ops.iter().filter(|op| op.output.is_unknown()) {
            let error = op.note.split_once("error: ").map_or("", |(_, error)| error);
            let words: Vec<&str> = error.split_whitespace().take(8).collect();
            *errors.entry(words.join(" ")).or_default() += 1;
        }
        let clients = (0..=CLIENTS)
            .map(|client| {
                let mine: Vec<usize> = (0..ops.len())
                    .filter(|&i| ops[i].client == client)
                    .collect();
                match mine.last() {
                    Some(&last) => format!(
                        "client {client}: {} operations, the last {}",
                        mine.len(),
                        describe(last, &ops[last])
                    ),
                    None => format!("client {client}: no operations"),
                }
            })
            .collect();
        Stats {
            total: ops.len(),
            ok: count(&|output| !output.is_unknown()),
            gets: count(&|output| matches!(output, Output::Get { .. })),
            puts: count(&|output| matches!(output, Output::Put { .. })),
            deletes: count(&|output| matches!(output, Output::Delete { .. })),
            deletes_present: count(&|output| {
                matches!(output, Output::Delete { prev: Some(_), .. })
            }),
            txns_succeeded: count(&|output| {
                matches!(
                    output,
                    Output::Cas {
                        succeeded: true,
                        ..
                    }
                )
            }),
            txns_failed: count(&|output| {
                matches!(
                    output,
                    Output::Cas {
                        succeeded: false,
                        ..
                    }
                )
            }),
            errors,
            clients,
        }
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} operations, {} acknowledged: gets {}, puts {}, deletes {} (of a present key {}), \
             txns {} succeeded / {} failed; {} unknown, by error: {:?}",
            self.total,
            self.ok,
            self.gets,
            self.puts,
            self.deletes,
            self.deletes_present,
            self.txns_succeeded,
            self.txns_failed,
            self.total - self.ok,
            self.errors
        )?;
        for client in &self.clients {
            writeln!(f, "  {client}")?;
        }
        Ok(())
    }
}

#[test]
fn concurrent_clients_under_faults_see_a_linearizable_history() {
    let _serial = serial();
    let seed = seed_from_env();
    let _report = SeedOnFailure(seed);
    eprintln!("linearizability_faults: seed {seed} (rerun with CAPSTAN_TEST_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let faults = plan_faults(&mut rng);
    eprintln!("fault plan: {faults:?}");

    let runtime = tokio_runtime();
    let mut cluster = Cluster::start(ClusterSpec::new(MEMBERS).proxied());
    let all = cluster.all();
    cluster.wait_for_leader(&all);
    now();

    // The workload.
    let stop = Arc::new(AtomicBool::new(false));
    // Per client: the invocation time of its latest acknowledged operation.
    let progress: Arc<Vec<AtomicU64>> = Arc::new((0..CLIENTS).map(|_| AtomicU64::new(0)).collect());
    let mut tasks = Vec::new();
    for client_id in 0..CLIENTS {
        let member = client_id % MEMBERS;
        let client = runtime.block_on(cluster.client(member));
        tasks.push(runtime.spawn(client_loop(
            client,
            client_id,
            member,
            seed,
            stop.clone(),
            progress.clone(),
        )));
    }

    // The faults, in rounds; after each round the whole cluster agrees on a leader again.
    let mut timeline = Timeline::default();
    let mut injected = 0;
    for (round, faults) in faults.chunks(FAULTS_PER_ROUND).enumerate() {
        timeline.note(format!("round {}", round + 1));
        for fault in faults {
            std::thread::sleep(fault.calm);
            inject(&mut cluster, fault, &mut timeline);
            injected += 1;
        }
        let leadership = cluster.wait_for_leader(&all);
        timeline.note(format!(
            "round {} over: n{} leads term {}",
            round + 1,
            leadership.leader + 1,
            leadership.term
        ));
    }
    // A calm tail; then every client must get an operation acknowledged that it started after
    // the healing (clients on restarted members reconnect).
    let healed_at = now();
    std::thread::sleep(Duration::from_millis(1000));
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        let stuck: Vec<usize> = (0..CLIENTS)
            .filter(|&c| progress[c].load(Ordering::SeqCst) <= healed_at)
            .collect();
        if stuck.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "seed {seed}: clients {stuck:?} (via {:?}) had nothing acknowledged in {EVENTUALLY:?} \
             after the cluster healed\n{}",
            stuck
                .iter()
                .map(|c| format!("n{}", c % MEMBERS + 1))
                .collect::<Vec<_>>(),
            timeline.text()
        );
        std::thread::sleep(POLL);
    }
    timeline.note("every client made progress after healing".to_string());
    stop.store(true, Ordering::SeqCst);
    let mut ops: Vec<Op> = Vec::new();
    let mut anomalies: Vec<String> = Vec::new();
    for task in tasks {
        let log = runtime.block_on(task).expect("client task");
        ops.extend(log.ops);
        anomalies.extend(log.anomalies);
    }
    timeline.note(format!("workload stopped: {} operations", ops.len()));

    // The final value of every key, read linearizably and added to the history, so that a write
    // lost at the end shows up in the check.
    let finals: Vec<Option<Kv>> = runtime.block_on(async {
        let mut client = cluster.client(0).await;
        let mut log = ClientLog::default();
        let mut finals = Vec::new();
        for key in KEYS {
            let deadline = Instant::now() + EVENTUALLY;
            loop {
                let output = run_op(
                    &mut client,
                    FINAL_CLIENT,
                    0,
                    key,
                    Input::Get,
                    None,
                    &mut log,
                )
                .await;
                if let Output::Get { kv, .. } = output {
                    finals.push(kv);
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "seed {seed}: no linearizable read of {key} succeeded after healing"
                );
                tokio::time::sleep(POLL).await;
            }
        }
        ops.extend(log.ops);
        anomalies.extend(log.anomalies);
        finals
    });
    let stats = Stats::of(&ops);
    eprintln!("{stats}");

    // The history.
    let started = Instant::now();
    let result = linearizability::check(&ops, CHECK_BUDGET);
    let took = started.elapsed();
    match result {
        Ok(summary) => eprintln!("linearizable: {summary:?}, checked in {took:?} (seed {seed})"),
        Err(failure) => panic!(
            "seed {seed}: the history is not linearizable (rerun with \
             CAPSTAN_TEST_SEED={seed})\n{failure}\nfaults:\n{}\n{stats}",
            timeline.text()
        ),
    }
    assert!(
        anomalies.is_empty(),
        "seed {seed}: malformed responses: {anomalies:#?}"
    );
    assert_stale_read_is_caught(&ops, seed);

    // Every member ends with the same data: the same full dump, and every key as the final
    // linearizable read saw it, read serializably (locally) on each member.
    let highest = ops
        .iter()
        .filter_map(|op| op.output.revision())
        .max()
        .unwrap_or(0);
    let dump = runtime.block_on(cluster.wait_converged(&all, highest));
    for (key, expected) in KEYS.iter().zip(&finals) {
        let in_dump = dump.kv(key).map(|kv| Kv::new(parse_value(&kv.1), kv.3));
        assert_eq!(
            in_dump, *expected,
            "seed {seed}: {key} in the converged dump differs from its final linearizable read"
        );
    }
    runtime.block_on(async {
        for member in cluster.all() {
            let mut client = cluster.client(member).await;
            for (key, expected) in KEYS.iter().zip(&finals) {
                let (found, _) = get(&mut client, key, true).await.unwrap_or_else(|error| {
                    panic!(
                        "seed {seed}: serializable get {key} on n{}: {error}",
                        member + 1
                    )
                });
                let found =
                    found.map(|(value, mod_revision)| Kv::new(parse_value(&value), mod_revision));
                assert_eq!(
                    found,
                    *expected,
                    "seed {seed}: n{} holds {key} = {found:?}, the cluster {expected:?}",
                    member + 1
                );
            }
        }
    });
    timeline.note("members agree".to_string());

    // The run meant something: every planned fault ran, most operations succeeded, and every
    // kind of outcome occurred.
    assert_eq!(injected, faults.len(), "seed {seed}: not every fault ran");
    assert!(
        stats.ok * 2 > stats.total && stats.ok >= 300,
        "seed {seed}: too few operations succeeded to mean much\n{stats}\n{}",
        timeline.text()
    );
    for (what, n) in [
        ("gets", stats.gets),
        ("puts", stats.puts),
        ("deletes of a present key", stats.deletes_present),
        ("successful txns", stats.txns_succeeded),
        ("failed txns", stats.txns_failed),
    ] {
        assert!(n > 0, "seed {seed}: no acknowledged {what}\n{stats}");
    }
}
