//! `compare`: the same workload against two endpoint sets, in alternation (A B A B ...), so
//! slow drifts of the machine (other builds, thermal limits, page cache) fall on both sides
//! alike. Each round runs `--total / --rounds` measured calls per side (workloads without
//! `--total`, such as `watch-latency`, run whole in every round); the rounds of a side are
//! merged (histograms added, times added) and every figure is given as the ratio B/A.

use crate::cli::{CompareArgs, Workload};
use crate::endpoint::Endpoint;
use crate::error::BenchError;
use crate::report::table::{figure_cells, layout, FIGURE_COLUMNS};
use crate::report::{csv, Report, ReportSettings};
use crate::workload::{self, RunContext, RunResult};
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::io::IsTerminal;

/// One figure of one series on both sides.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ratio {
    pub series: String,
    pub metric: String,
    pub a: f64,
    pub b: f64,
    /// `None` when A is 0.
    pub b_over_a: Option<f64>,
}

/// Both sides, rounds merged, and their ratios.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    pub rounds: u32,
    pub a: Report,
    pub b: Report,
    pub ratios: Vec<Ratio>,
}

/// One side of a comparison.
pub struct Side {
    pub name: String,
    pub endpoints: Vec<Endpoint>,
    /// Report settings of this side (label, endpoints, command ...).
    pub settings: ReportSettings,
}

/// Calls of round `round` out of `total` split over `rounds` (the first rounds take the rest).
fn round_total(total: u64, rounds: u32, round: u32) -> u64 {
    let rounds = u64::from(rounds);
    total / rounds + u64::from(u64::from(round) < total % rounds)
}

/// Runs the comparison.
pub async fn run(
    args: &CompareArgs,
    base: &RunContext,
    a: Side,
    b: Side,
) -> Result<Comparison, BenchError> {
    if args.rounds == 0 {
        return Err(BenchError::Usage("--rounds must be at least 1".to_string()));
    }
    if let Workload::Failover(_) = args.workload {
        return Err(BenchError::Usage(
            "failover kills processes of one cluster: run it once per cluster, not in compare"
                .to_string(),
        ));
    }
    let mut merged: [Option<RunResult>; 2] = [None, None];
    let sides = [&a, &b];
    let chatty = std::io::stderr().is_terminal();
    for round in 0..args.rounds {
        for (slot, side) in sides.iter().enumerate() {
            let mut context = base.clone();
            context.connect.endpoints = side.endpoints.clone();
            context.total = round_total(base.total, args.rounds, round);
            if chatty {
                eprintln!(
                    "round {}/{}: {} ({} calls)",
                    round + 1,
                    args.rounds,
                    side.name,
                    context.total
                );
            }
            let result = run_side(&args.workload, &context, &side.name).await?;
            match &mut merged[slot] {
                Some(total) => total.absorb(result),
                None => merged[slot] = Some(result),
            }
        }
    }
    let [Some(result_a), Some(result_b)] = merged else {
        unreachable!("at least one round ran on both sides");
    };
    let report_a = Report::new(&result_a, &a.settings);
    let report_b = Report::new(&result_b, &b.settings);
    let ratios = ratios(&report_a, &report_b);
    Ok(Comparison {
        rounds: args.rounds,
        a: report_a,
        b: report_b,
        ratios,
    })
}

async fn run_side(
    workload: &Workload,
    context: &RunContext,
    name: &str,
) -> Result<RunResult, BenchError> {
    workload::run(workload, context)
        .await
        .map_err(|error| match error {
            BenchError::Unimplemented { .. } => BenchError::Usage(format!("side {name}: {error}")),
            other => other,
        })
}

fn ratios(a: &Report, b: &Report) -> Vec<Ratio> {
    let mut ratios = Vec::new();
    for series_a in &a.series {
        let Some(series_b) = b.series.iter().find(|s| s.name == series_a.name) else {
            continue;
        };
        let (la, lb) = (&series_a.latency_ms, &series_b.latency_ms);
        let metrics = [
            (
                "ops/s",
                series_a.throughput_ops_per_s,
                series_b.throughput_ops_per_s,
            ),
            ("mean ms", la.mean, lb.mean),
            ("p50 ms", la.p50, lb.p50),
            ("p90 ms", la.p90, lb.p90),
            ("p99 ms", la.p99, lb.p99),
            ("p99.9 ms", la.p99_9, lb.p99_9),
            ("p99.99 ms", la.p99_99, lb.p99_99),
            ("max ms", la.max, lb.max),
            ("errors", series_a.errors as f64, series_b.errors as f64),
        ];
        for (metric, value_a, value_b) in metrics {
            ratios.push(Ratio {
                series: series_a.name.clone(),
                metric: metric.to_string(),
                a: value_a,
                b: value_b,
                b_over_a: (value_a > 0.0).then(|| value_b / value_a),
            });
        }
    }
    ratios
}

