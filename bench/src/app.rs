//! From parsed flags to printed figures: builds the run context, refuses what is not
//! supported, runs a workload (or a comparison), prints the report and writes the chart.

use crate::cli::{Cli, Command, CompareArgs, GlobalArgs, OutputFormat, PlotArgs, Workload};
use crate::client::{ConnectOptions, Credentials};
use crate::compare::{self, Comparison, Side};
use crate::endpoint::Endpoint;
use crate::error::BenchError;
use crate::limits::{CLIENTS_MAX, CONNS_MAX, DIAL_TIMEOUT_DEFAULT};
use crate::plot::{render_svg, PlotCurve};
use crate::report::{csv, table, Report, ReportSettings};
use crate::workload::{self, RunContext};
use std::io::IsTerminal;
use std::path::Path;

/// Runs what the command line asked for.
pub async fn run(cli: Cli) -> Result<(), BenchError> {
    match &cli.command {
        Command::Run(workload) => run_single(&cli.global, workload).await,
        Command::Compare(args) => run_compare(&cli.global, args).await,
        Command::Plot(args) => plot_saved_reports(args),
    }
}

/// The TLS configuration when an endpoint is `https://` or TLS flags are given.
fn tls_config(
    global: &GlobalArgs,
    endpoints: &[Endpoint],
) -> Result<Option<std::sync::Arc<rustls::ClientConfig>>, BenchError> {
    let flags = crate::tls::TlsFlags {
        cacert: global.cacert.clone(),
        cert: global.cert.clone(),
        key: global.key_file.clone(),
        insecure_skip_tls_verify: global.insecure_skip_tls_verify,
    };
    let https = endpoints
        .iter()
        .any(|endpoint| endpoint.scheme == crate::endpoint::Scheme::Https);
    if !https && !flags.any() {
        return Ok(None);
    }
    crate::tls::client_config(&flags).map(Some)
}

fn run_context(global: &GlobalArgs, endpoints: Vec<Endpoint>) -> Result<RunContext, BenchError> {
    if global.conns == 0 || global.conns > CONNS_MAX {
        return Err(BenchError::Usage(format!(
            "--conns must be in 1..={CONNS_MAX}"
        )));
    }
    if global.clients == 0 || global.clients > CLIENTS_MAX {
        return Err(BenchError::Usage(format!(
            "--clients must be in 1..={CLIENTS_MAX}"
        )));
    }
    let dial_timeout = if global.dial_timeout.is_zero() {
        DIAL_TIMEOUT_DEFAULT
    } else {
        global.dial_timeout
    };
    let credentials = global.user.as_deref().map(Credentials::parse).transpose()?;
    let tls = tls_config(global, &endpoints)?;
    let tls_for_bare_endpoints = global.cacert.is_some() || global.cert.is_some();
    Ok(RunContext {
        connect: ConnectOptions {
            endpoints,
            conns: global.conns,
            dial_timeout,
            credentials,
            tls,
            tls_for_bare_endpoints,
        },
        clients: global.clients,
        total: global.total,
        warmup: global.warmup,
        duration: (!global.duration.is_zero()).then_some(global.duration),
        request_timeout: global.request_timeout,
        show_progress: std::io::stderr().is_terminal(),
        seed: global.seed,
    })
}

