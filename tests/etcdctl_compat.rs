//! Acceptance: one script of `etcdctl` 3.4 commands runs against a fresh Capstan and a fresh
//! Debian etcd 3.4 started the same way; revisions, versions, outputs, error messages and exit
//! statuses must be the same. Nothing needs normalising: the `-w json` headers (`cluster_id`,
//! `member_id`, `revision`, `raft_term`) are compared verbatim; outputs over 4 KiB are compared
//! by length and SHA-1 only to keep failure reports readable. Of stderr, only `Error:` lines and
//! the gRPC code named in etcdctl's JSON warning lines are kept (the warnings' timestamps and
//! client ids differ between runs).
//!
//! `SHOW_TRANSCRIPT=1 cargo test --test etcdctl_compat -- --nocapture` prints etcd's transcript.
//!
//! `endpoint status` is not part of the comparison (Capstan reports a different version and db
//! size); `endpoint_status_reports_capstan` checks it on its own.
mod common;
use common::*;

use std::fmt::Write as _;

/// One etcdctl invocation of the script.
struct Step {
    args: Vec<String>,
    stdin: Option<String>,
}

fn cmd(args: &[&str]) -> Step {
    Step {
        args: args.iter().map(|s| s.to_string()).collect(),
        stdin: None,
    }
}

fn cmd_in(args: &[&str], stdin: impl Into<String>) -> Step {
    Step {
        args: args.iter().map(|s| s.to_string()).collect(),
        stdin: Some(stdin.into()),
    }
}

fn value_of_size(size: usize) -> String {
    "0123456789abcdef".chars().cycle().take(size).collect()
}

