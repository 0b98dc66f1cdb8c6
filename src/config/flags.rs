//! etcd's configuration surface, as etcd 3.6 reads it (`server/etcdmain/config.go`):
//! 1. the command line is parsed (`args`): an unknown flag or a bad value is an error;
//! 2. with `--config-file` (or `ETCD_CONFIG_FILE` when the flag is absent) the file alone
//!    configures the member (`file`), and every other flag and `ETCD_*` variable is ignored, as
//!    etcd does, with a warning naming each; one exception, failing closed: an ignored security
//!    setting stops start-up;
//! 3. otherwise `ETCD_*` variables fill what the command line did not give (`env`);
//! 4. etcd 3.5's `--experimental-*` names become their 3.6 flags or feature gates (both names at
//!    once is etcd's error);
//! 5. every setting's outcome from the table (`table`) applies: refused ones stop start-up
//!    naming the setting, the others log a one-line notice when not at etcd's default;
//! 6. `assemble` builds the `ServerConfig`.

use super::args::{parse_command_line, CommandLine};
use super::settings::{is_default, Setting, Settings};
use super::table::{self, Group, Outcome, FLAGS};
use super::{assemble, env, file, gates, help, security, ServerConfig};
use std::collections::BTreeMap;
use std::path::Path;

pub use super::assemble::{SNAPSHOT_COUNT_DEFAULT, WAL_SEGMENT_BYTES_DEFAULT};

/// What the command line asked for.
#[derive(Debug)]
pub enum Parsed {
    Run {
        config: Box<ServerConfig>,
        /// One-line notices for the log: ignored settings, deprecated names, no-op flags.
        warnings: Vec<String>,
    },
    Help(String),
    Version(String),
}

#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Parses `args` (without the program name), the `ETCD_*` variables in `environment` and the
/// configuration file they name.
pub fn parse_args(
    args: &[String],
    environment: &[(String, String)],
) -> Result<Parsed, ConfigError> {
    let command_line = match parse_command_line(args)? {
        CommandLine::Help => return Ok(Parsed::Help(help::usage())),
        CommandLine::Version => return Ok(Parsed::Version(help::version_text())),
        CommandLine::Run(settings) => settings,
    };
    let mut warnings = Vec::new();
    let config_file = command_line
        .get("config-file")
        .map(|setting| setting.value.clone())
        .filter(|path| !path.is_empty())
        .or_else(|| env::config_file_variable(environment));
    let settings = match config_file {
        Some(path) => {
            let (settings, file_warnings) = file::read_config_file(Path::new(&path))?;
            warnings.push(format!(
                "loaded server configuration from {path}, other configuration command line \
                 flags and environment variables will be ignored if provided"
            ));
            warnings.extend(file_warnings);
            warnings.extend(ignored_with_a_file(&command_line, environment)?);
            settings
        }
        None => {
            let (mut settings, env_warnings) = env::read_environment(environment, &command_line)?;
            warnings.extend(env_warnings);
            settings.extend(command_line);
            settings.remove("config-file");
            settings
        }
    };
    let mut settings = resolve_renames(settings, &mut warnings)?;
    let (gate_values, gate_notices) = resolve_gates(&mut settings)?;
    warnings.extend(gate_notices);
    warnings.extend(check_outcomes(&settings)?);
    let config = assemble::assemble(&settings, &gate_values)?;
    Ok(Parsed::Run {
        config: Box::new(config),
        warnings,
    })
}

/// The command-line flags and `ETCD_*` variables a configuration file makes etcd ignore: a
/// warning for each, and an error for a security setting (never ignored).
fn ignored_with_a_file(
    command_line: &Settings,
    environment: &[(String, String)],
) -> Result<Vec<String>, ConfigError> {
    let (from_environment, _) = env::read_environment(environment, &Settings::new())
        .unwrap_or_else(|_| (Settings::new(), Vec::new()));
    let mut warnings = Vec::new();
    for (name, setting) in command_line.iter().chain(from_environment.iter()) {
        let Some(flag) = table::find(name) else {
            continue;
        };
        if flag.name == "config-file" {
            continue;
        }
        let security = matches!(flag.group, Group::Security | Group::Auth)
            || matches!(flag.outcome, Outcome::Tls(_));
        if security && !is_default(flag, &setting.value) {
            return Err(ConfigError(format!(
                "{} would be ignored because a configuration file is given (etcd's rule); a \
                 security setting is never ignored: set it in the file instead",
                setting.describe(name)
            )));
        }
        warnings.push(format!(
            "{} is ignored: a configuration file is given",
            setting.describe(name)
        ));
    }
    Ok(warnings)
}