/// The table: both sides' figures, then the ratios.
pub fn render_table(comparison: &Comparison, precise: bool) -> String {
    let (a, b) = (&comparison.a, &comparison.b);
    let mut text = String::new();
    let _ = writeln!(
        text,
        "compare {} · A = {} ({}) · B = {} ({}) · {} rounds, A then B in each",
        a.benchmark,
        a.label,
        a.endpoints.join(","),
        b.label,
        b.endpoints.join(","),
        comparison.rounds
    );
    let _ = writeln!(
        text,
        "{} · conns {} · clients {} · warm-up {} calls per run",
        a.mode, a.conns, a.clients, a.warmup
    );
    let mut header = vec!["side · series (ms)".to_string()];
    header.extend(FIGURE_COLUMNS.iter().map(|title| title.to_string()));
    let mut rows = Vec::new();
    for report in [a, b] {
        for series in &report.series {
            let mut row = vec![format!("{} · {}", report.label, series.name)];
            row.extend(figure_cells(series, precise));
            rows.push(row);
        }
    }
    text.push_str(&layout(&header, &rows));
    for report in [a, b] {
        for series in &report.series {
            for (message, count) in &series.error_kinds {
                let _ = writeln!(
                    text,
                    "  {} {} error x{count}: {message}",
                    report.label, series.name
                );
            }
        }
        for note in &report.notes {
            let _ = writeln!(text, "  {} note: {note}", report.label);
        }
    }
    let _ = writeln!(
        text,
        "\nratios {b}/{a} (ops/s above 1: {b} serves more; latency above 1: {b} is slower)",
        a = a.label,
        b = b.label
    );
    let header = vec![
        "series".to_string(),
        "metric".to_string(),
        a.label.clone(),
        b.label.clone(),
        format!("{}/{}", b.label, a.label),
    ];
    let rows: Vec<Vec<String>> = comparison
        .ratios
        .iter()
        .map(|ratio| {
            vec![
                ratio.series.clone(),
                ratio.metric.clone(),
                format_value(ratio.a, precise),
                format_value(ratio.b, precise),
                ratio
                    .b_over_a
                    .map(|value| format!("{value:.3}"))
                    .unwrap_or_else(|| "-".to_string()),
            ]
        })
        .collect();
    text.push_str(&layout(&header, &rows));
    text
}

fn format_value(value: f64, precise: bool) -> String {
    if precise {
        format!("{value:.6}")
    } else {
        format!("{value:.3}")
    }
}

/// CSV: the rows of both sides, then one row per series whose figure columns hold B/A.
pub fn render_csv(comparison: &Comparison) -> String {
    let mut lines = vec![csv::HEADER.to_string()];
    lines.extend(csv::rows(&comparison.a));
    lines.extend(csv::rows(&comparison.b));
    let label = format!("{}/{}", comparison.b.label, comparison.a.label);
    for series in &comparison.a.series {
        let ratio_of = |metric: &str| {
            comparison
                .ratios
                .iter()
                .find(|ratio| ratio.series == series.name && ratio.metric == metric)
                .and_then(|ratio| ratio.b_over_a)
                .map(|value| format!("{value:.4}"))
                .unwrap_or_default()
        };
        let cells = [
            csv::field(&comparison.a.benchmark),
            csv::field(&label),
            String::new(),
            comparison.a.conns.to_string(),
            comparison.a.clients.to_string(),
            csv::field(&comparison.a.mode),
            csv::field(&series.name),
            String::new(),
            ratio_of("errors"),
            String::new(),
            ratio_of("ops/s"),
            ratio_of("mean ms"),
            ratio_of("p50 ms"),
            ratio_of("p90 ms"),
            ratio_of("p99 ms"),
            ratio_of("p99.9 ms"),
            ratio_of("p99.99 ms"),
            ratio_of("max ms"),
        ];
        lines.push(cells.join(","));
    }
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::round_total;

    #[test]
    fn rounds_split_the_total_exactly() {
        let split: Vec<u64> = (0..3).map(|round| round_total(10, 3, round)).collect();
        assert_eq!(split, vec![4, 3, 3]);
        assert_eq!(split.iter().sum::<u64>(), 10);
    }
}