/// The script. Revisions are deterministic: a fresh store is at revision 1, every successful
/// mutating command adds one (comments give the revision a command creates).
fn script() -> Vec<Step> {
    let mut steps = vec![
        // --- put, --prev-kv, plain gets ---
        cmd(&["get", "foo"]),
        cmd(&["get", "foo", "-w", "json"]),
        cmd(&["put", "foo", "bar"]),                             // r2
        cmd(&["put", "foo", "bar2", "--prev-kv"]),               // r3
        cmd(&["put", "foo1", "v1"]),                             // r4
        cmd(&["put", "foo2", "v2", "-w", "json"]),               // r5
        cmd(&["put", "foo2", "v2b", "--prev-kv", "-w", "json"]), // r6
        cmd(&["get", "foo"]),
        cmd(&["get", "foo", "-w", "json"]),
        cmd(&["get", "foo", "-w", "fields"]),
        cmd(&["--hex", "get", "foo"]),
        cmd(&["get", "foo", "--consistency=s"]),
        cmd(&["get", "foo", "--prefix"]),
        cmd(&["get", "foo", "--prefix", "-w", "json"]),
        cmd(&["get", "foo", "--prefix", "--limit=2"]),
        cmd(&["get", "foo", "--prefix", "--limit=2", "-w", "json"]),
        cmd(&["get", "foo", "--prefix", "--keys-only"]),
        cmd(&["get", "foo", "--prefix", "--keys-only", "-w", "json"]),
        cmd(&["get", "foo", "--prefix", "--print-value-only"]),
        cmd(&["get", "foo", "foo2"]),
        cmd(&["get", "foo1", "--from-key"]),
        cmd(&["get", "", "--from-key", "--keys-only"]),
        cmd(&["get", "", "--prefix", "-w", "json"]),
        cmd(&["get", "foo", "--rev=2"]),
        cmd(&["get", "foo", "--rev=2", "-w", "json"]),
        cmd(&["get", "foo", "--prefix", "--rev=4"]),
        cmd(&["get", "foo2", "--rev=4"]),
        cmd(&["get", "missing"]),
        cmd(&["get", "missing", "-w", "json"]),
        cmd(&["get", "missing", "--prefix", "-w", "json"]),
        // --count-only does not exist in etcdctl 3.4: the same client-side error on both.
        cmd(&["get", "foo", "--count-only"]),
        // --- data for sorting: every sort target orders s/a, s/b, s/c differently ---
        cmd(&["put", "s/c", "a0"]), // r7
        cmd(&["put", "s/a", "m0"]), // r8
        cmd(&["put", "s/b", "z0"]), // r9
        cmd(&["put", "s/c", "a1"]), // r10
        cmd(&["put", "s/a", "m1"]), // r11
        cmd(&["put", "s/a", "m2"]), // r12
    ];
    for target in ["KEY", "VERSION", "CREATE", "MODIFY", "VALUE"] {
        for order in ["ASCEND", "DESCEND"] {
            steps.push(cmd(&[
                "get",
                "s/",
                "--prefix",
                &format!("--sort-by={target}"),
                &format!("--order={order}"),
            ]));
        }
    }
    steps.extend([
        cmd(&["get", "s/", "--prefix", "--sort-by=VERSION"]),
        cmd(&["get", "s/", "--prefix", "--order=DESCEND"]),
        cmd(&["get", "s/", "--prefix", "--order=ASCEND", "--keys-only"]),
        cmd(&[
            "get",
            "s/",
            "--prefix",
            "--sort-by=MODIFY",
            "--order=DESCEND",
            "--limit=1",
            "-w",
            "json",
        ]),
        cmd(&[
            "get",
            "s/",
            "--prefix",
            "--sort-by=CREATE",
            "--order=ASCEND",
            "--limit=2",
            "-w",
            "json",
        ]),
        cmd(&[
            "get",
            "s/",
            "--prefix",
            "--sort-by=VALUE",
            "--order=DESCEND",
            "--print-value-only",
        ]),
        cmd(&["get", "s/", "--prefix", "--sort-by=VERSION", "-w", "json"]),
        cmd(&["get", "s/a", "--rev=8"]),
        cmd(&["get", "s/a", "--rev=11", "-w", "json"]),
        cmd(&["get", "s/", "--prefix", "--rev=9"]),
        cmd(&["get", "s/", "--prefix", "--rev=10", "--sort-by=VALUE", "--order=DESCEND"]),
        cmd(&["get", "s/b", "--from-key", "--keys-only"]),
        // --- put options and put errors ---
        cmd(&["put", "s/a", "--ignore-value"]), // r13
        cmd(&["get", "s/a", "-w", "json"]),
        cmd(&["put", "nokey", "--ignore-value"]),
        cmd(&["put", "s/a", "v", "--ignore-value"]),
        cmd(&["put", "s/b", "z1", "--ignore-lease"]), // r14
        cmd(&["put", "nokey", "v", "--ignore-lease"]),
        cmd(&["put", "nokey", "v", "--lease=1234"]),
        cmd(&["put", "", "v"]),
        cmd(&["get", ""]),
        cmd(&["del", ""]),
        cmd(&["put", "onlykey"]),
        cmd(&["get", "s/", "--prefix", "-w", "json"]),
        // --- txn, interactive form on stdin ---
        cmd_in(&["txn"], "mod(\"s/a\") > \"0\"\n\nput t/1 v2\n\nget t/1\n\n"), // r15
        cmd_in(
            &["txn"],
            "value(\"s/a\") = \"m2\"\nversion(\"s/a\") = \"4\"\ncreate(\"s/a\") = \"8\"\n\n\
             put t/2 yes\nget s/a\n\nput t/2 no\n\n",
        ), // r16
        cmd_in(
            &["txn"],
            "value(\"s/a\") = \"x\"\n\nput t/3 yes\n\nput t/3 no\nget t/ --prefix\n\n",
        ), // r17
        cmd_in(
            &["txn"],
            "version(\"s/b\") < \"2\"\n\nput t/4 a\n\nput t/4 b --prev-kv\n\n",
        ), // r18
        cmd_in(
            &["txn"],
            "create(\"missing\") = \"0\"\nmod(\"missing\") = \"0\"\nversion(\"missing\") = \"0\"\n\n\
             get missing\n\nput missing oops\n\n",
        ),
        cmd(&["get", "t/", "--prefix", "-w", "json"]),
        cmd_in(
            &["txn", "-w", "json"],
            "mod(\"t/1\") = \"15\"\n\nput t/1 v3 --prev-kv\ndel t/2 --prev-kv\n\
             get t/ --prefix --limit=1\n\nget t/1\n\n",
        ), // r19
        cmd_in(
            &["txn", "-w", "json"],
            "mod(\"t/1\") = \"15\"\n\nput t/1 v4\n\nget t/1\nget t/ --prefix --keys-only\n\n",
        ),
        cmd_in(
            &["txn"],
            "c(\"s/c\") < \"8\"\nm(\"s/c\") > \"9\"\nver(\"s/c\") = \"2\"\nval(\"s/c\") > \"a0\"\n\n\
             del s/c --prev-kv\n\n\n",
        ), // r20
        cmd_in(
            &["txn"],
            "val(\"s/a\") < \"a\"\nversion(\"s/a\") != \"4\"\n\nput t/5 x\n\nget s/a\n\n",
        ),
        cmd_in(&["txn"], "value(\"s/a\") != \"m2\"\n\nput t/5 x\n\nget s/b\n\n"),
        cmd_in(&["txn"], "value(\"s/a\") != \"zz\"\n\nput t/5 x\n\n\n"), // r21
        cmd_in(&["txn", "-w", "json"], "\n\n\n"),
        cmd_in(&["txn"], "\n\n\n"),
        cmd_in(&["txn"], "\nput d 1\nput d 2\n\n\n"),
        cmd_in(&["txn"], "\nput d 1\ndel d\n\n\n"),
        cmd_in(&["txn"], "\nput t/9 1\ndel t/ --prefix\n\n\n"),
        cmd_in(&["txn"], "\ndel t/ --prefix\ndel t/1\n\n\n"), // r22
        cmd_in(&["txn"], "\nget s/a\nget s/a\n\n\n"),
        cmd_in(&["txn"], "\nput \"\" v\n\n\n"),
        cmd_in(&["txn"], "\nget s/a --rev=1000\n\n\n"),
        cmd_in(&["txn"], "\nput t/l v --lease=1234\n\n\n"),
        cmd_in(&["txn"], "\nput nokey --ignore-value\n\n\n"),
        cmd_in(&["txn"], "\n\nput nokey v --ignore-lease\n\n"),
        cmd(&["get", "", "--from-key", "-w", "json"]),
    ]);
    // 128 operations are allowed, 129 are not.
    let ops = |count: usize| -> String {
        let mut text = String::from("\n");
        for index in 0..count {
            let _ = writeln!(text, "put many/{index:03} v{index}");
        }
        text.push_str("\n\n");
        text
    };
    steps.push(cmd_in(&["txn"], ops(129)));
    steps.push(cmd_in(&["txn"], ops(128))); // r23
    steps.extend([
        cmd(&[
            "get",
            "many/",
            "--prefix",
            "--limit=1",
            "--keys-only",
            "-w",
            "json",
        ]),
        cmd(&["get", "many/", "--prefix", "--limit=3", "-w", "json"]),
        cmd(&["get", "many/", "--prefix", "--limit=3", "--keys-only"]),
        // --- del ---
        cmd(&["del", "missing"]),
        cmd(&["get", "foo", "-w", "json"]), // the revision did not move
        cmd(&["del", "foo"]),               // r24
        cmd(&["del", "foo", "--prev-kv"]),
        cmd(&["del", "foo", "--prefix", "--prev-kv"]), // r25
        cmd(&["del", "foo", "--prefix", "-w", "json"]),
        cmd(&["put", "z/1", "1"]),                        // r26
        cmd(&["put", "z/2", "2"]),                        // r27
        cmd(&["put", "z/3", "3"]),                        // r28
        cmd(&["del", "z/2", "--from-key", "--prev-kv"]),  // r29
        cmd(&["del", "many/", "--prefix", "-w", "json"]), // r30
        cmd(&["del", "s/a", "s/c"]),                      // r31
        cmd(&["del", "s/a", "s/c", "-w", "json"]),
        cmd(&["get", "", "--from-key", "-w", "json"]),
        // --- compaction and reads around the compacted revision ---
        cmd(&["compaction", "11"]),
        cmd(&["get", "s/a", "--rev=10"]),
        cmd(&["get", "s/a", "--rev=11"]),
        cmd(&["get", "s/", "--prefix", "--rev=11", "-w", "json"]),
        cmd(&["get", "s/", "--prefix", "--rev=1000"]),
        cmd(&["get", "s/", "--prefix", "--rev=32"]),
        cmd(&["get", "s/", "--prefix", "--rev=31", "-w", "json"]),
        cmd(&["compaction", "11"]),
        cmd(&["compaction", "5"]),
        cmd(&["compaction", "1000"]),
        cmd(&["compaction", "--physical", "13"]),
        cmd(&["get", "s/a", "--rev=12"]),
        cmd(&["get", "s/a", "--rev=13", "-w", "json"]),
        cmd_in(&["txn"], "\nget s/a --rev=5\n\n\n"),
        cmd_in(&["txn"], "\nget s/a --rev=13\n\n\n"),
        cmd(&["compaction", "--physical", "31"]),
        cmd(&["get", "", "--from-key", "--rev=31", "-w", "json"]),
        cmd(&["get", "", "--from-key", "--rev=30"]),
        cmd(&["put", "after", "compaction"]), // r32
        cmd(&["get", "", "--from-key", "-w", "json"]),
        // --- large values (read from stdin) ---
        cmd_in(&["put", "big"], value_of_size(1024 * 1024)), // r33
        cmd(&["get", "big", "--print-value-only"]),
        cmd(&["get", "big", "-w", "json"]),
        cmd(&["get", "big", "--keys-only"]),
        cmd_in(&["put", "big", "--prev-kv"], value_of_size(1_000_000)), // r34
        cmd_in(&["put", "big2"], value_of_size(1_572_800)),             // r35
        // over --max-request-bytes (1.5 MiB) but under the 2 MiB gRPC limit: the server refuses.
        cmd_in(&["put", "big3"], value_of_size(1_572_864)),
        cmd_in(&["put", "big3"], value_of_size(1_700_000)),
        // over the client's 2 MiB send limit: etcdctl refuses before sending.
        cmd_in(&["put", "big3"], value_of_size(3 * 1024 * 1024)),
        cmd(&["get", "big", "--prefix", "--keys-only", "-w", "json"]),
        cmd(&["del", "big", "--prefix"]), // r36
        cmd(&["get", "", "--from-key", "-w", "json"]),
        // --- odd keys and values, other output formats, deleting everything ---
        cmd(&["put", "key with spaces", "v\u{e4}rde \u{2713}"]), // r37
        cmd(&["get", "key with spaces"]),
        cmd(&["get", "key", "--prefix", "-w", "json"]),
        cmd(&["--hex", "get", "key", "--prefix", "--print-value-only"]),
        cmd(&["get", "key with spaces", "-w", "table"]),
        cmd(&["get", "key with spaces", "-w", "protobuf"]),
        cmd(&["del", "", "--from-key", "--prev-kv", "-w", "json"]), // r38
        cmd(&["del", "", "--from-key"]),
        cmd(&["get", "", "--from-key", "-w", "json"]),
    ]);
    steps
}

