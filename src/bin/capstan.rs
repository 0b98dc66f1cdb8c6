//! `capstan`: the server. Accepts etcd's flags and `ETCD_*` environment variables.

use capstan::config::{parse_args, Parsed, ServerConfig};
use capstan::logging::{record, LogSettings};
use std::process::ExitCode;

/// Installs etcd's zap-style logger (`capstan::logging`) from the logging flags.
fn init_logging(config: &ServerConfig) -> Result<(), String> {
    let settings = LogSettings::parse(
        &config.logger,
        &config.log_outputs,
        &config.log_format,
        &config.log_level,
    )?;
    capstan::logging::init(&settings)
}

/// etcd's refusal of bad flags: one JSON warning line on stderr, "failed to verify flags" with
/// the reason in `error` (written directly: no logger could be installed).
fn refuse_flags(error: &str) {
    let refusal = record::Record {
        level: "warn",
        caller: record::caller(Some(file!()), Some(line!())),
        logger: None,
        message: "failed to verify flags".to_string(),
        fields: vec![(
            "error".to_string(),
            record::FieldValue::Text(error.to_string()),
        )],
    };
    let timestamp = capstan::logging::timestamp::utc_micros(std::time::SystemTime::now());
    let mut line = String::new();
    capstan::logging::json::write_line(&refusal, &timestamp, &mut line);
    eprint!("{line}");
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
    if let Err(error) = init_logging(&config) {
        refuse_flags(&error);
        return ExitCode::FAILURE;
    }
    capstan::logging::slow::set_thresholds(
        config.warning_unary_request_duration,
        config.warning_apply_duration,
    );
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
