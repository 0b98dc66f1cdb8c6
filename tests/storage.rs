//! The page store under a real `capstan` process: kill -9 during writes, compaction and
//! defrag loses no acknowledged write and never moves the revision back; compaction and an
//! online `etcdctl defrag` shrink the file while a writer keeps writing; `capstanutl defrag`
//! offline; a damaged page refuses the start, naming the file and the byte offset.
//!
//! Every wait polls for a condition with a generous bound; nothing asserts a duration.
mod common;

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const EVENTUALLY: Duration = Duration::from_secs(60);

fn seed() -> u64 {
    std::env::var("TEST_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_secs())
                .unwrap_or(0)
        })
}

fn pages_path(server: &Server) -> PathBuf {
    server.data_dir.join("member").join("pages.db")
}

/// Acknowledged puts: key -> (value, revision).
type Acked = Arc<Mutex<BTreeMap<String, (String, i64)>>>;

/// Puts distinct keys `{prefix}/{writer}/{n}` until stopped or refused; records each
/// acknowledged one.
async fn write_until_stopped(
    endpoint: String,
    prefix: String,
    writer: usize,
    acked: Acked,
    stop: Arc<AtomicBool>,
) {
    let Ok(mut client) = etcd_client::Client::connect([format!("http://{endpoint}")], None).await
    else {
        return;
    };
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let key = format!("{prefix}/{writer}/{n:06}");
        let value = format!("{key}={}", "x".repeat(100 + (n as usize % 300)));
        match client.put(key.clone(), value.clone(), None).await {
            Ok(response) => {
                let revision = response.header().map_or(0, |header| header.revision());
                acked.lock().expect("acked").insert(key, (value, revision));
            }
            Err(_) => return,
        }
        n += 1;
    }
}

async fn current_revision(client: &mut etcd_client::Client) -> i64 {
    client
        .get("any", None)
        .await
        .expect("get")
        .header()
        .expect("header")
        .revision()
}

/// Every acknowledged key holds its value, and the revision is at least every acknowledged one.
async fn verify(endpoint: &str, acked: &BTreeMap<String, (String, i64)>, floor_revision: i64) {
    let mut client = connect(endpoint).await;
    let revision = current_revision(&mut client).await;
    let highest = acked
        .values()
        .map(|(_, revision)| *revision)
        .max()
        .unwrap_or(0);
    assert!(
        revision >= highest.max(floor_revision),
        "revision went back: {revision} < acknowledged {highest} / seen {floor_revision}"
    );
    for (key, (value, _)) in acked {
        let got = client.get(key.as_str(), None).await.expect("get");
        let found = got.kvs().first().map(|kv| kv.value().to_vec());
        assert_eq!(
            found.as_deref(),
            Some(value.as_bytes()),
            "acknowledged key {key} lost or changed"
        );
    }
}

/// What the kill interrupts, besides the writers.
#[derive(Clone, Copy, Debug)]
enum Interrupting {
    Writes,
    Compaction,
    Defrag,
}