/// What one command printed. `stderr` keeps only `Error:` lines, plus the gRPC code that
/// etcdctl's retry interceptor logs in its JSON warning lines.
fn run_step(endpoint: &str, step: &Step) -> String {
    let args: Vec<&str> = step.args.iter().map(String::as_str).collect();
    let output = etcdctl(endpoint, &args, step.stdin.as_deref());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut entry = String::new();
    let _ = writeln!(entry, "$ etcdctl {}", shell_words(&step.args));
    if let Some(stdin) = &step.stdin {
        let _ = writeln!(entry, "< stdin: {}", abbreviate(stdin));
    }
    let _ = writeln!(
        entry,
        "{}",
        normalise_stdout(&stdout).trim_end_matches('\n')
    );
    for line in stderr.lines() {
        if line.starts_with("Error:") {
            let _ = writeln!(entry, "stderr: {line}");
        } else if line.starts_with("{\"level\"") {
            if let Some(code) = grpc_code_in_warning(line) {
                let _ = writeln!(entry, "stderr warning: gRPC code {code}");
            }
        } else if line.starts_with("panic:") {
            let _ = writeln!(entry, "stderr: {line}");
        }
    }
    let _ = writeln!(entry, "exit: {:?}", output.status.code());
    entry
}

fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|arg| {
            if arg.is_empty() || arg.contains(' ') {
                format!("{arg:?}")
            } else {
                arg.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Long texts are replaced by their length and a hash.
fn abbreviate(text: &str) -> String {
    if text.len() <= 300 {
        return format!("{text:?}");
    }
    let mut hasher = sha1_smol::Sha1::new();
    hasher.update(text.as_bytes());
    format!(
        "<{} bytes, sha1 {}, starts {:?}>",
        text.len(),
        hasher.digest(),
        &text[..60]
    )
}

/// Abbreviates huge outputs; everything else is compared verbatim, including the `-w json`
/// header: Capstan derives the ids the way etcd does and a fresh single member has term 2.
fn normalise_stdout(stdout: &str) -> String {
    if stdout.len() > 4096 {
        abbreviate(stdout)
    } else {
        stdout.to_string()
    }
}

/// `"error":"rpc error: code = OutOfRange desc = ..."` → `OutOfRange`.
fn grpc_code_in_warning(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let error = value.get("error")?.as_str()?;
    let rest = error.split("code = ").nth(1)?;
    Some(rest.split_whitespace().next()?.to_string())
}

fn run_script(server: &Server) -> Vec<String> {
    script()
        .iter()
        .map(|step| run_step(&server.endpoint(), step))
        .collect()
}

/// A line diff (longest common subsequence): `  ` common, `- ` only in `want`, `+ ` only in `got`.
fn line_diff(want: &str, got: &str) -> String {
    let a: Vec<&str> = want.lines().collect();
    let b: Vec<&str> = got.lines().collect();
    // lcs[i][j]: length of the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            let _ = writeln!(out, "  {}", a[i]);
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            let _ = writeln!(out, "- {}", a[i]);
            i += 1;
        } else {
            let _ = writeln!(out, "+ {}", b[j]);
            j += 1;
        }
    }
    out
}

