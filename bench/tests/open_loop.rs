//! The open loop must not hide a stalled server: with `--rate`, latency runs from each call's
//! intended send time, so a 1 s stall shows in p99.9 and max; the same stall in a closed loop
//! delays only the one call in flight and leaves p99.9 untouched. These tests check the tool's
//! behaviour, not the fake server's speed: the bounds are far from the expected values.

mod common;

use common::{FakeServer, Stall};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const STALL: Duration = Duration::from_secs(1);
const CALLS: u64 = 1500;
const STALL_AT_REQUEST: u64 = 500;
/// Open-loop rate: the run is scheduled over 1.5 s, the stall covers two thirds of it.
const RATE_PER_S: u64 = 1000;

fn run_bench(args: &[String]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_capstan-bench"))
        .args(args)
        .output()
        .expect("run capstan-bench")
}

fn range_figures(server: &FakeServer, rate: Option<u64>) -> Value {
    let mut args = vec![
        format!("--endpoints=http://{}", server.address),
        format!("--total={CALLS}"),
        "--warmup=0".to_string(),
        "--output=json".to_string(),
        "range".to_string(),
        "foo".to_string(),
    ];
    if let Some(rate) = rate {
        args.push(format!("--rate={rate}"));
    }
    let output = run_bench(&args);
    assert!(
        output.status.success(),
        "capstan-bench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    report["series"][0].clone()
}

fn latency(series: &Value, figure: &str) -> f64 {
    series["latency_ms"][figure]
        .as_f64()
        .expect("latency figure")
}

fn stalling_server() -> Option<Stall> {
    Some(Stall {
        at_request: STALL_AT_REQUEST,
        duration: STALL,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_reports_the_stall_in_the_tail() {
    let server = FakeServer::start(stalling_server()).await;
    let series = tokio::task::spawn_blocking(move || range_figures(&server, Some(RATE_PER_S)))
        .await
        .expect("bench thread");
    assert_eq!(series["count"].as_u64(), Some(CALLS));
    assert_eq!(series["errors"].as_u64(), Some(0));
    let (p99_9, max) = (latency(&series, "p99.9"), latency(&series, "max"));
    assert!(
        p99_9 >= 900.0,
        "open-loop p99.9 {p99_9} ms hides the 1 s stall"
    );
    assert!(max >= 900.0, "open-loop max {max} ms hides the 1 s stall");
    // Calls scheduled during the stall waited for it: far more than one call is slow.
    assert!(latency(&series, "p90") >= 100.0, "{series}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_hides_the_stall_behind_one_call() {
    let server = FakeServer::start(stalling_server()).await;
    let series = tokio::task::spawn_blocking(move || range_figures(&server, None))
        .await
        .expect("bench thread");
    assert_eq!(series["count"].as_u64(), Some(CALLS));
    let (p99_9, max) = (latency(&series, "p99.9"), latency(&series, "max"));
    assert!(max >= 900.0, "the stalled call itself took {max} ms");
    assert!(
        p99_9 < 500.0,
        "closed-loop p99.9 {p99_9} ms: only one call should have seen the stall"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unimplemented_services_are_named() {
    let server = FakeServer::start(None).await;
    let address = server.address;
    let output = tokio::task::spawn_blocking(move || {
        run_bench(&[
            format!("--endpoints={address}"),
            "--total=10".to_string(),
            "lease-keepalive".to_string(),
        ])
    })
    .await
    .expect("bench thread");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("does not implement /etcdserverpb.Lease/LeaseGrant"),
        "{stderr}"
    );
    assert!(stderr.contains("UNIMPLEMENTED"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_prints_ratios_and_plots() {
    let a = FakeServer::start(None).await;
    let b = FakeServer::start(None).await;
    let svg_path = std::env::temp_dir().join(format!("capstan-bench-{}.svg", std::process::id()));
    let svg_arg = format!("--plot={}", svg_path.display());
    let (a_address, b_address) = (a.address, b.address);
    let output = tokio::task::spawn_blocking(move || {
        run_bench(&[
            "compare".to_string(),
            format!("--a-endpoints={a_address}"),
            format!("--b-endpoints={b_address}"),
            "--a-name=one".to_string(),
            "--b-name=two".to_string(),
            "--rounds=2".to_string(),
            "put".to_string(),
            "--total=200".to_string(),
            "--warmup=10".to_string(),
            svg_arg,
        ])
    })
    .await
    .expect("bench thread");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("ratios two/one"), "{stdout}");
    assert!(stdout.contains("p99.9 ms"), "{stdout}");
    let svg = std::fs::read_to_string(&svg_path).expect("chart written");
    let _ = std::fs::remove_file(&svg_path);
    assert!(
        svg.contains("one put") && svg.contains("two put"),
        "legend names both sides"
    );
    assert!(svg.contains("latency (ms"), "y axis title");
}
