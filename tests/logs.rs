//! Logs as etcd writes them (`src/logging/`): with etcd's default flags (`--logger zap
//! --log-format json --log-outputs default`) every line a member writes is one JSON object whose
//! keys start `level`, `ts`, (`logger`,) `caller`, `msg`; a start-up, a leader change and slow
//! requests carry etcd's `msg` strings. Also `--log-outputs` with a file, `--log-format
//! console`, and etcd's refusals of bad logging flags.
mod cluster;
mod common;

use cluster::*;
use common::*;

use serde_json::Value;
use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// etcd's start-up lines (from real etcd 3.6 and 3.4 logs) that a Capstan start-up must carry.
const STARTUP_MESSAGES: &[&str] = &[
    "starting an etcd server",
    "opened backend db",
    "starting local member",
    "now serving peer/client/metrics",
    "serving peer traffic",
    "published local member to cluster through raft",
    "ready to serve client requests",
    "serving client traffic insecurely; this is strongly discouraged!",
];

/// One parsed log line: its keys in the order written, and the object.
struct Line {
    keys: Vec<String>,
    object: serde_json::Map<String, Value>,
}

impl Line {
    fn msg(&self) -> &str {
        self.object.get("msg").and_then(Value::as_str).unwrap_or("")
    }

    fn text(&self, key: &str) -> Option<&str> {
        self.object.get(key).and_then(Value::as_str)
    }
}

/// The keys of a JSON object line in the order they are written (serde_json's map sorts them).
fn keys_in_order(line: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut rest = line.strip_prefix('{').expect("an object");
    loop {
        rest = rest.strip_prefix(',').unwrap_or(rest);
        if rest.starts_with('}') {
            return keys;
        }
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<String>();
        let key = stream
            .next()
            .expect("a key")
            .unwrap_or_else(|error| panic!("bad key in {line:?}: {error}"));
        rest = rest[stream.byte_offset()..]
            .strip_prefix(':')
            .expect("a colon after the key");
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
        stream
            .next()
            .expect("a value")
            .unwrap_or_else(|error| panic!("bad value in {line:?}: {error}"));
        rest = &rest[stream.byte_offset()..];
        keys.push(key);
    }
}

/// Every line of `log` as JSON, asserting zap's key order and etcd's value forms.
fn parse_json_lines(log: &str) -> Vec<Line> {
    let mut lines = Vec::new();
    for text in log.lines() {
        let value: Value = serde_json::from_str(text)
            .unwrap_or_else(|error| panic!("not a JSON line ({error}): {text:?}"));
        let Value::Object(object) = value else {
            panic!("not a JSON object: {text:?}");
        };
        let keys = keys_in_order(text);
        let expected: &[&str] = if keys.get(2).map(String::as_str) == Some("logger") {
            &["level", "ts", "logger", "caller", "msg"]
        } else {
            &["level", "ts", "caller", "msg"]
        };
        assert!(
            keys.len() >= expected.len() && keys[..expected.len()] == *expected,
            "keys {keys:?} do not start with {expected:?}: {text}"
        );
        let line = Line { keys, object };
        let level = line.text("level").unwrap_or("");
        assert!(
            ["debug", "info", "warn", "error"].contains(&level),
            "level {level:?}: {text}"
        );
        let ts = line.text("ts").unwrap_or("");
        assert!(
            ts.len() == 27
                && ts.ends_with('Z')
                && ts.as_bytes()[10] == b'T'
                && ts.as_bytes()[19] == b'.',
            "ts {ts:?} is not etcd 3.6's layout: {text}"
        );
        let caller = line.text("caller").unwrap_or("");
        assert!(caller.contains(".rs:"), "caller {caller:?}: {text}");
        lines.push(line);
    }
    lines
}