#[test]
fn etcdctl_script_matches_etcd_3_4() {
    require_tool("etcd", "etcd-server");
    let etcd_dir = tempfile::tempdir().expect("tempdir");
    let capstan_dir = tempfile::tempdir().expect("tempdir");
    let etcd = Server::start(Flavor::Etcd, etcd_dir.path(), &[]);
    let capstan = Server::start(Flavor::Capstan, capstan_dir.path(), &[]);

    let expected = run_script(&etcd);
    let actual = run_script(&capstan);
    assert_eq!(expected.len(), actual.len());

    let mut report = String::new();
    let mut differing = 0;
    for (index, (want, got)) in expected.iter().zip(&actual).enumerate() {
        if want != got {
            differing += 1;
            let _ = writeln!(
                report,
                "=== step {index} differs (- etcd 3.4, + capstan):\n{}",
                line_diff(want, got)
            );
        }
    }
    if std::env::var_os("SHOW_TRANSCRIPT").is_some() {
        eprintln!("{}", expected.join("\n"));
    }
    assert!(
        differing == 0,
        "{differing} of {} etcdctl steps differ between etcd 3.4 and Capstan:\n{report}",
        expected.len()
    );
}

#[test]
fn endpoint_status_reports_capstan() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::capstan(dir.path());
    let endpoint = server.endpoint();
    // Something to index.
    etcdctl_ok(&endpoint, &["put", "k", "v"]);

    let json = etcdctl_ok(&endpoint, &["endpoint", "status", "-w", "json"]);
    let parsed: serde_json::Value = serde_json::from_str(json.trim()).expect("status is json");
    let entries = parsed.as_array().expect("an array of endpoints");
    assert_eq!(entries.len(), 1, "{json}");
    assert_eq!(entries[0]["Endpoint"], endpoint.as_str(), "{json}");
    let status = &entries[0]["Status"];
    assert_eq!(status["version"], "3.6.0", "{json}");
    let header = &status["header"];
    let member_id = header["member_id"].as_u64().expect("member_id");
    assert_ne!(member_id, 0, "{json}");
    assert_ne!(
        header["cluster_id"].as_u64().expect("cluster_id"),
        0,
        "{json}"
    );
    assert_eq!(header["revision"].as_i64(), Some(2), "{json}");
    assert!(
        header["raft_term"].as_u64().expect("raft_term") > 0,
        "{json}"
    );
    assert_eq!(status["leader"].as_u64(), Some(member_id), "{json}");
    let raft_index = status["raftIndex"].as_u64().expect("raftIndex");
    let applied = status["raftAppliedIndex"]
        .as_u64()
        .expect("raftAppliedIndex");
    assert!(raft_index > 0, "{json}");
    assert!(applied > 0, "{json}");
    assert!(applied <= raft_index, "{json}");
    assert!(status["raftTerm"].as_u64().expect("raftTerm") > 0, "{json}");

    // The same member id as the KV header reports.
    let get = etcdctl_ok(&endpoint, &["get", "k", "-w", "json"]);
    let get: serde_json::Value = serde_json::from_str(get.trim()).expect("get is json");
    assert_eq!(get["header"]["member_id"].as_u64(), Some(member_id));
    assert_eq!(get["header"]["cluster_id"], header["cluster_id"]);

    let table = etcdctl_ok(&endpoint, &["endpoint", "status", "-w", "table"]);
    assert!(table.contains("ENDPOINT"), "{table}");
    assert!(table.contains("IS LEADER"), "{table}");
    let row = table
        .lines()
        .find(|line| line.contains(&endpoint))
        .unwrap_or_else(|| panic!("no row for {endpoint}:\n{table}"));
    let cells: Vec<&str> = row
        .split('|')
        .map(str::trim)
        .filter(|cell| !cell.is_empty())
        .collect();
    // ENDPOINT | ID | VERSION | DB SIZE | IS LEADER | IS LEARNER | RAFT TERM | RAFT INDEX | ...
    assert_eq!(cells[0], endpoint, "{table}");
    assert_eq!(cells[1], format!("{member_id:x}"), "{table}");
    assert_eq!(cells[2], "3.6.0", "{table}");
    assert_eq!(cells[4], "true", "{table}");
    assert_eq!(cells[5], "false", "{table}");

    let simple = etcdctl_ok(&endpoint, &["endpoint", "status"]);
    assert!(
        simple.starts_with(&format!("{endpoint}, {member_id:x}, 3.6.0, ")),
        "{simple}"
    );
}
