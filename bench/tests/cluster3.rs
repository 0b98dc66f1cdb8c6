//! End to end against a real 3-member cluster started by `bench/scripts/cluster3.sh`:
//! `lease-expiry` sees every lease expire (none early), `failover` measures two rounds with
//! the script restarting the killed leader, and `stop` leaves no member running. Assertions
//! are about behaviour (counts, errors, processes), never about timings.
//!
//! The etcd test needs /usr/bin/etcd and /usr/bin/etcdctl; the Capstan one needs `CAPSTAN_BIN`
//! set to a built `capstan` (this crate does not build the server). Each is skipped with a
//! message when what it needs is missing.

use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

const ETCD: &str = "/usr/bin/etcd";
const ETCDCTL: &str = "/usr/bin/etcdctl";
const MEMBERS: usize = 3;

/// One cluster at a time: both tests start three servers on a small machine.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster3.sh")
}

/// A base port with the 6 ports of a cluster free a moment ago.
fn free_base_port() -> u16 {
    let seed = std::process::id() as u16;
    for attempt in 0..200u16 {
        let base = 40_000 + (seed.wrapping_add(attempt.wrapping_mul(97)) % 2_000) * 8;
        let all_free = (0..2 * MEMBERS as u16)
            .all(|offset| TcpListener::bind(("127.0.0.1", base + offset)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no free ports");
}

/// Stops the cluster and removes its directory, also when the test fails.
struct ClusterGuard {
    dir: PathBuf,
}

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(&self.dir).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn cluster3(args: &[&str]) -> String {
    let output = Command::new(script())
        .args(args)
        .env_remove("CLUSTER3_EXTRA_FLAGS")
        .output()
        .expect("run cluster3.sh");
    assert!(
        output.status.success(),
        "cluster3.sh {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn bench_json(args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_capstan-bench"))
        .args(args)
        .output()
        .expect("run capstan-bench");
    assert!(
        output.status.success(),
        "capstan-bench {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON report")
}

fn series<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["series"]
        .as_array()
        .and_then(|all| all.iter().find(|series| series["name"] == name))
        .unwrap_or_else(|| panic!("no series {name} in {report}"))
}

fn count(series: &Value, field: &str) -> u64 {
    series[field].as_u64().expect("a count")
}

fn member_pids(dir: &Path) -> Vec<i32> {
    (1..=MEMBERS)
        .filter_map(|member| std::fs::read_to_string(dir.join(format!("m{member}.pid"))).ok())
        .filter_map(|text| text.trim().parse().ok())
        .collect()
}

fn runs(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // A zombie (state Z after the command's closing parenthesis) no longer runs.
        Ok(stat) => !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn lease_expiry_and_failover_on_an_etcd_cluster() {
    if !Path::new(ETCD).exists() || !Path::new(ETCDCTL).exists() {
        eprintln!("skipped: {ETCD} or {ETCDCTL} is missing");
        return;
    }
    lease_expiry_and_failover("etcd");
}

#[test]
fn lease_expiry_and_failover_on_a_capstan_cluster() {
    let built = std::env::var_os("CAPSTAN_BIN").is_some_and(|path| Path::new(&path).exists());
    if !built || !Path::new(ETCDCTL).exists() {
        eprintln!("skipped: set CAPSTAN_BIN to a built capstan (and install {ETCDCTL})");
        return;
    }
    lease_expiry_and_failover("capstan");
}

fn lease_expiry_and_failover(server: &str) {
    // The two tests must not share ports or directories.
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = std::env::temp_dir().join(format!(
        "capstan-bench-cluster3-{server}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let guard = ClusterGuard { dir: dir.clone() };
    let dir_text = dir.to_str().expect("utf-8 temp dir").to_string();
    let base = free_base_port().to_string();
    cluster3(&["start", server, &dir_text, &base]);
    let endpoints = cluster3(&["endpoints", &dir_text]);
    let members = cluster3(&["members", &dir_text]);
    assert_eq!(endpoints.split(',').count(), MEMBERS);
    let started = member_pids(&dir);
    assert_eq!(started.len(), MEMBERS);

    let endpoints_flag = format!("--endpoints={endpoints}");
    let expiry = bench_json(&[
        &endpoints_flag,
        "--clients=2",
        "--conns=3",
        "--output=json",
        "lease-expiry",
        "--leases=20",
        "--ttl=2",
        "--grace=60s",
    ]);
    assert_eq!(expiry["benchmark"], "lease-expiry");
    let late = series(&expiry, "expiry-late");
    assert_eq!((count(late, "count"), count(late, "errors")), (20, 0));
    assert_eq!(count(series(&expiry, "expiry-early"), "count"), 0);
    assert_eq!(count(series(&expiry, "grant-put"), "count"), 20);

    let restart = format!(
        "'{}' start {server} '{dir_text}' {base}",
        script().display()
    );
    let failover = bench_json(&[
        &endpoints_flag,
        "--output=json",
        "failover",
        &format!("--member={members}"),
        "--rounds=2",
        "--puts-before-kill=5",
        &format!("--restart-command={restart}"),
    ]);
    let rounds = series(&failover, "failover");
    assert_eq!((count(rounds, "count"), count(rounds, "errors")), (2, 0));
    let notes = failover["notes"].as_array().expect("notes");
    assert!(
        notes
            .iter()
            .filter(|note| note
                .as_str()
                .is_some_and(|text| text.contains("killed leader")))
            .count()
            == 2,
        "{notes:?}"
    );
    let restarted = member_pids(&dir);
    assert_eq!(restarted.len(), MEMBERS);
    assert!(
        restarted
            .iter()
            .filter(|pid| !started.contains(pid))
            .count()
            >= 1,
        "a killed member was restarted with a new pid: {started:?} -> {restarted:?}"
    );
    assert!(restarted.iter().all(|pid| runs(*pid)));

    cluster3(&["stop", &dir_text]);
    assert!(member_pids(&dir).is_empty(), "stop removes the pid files");
    assert!(
        restarted.iter().all(|pid| !runs(*pid)),
        "stop leaves no member running"
    );
    drop(guard);
}
