//! Durability: what was acknowledged survives restarts, SIGTERM and kill -9; a torn WAL tail is
//! repaired on start; corruption anywhere else refuses to start with a message naming the file
//! and the offset.
mod common;
use common::*;

use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bound for one client call (only to avoid hanging a broken test).
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// Upper bound for a server that is expected to refuse to start.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Client helpers
// ---------------------------------------------------------------------------------------------

/// One key as seen by a range: key, value, create revision, mod revision, version, lease.
type Kv = (Vec<u8>, Vec<u8>, i64, i64, i64, i64);

/// A full `get --prefix ""` at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dump {
    header_revision: i64,
    kvs: Vec<Kv>,
}

async fn dump_at(client: &mut Client, revision: i64) -> Dump {
    let mut options = GetOptions::new().with_all_keys();
    if revision > 0 {
        options = options.with_revision(revision);
    }
    let response = tokio::time::timeout(CALL_TIMEOUT, client.get("", Some(options)))
        .await
        .expect("range timed out")
        .expect("range");
    Dump {
        header_revision: response.header().expect("header").revision(),
        kvs: response
            .kvs()
            .iter()
            .map(|kv| {
                (
                    kv.key().to_vec(),
                    kv.value().to_vec(),
                    kv.create_revision(),
                    kv.mod_revision(),
                    kv.version(),
                    kv.lease(),
                )
            })
            .collect(),
    }
}

async fn dump(client: &mut Client) -> Dump {
    dump_at(client, 0).await
}

async fn put(client: &mut Client, key: &str, value: &str) -> i64 {
    let response = tokio::time::timeout(CALL_TIMEOUT, client.put(key, value, None))
        .await
        .expect("put timed out")
        .unwrap_or_else(|error| panic!("put {key}: {error}"));
    response.header().expect("header").revision()
}

async fn get_value(client: &mut Client, key: &str) -> Option<Vec<u8>> {
    let response = tokio::time::timeout(CALL_TIMEOUT, client.get(key, None))
        .await
        .expect("get timed out")
        .unwrap_or_else(|error| panic!("get {key}: {error}"));
    response.kvs().first().map(|kv| kv.value().to_vec())
}

/// The gRPC code of a failed etcd-client call.
fn grpc_code(error: &etcd_client::Error) -> Option<i32> {
    match error {
        etcd_client::Error::GRpcStatus(status) => Some(status.code() as i32),
        _ => None,
    }
}

