//! CSV: one row per series, with the run's settings repeated on each row so rows of many runs
//! can be concatenated and filtered.

use super::Report;

/// The header row.
pub const HEADER: &str = "benchmark,label,endpoints,conns,clients,mode,series,count,errors,\
elapsed_s,ops_per_s,mean_ms,p50_ms,p90_ms,p99_ms,p99.9_ms,p99.99_ms,max_ms";

/// Quotes a field when it holds a comma, a quote or a line break.
pub fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The rows of one report, without the header.
pub fn rows(report: &Report) -> Vec<String> {
    report
        .series
        .iter()
        .map(|series| {
            let latency = &series.latency_ms;
            [
                field(&report.benchmark),
                field(&report.label),
                field(&report.endpoints.join(" ")),
                report.conns.to_string(),
                report.clients.to_string(),
                field(&report.mode),
                field(&series.name),
                series.count.to_string(),
                series.errors.to_string(),
                format!("{:.6}", series.elapsed_s),
                format!("{:.3}", series.throughput_ops_per_s),
                format!("{:.3}", latency.mean),
                format!("{:.3}", latency.p50),
                format!("{:.3}", latency.p90),
                format!("{:.3}", latency.p99),
                format!("{:.3}", latency.p99_9),
                format!("{:.3}", latency.p99_99),
                format!("{:.3}", latency.max),
            ]
            .join(",")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn fields_with_separators_are_quoted() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
