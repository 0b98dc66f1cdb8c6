//! Backups with Debian etcdctl 3.4 and capstanutl: `etcdctl snapshot save` from a running
//! member, `capstanutl snapshot status` (table and JSON), `capstanutl snapshot restore` into a
//! new data directory, and a member started there serves the same keys, revisions and HashKV.
//! A damaged backup is refused with the file and offset named.
mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Output};

fn capstanutl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capstanutl"))
        .args(args)
        .output()
        .expect("run capstanutl")
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("{error}: {text}"))
}

/// Every key with its value and revisions, and the HashKV at the current revision.
fn contents(endpoint: &str) -> (serde_json::Value, u64, i64) {
    let got = json(&etcdctl_ok(
        endpoint,
        &["get", "", "--from-key", "-w", "json"],
    ));
    let hash = json(&etcdctl_ok(endpoint, &["endpoint", "hashkv", "-w", "json"]));
    let entry = &hash[0]["HashKV"];
    (
        got["kvs"].clone(),
        entry["hash"].as_u64().expect("hash"),
        got["header"]["revision"].as_i64().expect("revision"),
    )
}

fn restore_args<'a>(file: &'a str, data_dir: &'a str) -> Vec<&'a str> {
    // The flags a lone member started with defaults has (the harness sets no --name).
    vec![
        "snapshot",
        "restore",
        file,
        "--data-dir",
        data_dir,
        "--name",
        "default",
        "--initial-cluster",
        "default=http://localhost:2380",
        "--initial-advertise-peer-urls",
        "http://localhost:2380",
    ]
}

#[test]
fn etcdctl_snapshot_save_then_capstanutl_restore_gives_the_same_state_and_hashkv() {
    let source_dir = tempfile::tempdir().expect("tempdir");
    let source = Server::capstan(source_dir.path());
    let endpoint = source.endpoint();
    let lease = etcdctl_ok(&endpoint, &["lease", "grant", "600"]);
    let lease_id = lease
        .split_whitespace()
        .nth(1)
        .expect("lease id")
        .to_string();
    etcdctl_ok(&endpoint, &["put", "leased", "x", "--lease", &lease_id]);
    for i in 0..40 {
        etcdctl_ok(&endpoint, &["put", &format!("k/{i:02}"), &format!("v{i}")]);
    }
    etcdctl_ok(&endpoint, &["put", "k/00", "again"]);
    etcdctl_ok(&endpoint, &["del", "k/01"]);
    let status = json(&etcdctl_ok(
        &endpoint,
        &["endpoint", "status", "-w", "json"],
    ));
    let middle = status[0]["Status"]["header"]["revision"]
        .as_i64()
        .expect("revision");
    etcdctl_ok(&endpoint, &["compaction", &(middle - 10).to_string()]);
    etcdctl_ok(&endpoint, &["put", "k/40", "last"]);
    let before = contents(&endpoint);

    let backup = source_dir.path().join("backup.db");
    let backup_path = backup.to_str().expect("utf-8 path");
    let saved = etcdctl_ok(&endpoint, &["snapshot", "save", backup_path]);
    assert!(saved.contains("Snapshot saved at"), "{saved}");

    let status = capstanutl(&["snapshot", "status", backup_path, "-w", "json"]);
    assert!(status.status.success(), "{}", text(&status));
    let status = json(&String::from_utf8_lossy(&status.stdout));
    assert_eq!(status["revision"].as_i64(), Some(before.2));
    assert!(status["totalKey"].as_u64().unwrap_or(0) >= 41, "{status}");
    assert_eq!(
        status["totalSize"].as_u64(),
        std::fs::metadata(&backup).ok().map(|meta| meta.len())
    );
    let table = capstanutl(&["snapshot", "status", backup_path]);
    let table_text = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.status.success() && table_text.contains("| TOTAL KEYS |"),
        "{}",
        text(&table)
    );

    let restored_dir = tempfile::tempdir().expect("tempdir");
    let data_dir = restored_dir.path().join("data");
    let data_dir_text = data_dir.to_str().expect("utf-8 path");
    let restored = capstanutl(&restore_args(backup_path, data_dir_text));
    assert!(restored.status.success(), "{}", text(&restored));
    // A second restore into the same directory is refused.
    let again = capstanutl(&restore_args(backup_path, data_dir_text));
    assert!(
        !again.status.success() && text(&again).contains("exists"),
        "{}",
        text(&again)
    );

    let member = Server::capstan(restored_dir.path());
    let after = contents(&member.endpoint());
    assert_eq!(after, before, "keys, revisions and HashKV after restore");
    let ttl = etcdctl_ok(
        &member.endpoint(),
        &["lease", "timetolive", &lease_id, "--keys"],
    );
    assert!(ttl.contains("leased"), "{ttl}");
    let old = etcdctl(
        &member.endpoint(),
        &["get", "k/02", &format!("--rev={}", middle - 20)],
        None,
    );
    assert!(
        text(&old).contains("required revision has been compacted"),
        "{}",
        text(&old)
    );
    // The restored member takes writes.
    etcdctl_ok(&member.endpoint(), &["put", "after-restore", "yes"]);
}

#[test]
fn a_damaged_backup_is_refused_with_its_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::capstan(dir.path());
    etcdctl_ok(&server.endpoint(), &["put", "a", "1"]);
    let backup = dir.path().join("backup.db");
    let backup_path = backup.to_str().expect("utf-8 path");
    etcdctl_ok(&server.endpoint(), &["snapshot", "save", backup_path]);
    let mut bytes = std::fs::read(&backup).expect("read backup");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&backup, &bytes).expect("write");
    let status = capstanutl(&["snapshot", "status", backup_path]);
    let all = text(&status);
    assert!(!status.status.success(), "{all}");
    assert!(
        all.contains("sha256 mismatch") && all.contains(backup_path),
        "{all}"
    );
    let target = dir.path().join("restored");
    let restore = capstanutl(&restore_args(
        backup_path,
        target.to_str().expect("utf-8 path"),
    ));
    assert!(!restore.status.success(), "{}", text(&restore));
    assert!(
        !Path::new(&target).exists(),
        "nothing written on a refused restore"
    );
}