/// Asserts that a range at `revision` is refused as compacted (OutOfRange, like etcd).
async fn assert_compacted(client: &mut Client, revision: i64) {
    let result = tokio::time::timeout(
        CALL_TIMEOUT,
        client.get(
            "",
            Some(GetOptions::new().with_all_keys().with_revision(revision)),
        ),
    )
    .await
    .expect("range timed out");
    match result {
        Ok(response) => panic!("range at compacted revision {revision} succeeded: {response:?}"),
        Err(error) => {
            assert_eq!(grpc_code(&error), Some(11), "expected OutOfRange: {error}");
            assert!(
                error.to_string().contains("compacted"),
                "unexpected error: {error}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// WAL helpers (from wal/FORMAT.md, independent of the wal crate)
// ---------------------------------------------------------------------------------------------

const SEGMENT_HEADER_BYTES: u64 = 64;
const RECORD_HEADER_BYTES: u64 = 12;
const RECORD_KIND_ENTRY: u8 = 1;

fn wal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("member").join("wal")
}

/// Every `*.wal` segment, in sequence order.
fn segments(data_dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(wal_dir(data_dir))
        .expect("read wal dir")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "wal"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no wal segments in {data_dir:?}");
    files
}

fn last_segment(data_dir: &Path) -> PathBuf {
    segments(data_dir).pop().expect("a segment")
}

/// One record found in a segment file.
#[derive(Debug, Clone)]
struct WalRecord {
    start: u64,
    padded_end: u64,
    kind: u8,
    payload: Vec<u8>,
}

/// Decodes a segment's records up to the end-of-data marker (checksums are not verified: this
/// runs only on files the server wrote and nobody damaged yet).
fn parse_segment(data: &[u8]) -> Vec<WalRecord> {
    assert_eq!(&data[..8], b"CPSTNWAL", "segment magic");
    let mut records = Vec::new();
    let mut at = SEGMENT_HEADER_BYTES;
    while at + RECORD_HEADER_BYTES <= data.len() as u64 {
        let header = &data[at as usize..(at + RECORD_HEADER_BYTES) as usize];
        if header.iter().all(|byte| *byte == 0) {
            break;
        }
        let len = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes")) as u64;
        let kind = header[8];
        let end = at + RECORD_HEADER_BYTES + len;
        assert!(
            end <= data.len() as u64,
            "record at {at} runs past the file"
        );
        let padded_end = end.div_ceil(8) * 8;
        records.push(WalRecord {
            start: at,
            padded_end,
            kind,
            payload: data[(at + RECORD_HEADER_BYTES) as usize..end as usize].to_vec(),
        });
        at = padded_end;
    }
    records
}

/// Offset just past the last non-zero byte of a file.
fn end_of_data(data: &[u8]) -> u64 {
    data.iter()
        .rposition(|byte| *byte != 0)
        .map_or(0, |position| position as u64 + 1)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// The raft-entry record that carries `needle` (a key written exactly once).
fn record_with<'a>(records: &'a [WalRecord], needle: &str) -> &'a WalRecord {
    let matching: Vec<&WalRecord> = records
        .iter()
        .filter(|record| {
            record.kind == RECORD_KIND_ENTRY && contains(&record.payload, needle.as_bytes())
        })
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "expected exactly one wal entry record holding {needle:?}"
    );
    matching[0]
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

fn flip_byte(path: &Path, offset: u64) {
    let mut data = std::fs::read(path).expect("read segment");
    data[offset as usize] ^= 0x5a;
    std::fs::write(path, data).expect("write segment");
}

fn test_seed() -> u64 {
    let seed = std::env::var("CAPSTAN_TEST_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_nanos() as u64
        });
    println!("seed = {seed} (set CAPSTAN_TEST_SEED={seed} to repeat)");
    seed
}

fn ready_count(server: &Server) -> usize {
    server.log().matches(READY_LINE).count()
}

// ---------------------------------------------------------------------------------------------
// Restarting on a fresh port
// ---------------------------------------------------------------------------------------------

/// kill -9, then start again on the same data dir and port.
fn restart_in_place(server: &mut Server) {
    server.restart();
}

/// [`Server::start_expecting_exit`] on the same data dir and port.
fn restart_expecting_exit(server: &mut Server, wait: Duration) -> Option<std::process::ExitStatus> {
    server.start_expecting_exit(wait)
}

// ---------------------------------------------------------------------------------------------
// Restart and graceful stop
// ---------------------------------------------------------------------------------------------

/// Puts, overwrites, deletes, txns and a compaction; returns (the compaction revision, the
/// revisions worth reading after it).
async fn build_history(client: &mut Client) -> (i64, Vec<i64>) {
    for i in 0..20 {
        put(client, &format!("hist/a/{i:02}"), &format!("first-{i}")).await;
    }
    for i in 0..20 {
        if i % 3 == 0 {
            put(client, &format!("hist/a/{i:02}"), &format!("second-{i}")).await;
        }
    }
    put(client, "hist/b/gone", "soon deleted").await;
    let deleted = client
        .delete("hist/b/gone", None)
        .await
        .expect("delete")
        .deleted();
    assert_eq!(deleted, 1);
    let deleted = client
        .delete(
            "hist/a/1",
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await
        .expect("delete prefix")
        .deleted();
    assert_eq!(deleted, 10, "hist/a/10..19 deleted");
    put(client, "hist/a/15", "recreated").await;
    let txn = Txn::new()
        .when(vec![Compare::value(
            "hist/a/03",
            CompareOp::Equal,
            "second-3",
        )])
        .and_then(vec![
            TxnOp::put("hist/c/txn-yes", "1", None),
            TxnOp::delete("hist/a/04", None),
            TxnOp::put("hist/a/05", "txn-overwrite", None),
        ])
        .or_else(vec![TxnOp::put("hist/c/txn-no", "1", None)]);
    assert!(client.txn(txn).await.expect("txn").succeeded());
    let txn = Txn::new()
        .when(vec![Compare::version("hist/a/04", CompareOp::Greater, 0)])
        .and_then(vec![TxnOp::put("hist/c/txn-wrong", "1", None)])
        .or_else(vec![TxnOp::put("hist/c/txn-else", "1", None)]);
    assert!(!client.txn(txn).await.expect("txn").succeeded());
    let compact_at = put(client, "hist/d/at-compaction", "x").await;
    client.compact(compact_at, None).await.expect("compact");
    let mut readable = vec![compact_at];
    for i in 0..5 {
        readable.push(put(client, "hist/d/after", &format!("after-{i}")).await);
    }
    put(client, "hist/e/\u{00e9}t\u{00e9}", "binary\u{0000}value").await;
    (compact_at, readable)
}

async fn full_state(client: &mut Client, readable: &[i64]) -> (Dump, Vec<Dump>, i64) {
    let current = dump(client).await;
    let mut old = Vec::new();
    for revision in readable {
        old.push(dump_at(client, *revision).await);
    }
    let status = client.status().await.expect("status");
    let status_revision = status.header().expect("header").revision();
    (current, old, status_revision)
}

#[test]
fn restart_keeps_keys_values_and_revisions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::capstan(dir.path());
    let runtime = tokio_runtime();
    let (compact_at, readable, before) = runtime.block_on(async {
        let mut client = connect(&server.endpoint()).await;
        let (compact_at, readable) = build_history(&mut client).await;
        let before = full_state(&mut client, &readable).await;
        assert_compacted(&mut client, compact_at - 1).await;
        (compact_at, readable, before)
    });
    assert!(before.0.kvs.len() > 10, "history has keys: {:?}", before.0);
    assert_eq!(before.0.header_revision, before.2);

    for round in 0..2 {
        restart_in_place(&mut server);
        let after = runtime.block_on(async {
            let mut client = connect(&server.endpoint()).await;
            let after = full_state(&mut client, &readable).await;
            assert_compacted(&mut client, compact_at - 1).await;
            after
        });
        assert_eq!(after.0, before.0, "current state after restart {round}");
        assert_eq!(
            after.1, before.1,
            "historical revisions after restart {round}"
        );
        assert_eq!(after.2, before.2, "status revision after restart {round}");
    }

    // Revisions keep increasing from where they were.
    runtime.block_on(async {
        let mut client = connect(&server.endpoint()).await;
        let revision = put(&mut client, "hist/z/new", "v").await;
        assert_eq!(revision, before.0.header_revision + 1);
        let response = client.get("hist/z/new", None).await.expect("get");
        let kv = &response.kvs()[0];
        assert_eq!(kv.create_revision(), revision);
        assert_eq!(kv.mod_revision(), revision);
        assert_eq!(kv.version(), 1);
        let revision2 = put(&mut client, "hist/a/00", "again").await;
        assert_eq!(revision2, revision + 1);
    });
    restart_in_place(&mut server);
    runtime.block_on(async {
        let mut client = connect(&server.endpoint()).await;
        let state = dump(&mut client).await;
        assert_eq!(state.header_revision, before.0.header_revision + 2);
        assert_eq!(
            get_value(&mut client, "hist/z/new").await.as_deref(),
            Some(&b"v"[..])
        );
    });
}

/// Concurrent writers on their own keys: each remembers, per key, the last value acknowledged
/// and the last value it attempted. Values increase per key.
#[derive(Default)]
struct WriteLog {
    acknowledged: HashMap<String, u64>,
    attempted: HashMap<String, u64>,
}

const WRITERS: usize = 8;
const KEYS_PER_WRITER: usize = 4;

fn writer_key(writer: usize, slot: usize) -> String {
    format!("crash/w{writer}/k{slot}")
}

/// Runs `WRITERS` clients until `stop` is set or their server goes away. `start_counter` lets
/// later rounds keep values increasing.
async fn run_writers(
    endpoint: String,
    log: Arc<Mutex<WriteLog>>,
    stop: Arc<AtomicBool>,
    start_counter: u64,
) -> usize {
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let endpoint = endpoint.clone();
        let log = log.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = connect(&endpoint).await;
            let mut acknowledged = 0usize;
            let mut counter = start_counter;
            while !stop.load(Ordering::SeqCst) {
                counter += 1;
                let slot = (counter as usize) % KEYS_PER_WRITER;
                let key = writer_key(writer, slot);
                log.lock()
                    .expect("log")
                    .attempted
                    .insert(key.clone(), counter);
                let outcome = tokio::time::timeout(
                    CALL_TIMEOUT,
                    client.put(key.clone(), counter.to_string(), None),
                )
                .await;
                match outcome {
                    Ok(Ok(_)) => {
                        log.lock().expect("log").acknowledged.insert(key, counter);
                        acknowledged += 1;
                    }
                    // The server was killed (or is shutting down): stop writing.
                    _ => break,
                }
            }
            acknowledged
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("writer task");
    }
    total
}

