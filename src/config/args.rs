//! The command line, in Go's `flag` syntax as etcd parses it: `--flag=value`, `--flag value`,
//! `-flag`, booleans as `--flag` or `--flag=false`; a repeated flag keeps its last value; an
//! unknown flag or a value that does not parse is an error naming it.

use super::settings::{check_value, invalid_value, Origin, Setting, Settings};
use super::table::{self, Kind};
use super::ConfigError;

/// What the command line asks for.
#[derive(Debug)]
pub enum CommandLine {
    Help,
    Version,
    Run(Settings),
}

pub fn parse_command_line(args: &[String]) -> Result<CommandLine, ConfigError> {
    let mut settings = Settings::new();
    let mut version = false;
    let mut index = 0;
    while index < args.len() {
        let arg = &args[index];
        index += 1;
        let Some(stripped) = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .filter(|rest| !rest.is_empty() && !rest.starts_with('-'))
        else {
            return Err(ConfigError(format!(
                "\"{arg}\" is not a valid flag (etcd's gateway and grpc-proxy sub-commands are \
                 not implemented)"
            )));
        };
        let (name, inline) = match stripped.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (stripped, None),
        };
        match name {
            "help" | "h" => return Ok(CommandLine::Help),
            "version" => {
                version = true;
                continue;
            }
            _ => {}
        }
        let Some(flag) = table::find(name) else {
            return Err(ConfigError(format!(
                "flag provided but not defined: -{name}"
            )));
        };
        let value = match (flag.kind, inline) {
            (_, Some(value)) => value,
            (Kind::Bool, None) => "true".to_string(),
            (_, None) => {
                let Some(next) = args.get(index) else {
                    return Err(ConfigError(format!("flag needs an argument: -{name}")));
                };
                index += 1;
                next.clone()
            }
        };
        let setting = Setting {
            value,
            origin: Origin::CommandLine,
        };
        check_value(flag, &setting.value)
            .map_err(|reason| invalid_value(flag, &setting, &reason))?;
        settings.insert(flag.name, setting);
    }
    if version {
        return Ok(CommandLine::Version);
    }
    Ok(CommandLine::Run(settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(list: &[&str]) -> Result<CommandLine, ConfigError> {
        let args: Vec<String> = list.iter().map(|arg| arg.to_string()).collect();
        parse_command_line(&args)
    }

    fn settings(list: &[&str]) -> Settings {
        match parse(list).expect("parses") {
            CommandLine::Run(settings) => settings,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn go_flag_syntax() {
        let parsed = settings(&["--name=a", "-data-dir", "/x", "--pre-vote", "--name", "b"]);
        assert_eq!(parsed["name"].value, "b");
        assert_eq!(parsed["data-dir"].value, "/x");
        assert_eq!(parsed["pre-vote"].value, "true");
    }

    #[test]
    fn errors_in_etcds_words() {
        let error = parse(&["--nope"]).expect_err("unknown");
        assert_eq!(error.0, "flag provided but not defined: -nope");
        let error = parse(&["--snapshot-count=abc"]).expect_err("bad value");
        assert_eq!(
            error.0,
            "invalid value \"abc\" for flag -snapshot-count: parse error"
        );
        let error = parse(&["gateway"]).expect_err("positional");
        assert!(error.0.contains("\"gateway\" is not a valid flag"));
        assert!(parse(&["--name"]).is_err());
    }

    #[test]
    fn version_after_every_flag_parsed() {
        assert!(matches!(parse(&["--version"]), Ok(CommandLine::Version)));
        assert!(parse(&["--version", "--nope"]).is_err());
        assert!(matches!(parse(&["-h", "--nope"]), Ok(CommandLine::Help)));
    }
}
