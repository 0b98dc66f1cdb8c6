//! `capstan`: the server. Accepts etcd's flags and `ETCD_*` environment variables.

use capstan::config::{parse_args, Parsed};
use std::process::ExitCode;

fn init_logging(level: &str) {
    let level = match level {
        "debug" => "debug",
        "warn" => "warn",
        "error" | "panic" | "fatal" | "dpanic" => "error",
        _ => "info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAPSTAN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_thread_names(true)
        .init();
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let environment: Vec<(String, String)> = std::env::vars().collect();
    let (config, warnings) = match parse_args(&args, &environment) {
        Ok(Parsed::Run { config, warnings }) => (config, warnings),
        Ok(Parsed::Help(text)) | Ok(Parsed::Version(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("capstan: {error}");
            eprintln!("Try 'capstan --help' for more information.");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = capstan::failpoint::validate_env() {
        eprintln!("capstan: {error}");
        return ExitCode::from(2);
    }
    init_logging(&config.log_level);
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    match capstan::shard::runtime::run(*config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "capstan failed");
            eprintln!("capstan: {error}");
            ExitCode::FAILURE
        }
    }
}