/// Every acknowledged value is there (or a later attempted one), never one from nowhere.
async fn verify_acknowledged(endpoint: &str, log: &WriteLog) -> u64 {
    let mut client = connect(endpoint).await;
    let mut highest = 0;
    for writer in 0..WRITERS {
        for slot in 0..KEYS_PER_WRITER {
            let key = writer_key(writer, slot);
            let stored = get_value(&mut client, &key).await.map(|value| {
                String::from_utf8(value)
                    .expect("utf8 value")
                    .parse::<u64>()
                    .expect("numeric value")
            });
            let acknowledged = log.acknowledged.get(&key).copied();
            let attempted = log.attempted.get(&key).copied();
            match (acknowledged, stored) {
                (Some(acked), None) => {
                    panic!("{key}: acknowledged value {acked} lost (nothing stored)")
                }
                (Some(acked), Some(stored)) => assert!(
                    stored >= acked,
                    "{key}: acknowledged value {acked} lost, stored {stored}"
                ),
                (None, _) => {}
            }
            if let Some(stored) = stored {
                let attempted = attempted.expect("a stored key was attempted");
                assert!(
                    stored <= attempted,
                    "{key}: stored {stored} was never written (last attempt {attempted})"
                );
                highest = highest.max(stored);
            }
        }
    }
    highest
}

