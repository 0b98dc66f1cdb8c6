//! `--config-file` / `ETCD_CONFIG_FILE`: etcd's YAML configuration file. When one is given,
//! etcd ignores every other flag and variable (it logs "loaded server configuration, other
//! configuration command line flags and environment variables will be ignored if provided");
//! `flags::parse_args` does the same.
//!
//! Keys are the flag names, with etcd's value types (it decodes the YAML into its Go `Config`
//! struct through JSON, so types are strict):
//! - strings for text flags, and for URL lists as one comma-separated string
//!   (`listen-client-urls: http://a:2379,http://b:2379`) and `feature-gates`;
//! - integers for numbers; booleans for booleans (YAML 1.1's `yes`/`no`/`on`/`off` too);
//! - integer nanoseconds for durations (`grpc-keepalive-min-time: 5000000000`);
//! - sequences for `log-outputs` and `cipher-suites`;
//! - TLS in two blocks, `client-transport-security:` and `peer-transport-security:`, with
//!   `cert-file`, `key-file`, `client-cert-file`, `client-key-file`, `client-cert-auth`,
//!   `trusted-ca-file`, `auto-tls`, `allowed-cn` and `allowed-hostname` (sequences) and
//!   `skip-client-san-verification`;
//! - `socket-options:` with `reuse-port` and `reuse-address`.
//!
//! Where Capstan is stricter than etcd: an unknown key in a TLS block is an error (etcd drops
//! it silently, which could drop a security setting); an unknown top-level key is warned about
//! (etcd drops it silently); a setting given both as a flag-named top-level key and in a block
//! is an error. Flag names are accepted as top-level keys for every flag, including the TLS
//! ones etcd reads only from the blocks.

use super::settings::{check_value, invalid_value, parse_go_bool, Origin, Setting, Settings};
use super::table::{self, Kind};
use super::ConfigError;
use std::path::Path;
use yaml_rust2::{Yaml, YamlLoader};

/// The settings of the file at `path`, and warnings about keys that are no setting.
pub fn read_config_file(path: &Path) -> Result<(Settings, Vec<String>), ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| ConfigError(format!("open {}: {error}", path.display())))?;
    parse_config_text(path, &text)
}

/// The settings in YAML `text` (read from `path`, which errors name).
pub fn parse_config_text(path: &Path, text: &str) -> Result<(Settings, Vec<String>), ConfigError> {
    let error = |message: String| ConfigError(format!("{}: {message}", path.display()));
    let documents = YamlLoader::load_from_str(text).map_err(|scan| error(scan.to_string()))?;
    let mut settings = Settings::new();
    let mut warnings = Vec::new();
    let root = match documents.into_iter().next() {
        None | Some(Yaml::Null) => return Ok((settings, warnings)),
        Some(Yaml::Hash(root)) => root,
        Some(_) => {
            return Err(error(
                "the configuration must be a YAML mapping".to_string(),
            ))
        }
    };
    for (key, value) in root {
        let Yaml::String(key) = key else {
            return Err(error(format!("key {key:?} is not a string")));
        };
        match key.as_str() {
            "client-transport-security" => {
                read_block(path, &key, value, Side::Client, &mut settings)?
            }
            "peer-transport-security" => read_block(path, &key, value, Side::Peer, &mut settings)?,
            "socket-options" => read_socket_options(path, &key, value, &mut settings)?,
            "discovery-config" if value != Yaml::Null => {
                return Err(error(
                    "discovery-config: discovery is not implemented; give the members with \
                     initial-cluster"
                        .to_string(),
                ))
            }
            "config-file" => warnings.push(format!(
                "{}: key config-file is ignored inside a configuration file",
                path.display()
            )),
            name => match table::find(name) {
                Some(flag) => insert(path, &key, flag.name, value, &mut settings)?,
                None => warnings.push(format!(
                    "{}: unrecognized configuration key {name} (ignored, as etcd does)",
                    path.display()
                )),
            },
        }
    }
    Ok((settings, warnings))
}

#[derive(Clone, Copy)]
enum Side {
    Client,
    Peer,
}

