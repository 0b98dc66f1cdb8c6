//! The campaign's Markdown summary: per server (capstan, and etcd side by side when given),
//! the runs, operations, faults, violations, unavailability and whole-cluster restart figures.

use super::faults::FailpointOutcome;
use super::run::{RunReport, ELECTION_TIMEOUT_MS, HEARTBEAT_INTERVAL_MS, SNAPSHOT_COUNT};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Lines of one run's violation text kept in the Markdown report.
const VIOLATION_LINES: usize = 40;

/// The command that reruns exactly one seed.
pub fn rerun_command(report: &RunReport, etcd: &[String]) -> String {
    let etcd = if report.server == "capstan" || etcd.is_empty() {
        String::new()
    } else {
        format!("CAPSTAN_CAMPAIGN_ETCD={} ", etcd.join(","))
    };
    format!(
        "{etcd}CAPSTAN_TEST_SEED={} CAPSTAN_CAMPAIGN_SECONDS={} cargo test -p capstan --test \
         robustness short_campaign -- --nocapture",
        report.seed, report.seconds
    )
}

fn millis(duration: Duration) -> String {
    format!("{:.0} ms", duration.as_secs_f64() * 1000.0)
}

fn median_and_max(mut samples: Vec<Duration>) -> String {
    if samples.is_empty() {
        return "no sample".to_string();
    }
    samples.sort();
    let median = samples[samples.len() / 2];
    format!(
        "{} / {} (n={})",
        millis(median),
        millis(*samples.last().expect("not empty")),
        samples.len()
    )
}

/// What one server's runs add up to.
struct Totals<'a> {
    runs: Vec<&'a RunReport>,
}

impl Totals<'_> {
    fn operations(&self) -> usize {
        self.runs.iter().map(|run| run.operations()).sum()
    }

    fn outcome(&self, outcome: &str) -> usize {
        self.runs
            .iter()
            .flat_map(|run| &run.ops)
            .filter(|((_, kind), _)| kind == outcome)
            .map(|(_, count)| count)
            .sum()
    }

    fn failing(&self) -> usize {
        self.runs
            .iter()
            .filter(|run| !run.violations.is_empty())
            .count()
    }

    fn max(&self, figure: impl Fn(&RunReport) -> Duration) -> Duration {
        self.runs
            .iter()
            .map(|run| figure(run))
            .max()
            .unwrap_or_default()
    }

    fn restarts(&self, figure: impl Fn(&super::run::RestartFigure) -> Option<Duration>) -> String {
        median_and_max(
            self.runs
                .iter()
                .flat_map(|run| &run.restarts)
                .filter_map(figure)
                .collect(),
        )
    }
}

