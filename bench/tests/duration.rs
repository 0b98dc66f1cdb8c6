//! `--duration` ends the measured phase early: a run asked for far more calls than the time
//! allows stops after about that long and reports the calls it made; workloads that do not
//! measure call by call refuse the flag. The bounds are generous: a loaded machine must pass.

mod common;

use common::FakeServer;
use serde_json::Value;
use std::process::Command;

const TOTAL_CALLS: u64 = 100_000_000;

fn run_bench(args: &[String]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_capstan-bench"))
        .args(args)
        .output()
        .expect("run capstan-bench")
}

fn range_for(server: &FakeServer, extra: &[&str]) -> Value {
    let mut args = vec![
        format!("--endpoints=http://{}", server.address),
        format!("--total={TOTAL_CALLS}"),
        "--duration=300ms".to_string(),
        "--warmup=0".to_string(),
        "--clients=4".to_string(),
        "--output=json".to_string(),
        "range".to_string(),
        "foo".to_string(),
    ];
    args.extend(extra.iter().map(|arg| arg.to_string()));
    let output = run_bench(&args);
    assert!(
        output.status.success(),
        "capstan-bench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    report["series"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_stops_at_the_duration() {
    let server = FakeServer::start(None).await;
    let series = tokio::task::spawn_blocking(move || range_for(&server, &[]))
        .await
        .expect("bench thread");
    let count = series["count"].as_u64().expect("count");
    assert!(count > 0 && count < TOTAL_CALLS, "{series}");
    assert_eq!(series["errors"].as_u64(), Some(0));
    let elapsed_s = series["elapsed_s"].as_f64().expect("elapsed_s");
    assert!((0.3..30.0).contains(&elapsed_s), "{series}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_sends_only_the_calls_due_within_the_duration() {
    let server = FakeServer::start(None).await;
    let series = tokio::task::spawn_blocking(move || range_for(&server, &["--rate=100"]))
        .await
        .expect("bench thread");
    // 100 calls/s for 300 ms: calls 0..30 are due before the end.
    assert_eq!(series["count"].as_u64(), Some(30), "{series}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_without_per_call_measurement_refuse_it() {
    let server = FakeServer::start(None).await;
    let address = server.address;
    let output = tokio::task::spawn_blocking(move || {
        run_bench(&[
            format!("--endpoints={address}"),
            "--duration=1s".to_string(),
            "watch-latency".to_string(),
        ])
    })
    .await
    .expect("bench thread");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--duration is not supported by watch-latency"),
        "{stderr}"
    );
}
