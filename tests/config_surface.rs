//! etcd's configuration surface end to end: the same configuration as flags, as `ETCD_*`
//! variables and as a `--config-file` starts identical members; refused settings exit 2 naming
//! themselves; `--version` and `--help`; kubeadm's command line.
mod common;
use common::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A capstan process killed when dropped.
struct Member(Child);

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[String], env: &[(String, String)], log: &Path) -> Member {
    let log = std::fs::File::create(log).expect("log");
    let mut command = Command::new(capstan_binary());
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .env_remove("CAPSTAN_LOG");
    for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("ETCD_")) {
        command.env_remove(key);
    }
    command.envs(env.iter().map(|(key, value)| (key, value)));
    Member(command.spawn().expect("start capstan"))
}

/// SIGTERM, then waits for the exit (the page store commits what it has queued).
fn stop_gracefully(mut member: Member) {
    let pid = member.0.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(
        sent.is_ok_and(|status| status.success()),
        "kill -TERM {pid}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = member.0.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("capstan {pid} did not stop on SIGTERM");
}

/// `(member id, cluster id, name)` from `etcdctl endpoint status` and `member list`.
fn identity(endpoint: &str) -> (u64, u64, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let output = etcdctl(endpoint, &["endpoint", "status", "-w", "json"], None);
        if output.status.success() {
            let status: serde_json::Value =
                serde_json::from_slice(&output.stdout).expect("status json");
            let header = &status[0]["Status"]["header"];
            let members: serde_json::Value =
                serde_json::from_str(&etcdctl_ok(endpoint, &["member", "list", "-w", "json"]))
                    .expect("member list json");
            return (
                header["member_id"].as_u64().expect("member id"),
                header["cluster_id"].as_u64().expect("cluster id"),
                members["members"][0]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            );
        }
        assert!(Instant::now() < deadline, "no member at {endpoint}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One configuration as `(flag, value)` pairs.
fn configuration(dir: &Path, client_port: u16, peer_port: u16) -> Vec<(&'static str, String)> {
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    vec![
        ("name", "m1".to_string()),
        ("data-dir", dir.join("data").display().to_string()),
        ("listen-client-urls", client.clone()),
        ("advertise-client-urls", client),
        ("listen-peer-urls", peer.clone()),
        ("initial-advertise-peer-urls", peer.clone()),
        ("initial-cluster", format!("m1={peer}")),
        ("initial-cluster-token", "surface-token".to_string()),
        ("snapshot-count", "500".to_string()),
        ("max-txn-ops", "64".to_string()),
    ]
}

#[test]
fn flags_variables_and_a_config_file_start_identical_members() {
    let client_port = free_port();
    let peer_port = free_port();
    let mut identities = Vec::new();
    for way in ["flags", "environment", "file"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = configuration(dir.path(), client_port, peer_port);
        let (args, env): (Vec<String>, Vec<(String, String)>) = match way {
            "flags" => (
                settings
                    .iter()
                    .map(|(flag, value)| format!("--{flag}={value}"))
                    .collect(),
                Vec::new(),
            ),
            "environment" => (
                Vec::new(),
                settings
                    .iter()
                    .map(|(flag, value)| {
                        (
                            format!("ETCD_{}", flag.to_uppercase().replace('-', "_")),
                            value.clone(),
                        )
                    })
                    .collect(),
            ),
            _ => {
                let yaml: String = settings
                    .iter()
                    .map(|(flag, value)| match *flag {
                        "snapshot-count" | "max-txn-ops" => format!("{flag}: {value}\n"),
                        _ => format!("{flag}: '{value}'\n"),
                    })
                    .collect();
                let path = dir.path().join("etcd.yaml");
                std::fs::write(&path, yaml).expect("write config");
                // etcd's rule: with a file, other flags and variables are ignored.
                (
                    vec![
                        format!("--config-file={}", path.display()),
                        "--name=ignored".to_string(),
                    ],
                    vec![("ETCD_MAX_TXN_OPS".to_string(), "3".to_string())],
                )
            }
        };
        let member = spawn(&args, &env, &dir.path().join("capstan.log"));
        let endpoint = format!("127.0.0.1:{client_port}");
        identities.push(identity(&endpoint));
        // --max-txn-ops=64 is in effect (a 65-op txn is refused) in all three ways.
        let ops: String = (0..65).map(|i| format!("put k{i} v\n")).collect();
        let output = etcdctl(&endpoint, &["txn"], Some(&format!("\n{ops}\n\n")));
        assert!(
            !output.status.success(),
            "{way}: a 65-op txn must be refused"
        );
        drop(member);
    }
    assert_eq!(identities[0], identities[1], "flags vs environment");
    assert_eq!(identities[0], identities[2], "flags vs file");
    assert_eq!(identities[0].2, "m1");
}

fn run_capstan(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(capstan_binary());
    command.args(args).stdin(Stdio::null());
    for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("ETCD_")) {
        command.env_remove(key);
    }
    command.envs(env.iter().copied());
    command.output().expect("run capstan")
}

#[test]
fn refused_settings_exit_2_naming_themselves() {
    for (args, env, name) in [
        (vec!["--force-new-cluster"], vec![], "force-new-cluster"),
        (vec!["--unsafe-no-fsync=true"], vec![], "unsafe-no-fsync"),
        (vec!["--discovery-srv=example.com"], vec![], "discovery-srv"),
        (vec![], vec![("ETCD_AUTH_TOKEN", "jwt")], "ETCD_AUTH_TOKEN"),
        (
            vec![],
            vec![("ETCD_CLIENT_CERT_AUTH", "true")],
            "listen-client-urls",
        ),
        (
            vec!["--feature-gates=CompactHashCheck=true"],
            vec![],
            "CompactHashCheck",
        ),
    ] {
        let output = run_capstan(&args, &env);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(name), "{name}: {stderr}");
    }
}

#[test]
fn version_and_help_as_etcd() {
    let output = run_capstan(&["--version"], &[]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for line in [
        "capstan Version: ",
        "etcd API Version: 3.6.0",
        "Git SHA: ",
        "Rust Version: ",
        "OS/Arch: linux/",
    ] {
        assert!(text.contains(line), "{text}");
    }
    let output = run_capstan(&["--help"], &[]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for line in [
        "Member:\n  --name 'default'",
        "  --snapshot-count '10000'",
        "  --max-concurrent-streams 'math.MaxUint32'",
        "Clustering:\n",
        "Security:\n",
        "Unsafe feature:\n  --force-new-cluster 'false'",
        "  --shards '0'",
    ] {
        assert!(text.contains(line), "{line}");
    }
}

/// kubeadm's static-pod command line (ETCD_FACTS §2.2) with plaintext URLs and without its TLS
/// flags (`tests/tls_peer.rs` has those), `--feature-gates=InitialCorruptCheck=true` and
/// `--listen-metrics-urls` included: the member starts, and restarts through the initial
/// corruption check (alone in its cluster, it has nobody to compare with).
#[test]
fn kubeadm_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let client = format!("http://127.0.0.1:{}", free_port());
    let peer = format!("http://127.0.0.1:{}", free_port());
    let data_dir = dir.path().join("etcd").display().to_string();
    let args = vec![
        "--name=node1".to_string(),
        "--feature-gates=InitialCorruptCheck=true".to_string(),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--data-dir={data_dir}"),
        "--snapshot-count=10000".to_string(),
        format!("--listen-metrics-urls=http://127.0.0.1:{}", free_port()),
        "--watch-progress-notify-interval=5s".to_string(),
        format!("--initial-cluster=node1={peer}"),
    ];
    let endpoint = client.trim_start_matches("http://").to_string();
    let first_log = dir.path().join("capstan.log");
    let member = spawn(&args, &[], &first_log);
    assert_eq!(identity(&endpoint).2, "node1");
    etcdctl_ok(&endpoint, &["put", "/kubeadm", "1"]);
    stop_gracefully(member);
    let log = std::fs::read_to_string(&first_log).unwrap_or_default();
    assert!(
        log.contains("initial corruption check skipped"),
        "a new member has nothing to compare; log:\n{log}"
    );
    let second_log = dir.path().join("capstan-restarted.log");
    let member = spawn(&args, &[], &second_log);
    assert_eq!(identity(&endpoint).2, "node1");
    let log = std::fs::read_to_string(&second_log).unwrap_or_default();
    assert!(
        log.contains("initial corruption checking passed; no corruption"),
        "{log}"
    );
    assert!(log.contains("\"peers-compared\":0"), "{log}");
    drop(member);
}