/// The Markdown summary of a campaign; `config` describes how it was run.
pub fn markdown(runs: &[RunReport], config: &str, etcd: &[String]) -> String {
    let mut servers: BTreeMap<&str, Totals> = BTreeMap::new();
    for run in runs {
        servers
            .entry(run.server.as_str())
            .or_insert_with(|| Totals { runs: Vec::new() })
            .runs
            .push(run);
    }
    // capstan first, then the references.
    let mut order: Vec<&str> = servers.keys().copied().collect();
    order.sort_by_key(|name| (*name != "capstan", name.to_string()));
    let mut text = String::new();
    let _ = writeln!(text, "# Robustness campaign\n\n{config}\n");
    let _ = writeln!(
        text,
        "Every member: `--snapshot-count {SNAPSHOT_COUNT} --heartbeat-interval \
         {HEARTBEAT_INTERVAL_MS} --election-timeout {ELECTION_TIMEOUT_MS}`; 3 members, 8 clients, \
         4 watchers, seeded faults (one per round). capstan also gets peer blackholes and crash \
         failpoints; etcd gets the process faults only.\n"
    );
    let _ = writeln!(text, "## Side by side\n");
    let _ = writeln!(text, "| | {} |", order.join(" | "));
    let _ = writeln!(text, "|---|{}", "---|".repeat(order.len()));
    let row = |text: &mut String, name: &str, cell: &dyn Fn(&Totals) -> String| {
        let cells: Vec<String> = order.iter().map(|server| cell(&servers[server])).collect();
        let _ = writeln!(text, "| {name} | {} |", cells.join(" | "));
    };
    row(&mut text, "runs", &|t| t.runs.len().to_string());
    row(&mut text, "runs with violations", &|t| {
        t.failing().to_string()
    });
    row(&mut text, "operations", &|t| t.operations().to_string());
    row(&mut text, "acknowledged", &|t| t.outcome("ok").to_string());
    row(&mut text, "definite errors", &|t| {
        t.outcome("definite error").to_string()
    });
    row(&mut text, "unknown outcomes", &|t| {
        t.outcome("unknown").to_string()
    });
    row(&mut text, "faults injected", &|t| {
        t.runs
            .iter()
            .map(|run| run.faults_injected())
            .sum::<usize>()
            .to_string()
    });
    row(
        &mut text,
        "longest time without an acknowledged write",
        &|t| millis(t.max(|run| run.longest_write_gap)),
    );
    row(
        &mut text,
        "longest wait for a definite write answer",
        &|t| millis(t.max(|run| run.longest_definite_write_wait)),
    );
    row(
        &mut text,
        "longest answer to a write sent to a follower, leader killed or stopped",
        &|t| millis(t.max(|run| run.longest_follower_write_answer)),
    );
    row(
        &mut text,
        "faults during the longest time without a write",
        &|t| {
            t.runs
                .iter()
                .max_by_key(|run| run.longest_write_gap)
                .map(|run| format!("{} (seed {})", run.longest_write_gap_faults, run.seed))
                .unwrap_or_default()
        },
    );
    row(
        &mut text,
        "restart all → first acknowledged write, fresh client (median / max)",
        &|t| t.restarts(|restart| restart.probe),
    );
    row(
        &mut text,
        "restart all → first acknowledged write, traffic clients (median / max)",
        &|t| t.restarts(|restart| restart.traffic),
    );
    let _ = writeln!(
        text,
        "\n## Whole-cluster restart → first acknowledged write, every sample\n\nFrom the start \
         of the members (all killed with -9, started together) to the first write acknowledged \
         to a fresh client that retries every 20 ms (and, in brackets, to the traffic's own \
         clients, which reconnect with back-off).\n"
    );
    for server in &order {
        let samples: Vec<String> = servers[server]
            .runs
            .iter()
            .flat_map(|run| &run.restarts)
            .map(|restart| {
                let show = |sample: Option<Duration>| sample.map_or("none".to_string(), millis);
                format!("{} ({})", show(restart.probe), show(restart.traffic))
            })
            .collect();
        let _ = writeln!(text, "- {server}: {}", samples.join(", "));
    }
    let _ = writeln!(text, "\n## Faults injected\n");
    let mut kinds: Vec<&str> = runs
        .iter()
        .flat_map(|run| run.faults.keys())
        .map(String::as_str)
        .collect();
    kinds.sort();
    kinds.dedup();
    let _ = writeln!(text, "| fault | {} |", order.join(" | "));
    let _ = writeln!(text, "|---|{}", "---|".repeat(order.len()));
    for kind in kinds {
        row(&mut text, kind, &|t| {
            t.runs
                .iter()
                .filter_map(|run| run.faults.get(kind))
                .sum::<usize>()
                .to_string()
        });
    }
    failpoint_table(&mut text, runs);
    let _ = writeln!(text, "\n## Operations by kind and outcome\n");
    let mut kinds: BTreeMap<(String, String), BTreeMap<&str, usize>> = BTreeMap::new();
    for run in runs {
        for (key, count) in &run.ops {
            *kinds
                .entry(key.clone())
                .or_default()
                .entry(run.server.as_str())
                .or_default() += count;
        }
    }
    let _ = writeln!(text, "| request | outcome | {} |", order.join(" | "));
    let _ = writeln!(text, "|---|---|{}", "---|".repeat(order.len()));
    for ((kind, outcome), counts) in &kinds {
        let cells: Vec<String> = order
            .iter()
            .map(|server| counts.get(server).copied().unwrap_or(0).to_string())
            .collect();
        let _ = writeln!(text, "| {kind} | {outcome} | {} |", cells.join(" | "));
    }
    let _ = writeln!(text, "\n## Violations\n");
    let failing: Vec<&RunReport> = runs
        .iter()
        .filter(|run| !run.violations.is_empty())
        .collect();
    if failing.is_empty() {
        let _ = writeln!(text, "None.");
    }
    for run in failing {
        let _ = writeln!(
            text,
            "### {} seed {}\n\nRerun: `{}`\n\n```",
            run.server,
            run.seed,
            rerun_command(run, etcd)
        );
        for violation in &run.violations {
            for line in violation.lines().take(VIOLATION_LINES) {
                let _ = writeln!(text, "{line}");
            }
        }
        let _ = writeln!(text, "```\n");
    }
    text
}

fn failpoint_table(text: &mut String, runs: &[RunReport]) {
    let mut table: BTreeMap<String, [usize; 3]> = BTreeMap::new();
    for failpoint in runs.iter().flat_map(|run| &run.failpoints) {
        let base = failpoint
            .setting
            .split_once('=')
            .map_or(failpoint.setting.as_str(), |(name, _)| name);
        let name = if failpoint.setting.ends_with("lose-unsynced") {
            format!("{base} (lose unsynced)")
        } else {
            base.to_string()
        };
        let column = match failpoint.outcome {
            FailpointOutcome::Crashed => 0,
            FailpointOutcome::NotReached => 1,
            FailpointOutcome::Refused => 2,
        };
        table.entry(name).or_default()[column] += 1;
    }
    if table.is_empty() {
        return;
    }
    let _ = writeln!(
        text,
        "\n## Crash failpoints (capstan)\n\n| failpoint | crashed | not reached | refused |\n|---|---|---|---|"
    );
    for (name, [crashed, not_reached, refused]) in table {
        let _ = writeln!(text, "| {name} | {crashed} | {not_reached} | {refused} |");
    }
}

/// A run's report for the test log.
pub fn run_text(run: &RunReport) -> String {
    let mut text = format!("{}\n", super::run::one_line(run));
    let _ = writeln!(text, "operations: {:?}", run.ops);
    let _ = writeln!(text, "errors: {:#?}", run.errors);
    if !run.failpoints.is_empty() {
        let _ = writeln!(text, "failpoints: {:?}", run.failpoints);
    }
    let _ = writeln!(
        text,
        "longest write gap {} at {} ({}), longest definite write wait {}, restarts {:?}, {} watch \
         events",
        millis(run.longest_write_gap),
        super::history::ms(run.longest_write_gap_at),
        run.longest_write_gap_faults,
        millis(run.longest_definite_write_wait),
        run.restarts,
        run.watch_events
    );
    for note in &run.notes {
        let _ = writeln!(text, "note: {note}");
    }
    text
}