/// etcd 3.5's `--experimental-*` names → their 3.6 flags; both at once is etcd's error.
fn resolve_renames(
    mut settings: Settings,
    warnings: &mut Vec<String>,
) -> Result<Settings, ConfigError> {
    for flag in FLAGS {
        let Outcome::Renamed(newer) = flag.outcome else {
            continue;
        };
        let Some(setting) = settings.remove(flag.name) else {
            continue;
        };
        let Some(newer) = table::find(newer) else {
            continue;
        };
        if settings.contains_key(newer.name) {
            return Err(ConfigError(format!(
                "cannot set --{} and --{} at the same time, please use --{} only",
                flag.name, newer.name, newer.name
            )));
        }
        warnings.push(format!(
            "--{} is deprecated in etcd 3.6 and will be decommissioned in 3.7; use --{}",
            flag.name, newer.name
        ));
        settings.insert(newer.name, setting);
    }
    Ok(settings)
}

/// `--feature-gates` and the `--experimental-*` flags that became gates: every gate's value and
/// the notices for gates away from their default, or the refusal of one.
fn resolve_gates(settings: &mut Settings) -> Result<(gates::GateValues, Vec<String>), ConfigError> {
    let mut warnings = Vec::new();
    let mut named: BTreeMap<String, bool> = match settings.get("feature-gates") {
        None => BTreeMap::new(),
        Some(setting) => gates::parse_gates(&setting.value).map_err(|reason| {
            ConfigError(format!(
                "invalid value \"{}\" for flag -feature-gates: {reason}",
                setting.value
            ))
        })?,
    };
    for flag in FLAGS {
        let Outcome::Gate(gate) = flag.outcome else {
            continue;
        };
        let Some(setting) = settings.remove(flag.name) else {
            continue;
        };
        let value = super::settings::parse_go_bool(&setting.value).unwrap_or(false);
        if let Some(gate_value) = named.get(gate) {
            return Err(ConfigError(format!(
                "cannot specify both flags: --{}={value} and --feature-gates={gate}={gate_value} \
                 at the same time, please just use --feature-gates={gate}={gate_value}",
                flag.name
            )));
        }
        warnings.push(format!(
            "--{} is deprecated in etcd 3.6 and will be decommissioned in 3.7; use \
             --feature-gates={gate}={value}",
            flag.name
        ));
        named.insert(gate.to_string(), value);
    }
    let values = gates::resolve(&named);
    warnings.extend(gates::check(&values).map_err(ConfigError)?);
    Ok((values, warnings))
}

/// Applies every setting's outcome: refused ones stop start-up, no-op ones get a notice.
fn check_outcomes(settings: &Settings) -> Result<Vec<String>, ConfigError> {
    let mut notices = Vec::new();
    for (name, setting) in settings {
        let Some(flag) = table::find(name) else {
            continue;
        };
        if is_default(flag, &setting.value) {
            continue;
        }
        match flag.outcome {
            Outcome::Implemented | Outcome::Renamed(_) | Outcome::Gate(_) => {}
            Outcome::Tls(side) if security::tls_served(side) => {}
            Outcome::Tls(_) => return Err(refusal(setting, name, TLS_NOT_SERVED)),
            Outcome::Notice(reason) => notices.push(format!(
                "{} has no effect in Capstan: {reason}",
                setting.describe(name)
            )),
            Outcome::Refused(reason) => return Err(refusal(setting, name, reason)),
        }
    }
    Ok(notices)
}

const TLS_NOT_SERVED: &str =
    "TLS is not served on these listeners yet; a security setting is never accepted without its \
     effect";