fn put(cluster: &Cluster, member: usize, key: &str) {
    let output = cluster.etcdctl(&[member], COMMAND_TIMEOUT, &["put", key, "v"]);
    assert!(
        output.status.success(),
        "put {key} on member {member}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Waits until `member`'s log carries a line whose msg satisfies `wanted`.
fn wait_for_message(cluster: &Cluster, member: usize, wanted: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if parse_json_lines(&cluster.log(member))
            .iter()
            .any(|line| wanted(line.msg()))
        {
            return;
        }
        std::thread::sleep(POLL);
    }
    panic!(
        "member {member} never logged the line; log:\n{}",
        cluster.log(member)
    );
}

#[test]
fn a_cluster_logs_etcds_json_lines_for_start_up_leader_change_and_slow_requests() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec::new(3).flags(&[
        "--warning-unary-request-duration=1ns",
        "--warning-apply-duration=1ns",
    ]));
    // A member publishes itself once it serves; wait for it, as the start-up is asserted below.
    for member in cluster.all() {
        wait_for_message(&cluster, member, |msg| {
            msg == "published local member to cluster through raft"
        });
    }
    let first = cluster.wait_for_leader(&cluster.all());
    put(&cluster, first.leader, "before");
    cluster.kill9(first.leader);
    let survivors = cluster.others(&[first.leader]);
    let second = cluster.wait_for_leader(&survivors);
    put(&cluster, second.leader, "after");
    for &member in &survivors {
        wait_for_message(&cluster, member, |msg| msg == "apply request took too long");
    }

    let mut messages = BTreeSet::new();
    for member in 0..cluster.size() {
        let lines = parse_json_lines(&cluster.log(member));
        assert!(!lines.is_empty(), "member {member} logged nothing");
        for line in &lines {
            if line.text("logger") == Some("raft") {
                assert!(
                    line.msg().starts_with("raft.node: ") || line.msg().contains(" became "),
                    "unexpected raft line {:?}",
                    line.keys
                );
            }
        }
        messages.extend(lines.iter().map(|line| line.msg().to_string()));
        // Types are kept: numbers stay numbers.
        let start = lines
            .iter()
            .find(|line| line.msg() == "starting an etcd server")
            .expect("a start line");
        assert!(
            start.object["snapshot-count"].is_u64(),
            "{:?}",
            start.object
        );
        assert_eq!(
            start.object["name"],
            Value::String(format!("n{}", member + 1))
        );
    }
    for wanted in STARTUP_MESSAGES {
        assert!(
            messages.contains(*wanted),
            "no {wanted:?} among {messages:#?}"
        );
    }
    let second_id = format!("{:x}", second.leader_id);
    assert!(
        messages.iter().any(|msg| msg.starts_with("raft.node: ")
            && msg.ends_with(&format!(
                "elected leader {second_id} at term {}",
                second.term
            ))),
        "no election of {second_id} at term {} among {messages:#?}",
        second.term
    );
    assert!(
        messages.contains(&format!(
            "{second_id} became leader at term {}",
            second.term
        )),
        "{messages:#?}"
    );
    let first_id = format!("{:x}", first.leader_id);
    assert!(
        messages.iter().any(|msg| msg.starts_with("raft.node: ")
            && (msg.contains(&format!("lost leader {first_id} at term"))
                || msg.contains(&format!("changed leader from {first_id} to")))),
        "no line about losing {first_id} among {messages:#?}"
    );

    // Slow requests, as etcd words them.
    let lines = parse_json_lines(&cluster.log(second.leader));
    let stats = lines
        .iter()
        .find(|line| {
            line.msg() == "request stats"
                && line.text("response type") == Some("/etcdserverpb.KV/Put")
        })
        .expect("a request stats line for the put");
    assert_eq!(stats.text("level"), Some("warn"));
    assert!(stats.text("time spent").is_some() && stats.text("start time").is_some());
    let apply = lines
        .iter()
        .find(|line| {
            line.msg() == "apply request took too long"
                && line
                    .text("request")
                    .is_some_and(|request| request.contains("put:<key:\"after\" value_size:1 >"))
        })
        .expect("the slow apply of the put");
    assert_eq!(apply.text("level"), Some("warn"));
    assert_eq!(apply.text("expected-duration"), Some("1ns"));
    assert!(apply.text("took").is_some() && apply.text("response").is_some());
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

