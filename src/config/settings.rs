//! The settings one source gave (command line, `ETCD_*` variables or configuration file), keyed
//! by flag name, each with where it came from so errors and notices can name it as written.
//! Values are kept as text in command-line syntax and checked against the flag's kind.

use super::table::{Flag, Kind};
use super::{parse_go_duration, ConfigError};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    CommandLine,
    /// The `ETCD_*` variable that carried it.
    Environment(String),
    /// The configuration file and the key as written there.
    File {
        path: PathBuf,
        key: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// Command-line syntax: `5s`, `true`, `a,b`.
    pub value: String,
    pub origin: Origin,
}

impl Setting {
    /// The setting as the user wrote it: `--name=x`, `ETCD_NAME=x`, `name: x in f.yaml`.
    pub fn describe(&self, flag: &str) -> String {
        match &self.origin {
            Origin::CommandLine => format!("--{flag}={}", self.value),
            Origin::Environment(variable) => format!("{variable}={} (--{flag})", self.value),
            Origin::File { path, key } => {
                format!("'{key}: {}' in {}", self.value, path.display())
            }
        }
    }
}

/// Settings by flag name.
pub type Settings = BTreeMap<&'static str, Setting>;

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Checks `text` against the flag's kind; the error is the reason only.
pub fn check_value(flag: &Flag, text: &str) -> Result<(), String> {
    let parse_error = || "parse error".to_string();
    match flag.kind {
        Kind::Text | Kind::UrlList | Kind::List => Ok(()),
        Kind::Bool => parse_go_bool(text).map(|_| ()).ok_or_else(parse_error),
        Kind::Uint => text.parse::<u64>().map(|_| ()).map_err(|_| parse_error()),
        Kind::Int => text.parse::<i64>().map(|_| ()).map_err(|_| parse_error()),
        Kind::Duration if text.is_empty() => Ok(()),
        Kind::Duration => parse_go_duration(text).map(|_| ()),
        Kind::Gates => super::gates::parse_gates(text).map(|_| ()),
    }
}

/// Whether `text` means the same as etcd's default for the flag, so giving it changes nothing.
pub fn is_default(flag: &Flag, text: &str) -> bool {
    let text = text.trim();
    match flag.kind {
        Kind::Bool => parse_go_bool(text) == parse_go_bool(flag.default),
        Kind::Uint | Kind::Int => text.parse::<i128>().ok() == flag.default.parse::<i128>().ok(),
        Kind::Duration => {
            let zero_if_empty = |value: &str| {
                if value.is_empty() {
                    Ok(std::time::Duration::ZERO)
                } else {
                    parse_go_duration(value)
                }
            };
            zero_if_empty(text).ok() == zero_if_empty(flag.default).ok()
        }
        Kind::List if flag.name == "log-outputs" => matches!(text, "default" | "stderr"),
        Kind::Text | Kind::UrlList | Kind::List | Kind::Gates => text == flag.default,
    }
}

/// The error for a value that does not parse, naming it as the user wrote it (etcd's words).
pub fn invalid_value(flag: &Flag, setting: &Setting, reason: &str) -> ConfigError {
    match &setting.origin {
        Origin::CommandLine => ConfigError(format!(
            "invalid value \"{}\" for flag -{}: {reason}",
            setting.value, flag.name
        )),
        Origin::Environment(variable) => ConfigError(format!(
            "invalid value \"{}\" for {variable}: {reason}",
            setting.value
        )),
        Origin::File { path, key } => ConfigError(format!(
            "{}: invalid value \"{}\" for {key}: {reason}",
            path.display(),
            setting.value
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::table::find;

    #[test]
    fn defaults_compare_by_meaning() {
        let flag = |name| find(name).expect("flag");
        assert!(is_default(flag("grpc-keepalive-min-time"), "5000ms"));
        assert!(is_default(flag("pre-vote"), "1"));
        assert!(!is_default(flag("pre-vote"), "false"));
        assert!(is_default(flag("backend-batch-interval"), "0"));
        assert!(is_default(flag("log-outputs"), "stderr"));
        assert!(!is_default(flag("log-outputs"), "stdout"));
        assert!(is_default(flag("snapshot-catchup-entries"), "5000"));
    }
}
