//! `--logger`, `--log-outputs`, `--log-format` and `--log-level`, checked as etcd checks them
//! (`embed.Config.setupLogging`, `logutil.ConvertToZapLevel`) and refused with etcd's messages.

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Console,
}

/// `--log-level`. zap's `dpanic`, `panic` and `fatal` levels log what `error` logs here (Capstan
/// has no event that panics or exits through the logger).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    /// The `EnvFilter` directive for this level.
    pub fn filter_directive(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// etcd's `--log-outputs` value that means "stderr".
pub const DEFAULT_OUTPUT: &str = "default";
/// etcd's journald output, which Capstan does not write to (journald reads stderr).
pub const JOURNAL_OUTPUT: &str = "systemd/journal";

/// Where log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Stderr,
    Stdout,
    /// A file, opened for appending (created when missing).
    File(String),
}

/// The logging flags, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: LogLevel,
    pub outputs: Vec<Output>,
}

impl LogSettings {
    /// Checks the flags' values. Errors are etcd's texts (etcd logs them as "failed to verify
    /// flags" and exits; `--log-level` etcd refuses by panicking with the same text).
    pub fn parse(
        logger: &str,
        outputs: &[String],
        format: &str,
        level: &str,
    ) -> Result<LogSettings, String> {
        match logger {
            "zap" => {}
            "capnslog" => return Err("--logger=capnslog is removed in v3.5".to_string()),
            other => return Err(format!("unknown logger option {other:?}")),
        }
        let format = match format {
            "json" | "" => LogFormat::Json,
            "console" => LogFormat::Console,
            other => {
                return Err(format!(
                    "unknown log format: {other}, supported values json, console"
                ))
            }
        };
        let level = match level {
            "debug" => LogLevel::Debug,
            "info" | "" => LogLevel::Info,
            "warn" => LogLevel::Warn,
            "error" | "dpanic" | "panic" | "fatal" => LogLevel::Error,
            other => return Err(format!("unrecognized level: {other:?}")),
        };
        Ok(LogSettings {
            format,
            level,
            outputs: parse_outputs(outputs)?,
        })
    }
}

fn parse_outputs(names: &[String]) -> Result<Vec<Output>, String> {
    if names.len() > 1 && names.iter().any(|name| name == DEFAULT_OUTPUT) {
        return Err(format!(
            "multi logoutput for {DEFAULT_OUTPUT:?} is not supported yet"
        ));
    }
    if names.is_empty() {
        return Ok(vec![Output::Stderr]);
    }
    let mut outputs = Vec::new();
    for name in names {
        let output = match name.as_str() {
            DEFAULT_OUTPUT | "stderr" => Output::Stderr,
            "stdout" => Output::Stdout,
            JOURNAL_OUTPUT => {
                return Err(format!(
                    "--log-outputs={JOURNAL_OUTPUT} is not supported by Capstan; \
                     journald records stderr (--log-outputs=stderr)"
                ))
            }
            path => Output::File(path.to_string()),
        };
        if !outputs.contains(&output) {
            outputs.push(output);
        }
    }
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(
        logger: &str,
        outputs: &[&str],
        format: &str,
        level: &str,
    ) -> Result<LogSettings, String> {
        let outputs: Vec<String> = outputs.iter().map(|s| s.to_string()).collect();
        LogSettings::parse(logger, &outputs, format, level)
    }

    #[test]
    fn etcd_defaults_are_json_info_on_stderr() {
        let settings = parse("zap", &["default"], "json", "info").unwrap();
        assert_eq!(settings.format, LogFormat::Json);
        assert_eq!(settings.level, LogLevel::Info);
        assert_eq!(settings.outputs, vec![Output::Stderr]);
    }

    #[test]
    fn refusals_carry_etcds_texts() {
        assert_eq!(
            parse("zap", &["default"], "xml", "info").unwrap_err(),
            "unknown log format: xml, supported values json, console"
        );
        assert_eq!(
            parse("capnslog", &["default"], "json", "info").unwrap_err(),
            "--logger=capnslog is removed in v3.5"
        );
        assert_eq!(
            parse("foo", &["default"], "json", "info").unwrap_err(),
            "unknown logger option \"foo\""
        );
        assert_eq!(
            parse("zap", &["stderr", "default"], "json", "info").unwrap_err(),
            "multi logoutput for \"default\" is not supported yet"
        );
        assert_eq!(
            parse("zap", &["default"], "json", "verbose").unwrap_err(),
            "unrecognized level: \"verbose\""
        );
    }

    #[test]
    fn several_outputs_at_once() {
        let settings = parse(
            "zap",
            &["stderr", "stdout", "/tmp/a.log"],
            "console",
            "panic",
        )
        .unwrap();
        assert_eq!(
            settings.outputs,
            vec![
                Output::Stderr,
                Output::Stdout,
                Output::File("/tmp/a.log".to_string())
            ]
        );
        assert_eq!(settings.level, LogLevel::Error);
    }
}
