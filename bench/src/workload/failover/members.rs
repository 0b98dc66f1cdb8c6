//! `--member ENDPOINT=PID_FILE`: which process serves which endpoint, and killing it.
//!
//! The pid is read from the file at each round (a restarted member has a new pid); the file
//! holds the pid as decimal text, as `bench/scripts/cluster3.sh` writes it.

use crate::endpoint::Endpoint;
use crate::error::BenchError;
use std::path::{Path, PathBuf};

/// One member: its client endpoint and the file that holds its pid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// `host:port`, as in `--endpoints`.
    pub endpoint: String,
    pub pid_file: PathBuf,
}

/// Parses the `--member` entries; every endpoint must have exactly one, and every entry must
/// name one of the endpoints.
pub fn parse_members(texts: &[String], endpoints: &[Endpoint]) -> Result<Vec<Member>, BenchError> {
    let mut members: Vec<Member> = Vec::with_capacity(texts.len());
    for text in texts.iter().filter(|text| !text.trim().is_empty()) {
        let Some((endpoint, pid_file)) = text.split_once('=') else {
            return Err(BenchError::Usage(format!(
                "--member \"{text}\" is not ENDPOINT=PID_FILE"
            )));
        };
        let endpoint = Endpoint::parse(endpoint)?.authority;
        if pid_file.is_empty() {
            return Err(BenchError::Usage(format!(
                "--member \"{text}\" has no pid file"
            )));
        }
        if !endpoints.iter().any(|known| known.authority == endpoint) {
            return Err(BenchError::Usage(format!(
                "--member {endpoint} is not one of --endpoints"
            )));
        }
        if members.iter().any(|member| member.endpoint == endpoint) {
            return Err(BenchError::Usage(format!(
                "--member {endpoint} is given twice"
            )));
        }
        members.push(Member {
            endpoint,
            pid_file: PathBuf::from(pid_file),
        });
    }
    for endpoint in endpoints {
        if !members
            .iter()
            .any(|member| member.endpoint == endpoint.authority)
        {
            return Err(BenchError::Usage(format!(
                "endpoint {} has no --member {}=PID_FILE",
                endpoint.authority, endpoint.authority
            )));
        }
    }
    Ok(members)
}

/// Parses the text of a pid file: one decimal number above 1, surrounding blanks allowed.
pub fn parse_pid(text: &str) -> Option<i32> {
    text.trim().parse::<i32>().ok().filter(|pid| *pid > 1)
}

/// Reads a member's pid from its file.
pub fn read_pid(path: &Path) -> Result<i32, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        BenchError::Usage(format!("cannot read pid file {}: {error}", path.display()))
    })?;
    parse_pid(&text).ok_or_else(|| {
        BenchError::Usage(format!(
            "pid file {} does not hold a pid: {:?}",
            path.display(),
            text.trim()
        ))
    })
}

/// Whether a process with this pid exists (it may belong to another user).
pub fn is_alive(pid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the pid exists and may be signalled.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Sends SIGKILL to `pid`.
pub fn kill9(pid: i32) -> Result<(), BenchError> {
    // SAFETY: kill(2) takes plain integers; `pid` is above 1 (parse_pid), so this never
    // signals a process group or every process.
    let result = unsafe { libc::kill(pid, libc::SIGKILL) };
    if result == 0 {
        Ok(())
    } else {
        Err(BenchError::Usage(format!(
            "cannot kill pid {pid}: {}",
            std::io::Error::last_os_error()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints() -> Vec<Endpoint> {
        Endpoint::parse_list(&["127.0.0.1:1,127.0.0.1:3".to_string()]).expect("endpoints")
    }

    #[test]
    fn members_map_every_endpoint() {
        let texts = vec![
            "http://127.0.0.1:3=/tmp/b.pid".to_string(),
            "127.0.0.1:1=/tmp/a.pid".to_string(),
        ];
        let members = parse_members(&texts, &endpoints()).expect("members");
        assert_eq!(members[0].endpoint, "127.0.0.1:3");
        assert_eq!(members[1].pid_file, PathBuf::from("/tmp/a.pid"));
    }

    #[test]
    fn wrong_member_lists_are_refused() {
        let one = vec!["127.0.0.1:1=/tmp/a.pid".to_string()];
        assert!(
            parse_members(&one, &endpoints()).is_err(),
            "missing endpoint"
        );
        let stranger = vec![
            "127.0.0.1:1=/a".to_string(),
            "127.0.0.1:3=/b".to_string(),
            "127.0.0.1:9=/c".to_string(),
        ];
        assert!(parse_members(&stranger, &endpoints()).is_err());
        let twice = vec![
            "127.0.0.1:1=/a".to_string(),
            "127.0.0.1:1=/b".to_string(),
            "127.0.0.1:3=/c".to_string(),
        ];
        assert!(parse_members(&twice, &endpoints()).is_err());
        let no_file = vec!["127.0.0.1:1=".to_string(), "127.0.0.1:3=/c".to_string()];
        assert!(parse_members(&no_file, &endpoints()).is_err());
    }

    #[test]
    fn pid_files_hold_one_number() {
        assert_eq!(parse_pid("1234\n"), Some(1234));
        assert_eq!(parse_pid(" 77 "), Some(77));
        assert_eq!(parse_pid("1"), None);
        assert_eq!(parse_pid("-5"), None);
        assert_eq!(parse_pid("12 13"), None);
        assert_eq!(parse_pid(""), None);
    }

    #[test]
    fn this_process_is_alive() {
        assert!(is_alive(std::process::id() as i32));
    }
}