#[test]
fn graceful_stop_exits_zero_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::capstan(dir.path());
    let runtime = tokio_runtime();
    let before = runtime.block_on(async {
        let mut client = connect(&server.endpoint()).await;
        let (_, readable) = build_history(&mut client).await;
        full_state(&mut client, &readable).await.0
    });
    let status = server.stop().expect("server was running");
    assert!(
        status.success(),
        "SIGTERM exit status {status}; log:\n{}",
        server.log()
    );
    restart_in_place(&mut server);
    let after = runtime.block_on(async {
        let mut client = connect(&server.endpoint()).await;
        dump(&mut client).await
    });
    assert_eq!(after, before, "state after a graceful stop");

    // SIGTERM while clients are writing: still exit 0, and nothing acknowledged is lost.
    let log = Arc::new(Mutex::new(WriteLog::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers = runtime.spawn(run_writers(server.endpoint(), log.clone(), stop.clone(), 0));
    std::thread::sleep(Duration::from_millis(1000));
    let status = server.stop().expect("server was running");
    stop.store(true, Ordering::SeqCst);
    let acknowledged = runtime.block_on(writers).expect("writers");
    assert!(
        status.success(),
        "SIGTERM exit status {status}; log:\n{}",
        server.log()
    );
    assert!(acknowledged > 0, "no write was acknowledged before SIGTERM");
    restart_in_place(&mut server);
    let log = log.lock().expect("log");
    runtime.block_on(verify_acknowledged(&server.endpoint(), &log));
}

// ---------------------------------------------------------------------------------------------
// kill -9 while writing
// ---------------------------------------------------------------------------------------------

#[test]
fn kill9_while_writing_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::capstan(dir.path());
    let runtime = tokio_runtime();
    let mut counter_base = 0;
    let mut last_revision = 0;
    // One log for all cycles: values keep increasing per key across them.
    let log = Arc::new(Mutex::new(WriteLog::default()));
    for cycle in 0..3 {
        let stop = Arc::new(AtomicBool::new(false));
        let writers = runtime.spawn(run_writers(
            server.endpoint(),
            log.clone(),
            stop.clone(),
            counter_base,
        ));
        std::thread::sleep(Duration::from_millis(1500));
        server.kill9();
        stop.store(true, Ordering::SeqCst);
        let acknowledged = runtime.block_on(writers).expect("writers");
        assert!(
            acknowledged > 0,
            "cycle {cycle}: no write acknowledged before kill -9"
        );
        restart_in_place(&mut server);
        let log = log.lock().expect("log");
        let highest = runtime.block_on(verify_acknowledged(&server.endpoint(), &log));
        let highest_attempt = log.attempted.values().copied().max().unwrap_or(0);
        drop(log);
        println!("cycle {cycle}: {acknowledged} writes acknowledged, all present");
        // The store is usable and its revision moved forward.
        let revision = runtime.block_on(async {
            let mut client = connect(&server.endpoint()).await;
            let state = dump(&mut client).await;
            assert!(
                state.header_revision > last_revision,
                "cycle {cycle}: revision {} did not advance past {last_revision}",
                state.header_revision
            );
            let revision = put(&mut client, "crash/probe", &cycle.to_string()).await;
            assert_eq!(revision, state.header_revision + 1);
            revision
        });
        last_revision = revision;
        counter_base = highest.max(highest_attempt) + 1;
    }
}

// ---------------------------------------------------------------------------------------------
// Torn tail
// ---------------------------------------------------------------------------------------------

const TORN_KEYS: usize = 300;

fn torn_key(i: usize) -> String {
    format!("torn/{i:05}")
}

fn torn_value(i: usize) -> String {
    format!("value-of-{i:05}")
}

