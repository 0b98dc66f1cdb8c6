//! The robustness campaign: seeded runs of a real 3-member cluster under recorded traffic and
//! faults, each judged by model checks (see `robustness/mod.rs` for what one run does).
//!
//! - `short_campaign` (CI): `CAPSTAN_CAMPAIGN_SEEDS` consecutive seeds (default 3) of
//!   `CAPSTAN_CAMPAIGN_SECONDS` (default 20) each; consecutive seeds cover every fault kind. It
//!   fails on any violation, on a run that injected no fault, and on a fault kind no run
//!   injected. `CAPSTAN_TEST_SEED=S` runs exactly seed S.
//! - `long_campaign` (`--ignored`): the same with defaults 200 seeds × 30 s; writes a Markdown
//!   summary to `CAPSTAN_CAMPAIGN_REPORT` (default `target/robustness-report.md`).
//!   `robustness/campaign.sh` runs it in release and files the report under `tuning/results/`.
//! - `CAPSTAN_CAMPAIGN_ETCD=/path/etcd[,/path/etcd36]`: the same seeds also run against each
//!   etcd binary (process faults only), side by side in the report.
//!
//! The seed fixes the fault schedule and every client's choices, not the timing.
mod cluster;
mod common;
mod linearizability;
#[path = "robustness/mod.rs"]
mod robustness;

use cluster::serial;
use robustness::report::{markdown, rerun_command, run_text};
use robustness::run::{rounds_for, run, RunReport, ServerKind};
use std::path::PathBuf;

/// How a campaign runs: from the environment, with defaults per entry point.
struct Campaign {
    seeds: Vec<u64>,
    /// Whether `CAPSTAN_TEST_SEED` chose the one seed (no coverage across seeds is expected).
    exact_seed: bool,
    seconds: u64,
    servers: Vec<ServerKind>,
    /// `CAPSTAN_CAMPAIGN_ETCD`, for rerun commands.
    etcd: Vec<String>,
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
    )
}

impl Campaign {
    fn from_env(default_seeds: u64, default_seconds: u64) -> Campaign {
        let seconds = env_number("CAPSTAN_CAMPAIGN_SECONDS").unwrap_or(default_seconds);
        let (seeds, exact_seed) = match env_number("CAPSTAN_TEST_SEED") {
            Some(seed) => (vec![seed], true),
            None => {
                let count = env_number("CAPSTAN_CAMPAIGN_SEEDS").unwrap_or(default_seeds);
                // Small numbers: consecutive seeds never wrap, and are easy to type.
                let base = u64::from(rand::random::<u32>());
                ((base..base + count).collect(), false)
            }
        };
        let etcd: Vec<String> = std::env::var("CAPSTAN_CAMPAIGN_ETCD")
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|path| !path.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let mut servers = vec![ServerKind::capstan()];
        servers.extend(
            etcd.iter()
                .map(|path| ServerKind::etcd(PathBuf::from(path))),
        );
        Campaign {
            seeds,
            exact_seed,
            seconds,
            servers,
            etcd,
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} seeds ({}..={}) x {} s ({} fault rounds each) per server; servers: {}",
            self.seeds.len(),
            self.seeds.first().copied().unwrap_or(0),
            self.seeds.last().copied().unwrap_or(0),
            self.seconds,
            rounds_for(self.seconds),
            self.servers
                .iter()
                .map(|server| server.label.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    fn run_all(&self) -> Vec<RunReport> {
        eprintln!("robustness campaign: {}", self.describe());
        let mut reports = Vec::new();
        for server in &self.servers {
            for &seed in &self.seeds {
                eprintln!("=== {} seed {seed} ===", server.label);
                let report = run(server, seed, self.seconds);
                eprintln!("{}", run_text(&report));
                if !report.violations.is_empty() {
                    eprintln!(
                        "VIOLATIONS ({}), rerun with: {}\n{}\nfaults:\n{}",
                        report.violations.len(),
                        rerun_command(&report, &self.etcd),
                        report.violations.join("\n"),
                        report.timeline
                    );
                }
                reports.push(report);
            }
        }
        reports
    }

    /// What makes the campaign fail: violations, runs without faults, kinds never injected.
    fn failures(&self, reports: &[RunReport]) -> Vec<String> {
        let mut failures = Vec::new();
        for report in reports {
            if !report.violations.is_empty() {
                failures.push(format!(
                    "{} seed {}: {} violations (first: {}); rerun: {}",
                    report.server,
                    report.seed,
                    report.violations.len(),
                    report.violations[0].lines().next().unwrap_or_default(),
                    rerun_command(report, &self.etcd)
                ));
            } else if report.faults_injected() == 0 {
                failures.push(format!(
                    "{} seed {}: no fault was injected; rerun: {}",
                    report.server,
                    report.seed,
                    rerun_command(report, &self.etcd)
                ));
            }
        }
        if !self.exact_seed {
            for server in &self.servers {
                for kind in server.faults() {
                    let injected = reports
                        .iter()
                        .filter(|report| report.server == server.label)
                        .any(|report| report.faults.contains_key(kind.name()));
                    if !injected {
                        failures.push(format!(
                            "{}: no run injected {:?} (more seeds or seconds needed)",
                            server.label,
                            kind.name()
                        ));
                    }
                }
            }
        }
        failures
    }
}

#[test]
fn short_campaign() {
    let _serial = serial();
    let campaign = Campaign::from_env(3, 20);
    let reports = campaign.run_all();
    let failures = campaign.failures(&reports);
    assert!(
        failures.is_empty(),
        "robustness campaign failed:\n{}",
        failures.join("\n")
    );
}

#[test]
#[ignore = "hours long: run by tests/robustness/campaign.sh"]
fn long_campaign() {
    let _serial = serial();
    let campaign = Campaign::from_env(200, 30);
    let reports = campaign.run_all();
    let path = std::env::var("CAPSTAN_CAMPAIGN_REPORT").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/robustness-report.md"),
        PathBuf::from,
    );
    let config = format!(
        "{}; commit {}; {}",
        campaign.describe(),
        command_line("git", &["rev-parse", "--short", "HEAD"]),
        command_line("uname", &["-srm"])
    );
    let text = markdown(&reports, &config, &campaign.etcd);
    std::fs::write(&path, &text).unwrap_or_else(|error| panic!("write {path:?}: {error}"));
    eprintln!("report written to {}\n{text}", path.display());
    let failures = campaign.failures(&reports);
    assert!(
        failures.is_empty(),
        "robustness campaign failed:\n{}",
        failures.join("\n")
    );
}

fn command_line(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .unwrap_or_default()
}
