//! The human-readable table: a heading with the run's settings, one row per series, the
//! errors by message, notes, and `--sample` rows.

use super::Report;
use crate::metrics::SeriesSummary;
use std::fmt::Write;

/// Column titles of the figures; latencies are in milliseconds.
pub const FIGURE_COLUMNS: [&str; 11] = [
    "count", "errors", "ops/s", "mean", "p50", "p90", "p99", "p99.9", "p99.99", "max", "secs",
];

/// Formats a latency in ms: 3 decimals (µs resolution), 6 with `--precise`.
pub fn latency_text(ms: f64, precise: bool) -> String {
    if precise {
        format!("{ms:.6}")
    } else {
        format!("{ms:.3}")
    }
}

/// The figure cells of one series, in [`FIGURE_COLUMNS`] order.
pub fn figure_cells(series: &SeriesSummary, precise: bool) -> Vec<String> {
    let latency = &series.latency_ms;
    let rate = if precise {
        format!("{:.6}", series.throughput_ops_per_s)
    } else {
        format!("{:.1}", series.throughput_ops_per_s)
    };
    vec![
        series.count.to_string(),
        series.errors.to_string(),
        rate,
        latency_text(latency.mean, precise),
        latency_text(latency.p50, precise),
        latency_text(latency.p90, precise),
        latency_text(latency.p99, precise),
        latency_text(latency.p99_9, precise),
        latency_text(latency.p99_99, precise),
        latency_text(latency.max, precise),
        format!("{:.3}", series.elapsed_s),
    ]
}

/// Lays out rows under a header, columns padded to their widest cell; the first column is
/// left-aligned, the others right-aligned.
pub fn layout(header: &[String], rows: &[Vec<String>]) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.chars().count()).collect();
    for row in rows {
        for (column, cell) in row.iter().enumerate().take(columns) {
            widths[column] = widths[column].max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate().take(columns) {
            let pad = widths[column] - cell.chars().count();
            if column == 0 {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str("  ");
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// The whole table of one report.
pub fn render(report: &Report, precise: bool) -> String {
    let mut text = String::new();
    let endpoints = report.endpoints.join(",");
    let target = if report.label == endpoints {
        endpoints
    } else {
        format!("{} ({endpoints})", report.label)
    };
    let _ = writeln!(
        text,
        "{} · {} · conns {} · clients {} · {} · warm-up {} calls",
        report.benchmark, target, report.conns, report.clients, report.mode, report.warmup
    );
    let mut header = vec!["series (latency in ms)".to_string()];
    header.extend(FIGURE_COLUMNS.iter().map(|title| title.to_string()));
    let rows: Vec<Vec<String>> = report
        .series
        .iter()
        .map(|series| {
            let mut row = vec![series.name.clone()];
            row.extend(figure_cells(series, precise));
            row
        })
        .collect();
    text.push_str(&layout(&header, &rows));
    for series in &report.series {
        for (message, count) in &series.error_kinds {
            let _ = writeln!(text, "  {} error x{count}: {message}", series.name);
        }
    }
    for note in &report.notes {
        let _ = writeln!(text, "  note: {note}");
    }
    for samples in &report.samples {
        let _ = writeln!(text, "  per-second samples of {}:", samples.name);
        let header: Vec<String> = ["  second", "count", "mean ms", "max ms"]
            .iter()
            .map(|title| title.to_string())
            .collect();
        let rows: Vec<Vec<String>> = samples
            .rows
            .iter()
            .map(|row| {
                vec![
                    format!("  {}", row.second),
                    row.count.to_string(),
                    latency_text(row.mean_ms, precise),
                    latency_text(row.max_ms, precise),
                ]
            })
            .collect();
        text.push_str(&layout(&header, &rows));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let header = vec!["name".to_string(), "n".to_string()];
        let rows = vec![
            vec!["a".to_string(), "100".to_string()],
            vec!["long name".to_string(), "1".to_string()],
        ];
        let text = layout(&header, &rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "name         n");
        assert_eq!(lines[1], "a          100");
        assert_eq!(lines[2], "long name    1");
    }
}