/// Starts a server in `root`, writes `TORN_KEYS` keys one by one, and kills it.
fn write_torn_fixture(root: &Path) -> PathBuf {
    let mut server = Server::capstan(root);
    let runtime = tokio_runtime();
    runtime.block_on(async {
        let mut client = connect(&server.endpoint()).await;
        for i in 0..TORN_KEYS {
            put(&mut client, &torn_key(i), &torn_value(i)).await;
        }
    });
    server.kill9();
    server.data_dir.clone()
}

/// Cuts a copy of `pristine` at `offset` of its last segment, starts it and checks it.
fn check_torn_tail_at(pristine: &Path, offset: u64, label: &str) {
    println!("torn tail: {label}: cutting the last segment at offset {offset}");
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(pristine, &dir.path().join("data"));
    let data_dir = dir.path().join("data");
    let segment = last_segment(&data_dir);
    let records = parse_segment(&std::fs::read(&segment).expect("read segment"));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .expect("open segment");
    file.set_len(offset).expect("truncate");
    file.sync_all().expect("sync");
    drop(file);
    // A real crash tears only WAL bytes that were never synced, so never an entry the page
    // store already holds (it only holds applied entries, which were synced first). Model
    // that by dropping the page store: the state is rebuilt from the WAL alone.
    std::fs::remove_file(data_dir.join("member").join("pages.db")).expect("remove page store");

    let mut server = Server::capstan(dir.path());
    let log = server.log();
    assert!(
        log.to_lowercase().contains("torn tail"),
        "{label}: the log does not mention the torn tail:\n{log}"
    );
    let runtime = tokio_runtime();
    let mut expected: Vec<(String, String)> = Vec::new();
    runtime.block_on(async {
        let mut client = connect(&server.endpoint()).await;
        for i in 0..TORN_KEYS {
            let key = torn_key(i);
            let record = record_with(&records, &key);
            let stored = get_value(&mut client, &key).await;
            if record.padded_end <= offset {
                assert_eq!(
                    stored.as_deref(),
                    Some(torn_value(i).as_bytes()),
                    "{label}: {key} (wal record {}..{}) is before the cut at {offset}",
                    record.start,
                    record.padded_end
                );
                expected.push((key, torn_value(i)));
            } else if record.start >= offset {
                assert_eq!(
                    stored, None,
                    "{label}: {key} (wal record at {}) is after the cut at {offset}",
                    record.start
                );
            } else if let Some(stored) = stored {
                assert_eq!(stored, torn_value(i).as_bytes(), "{label}: {key}");
                expected.push((key, torn_value(i)));
            }
        }
        // New writes work and take the next revision.
        let state = dump(&mut client).await;
        for n in 0..5 {
            let key = format!("after-cut/{n}");
            let revision = put(&mut client, &key, "new").await;
            assert_eq!(revision, state.header_revision + 1 + n as i64);
            expected.push((key, "new".to_string()));
        }
    });
    // ... and survive another restart, with everything from before the cut.
    restart_in_place(&mut server);
    runtime.block_on(async {
        let mut client = connect(&server.endpoint()).await;
        for (key, value) in &expected {
            assert_eq!(
                get_value(&mut client, key).await.as_deref(),
                Some(value.as_bytes()),
                "{label}: {key} after the second restart"
            );
        }
        let state = dump(&mut client).await;
        assert_eq!(
            state.kvs.len(),
            expected.len(),
            "{label}: keys after the second restart"
        );
    });
}

#[test]
fn torn_tail_is_truncated_and_the_server_serves() {
    let fixture = tempfile::tempdir().expect("tempdir");
    let pristine = write_torn_fixture(fixture.path());
    let segment = last_segment(&pristine);
    let data = std::fs::read(&segment).expect("read segment");
    let end = end_of_data(&data);
    let records = parse_segment(&data);
    assert_eq!(
        records.last().expect("records").padded_end.div_ceil(8) * 8,
        end.div_ceil(8) * 8,
        "the records end where the data ends"
    );
    println!(
        "last segment {segment:?}: data ends at {end}, {} records",
        records.len()
    );

    // Edge cases first: inside the very first record, exactly at a record boundary in the
    // middle, and one byte short of the end.
    let middle = record_with(&records, &torn_key(TORN_KEYS / 2));
    check_torn_tail_at(
        &pristine,
        SEGMENT_HEADER_BYTES + 5,
        "inside the first record",
    );
    check_torn_tail_at(&pristine, middle.padded_end, "at a record boundary");
    check_torn_tail_at(&pristine, end - 1, "one byte short of the end");

    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    for round in 0..4 {
        let offset = rng.gen_range(SEGMENT_HEADER_BYTES..end);
        check_torn_tail_at(&pristine, offset, &format!("seed {seed}, cut {round}"));
    }
}

// ---------------------------------------------------------------------------------------------
// Corruption
// ---------------------------------------------------------------------------------------------