/// The flag a key of a TLS block sets (etcd's `securityConfig` fields).
fn block_flag(side: Side, key: &str) -> Option<&'static str> {
    let flag = match (side, key) {
        (Side::Client, "cert-file") => "cert-file",
        (Side::Client, "key-file") => "key-file",
        (Side::Client, "client-cert-file") => "client-cert-file",
        (Side::Client, "client-key-file") => "client-key-file",
        (Side::Client, "client-cert-auth") => "client-cert-auth",
        (Side::Client, "trusted-ca-file") => "trusted-ca-file",
        (Side::Client, "auto-tls") => "auto-tls",
        (Side::Client, "allowed-hostname") => "client-cert-allowed-hostname",
        (Side::Peer, "cert-file") => "peer-cert-file",
        (Side::Peer, "key-file") => "peer-key-file",
        (Side::Peer, "client-cert-file") => "peer-client-cert-file",
        (Side::Peer, "client-key-file") => "peer-client-key-file",
        (Side::Peer, "client-cert-auth") => "peer-client-cert-auth",
        (Side::Peer, "trusted-ca-file") => "peer-trusted-ca-file",
        (Side::Peer, "auto-tls") => "peer-auto-tls",
        (Side::Peer, "allowed-cn") => "peer-cert-allowed-cn",
        (Side::Peer, "allowed-hostname") => "peer-cert-allowed-hostname",
        (Side::Peer, "skip-client-san-verification") => "peer-skip-client-san-verification",
        _ => return None,
    };
    Some(flag)
}

fn read_block(
    path: &Path,
    block: &str,
    value: Yaml,
    side: Side,
    settings: &mut Settings,
) -> Result<(), ConfigError> {
    let entries = match value {
        Yaml::Null => return Ok(()),
        Yaml::Hash(entries) => entries,
        _ => {
            return Err(ConfigError(format!(
                "{}: {block} must be a mapping",
                path.display()
            )))
        }
    };
    for (key, value) in entries {
        let key = key.as_str().unwrap_or_default().to_string();
        let Some(flag) = block_flag(side, &key) else {
            return Err(ConfigError(format!(
                "{}: {block}.{key} is not a setting Capstan knows; a security setting is never \
                 dropped (etcd would ignore it)",
                path.display()
            )));
        };
        // etcd's lists here are YAML sequences; the flags take comma-separated text.
        let value = match value {
            Yaml::Array(items) => Yaml::String(join_strings(path, &key, items)?),
            other => other,
        };
        insert(path, &format!("{block}.{key}"), flag, value, settings)?;
    }
    Ok(())
}

fn read_socket_options(
    path: &Path,
    block: &str,
    value: Yaml,
    settings: &mut Settings,
) -> Result<(), ConfigError> {
    let Yaml::Hash(entries) = value else {
        return Ok(());
    };
    for (key, value) in entries {
        let key = key.as_str().unwrap_or_default().to_string();
        let flag = match key.as_str() {
            "reuse-port" => "socket-reuse-port",
            "reuse-address" => "socket-reuse-address",
            _ => {
                return Err(ConfigError(format!(
                    "{}: {block}.{key} is not a socket option etcd has",
                    path.display()
                )))
            }
        };
        insert(path, &format!("{block}.{key}"), flag, value, settings)?;
    }
    Ok(())
}

fn join_strings(path: &Path, key: &str, items: Vec<Yaml>) -> Result<String, ConfigError> {
    let mut parts = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Yaml::String(text) => parts.push(text),
            other => {
                return Err(ConfigError(format!(
                    "{}: {key}: list items must be strings, found {other:?}",
                    path.display()
                )))
            }
        }
    }
    Ok(parts.join(","))
}