/// The command line as typed, quoted where a shell would need it.
fn command_line() -> String {
    std::env::args()
        .map(|arg| {
            if arg.is_empty() || arg.contains([' ', '"', '\'', '\\', '$']) {
                format!("'{}'", arg.replace('\'', "'\\''"))
            } else {
                arg
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn settings(global: &GlobalArgs, label: String, endpoints: &[Endpoint]) -> ReportSettings {
    ReportSettings {
        label,
        endpoints: endpoints.iter().map(|e| e.authority.clone()).collect(),
        conns: global.conns,
        clients: global.clients,
        command: command_line(),
        with_samples: global.sample,
    }
}

async fn run_single(global: &GlobalArgs, workload: &Workload) -> Result<(), BenchError> {
    let endpoints = Endpoint::parse_list(&global.endpoints)?;
    let context = run_context(global, endpoints.clone())?;
    let result = workload::run(workload, &context).await?;
    let label = global.label.clone().unwrap_or_else(|| {
        endpoints
            .iter()
            .map(|e| e.authority.as_str())
            .collect::<Vec<_>>()
            .join(",")
    });
    let report = Report::new(&result, &settings(global, label, &endpoints));
    match global.output {
        OutputFormat::Table => print!("{}", table::render(&report, global.precise)),
        OutputFormat::Json => println!("{}", to_json(&report)),
        OutputFormat::Csv => {
            println!("{}", csv::HEADER);
            for row in csv::rows(&report) {
                println!("{row}");
            }
        }
    }
    if let Some(path) = &global.plot {
        let title = format!("{}: latency by percentile", report.benchmark);
        write_file(path, &render_svg(&title, &curves_of(&report)))?;
    }
    Ok(())
}

async fn run_compare(global: &GlobalArgs, args: &CompareArgs) -> Result<(), BenchError> {
    let a_endpoints = Endpoint::parse_list(&args.a_endpoints)?;
    let b_endpoints = Endpoint::parse_list(&args.b_endpoints)?;
    let base = run_context(global, a_endpoints.clone())?;
    let a = Side {
        name: args.a_name.clone(),
        settings: settings(global, args.a_name.clone(), &a_endpoints),
        endpoints: a_endpoints,
    };
    let b = Side {
        name: args.b_name.clone(),
        settings: settings(global, args.b_name.clone(), &b_endpoints),
        endpoints: b_endpoints,
    };
    let comparison = compare::run(args, &base, a, b).await?;
    match global.output {
        OutputFormat::Table => print!("{}", compare::render_table(&comparison, global.precise)),
        OutputFormat::Json => println!("{}", to_json(&comparison)),
        OutputFormat::Csv => print!("{}", compare::render_csv(&comparison)),
    }
    if let Some(path) = &global.plot {
        let title = format!(
            "{}: {} vs {}, latency by percentile",
            comparison.a.benchmark, comparison.a.label, comparison.b.label
        );
        let mut curves = curves_of(&comparison.a);
        curves.extend(curves_of(&comparison.b));
        write_file(path, &render_svg(&title, &curves))?;
    }
    Ok(())
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Our report types hold only strings, numbers and lists: serialising cannot fail.
    serde_json::to_string_pretty(value).expect("reports serialise to JSON")
}

/// One curve per series, labelled with the run and its p99 and max.
fn curves_of(report: &Report) -> Vec<PlotCurve> {
    report
        .series
        .iter()
        .filter(|series| !series.curve.is_empty())
        .map(|series| PlotCurve {
            label: format!(
                "{} {} (p99 {:.3} ms, max {:.3} ms)",
                report.label, series.name, series.latency_ms.p99, series.latency_ms.max
            ),
            points: series.curve.clone(),
        })
        .collect()
}

fn write_file(path: &Path, contents: &str) -> Result<(), BenchError> {
    std::fs::write(path, contents).map_err(|error| BenchError::Output {
        path: path.display().to_string(),
        reason: error.to_string(),
    })
}

fn plot_saved_reports(args: &PlotArgs) -> Result<(), BenchError> {
    let mut curves = Vec::new();
    let mut benchmarks: Vec<String> = Vec::new();
    for path in &args.reports {
        let text = std::fs::read_to_string(path).map_err(|error| BenchError::Output {
            path: path.display().to_string(),
            reason: error.to_string(),
        })?;
        let reports =
            match serde_json::from_str::<Comparison>(&text) {
                Ok(comparison) => vec![comparison.a, comparison.b],
                Err(_) => vec![serde_json::from_str::<Report>(&text).map_err(|error| {
                    BenchError::Output {
                        path: path.display().to_string(),
                        reason: format!("not a capstan-bench JSON report: {error}"),
                    }
                })?],
            };
        for report in reports {
            if !benchmarks.contains(&report.benchmark) {
                benchmarks.push(report.benchmark.clone());
            }
            curves.extend(curves_of(&report));
        }
    }
    let title = format!("{}: latency by percentile", benchmarks.join(", "));
    write_file(&args.svg, &render_svg(&title, &curves))
}