/// Restarting on damaged data must fail, naming `segment` and `offset`.
fn assert_refuses_to_start(server: &mut Server, segment: &Path, offset: u64, what: &str) {
    let ready_before = ready_count(server);
    let log_before = server.log().len();
    let status = restart_expecting_exit(server, REFUSAL_TIMEOUT);
    let log = server.log();
    let new_log = &log[log_before..];
    let status = status.unwrap_or_else(|| {
        panic!("{what}: the server kept running on a corrupt wal; log:\n{new_log}")
    });
    assert!(
        !status.success(),
        "{what}: exit status {status}; log:\n{new_log}"
    );
    assert_eq!(
        ready_count(server),
        ready_before,
        "{what}: the server became ready"
    );
    let expected = format!(
        "wal: corrupt record in {} at offset {offset}",
        segment.display()
    );
    assert!(
        new_log.contains(&expected),
        "{what}: the log does not contain {expected:?}:\n{new_log}"
    );
}

#[test]
fn flipped_byte_in_an_early_record_refuses_to_start() {
    let fixture = tempfile::tempdir().expect("tempdir");
    let pristine = write_torn_fixture(fixture.path());
    let segment = last_segment(&pristine);
    let records = parse_segment(&std::fs::read(&segment).expect("read segment"));
    let victim = record_with(&records, &torn_key(10)).clone();
    assert!(records.last().expect("records").start > victim.padded_end);
    // (what, offset inside the victim record)
    let damage = [
        ("payload byte", victim.start + RECORD_HEADER_BYTES + 4),
        ("checksum byte", victim.start + 1),
        ("length byte", victim.start + 4),
        ("kind byte", victim.start + 8),
    ];
    for (what, offset) in damage {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = Server::capstan(dir.path());
        server.kill9();
        std::fs::remove_dir_all(&server.data_dir).expect("clear data dir");
        copy_dir(&pristine, &server.data_dir);
        let segment = last_segment(&server.data_dir);
        flip_byte(&segment, offset);
        println!(
            "flipped the {what} at {offset} (record at {})",
            victim.start
        );
        assert_refuses_to_start(&mut server, &segment, victim.start, what);
        // It keeps refusing: nothing was "repaired" by the failed attempt.
        assert_refuses_to_start(&mut server, &segment, victim.start, what);
    }
}

const SMALL_SEGMENT_BYTES: &str = "--wal-segment-bytes=65536";

/// Writes enough through 64 KiB segments to fill several of them; returns the keys written.
fn fill_small_segments(server: &Server, keys: usize) -> Vec<(String, String)> {
    let runtime = tokio_runtime();
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for writer in 0..4 {
            let endpoint = server.endpoint();
            tasks.push(tokio::spawn(async move {
                let mut client = connect(&endpoint).await;
                let mut written = Vec::new();
                for i in (writer..keys).step_by(4) {
                    let key = format!("seg/{i:05}");
                    let value = format!("{i:05}-{}", "x".repeat(200));
                    put(&mut client, &key, &value).await;
                    written.push((key, value));
                }
                written
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.expect("writer"));
        }
        all
    })
}