#[test]
fn log_outputs_append_to_files_and_console_lines_are_tab_separated() {
    let dir = temp_dir();
    let file = dir.path().join("capstan.log");
    std::fs::write(&file, "an earlier line\n").expect("seed the log file");
    let outputs = format!("--log-outputs=stderr,{}", file.display());
    let server = Server::start(Flavor::Capstan, dir.path(), &[outputs.as_str()]);
    etcdctl_ok(&server.endpoint(), &["put", "k", "v"]);
    let written = std::fs::read_to_string(&file).expect("read the log file");
    let rest = written
        .strip_prefix("an earlier line\n")
        .expect("the file is appended to");
    let lines = parse_json_lines(rest);
    assert!(lines.iter().any(|line| line.msg() == READY_LINE), "{rest}");
    drop(server);

    let dir = temp_dir();
    let server = Server::start(Flavor::Capstan, dir.path(), &["--log-format=console"]);
    let log = server.log();
    let mut saw_fields = false;
    for line in log.lines() {
        let columns: Vec<&str> = line.splitn(5, '\t').collect();
        assert!(columns.len() >= 4, "not a console line: {line:?}");
        assert!(
            columns[0].ends_with('Z') && columns[0].len() == 27,
            "{line:?}"
        );
        assert!(
            ["debug", "info", "warn", "error"].contains(&columns[1]),
            "{line:?}"
        );
        let (caller, msg, fields) = if columns[2] == "raft" {
            (columns[3], columns.get(4).copied().unwrap_or(""), None)
        } else {
            (columns[2], columns[3], columns.get(4).copied())
        };
        assert!(caller.contains(".rs:"), "{line:?}");
        assert!(!msg.is_empty(), "{line:?}");
        if let Some(fields) = fields {
            let object: Value = serde_json::from_str(fields)
                .unwrap_or_else(|error| panic!("fields are not JSON ({error}): {line:?}"));
            assert!(object.is_object(), "{line:?}");
            assert!(fields.contains("\": "), "zap's console spacing: {line:?}");
            saw_fields = true;
        }
    }
    assert!(saw_fields, "{log}");
    assert!(log.contains(&format!("\t{READY_LINE}")), "{log}");
}

/// Runs capstan with `flags`; returns its exit status and stderr.
fn run_refused(flags: &[&str]) -> (std::process::ExitStatus, String) {
    let dir = temp_dir();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let output = Command::new(capstan_binary())
        .arg(format!("--data-dir={}", dir.path().join("data").display()))
        .arg(format!("--listen-client-urls={url}"))
        .arg(format!("--advertise-client-urls={url}"))
        .args(flags)
        .env_remove("CAPSTAN_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run capstan");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bad_logging_flags_are_refused_with_etcds_messages() {
    let cases = [
        ("--log-format=xml", "unknown log format: xml, supported values json, console"),
        ("--logger=capnslog", "--logger=capnslog is removed in v3.5"),
        ("--logger=foo", "unknown logger option \"foo\""),
        ("--log-level=verbose", "unrecognized level: \"verbose\""),
        ("--log-outputs=stderr,default", "multi logoutput for \"default\" is not supported yet"),
        (
            "--log-outputs=/nonexistent/dir/x.log",
            "open sink \"/nonexistent/dir/x.log\": open /nonexistent/dir/x.log: no such file or directory",
        ),
    ];
    for (flag, error) in cases {
        let (status, stderr) = run_refused(&[flag]);
        assert_eq!(status.code(), Some(1), "{flag}: {stderr}");
        let lines = parse_json_lines(&stderr);
        assert_eq!(lines.len(), 1, "{flag}: {stderr}");
        assert_eq!(lines[0].msg(), "failed to verify flags", "{flag}");
        assert_eq!(lines[0].text("error"), Some(error), "{flag}");
        assert_eq!(lines[0].text("level"), Some("warn"), "{flag}");
    }
}