fn refusal(setting: &Setting, name: &str, reason: &str) -> ConfigError {
    ConfigError(format!(
        "{} is not supported by Capstan: {reason}",
        setting.describe(name)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::table::{Kind, TlsSide};
    use std::path::PathBuf;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|item| item.to_string()).collect()
    }

    fn env_of(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    fn parse(
        list: &[&str],
        env: &[(&str, &str)],
    ) -> Result<(ServerConfig, Vec<String>), ConfigError> {
        match parse_args(&strings(list), &env_of(env))? {
            Parsed::Run { config, warnings } => Ok((*config, warnings)),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn run(list: &[&str], env: &[(&str, &str)]) -> Result<ServerConfig, ConfigError> {
        parse(list, env).map(|(config, _)| config)
    }

    /// A value of the flag's kind that is not etcd's default.
    fn other_value(kind: Kind, default: &str) -> String {
        match kind {
            Kind::Bool if default == "true" => "false".to_string(),
            Kind::Bool => "true".to_string(),
            Kind::Uint | Kind::Int => "7".to_string(),
            Kind::Duration => "7s".to_string(),
            Kind::UrlList => "http://127.0.0.1:7".to_string(),
            Kind::Gates => "TxnModeWriteWithSharedBuffer=false".to_string(),
            Kind::Text | Kind::List => "x".to_string(),
        }
    }

    /// Command lines for the implemented flags, and what each must change in `ServerConfig`.
    fn implemented_sample(name: &str) -> (Vec<&'static str>, fn(&ServerConfig) -> bool) {
        match name {
            "name" => (
                vec!["--name=n1", "--initial-cluster=n1=http://localhost:2380"],
                |c| c.name == "n1",
            ),
            "data-dir" => (vec!["--data-dir=/tmp/d7"], |c| {
                c.data_dir == Path::new("/tmp/d7")
            }),
            "wal-dir" => (vec!["--wal-dir=/tmp/w7"], |c| {
                c.wal_dir() == Path::new("/tmp/w7")
            }),
            "snapshot-count" => (vec!["--snapshot-count=7"], |c| c.snapshot_count == 7),
            "heartbeat-interval" => (vec!["--heartbeat-interval=50"], |c| {
                c.heartbeat_interval_ms == 50
            }),
            "election-timeout" => (vec!["--election-timeout=700"], |c| {
                c.election_timeout_ms == 700
            }),
            "listen-peer-urls" => (vec!["--listen-peer-urls=http://127.0.0.1:7"], |c| {
                c.listen_peer_url.address.port() == 7
            }),
            "listen-client-urls" => (
                vec![
                    "--listen-client-urls=http://127.0.0.1:7",
                    "--advertise-client-urls=http://127.0.0.1:7",
                ],
                |c| c.listen_client_urls[0].address.port() == 7,
            ),
            "listen-client-http-urls" => {
                (vec!["--listen-client-http-urls=http://127.0.0.1:7"], |c| {
                    c.listen_client_http_urls[0].address.port() == 7
                })
            }
            "enable-grpc-gateway" => (vec!["--enable-grpc-gateway=false"], |c| {
                !c.enable_grpc_gateway
            }),
            "quota-backend-bytes" => (vec!["--quota-backend-bytes=7"], |c| {
                c.quota_bytes() == Some(7)
            }),
            "max-txn-ops" => (vec!["--max-txn-ops=7"], |c| c.max_txn_ops == 7),
            "max-request-bytes" => (vec!["--max-request-bytes=7"], |c| c.max_request_bytes == 7),
            "max-concurrent-streams" => (vec!["--max-concurrent-streams=7"], |c| {
                c.max_concurrent_streams == Some(7)
            }),
            "feature-gates" => (vec!["--feature-gates=LeaseCheckpoint=true"], |_| true),
            "initial-advertise-peer-urls" => (
                vec![
                    "--initial-advertise-peer-urls=http://127.0.0.1:7",
                    "--initial-cluster=default=http://127.0.0.1:7",
                ],
                |c| c.initial_advertise_peer_urls == ["http://127.0.0.1:7"],
            ),
            "initial-cluster" => (
                vec!["--initial-cluster=default=http://localhost:2380,b=http://127.0.0.1:7"],
                |c| c.initial_cluster.len() == 2,
            ),
            "initial-cluster-state" => (vec!["--initial-cluster-state=existing"], |c| {
                c.join_existing
            }),
            "initial-cluster-token" => (vec!["--initial-cluster-token=t7"], |c| {
                c.initial_cluster_token == "t7"
            }),
            "advertise-client-urls" => (vec!["--advertise-client-urls=http://a7:1"], |c| {
                c.advertise_client_urls == ["http://a7:1"]
            }),
            "strict-reconfig-check" => (vec!["--strict-reconfig-check=false"], |c| {
                !c.strict_reconfig_check
            }),
            "auto-compaction-retention" => (vec!["--auto-compaction-retention=1"], |c| {
                c.auto_compaction.is_some()
            }),
            "auto-compaction-mode" => (
                vec![
                    "--auto-compaction-mode=revision",
                    "--auto-compaction-retention=7",
                ],
                |c| {
                    matches!(
                        c.auto_compaction,
                        Some(crate::config::AutoCompaction::Revision {
                            retention_revisions: 7
                        })
                    )
                },
            ),
            "listen-metrics-urls" => (vec!["--listen-metrics-urls=http://127.0.0.1:7"], |c| {
                c.listen_metrics_urls[0].address.port() == 7
            }),
            "metrics" => (vec!["--metrics=extensive"], |c| c.metrics_extensive),
            "log-level" => (vec!["--log-level=debug"], |c| c.log_level == "debug"),
            "logger" => (vec!["--logger=zap"], |c| c.logger == "zap"),
            "log-outputs" => (vec!["--log-outputs=stdout,/tmp/l7"], |c| {
                c.log_outputs == ["stdout", "/tmp/l7"]
            }),
            "log-format" => (vec!["--log-format=console"], |c| c.log_format == "console"),
            "warning-unary-request-duration" => {
                (vec!["--warning-unary-request-duration=7s"], |c| {
                    c.warning_unary_request_duration.as_secs() == 7
                })
            }
            "warning-apply-duration" => (vec!["--warning-apply-duration=7s"], |c| {
                c.warning_apply_duration.as_secs() == 7
            }),
            "watch-progress-notify-interval" => {
                (vec!["--watch-progress-notify-interval=7s"], |c| {
                    c.watch_progress_notify_interval.as_secs() == 7
                })
            }
            "max-learners" => (vec!["--max-learners=7"], |c| c.max_learners == 7),
            "shards" => (vec!["--shards=3"], |c| c.shards == 3),
            "wal-segment-bytes" => (vec!["--wal-segment-bytes=1048576"], |c| {
                c.wal_segment_bytes == 1 << 20
            }),
            other => panic!("--{other} is implemented: give it a sample here"),
        }
    }

    /// What each implemented feature gate, turned away from its default, changes in
    /// `ServerConfig`.
    fn implemented_gate(name: &str) -> fn(&ServerConfig) -> bool {
        match name {
            "InitialCorruptCheck" => |c| c.initial_corrupt_check,
            other => panic!("gate {other} is implemented: give it a check here"),
        }
    }

    /// Every implemented gate set through `--feature-gates` reaches `ServerConfig`, silently.
    #[test]
    fn implemented_gates_reach_the_config() {
        for gate in gates::GATES {
            if !matches!(gate.outcome, gates::GateOutcome::Implemented(_)) {
                continue;
            }
            let flag = format!("--feature-gates={}={}", gate.name, !gate.default);
            let (config, warnings) =
                parse(&[&flag], &[]).unwrap_or_else(|error| panic!("{flag}: {error}"));
            assert!(implemented_gate(gate.name)(&config), "{flag}");
            assert!(warnings.is_empty(), "{flag}: {warnings:?}");
            let (config, _) = parse(&[], &[]).expect("defaults");
            assert!(
                !implemented_gate(gate.name)(&config),
                "{} is off by default",
                gate.name
            );
        }
        let (config, _) = parse(&[], &[("ETCD_FEATURE_GATES", "InitialCorruptCheck=true")])
            .expect("from the environment");
        assert!(config.initial_corrupt_check);
        let (config, warnings) =
            parse(&["--experimental-initial-corrupt-check=true"], &[]).expect("3.5 name");
        assert!(config.initial_corrupt_check);
        assert!(warnings.iter().any(|line| line.contains("deprecated")));
        let (config, _) = parse(&["--feature-gates=InitialCorruptCheck=false"], &[]).expect("off");
        assert!(!config.initial_corrupt_check);
    }

    fn expect_outcome(flag: &table::Flag, outcome: Outcome, args: &[String]) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let result = parse(&args, &[]);
        match outcome {
            Outcome::Implemented => {
                let (sample, check) = implemented_sample(flag.name);
                let (config, _) =
                    parse(&sample, &[]).unwrap_or_else(|error| panic!("--{}: {error}", flag.name));
                assert!(check(&config), "--{} did not reach ServerConfig", flag.name);
            }
            Outcome::Tls(side) if security::tls_served(side) => {
                if let Err(error) = result {
                    assert!(
                        !error.0.contains("not supported by Capstan"),
                        "--{}: {error}",
                        flag.name
                    );
                }
            }
            Outcome::Tls(_) | Outcome::Refused(_) => {
                let error = result.expect_err(flag.name);
                assert!(error.0.contains(flag.name), "--{}: {error}", flag.name);
                assert!(error.0.contains("not supported by Capstan"), "{error}");
            }
            Outcome::Notice(_) => {
                let (_, warnings) =
                    result.unwrap_or_else(|error| panic!("--{}: {error}", flag.name));
                assert!(
                    warnings
                        .iter()
                        .any(|line| line.contains(flag.name) && line.contains("no effect")),
                    "--{}: {warnings:?}",
                    flag.name
                );
            }
            Outcome::Renamed(newer) => {
                let newer = table::find(newer).expect("newer flag");
                if newer.outcome == Outcome::Implemented {
                    let (_, warnings) =
                        result.unwrap_or_else(|error| panic!("--{}: {error}", flag.name));
                    assert!(warnings.iter().any(|line| line.contains("deprecated")));
                } else {
                    expect_outcome(
                        newer,
                        newer.outcome,
                        &[format!(
                            "--{}={}",
                            newer.name,
                            args[0]
                                .split_once('=')
                                .map(|(_, value)| value)
                                .unwrap_or("")
                        )],
                    );
                }
            }
            Outcome::Gate(gate) => {
                let gate = gates::find(gate).expect("gate");
                match (gate.outcome, result) {
                    (gates::GateOutcome::Refused(_), Err(error)) => {
                        assert!(error.0.contains(gate.name), "{error}")
                    }
                    (gates::GateOutcome::Refused(_), Ok(_)) => {
                        panic!("--{} must be refused", flag.name)
                    }
                    (gates::GateOutcome::Implemented(_), Ok((config, warnings))) => {
                        assert!(warnings.iter().any(|line| line.contains(flag.name)));
                        assert!(
                            implemented_gate(gate.name)(&config),
                            "--{} did not reach ServerConfig",
                            flag.name
                        );
                    }
                    (_, Ok((_, warnings))) => {
                        assert!(warnings.iter().any(|line| line.contains(flag.name)))
                    }
                    (_, Err(error)) => panic!("--{}: {error}", flag.name),
                }
            }
        }
    }

    /// Every etcd 3.6 flag, given a value other than etcd's default, has its table outcome.
    #[test]
    fn every_flag_has_its_outcome() {
        for flag in FLAGS.iter().filter(|flag| flag.name != "config-file") {
            let value = match flag.outcome {
                Outcome::Gate(_) => "true".to_string(),
                _ => other_value(flag.kind, flag.default),
            };
            expect_outcome(flag, flag.outcome, &[format!("--{}={value}", flag.name)]);
        }
    }

    /// The same flags given at their etcd defaults are accepted silently: giving a flag its
    /// default changes nothing.
    #[test]
    fn flags_at_etcds_default_are_accepted() {
        for flag in FLAGS.iter().filter(|flag| {
            !matches!(flag.outcome, Outcome::Implemented | Outcome::Gate(_))
                && !flag.default.is_empty()
                && flag.kind != Kind::UrlList
        }) {
            let (_, warnings) = parse(&[&format!("--{}={}", flag.name, flag.default)], &[])
                .unwrap_or_else(|error| panic!("--{}: {error}", flag.name));
            assert!(
                warnings.iter().all(|line| !line.contains("no effect")),
                "--{}: {warnings:?}",
                flag.name
            );
        }
    }

    #[test]
    fn security_variables_are_never_warned_and_ignored() {
        // Client certificates required, but the default client URL is http://.
        let error = run(&[], &[("ETCD_CLIENT_CERT_AUTH", "true")]).expect_err("cert auth");
        assert!(
            error.0.contains("no --listen-client-urls URL is https://"),
            "{error}"
        );
        let error = run(&[], &[("ETCD_TRUSTED_CA_FILE", "/ca.pem")]).expect_err("no https");
        assert!(
            error.0.contains("no --listen-client-urls URL is https://"),
            "{error}"
        );
        let error = run(&[], &[("ETCD_AUTH_TOKEN", "jwt")]).expect_err("auth");
        assert!(error.0.contains("ETCD_AUTH_TOKEN"), "{error}");
        let config = run(
            &[],
            &[("ETCD_LISTEN_METRICS_URLS", "http://127.0.0.1:2381")],
        )
        .expect("metrics urls");
        assert_eq!(config.listen_metrics_urls[0].address.port(), 2381);
        assert_eq!(TlsSide::Client, TlsSide::Client);
    }

    #[test]
    fn experimental_names_follow_etcd() {
        let config =
            run(&["--experimental-watch-progress-notify-interval=5s"], &[]).expect("parses");
        assert_eq!(config.watch_progress_notify_interval.as_secs(), 5);
        let error = run(
            &[
                "--experimental-watch-progress-notify-interval=5s",
                "--watch-progress-notify-interval=5s",
            ],
            &[],
        )
        .expect_err("both");
        assert_eq!(
            error.0,
            "cannot set --experimental-watch-progress-notify-interval and \
             --watch-progress-notify-interval at the same time, please use \
             --watch-progress-notify-interval only"
        );
        let error = run(
            &[
                "--experimental-initial-corrupt-check=false",
                "--feature-gates=InitialCorruptCheck=true",
            ],
            &[],
        )
        .expect_err("both");
        assert_eq!(
            error.0,
            "cannot specify both flags: --experimental-initial-corrupt-check=false and \
             --feature-gates=InitialCorruptCheck=true at the same time, please just use \
             --feature-gates=InitialCorruptCheck=true"
        );
        let error = run(&["--feature-gates=Foo=true"], &[]).expect_err("unknown gate");
        assert_eq!(
            error.0,
            "invalid value \"Foo=true\" for flag -feature-gates: unrecognized feature gate: Foo"
        );
    }

    #[test]
    fn a_config_file_wins_and_the_rest_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("etcd.yaml");
        std::fs::write(
            &path,
            "name: fromfile\ninitial-cluster: fromfile=http://localhost:2380\nsnapshot-count: 77\n",
        )
        .expect("write");
        let path = path.to_string_lossy().to_string();
        let (config, warnings) = parse(
            &["--config-file", &path, "--name=other", "--snapshot-count=5"],
            &[("ETCD_MAX_TXN_OPS", "3")],
        )
        .expect("parses");
        assert_eq!(config.name, "fromfile");
        assert_eq!(config.snapshot_count, 77);
        assert_eq!(config.max_txn_ops, 128);
        assert!(warnings
            .iter()
            .any(|line| line.contains("--name=other is ignored")));
        assert!(warnings
            .iter()
            .any(|line| line.contains("ETCD_MAX_TXN_OPS=3")));
        let (config, _) =
            parse(&[], &[("ETCD_CONFIG_FILE", &path), ("ETCD_NAME", "env")]).expect("parses");
        assert_eq!(config.name, "fromfile");
        let error =
            run(&["--config-file", &path, "--client-cert-auth"], &[]).expect_err("security");
        assert!(error.0.contains("client-cert-auth"), "{error}");
        let error = run(&["--config-file=/no/such.yaml"], &[]).expect_err("missing");
        assert!(error.0.contains("/no/such.yaml"), "{error}");
    }

    #[test]
    fn defaults_match_etcd() {
        let config = run(&[], &[]).expect("defaults parse");
        assert_eq!(config.name, "default");
        assert!(config.data_dir.is_absolute());
        assert!(config.data_dir.ends_with("default.etcd"));
        assert_eq!(config.max_request_bytes, 1_572_864);
        assert_eq!(config.max_txn_ops, 128);
        assert_eq!(config.snapshot_count, 10_000);
        assert_eq!(config.request_timeout().as_millis(), 7_000);
        assert_eq!(config.listen_peer_url.original, "http://localhost:2380");
        assert!(!config.listen_peer_url_given);
        assert_eq!(config.max_concurrent_streams, None);
    }

    #[test]
    fn a_given_peer_url_is_told_apart_from_the_default() {
        let flag = run(&["--listen-peer-urls=http://127.0.0.1:2390"], &[]).expect("parses");
        assert!(flag.listen_peer_url_given);
        assert_eq!(flag.listen_peer_url.address.port(), 2390);
        let env = run(&[], &[("ETCD_LISTEN_PEER_URLS", "http://127.0.0.1:2391")]).expect("parses");
        assert!(env.listen_peer_url_given);
        assert_eq!(env.listen_peer_url.address.port(), 2391);
    }

    #[test]
    fn both_flag_syntaxes_and_env_work() {
        let config = run(
            &[
                "--name=n1",
                "-data-dir",
                "/tmp/x",
                "--max-txn-ops",
                "7",
                "--initial-cluster=n1=http://localhost:2380",
            ],
            &[("ETCD_MAX_REQUEST_BYTES", "100")],
        )
        .expect("parses");
        assert_eq!(config.name, "n1");
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.max_txn_ops, 7);
        assert_eq!(config.max_request_bytes, 100);
        let error = run(&["--name=n1"], &[("ETCD_NAME", "n2")]).expect_err("conflict");
        assert!(
            error
                .0
                .contains("conflicting environment variable ETCD_NAME"),
            "{error}"
        );
    }

    #[test]
    fn quota_backend_bytes_as_etcd() {
        let quota = |flags: &[&str]| run(flags, &[]).expect("parses").quota_bytes();
        assert_eq!(quota(&[]), Some(2 * 1024 * 1024 * 1024));
        assert_eq!(
            quota(&["--quota-backend-bytes=0"]),
            Some(2 * 1024 * 1024 * 1024)
        );
        assert_eq!(quota(&["--quota-backend-bytes", "100000"]), Some(100_000));
        assert_eq!(
            quota(&["--quota-backend-bytes=1099511627776"]),
            Some(1 << 40)
        );
        assert_eq!(quota(&["--quota-backend-bytes=-1"]), None);
        let env = run(&[], &[("ETCD_QUOTA_BACKEND_BYTES", "4096")]).expect("parses");
        assert_eq!(env.quota_bytes(), Some(4096));
        assert!(run(&["--quota-backend-bytes=2GiB"], &[]).is_err());
    }

    #[test]
    fn auto_compaction_flags_as_etcd() {
        use crate::config::AutoCompaction;
        use std::time::Duration;
        assert_eq!(run(&[], &[]).expect("parses").auto_compaction, None);
        let config = run(&["--auto-compaction-retention=1"], &[]).expect("parses");
        assert_eq!(
            config.auto_compaction,
            Some(AutoCompaction::Periodic {
                retention: Duration::from_secs(3600)
            })
        );
        let error = run(&["--auto-compaction-mode=hourly"], &[]).expect_err("must fail");
        assert!(error.0.contains("hourly"), "{error}");
    }

    #[test]
    fn client_http_urls_must_not_share_an_address_with_the_client_urls() {
        let error = run(
            &[
                "--listen-client-urls=http://127.0.0.1:7",
                "--advertise-client-urls=http://127.0.0.1:7",
                "--listen-client-http-urls=http://127.0.0.1:7",
            ],
            &[],
        )
        .expect_err("must fail");
        assert_eq!(
            error.0,
            "cannot bind both --listen-client-urls and --listen-client-http-urls on the same url \
             http://127.0.0.1:7"
        );
        let config = run(&["--listen-client-http-urls=http://127.0.0.1:8"], &[]).expect("parses");
        assert_eq!(config.listen_client_http_urls.len(), 1);
        assert!(config.enable_grpc_gateway);
    }

    #[test]
    fn listen_requires_advertise_on_the_command_line() {
        let error = run(&["--listen-client-urls=http://127.0.0.1:1"], &[]).expect_err("must fail");
        assert!(error.0.contains("advertise-client-urls"));
    }

    #[test]
    fn client_tls_flags_fill_the_client_security_settings() {
        let config = run(
            &[
                "--listen-client-urls=https://127.0.0.1:2379",
                "--advertise-client-urls=https://127.0.0.1:2379",
                "--cert-file=/c/server.crt",
                "--key-file=/c/server.key",
                "--trusted-ca-file=/c/ca.crt",
                "--client-cert-auth",
                "--client-cert-allowed-hostname=client.example",
                "--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "--tls-max-version=TLS1.2",
            ],
            &[("ETCD_CLIENT_CRL_FILE", "/c/revoked.crl")],
        )
        .expect("parses");
        assert!(config.listen_client_urls[0].tls);
        let client = &config.security.client;
        assert_eq!(client.cert_file, Some(PathBuf::from("/c/server.crt")));
        assert_eq!(client.key_file, Some(PathBuf::from("/c/server.key")));
        assert_eq!(client.trusted_ca_file, Some(PathBuf::from("/c/ca.crt")));
        assert_eq!(client.crl_file, Some(PathBuf::from("/c/revoked.crl")));
        assert_eq!(client.allowed_hostname.as_deref(), Some("client.example"));
        assert!(client.client_cert_auth);
        assert_eq!(
            config.security.cipher_suites,
            vec!["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_string()]
        );
        assert_eq!(config.security.tls_max_version.as_deref(), Some("TLS1.2"));
    }

    #[test]
    fn https_client_urls_need_a_certificate_and_tls_settings_are_checked() {
        let https = [
            "--listen-client-urls=https://127.0.0.1:2379",
            "--advertise-client-urls=https://127.0.0.1:2379",
        ];
        let error = run(&https, &[]).expect_err("no certificate");
        assert_eq!(
            error.0,
            "TLS key/cert (--cert-file, --key-file) must be provided for client url \
             https://127.0.0.1:2379 with HTTPS scheme"
        );
        let mut auto = https.to_vec();
        auto.push("--auto-tls");
        assert!(
            run(&auto, &[])
                .expect("auto-tls makes one")
                .security
                .client
                .auto_tls
        );
        let error = run(&["--cipher-suites=TLS_FOO"], &[]).expect_err("unknown suite");
        assert_eq!(error.0, "unexpected TLS cipher suite \"TLS_FOO\"");
        let error = run(&["--tls-min-version=TLS1.0"], &[]).expect_err("old version");
        assert!(
            error.0.starts_with("tls-min-version is invalid"),
            "{}",
            error.0
        );
    }

    #[test]
    fn peer_tls_flags_fill_the_peer_security_settings() {
        let config = run(
            &[
                "--listen-peer-urls=https://127.0.0.1:2390",
                "--peer-cert-file=/p/peer.crt",
                "--peer-key-file=/p/peer.key",
                "--peer-trusted-ca-file=/p/ca.crt",
                "--peer-client-cert-auth=true",
                "--peer-cert-allowed-cn=etcd-a, etcd-b",
                "--peer-skip-client-san-verification",
            ],
            &[("ETCD_PEER_CRL_FILE", "/p/revoked.crl")],
        );
        if !security::tls_served(TlsSide::Peer) {
            assert!(config.is_err());
            return;
        }
        let config = config.expect("parses");
        assert!(config.listen_peer_url.tls);
        let peer = &config.security.peer;
        assert_eq!(peer.cert_file, Some(PathBuf::from("/p/peer.crt")));
        assert_eq!(peer.key_file, Some(PathBuf::from("/p/peer.key")));
        assert_eq!(peer.trusted_ca_file, Some(PathBuf::from("/p/ca.crt")));
        assert_eq!(peer.crl_file, Some(PathBuf::from("/p/revoked.crl")));
        assert!(peer.client_cert_auth);
        assert_eq!(peer.allowed_cn.as_deref(), Some("etcd-a,etcd-b"));
        assert!(peer.skip_client_san_verification);
        assert!(!peer.auto_tls);
        assert_eq!(
            config.security.client,
            crate::config::TransportSecurity::default()
        );
    }

    #[test]
    fn peer_allowed_cn_and_hostname_exclude_each_other() {
        if !security::tls_served(TlsSide::Peer) {
            return;
        }
        let error = run(
            &[
                "--peer-cert-allowed-cn=a",
                "--peer-cert-allowed-hostname=b.example",
            ],
            &[],
        )
        .expect_err("refused");
        assert!(error.0.contains("mutually exclusive"), "{error}");
        let error = run(&["--peer-client-cert-file=/p/c.crt"], &[]).expect_err("refused");
        assert!(error.0.contains("both"), "{error}");
    }
}