#[test]
fn several_segments_replay_and_sealed_segment_damage_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(Flavor::Capstan, dir.path(), &[SMALL_SEGMENT_BYTES]);
    let written = fill_small_segments(&server, 1200);
    restart_in_place(&mut server);
    let files = segments(&server.data_dir);
    assert!(files.len() >= 3, "expected several segments, got {files:?}");
    for file in &files {
        assert_eq!(
            std::fs::metadata(file).expect("stat").len(),
            65536,
            "{file:?}"
        );
    }
    let runtime = tokio_runtime();
    runtime.block_on(async {
        let mut client = connect(&server.endpoint()).await;
        let state = dump(&mut client).await;
        assert_eq!(state.kvs.len(), written.len());
        for (key, value) in &written {
            assert_eq!(
                get_value(&mut client, key).await.as_deref(),
                Some(value.as_bytes()),
                "{key} after replaying {} segments",
                files.len()
            );
        }
    });
    server.kill9();
    let pristine_root = tempfile::tempdir().expect("tempdir");
    let pristine = pristine_root.path().join("data");
    copy_dir(&server.data_dir, &pristine);
    let restore = |server: &Server| {
        std::fs::remove_dir_all(&server.data_dir).expect("clear data dir");
        copy_dir(&pristine, &server.data_dir);
    };

    // The LAST record of a sealed segment: damage there is corruption, not a torn tail.
    let first = files[0].clone();
    let records = parse_segment(&std::fs::read(&first).expect("read"));
    let last = records.last().expect("records").clone();
    flip_byte(&first, last.start + RECORD_HEADER_BYTES);
    assert_refuses_to_start(
        &mut server,
        &first,
        last.start,
        "last record of a sealed segment",
    );

    // A record in the middle of the second segment.
    restore(&server);
    let second = files[1].clone();
    let records = parse_segment(&std::fs::read(&second).expect("read"));
    let victim = records[records.len() / 2].clone();
    flip_byte(&second, victim.start + 2);
    assert_refuses_to_start(&mut server, &second, victim.start, "middle of segment 2");

    // Garbage after the end of data of a sealed segment (its very last byte). A sealed
    // segment can end exactly full when the records happen to fit, so use one with room.
    restore(&server);
    let garbage_at = 65535;
    let sealed_with_room = files[..files.len() - 1]
        .iter()
        .find(|file| {
            let records = parse_segment(&std::fs::read(file).expect("read"));
            records.last().is_some_and(|last| last.padded_end < 65536)
        })
        .expect("some sealed segment has bytes after its data")
        .clone();
    flip_byte(&sealed_with_room, garbage_at);
    assert_refuses_to_start(
        &mut server,
        &sealed_with_room,
        garbage_at,
        "garbage after a sealed segment's data",
    );

    // The segment header of the first segment.
    restore(&server);
    flip_byte(&first, 17);
    assert_refuses_to_start(&mut server, &first, 0, "sealed segment header");

    // A sealed segment that is too short.
    restore(&server);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&second)
        .expect("open");
    file.set_len(40_000).expect("truncate");
    drop(file);
    assert_refuses_to_start(&mut server, &second, 40_000, "truncated sealed segment");

    // A missing segment in the middle.
    restore(&server);
    std::fs::remove_file(&second).expect("remove segment 2");
    let third = files[2].clone();
    let status = restart_expecting_exit(&mut server, REFUSAL_TIMEOUT);
    assert!(
        status.is_some_and(|status| !status.success()),
        "a gap in the segment numbers must refuse to start: {status:?}; log:\n{}",
        server.log()
    );
    assert!(
        server
            .log()
            .contains(&format!("wal: corrupt record in {}", third.display())),
        "the gap is reported as corruption of the segment after it:\n{}",
        server.log()
    );

    // And the pristine copy still starts with everything.
    restore(&server);
    restart_in_place(&mut server);
    runtime.block_on(async {
        let mut client = connect(&server.endpoint()).await;
        assert_eq!(dump(&mut client).await.kvs.len(), written.len());
    });
}

// ---------------------------------------------------------------------------------------------
// Empty and garbage data directories
// ---------------------------------------------------------------------------------------------

#[test]
fn empty_data_dir_bootstraps() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("data")).expect("create empty data dir");
    let mut server = Server::capstan(dir.path());
    assert!(
        server.log().contains("\"bootstrapped\":true"),
        "log:\n{}",
        server.log()
    );
    let runtime = tokio_runtime();
    runtime.block_on(async {
        let mut client = connect(&server.endpoint()).await;
        assert_eq!(dump(&mut client).await.kvs, Vec::<Kv>::new());
        assert_eq!(put(&mut client, "first", "1").await, 2);
    });
    // An empty WAL directory bootstraps too.
    let dir2 = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir2.path().join("data/member/wal")).expect("create empty wal dir");
    let server2 = Server::capstan(dir2.path());
    runtime.block_on(async {
        let mut client = connect(&server2.endpoint()).await;
        assert_eq!(put(&mut client, "first", "1").await, 2);
    });
    // The bootstrapped member is not bootstrapped again.
    restart_in_place(&mut server);
    let log = server.log();
    assert!(log.contains("\"bootstrapped\":false"), "log:\n{log}");
    runtime.block_on(async {
        let mut client = connect(&server.endpoint()).await;
        assert_eq!(
            get_value(&mut client, "first").await.as_deref(),
            Some(&b"1"[..])
        );
    });
}

