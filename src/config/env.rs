//! `ETCD_*` environment variables, as etcd 3.6 reads them when no configuration file is given
//! (`pkg/flags.SetFlagsFromEnv`): every flag has one (`--listen-client-urls` is
//! `ETCD_LISTEN_CLIENT_URLS`); a variable that is also given as a command-line flag stops
//! start-up (etcd exits with "conflicting environment variable is shadowed by corresponding
//! command-line flag"); an `ETCD_*` variable that is no flag is warned about. Since every etcd
//! flag is in the table, no security setting can be warned about and dropped.

use super::settings::{check_value, invalid_value, Origin, Setting, Settings};
use super::table::{self, FLAGS};
use super::ConfigError;

/// The variable etcd refuses to take from the environment (it would fake `--version`).
const VERSION_VARIABLE: &str = "ETCD_VERSION";

/// The settings in `environment`, and warnings about variables that are no flag.
pub fn read_environment(
    environment: &[(String, String)],
    command_line: &Settings,
) -> Result<(Settings, Vec<String>), ConfigError> {
    let mut settings = Settings::new();
    let mut warnings = Vec::new();
    for (variable, value) in environment {
        if !variable.starts_with("ETCD_") {
            continue;
        }
        if variable == VERSION_VARIABLE {
            warnings.push(format!(
                "cannot set special environment variable {variable}={value}"
            ));
            continue;
        }
        let Some(flag) = FLAGS.iter().find(|flag| flag.env_name() == *variable) else {
            warnings.push(format!(
                "unrecognized environment variable {variable}={value}"
            ));
            continue;
        };
        if flag.name == "config-file" {
            // Read before the other variables, by the caller (etcd reads it the same way).
            continue;
        }
        if command_line.contains_key(flag.name) {
            return Err(ConfigError(format!(
                "conflicting environment variable {variable} is shadowed by corresponding \
                 command-line flag --{} (either unset environment variable or disable flag)",
                flag.name
            )));
        }
        let setting = Setting {
            value: value.clone(),
            origin: Origin::Environment(variable.clone()),
        };
        check_value(flag, &setting.value)
            .map_err(|reason| invalid_value(flag, &setting, &reason))?;
        settings.insert(flag.name, setting);
    }
    Ok((settings, warnings))
}

/// `ETCD_CONFIG_FILE`, when set and not empty.
pub fn config_file_variable(environment: &[(String, String)]) -> Option<String> {
    let variable = table::env_name_of("config-file");
    environment
        .iter()
        .find(|(name, value)| *name == variable && !value.is_empty())
        .map(|(_, value)| value.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn every_flag_has_its_variable() {
        for flag in FLAGS.iter().filter(|flag| flag.name != "config-file") {
            let value = match flag.kind {
                table::Kind::Bool => "true",
                table::Kind::Uint | table::Kind::Int => "7",
                table::Kind::Duration => "7s",
                table::Kind::Gates => "AllBeta=true",
                _ => "x",
            };
            let (settings, warnings) =
                read_environment(&env(&[(&flag.env_name(), value)]), &Settings::new())
                    .expect("parses");
            assert_eq!(settings[flag.name].value, value, "{}", flag.name);
            assert!(warnings.is_empty());
        }
    }

    #[test]
    fn etcds_rules() {
        let (_, warnings) = read_environment(
            &env(&[("ETCD_NO_SUCH", "1"), ("PATH", "/")]),
            &Settings::new(),
        )
        .expect("parses");
        assert_eq!(
            warnings,
            ["unrecognized environment variable ETCD_NO_SUCH=1"]
        );
        let mut command_line = Settings::new();
        command_line.insert(
            "name",
            Setting {
                value: "a".to_string(),
                origin: Origin::CommandLine,
            },
        );
        let error =
            read_environment(&env(&[("ETCD_NAME", "b")]), &command_line).expect_err("conflict");
        assert!(error
            .0
            .contains("conflicting environment variable ETCD_NAME"));
        let error = read_environment(&env(&[("ETCD_SNAPSHOT_COUNT", "abc")]), &Settings::new())
            .expect_err("bad value");
        assert_eq!(
            error.0,
            "invalid value \"abc\" for ETCD_SNAPSHOT_COUNT: parse error"
        );
        assert_eq!(
            config_file_variable(&env(&[("ETCD_CONFIG_FILE", "/f.yaml")])),
            Some("/f.yaml".to_string())
        );
    }
}