/// Converts one YAML value to the flag's command-line text, with etcd's (Go's) strict types.
fn insert(
    path: &Path,
    key: &str,
    flag_name: &'static str,
    value: Yaml,
    settings: &mut Settings,
) -> Result<(), ConfigError> {
    let Some(flag) = table::find(flag_name) else {
        return Ok(());
    };
    let wrong_type = |expected: &str, found: &Yaml| {
        ConfigError(format!(
            "{}: {key}: expected {expected} (etcd's type for --{}), found {found:?}",
            path.display(),
            flag.name
        ))
    };
    let text = match (flag.kind, value) {
        // YAML null leaves the default, as Go's decoder does.
        (_, Yaml::Null) => return Ok(()),
        (Kind::Bool, Yaml::Boolean(value)) => value.to_string(),
        (Kind::Bool, Yaml::String(word)) => match yaml11_bool(&word) {
            Some(value) => value.to_string(),
            None => return Err(wrong_type("a boolean", &Yaml::String(word))),
        },
        (Kind::Uint | Kind::Int, Yaml::Integer(number)) => number.to_string(),
        (Kind::Duration, Yaml::Integer(nanos)) if nanos >= 0 => format!("{nanos}ns"),
        (Kind::Duration, other) => {
            return Err(wrong_type(
                "integer nanoseconds (Go's time.Duration)",
                &other,
            ))
        }
        (Kind::List, Yaml::Array(items)) => join_strings(path, key, items)?,
        (Kind::Text | Kind::UrlList | Kind::Gates, Yaml::String(text)) => text,
        (Kind::Bool, other) => return Err(wrong_type("a boolean", &other)),
        (Kind::Uint | Kind::Int, other) => return Err(wrong_type("an integer", &other)),
        (Kind::List, other) => return Err(wrong_type("a list of strings", &other)),
        (Kind::Text | Kind::UrlList | Kind::Gates, other) => {
            return Err(wrong_type("a string", &other))
        }
    };
    let setting = Setting {
        value: text,
        origin: Origin::File {
            path: path.to_path_buf(),
            key: key.to_string(),
        },
    };
    check_value(flag, &setting.value).map_err(|reason| invalid_value(flag, &setting, &reason))?;
    if let Some(earlier) = settings.get(flag.name) {
        return Err(ConfigError(format!(
            "{}: --{} is set twice: {} and {}",
            path.display(),
            flag.name,
            earlier.describe(flag.name),
            setting.describe(flag.name)
        )));
    }
    settings.insert(flag.name, setting);
    Ok(())
}

/// YAML 1.1 booleans, which etcd's YAML library still reads as booleans.
fn yaml11_bool(word: &str) -> Option<bool> {
    match word {
        "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "y" | "Y" => Some(true),
        "no" | "No" | "NO" | "off" | "Off" | "OFF" | "n" | "N" => Some(false),
        _ => parse_go_bool(word).filter(|_| matches!(word, "true" | "false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(Settings, Vec<String>), ConfigError> {
        parse_config_text(Path::new("f.yaml"), text)
    }

    #[test]
    fn etcds_value_forms() {
        let (settings, warnings) = parse(
            "name: n1\n\
             snapshot-count: 500\n\
             listen-client-urls: http://127.0.0.1:1,http://127.0.0.1:2\n\
             grpc-keepalive-min-time: 5000000000\n\
             log-outputs: [stderr]\n\
             pre-vote: false\n\
             no-such-key: 1\n\
             feature-gates: TxnModeWriteWithSharedBuffer=true\n\
             client-transport-security:\n  cert-file: /c.pem\n  client-cert-auth: true\n\
             peer-transport-security:\n  allowed-cn: [a, b]\n",
        )
        .expect("parses");
        let value = |name: &str| settings[name].value.clone();
        assert_eq!(value("name"), "n1");
        assert_eq!(value("snapshot-count"), "500");
        assert_eq!(value("grpc-keepalive-min-time"), "5000000000ns");
        assert_eq!(value("log-outputs"), "stderr");
        assert_eq!(value("pre-vote"), "false");
        assert_eq!(value("cert-file"), "/c.pem");
        assert_eq!(value("client-cert-auth"), "true");
        assert_eq!(value("peer-cert-allowed-cn"), "a,b");
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("no-such-key"));
    }

    #[test]
    fn types_are_strict_as_in_etcd() {
        assert!(parse("grpc-keepalive-min-time: 5s\n").is_err());
        assert!(parse("snapshot-count: \"10\"\n").is_err());
        assert!(parse("log-outputs: stderr\n").is_err());
        assert!(parse("listen-client-urls: [http://a:1]\n").is_err());
        assert!(parse("client-transport-security:\n  client-cert-aut: true\n").is_err());
        assert!(parse("cert-file: /a\nclient-transport-security:\n  cert-file: /b\n").is_err());
        assert!(parse("name: [\n").is_err());
    }
}