#[test]
fn garbage_wal_directory_refuses_to_start() {
    // Two garbage files named like segments: the first is a sealed segment with a bad header.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::capstan(dir.path());
    server.kill9();
    let wal = wal_dir(&server.data_dir);
    std::fs::remove_dir_all(&wal).expect("clear wal dir");
    std::fs::create_dir_all(&wal).expect("create wal dir");
    let mut rng = StdRng::seed_from_u64(7);
    let garbage: Vec<u8> = (0..65536).map(|_| rng.gen()).collect();
    let first = wal.join("0000000000000001.wal");
    std::fs::write(&first, &garbage).expect("write garbage");
    std::fs::write(wal.join("0000000000000002.wal"), &garbage).expect("write garbage");
    assert_refuses_to_start(&mut server, &first, 0, "garbage segments");

    // The WAL directory is a regular file.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::capstan(dir.path());
    server.kill9();
    let wal = wal_dir(&server.data_dir);
    std::fs::remove_dir_all(&wal).expect("clear wal dir");
    std::fs::write(&wal, b"not a directory").expect("write file");
    let before = server.log().len();
    let status = restart_expecting_exit(&mut server, REFUSAL_TIMEOUT);
    let log = server.log();
    assert!(
        status.is_some_and(|status| !status.success()),
        "a file in place of the wal directory must refuse to start: {status:?}; log:\n{}",
        &log[before..]
    );
    assert!(
        log[before..].contains("member/wal"),
        "the message names the wal directory:\n{}",
        &log[before..]
    );
}

// ---------------------------------------------------------------------------------------------
// Restarting on the same port
// ---------------------------------------------------------------------------------------------

/// Whether a socket in LISTEN state is bound to `port` (from /proc/net/tcp).
fn port_has_listener(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let port_hex = format!(":{port:04X}");
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.len() > 3 && fields[1].ends_with(&port_hex) && fields[3] == "0A"
    })
}

/// Waits (bounded) until the killed incarnation's listening sockets are gone, so the tests below
/// look at one cause each.
fn wait_until_no_listener(port: u16) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while port_has_listener(port) {
        assert!(
            std::time::Instant::now() < deadline,
            "port {port} still has a listener 10 s after the server died"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn same_port_restart_right_after_kill9() {
    // kill -9 and start again at once, as a supervisor or `restart()` does. No client is
    // connected when the server dies.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::capstan(dir.path());
    assert_eq!(
        etcdctl_ok(&server.endpoint(), &["put", "k", "v"]).trim(),
        "OK"
    );
    for round in 0..8 {
        server.restart();
        assert_eq!(
            etcdctl_ok(&server.endpoint(), &["get", "k"]),
            "k\nv\n",
            "round {round}"
        );
    }
}

/// A client that opened an HTTP/2 connection (preface and SETTINGS) and idles: it closes only
/// after the server has closed, as clients do when their server dies or says GOAWAY.
fn idle_h2_client(server: &Server) -> std::net::TcpStream {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(server.endpoint()).expect("connect");
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .expect("write preface");
    // Read frames until the server acknowledges our SETTINGS: it has read everything we sent,
    // so nothing unread is left in its socket.
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    loop {
        let mut header = [0u8; 9];
        stream.read_exact(&mut header).expect("server frame");
        let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let mut payload = vec![0u8; len];
        stream
            .read_exact(&mut payload)
            .expect("server frame payload");
        if header[3] == 4 && header[4] & 1 == 1 {
            break;
        }
    }
    stream
}

/// Reads until the server closes the connection, then closes it too.
fn close_after_server(mut stream: std::net::TcpStream) {
    use std::io::Read;
    let mut buffer = [0u8; 1024];
    while matches!(stream.read(&mut buffer), Ok(n) if n > 0) {}
}

/// Lines of `ss -tan` for `port` (diagnostics for a failed restart).
fn sockets_on(port: u16) -> String {
    let output = std::process::Command::new("ss")
        .arg("-tan")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .unwrap_or_default();
    output
        .lines()
        .filter(|line| line.contains(&format!(":{port} ")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn same_port_restart_after_kill9_with_a_connected_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::capstan(dir.path());
    assert_eq!(
        etcdctl_ok(&server.endpoint(), &["put", "k", "v"]).trim(),
        "OK"
    );
    let client = idle_h2_client(&server);
    server.kill9();
    close_after_server(client);
    wait_until_no_listener(server.port);
    println!(
        "sockets on the port before the restart:\n{}",
        sockets_on(server.port)
    );
    server.restart();
    assert_eq!(etcdctl_ok(&server.endpoint(), &["get", "k"]), "k\nv\n");
}

#[test]
fn same_port_restart_after_sigterm_with_a_connected_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::capstan(dir.path());
    assert_eq!(
        etcdctl_ok(&server.endpoint(), &["put", "k", "v"]).trim(),
        "OK"
    );
    let client = idle_h2_client(&server);
    let status = server.stop().expect("running");
    assert!(status.success(), "SIGTERM exit status {status}");
    close_after_server(client);
    wait_until_no_listener(server.port);
    println!(
        "sockets on the port before the restart:\n{}",
        sockets_on(server.port)
    );
    server.restart();
    assert_eq!(etcdctl_ok(&server.endpoint(), &["get", "k"]), "k\nv\n");
}