#[test]
fn kill9_during_writes_compaction_and_defrag_loses_no_acknowledged_write() {
    let seed = seed();
    println!("TEST_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    // Small raft snapshots too, so start-up meets snapshot files and the page store together.
    let mut server = Server::start(
        Flavor::Capstan,
        dir.path(),
        &["--snapshot-count=3000", "--wal-segment-bytes=262144"],
    );
    let runtime = tokio_runtime();
    let mut all_acked = BTreeMap::new();
    let mut floor_revision = 0;
    for (round, interrupting) in [
        Interrupting::Writes,
        Interrupting::Compaction,
        Interrupting::Defrag,
        Interrupting::Compaction,
        Interrupting::Defrag,
    ]
    .into_iter()
    .enumerate()
    {
        let endpoint = server.endpoint();
        let acked: Acked = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..4)
            .map(|writer| {
                runtime.spawn(write_until_stopped(
                    endpoint.clone(),
                    format!("r{round}"),
                    writer,
                    acked.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        // Let some writes land (and overwrite nothing: every key is new) first.
        let wanted = 1_500 + rng.gen_range(0..1_500);
        let deadline = Instant::now() + EVENTUALLY;
        while acked.lock().expect("acked").len() < wanted {
            assert!(Instant::now() < deadline, "writers stalled");
            std::thread::sleep(Duration::from_millis(20));
        }
        match interrupting {
            Interrupting::Writes => {}
            Interrupting::Compaction => {
                let revision = runtime.block_on(async {
                    let mut client = connect(&endpoint).await;
                    current_revision(&mut client).await
                });
                // Compacting drops every older round's history: many rows to delete.
                let output = etcdctl(&endpoint, &["compaction", &revision.to_string()], None);
                assert!(output.status.success(), "{output:?}");
            }
            Interrupting::Defrag => {
                let endpoint = endpoint.clone();
                std::thread::spawn(move || etcdctl(&endpoint, &["defrag"], None));
            }
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..60)));
        floor_revision = floor_revision.max(
            acked
                .lock()
                .expect("acked")
                .values()
                .map(|(_, revision)| *revision)
                .max()
                .unwrap_or(0),
        );
        server.kill9();
        stop.store(true, Ordering::SeqCst);
        for writer in writers {
            runtime.block_on(writer).expect("writer task");
        }
        let acked = std::mem::take(&mut *acked.lock().expect("acked"));
        println!(
            "round {round}: killed during {interrupting:?} after {} acknowledged puts",
            acked.len()
        );
        all_acked.extend(acked);
        server.restart();
        runtime.block_on(verify(&server.endpoint(), &all_acked, floor_revision));
        assert!(
            server.log().contains("state restored from the page store")
                || server.log().contains("state restored from snapshot"),
            "restart did not start from stored state:\n{}",
            server.log()
        );
    }
}

/// Status `dbSize` and `dbSizeInUse`, through etcdctl.
fn db_sizes(endpoint: &str) -> (u64, u64) {
    let json = etcdctl_ok(endpoint, &["endpoint", "status", "-w", "json"]);
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("status json");
    let status = &parsed[0]["Status"];
    (
        status["dbSize"].as_u64().expect("dbSize"),
        status["dbSizeInUse"].as_u64().expect("dbSizeInUse"),
    )
}

#[test]
fn compaction_and_online_defrag_shrink_the_file_while_a_writer_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::capstan(dir.path());
    let endpoint = server.endpoint();
    let runtime = tokio_runtime();
    // 4,000 keys written three times with 1 KiB values: two thirds is history.
    let revision = runtime.block_on(async {
        let mut client = connect(&endpoint).await;
        for round in 0..3 {
            for i in 0..4_000 {
                let value = format!("{round}-{}", "v".repeat(1_024));
                client
                    .put(format!("bulk/{i:05}"), value, None)
                    .await
                    .expect("put");
            }
        }
        current_revision(&mut client).await
    });
    let deadline = Instant::now() + EVENTUALLY;
    let (size_before, _) = loop {
        let sizes = db_sizes(&endpoint);
        if sizes.0 > 10_000_000 || Instant::now() > deadline {
            break sizes;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        size_before > 10_000_000,
        "page store only {size_before} bytes"
    );

    // A writer keeps writing through the compaction and the defrag.
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = runtime.spawn(write_until_stopped(
        endpoint.clone(),
        "during".to_string(),
        0,
        acked.clone(),
        stop.clone(),
    ));
    etcdctl_ok(&endpoint, &["compaction", &revision.to_string()]);
    // The compaction's deletes are committed in bounded batches: wait until the pages in use
    // have shrunk.
    let deadline = Instant::now() + EVENTUALLY;
    while db_sizes(&endpoint).1 > size_before / 2 {
        assert!(
            Instant::now() < deadline,
            "pages in use never shrank: {:?}",
            db_sizes(&endpoint)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let acked_before_defrag = acked.lock().expect("acked").len();
    assert_eq!(
        etcdctl_ok(&endpoint, &["defrag", "--command-timeout=120s"]),
        format!("Finished defragmenting etcd member[{endpoint}]\n")
    );
    let (size_after, _) = db_sizes(&endpoint);
    assert!(
        size_after < size_before / 2,
        "defrag left {size_after} of {size_before} bytes"
    );
    // The writer went on after the defrag without an error.
    let deadline = Instant::now() + EVENTUALLY;
    while acked.lock().expect("acked").len() < acked_before_defrag + 200 {
        assert!(!writer.is_finished(), "the writer was refused");
        assert!(Instant::now() < deadline, "the writer stalled");
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    runtime.block_on(writer).expect("writer");
    let acked = std::mem::take(&mut *acked.lock().expect("acked"));

    // Everything is still there after a kill -9 and a restart from the defragmented file.
    let hash_before = etcdctl_ok(&endpoint, &["endpoint", "hashkv", "-w", "json"]);
    server.restart();
    runtime.block_on(verify(&server.endpoint(), &acked, revision));
    let hash_after = etcdctl_ok(&endpoint, &["endpoint", "hashkv", "-w", "json"]);
    let hash = |json: &str| -> (u64, i64) {
        let parsed: serde_json::Value = serde_json::from_str(json).expect("hashkv json");
        (
            parsed[0]["HashKV"]["hash"].as_u64().expect("hash"),
            parsed[0]["HashKV"]["header"]["revision"]
                .as_i64()
                .expect("revision"),
        )
    };
    assert_eq!(hash(&hash_after), hash(&hash_before));
    runtime.block_on(async {
        let mut client = connect(&endpoint).await;
        let got = client.get("bulk/03999", None).await.expect("get");
        assert!(got.kvs()[0].value().starts_with(b"2-"));
        let old = client
            .get(
                "bulk/03999",
                Some(etcd_client::GetOptions::new().with_revision(revision - 1)),
            )
            .await;
        assert!(old.is_err(), "history below the compaction came back");
    });
}

#[test]
fn capstanutl_defrags_a_stopped_member_and_refuses_a_running_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::capstan(dir.path());
    let endpoint = server.endpoint();
    for round in 0..3 {
        for i in 0..300 {
            etcdctl_ok(
                &endpoint,
                &[
                    "put",
                    &format!("k{i:03}"),
                    &format!("{round}{}", "v".repeat(2000)),
                ],
            );
        }
    }
    let revision = runtime_revision(&endpoint);
    etcdctl_ok(&endpoint, &["compaction", &revision.to_string()]);
    let data_dir = server.data_dir.display().to_string();

    let running = std::process::Command::new(capstanutl_binary())
        .args(["defrag", "--data-dir", &data_dir])
        .output()
        .expect("capstanutl");
    assert!(!running.status.success());
    assert!(
        String::from_utf8_lossy(&running.stderr).contains("another process"),
        "{running:?}"
    );

    let status = server.stop().expect("running");
    assert!(status.success());
    let before = std::fs::metadata(pages_path(&server)).expect("pages").len();
    let output = std::process::Command::new(capstanutl_binary())
        .args(["defrag", "--data-dir", &data_dir])
        .output()
        .expect("capstanutl");
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout)
        .starts_with(&format!("Finished defragmenting etcd data[{data_dir}]")));
    let after = std::fs::metadata(pages_path(&server)).expect("pages").len();
    assert!(after < before, "{after} >= {before}");

    server.restart();
    let value = etcdctl_ok(&server.endpoint(), &["get", "k299", "--print-value-only"]);
    assert!(value.starts_with('2'), "{value}");
    assert_eq!(runtime_revision(&server.endpoint()), revision);
}

fn runtime_revision(endpoint: &str) -> i64 {
    tokio_runtime().block_on(async {
        let mut client = connect(endpoint).await;
        current_revision(&mut client).await
    })
}

fn capstanutl_binary() -> &'static str {
    env!("CARGO_BIN_EXE_capstanutl")
}

/// Little-endian u64 at `at`.
fn le_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// Flips one byte of the page the newest meta page names as the data tree's root.
fn damage_data_root(pages: &Path) -> u64 {
    let mut bytes = std::fs::read(pages).expect("read pages");
    // Meta pages 0 and 1: txn id at 16, data root at 48.
    let newest = if le_u64(&bytes, 16) >= le_u64(&bytes, 4096 + 16) {
        0
    } else {
        4096
    };
    let root = le_u64(&bytes, newest + 48);
    assert!(root >= 2, "no data root in the newest meta");
    let offset = (root * 4096 + 100) as usize;
    bytes[offset] ^= 0xff;
    std::fs::write(pages, &bytes).expect("write pages");
    root * 4096
}

#[test]
fn a_damaged_page_refuses_the_start_naming_the_file_and_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::capstan(dir.path());
    for i in 0..50 {
        etcdctl_ok(&server.endpoint(), &["put", &format!("k{i}"), "v"]);
    }
    assert!(server.stop().expect("running").success());
    let pages = pages_path(&server);
    let page_offset = damage_data_root(&pages);
    let status = server
        .start_expecting_exit(Duration::from_secs(30))
        .expect("capstan should refuse to start");
    assert!(!status.success());
    let log = server.log();
    let refusal = log
        .lines()
        .find(|line| line.contains("corrupt page store"))
        .unwrap_or_else(|| panic!("no corruption report:\n{log}"));
    assert!(
        refusal.contains(&pages.display().to_string())
            && refusal.contains(&format!("byte offset {page_offset}")),
        "{refusal}"
    );
}
