//! The smallest end-to-end checks: the command line, and a server that starts, takes a write
//! from etcdctl, reads it back, and stops cleanly on SIGTERM.
mod common;
use common::*;
use std::process::Command;

#[test]
fn put_then_get_with_etcdctl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::capstan(dir.path());
    assert_eq!(
        etcdctl_ok(&server.endpoint(), &["put", "k", "v"]).trim(),
        "OK"
    );
    assert_eq!(etcdctl_ok(&server.endpoint(), &["get", "k"]), "k\nv\n");
    let status = server.stop().expect("server was running");
    assert!(
        status.success(),
        "SIGTERM should exit cleanly, got {status}"
    );
}

#[test]
fn unknown_flag_is_refused_by_name() {
    let output = Command::new(capstan_binary())
        .arg("--no-such-flag=1")
        .output()
        .expect("run capstan");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no-such-flag"), "stderr: {stderr}");
}

#[test]
fn version_reports_the_etcd_api_version() {
    let output = Command::new(capstan_binary())
        .arg("--version")
        .output()
        .expect("run capstan");
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("etcd API Version: 3.6.0"));
}

#[test]
fn etcd_environment_variables_configure_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let data_dir = dir.path().join("from-env");
    let mut child = Command::new(capstan_binary())
        .env("ETCD_DATA_DIR", &data_dir)
        .env("ETCD_LISTEN_CLIENT_URLS", &url)
        .env("ETCD_ADVERTISE_CLIENT_URLS", &url)
        .env("ETCD_MAX_TXN_OPS", "2")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn capstan");
    let endpoint = format!("127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    while etcdctl(&endpoint, &["get", "x"], None).status.code() != Some(0) {
        assert!(
            std::time::Instant::now() < deadline,
            "server never answered"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(data_dir.join("member").join("wal").is_dir());
    // --max-txn-ops=2 from the environment: a txn with three puts is refused.
    let output = etcdctl(
        &endpoint,
        &["txn"],
        Some("\nput a 1\nput b 2\nput c 3\n\n\n"),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("etcdserver: too many operations in txn request"),
        "stderr: {stderr}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn default_relative_data_dir_works_like_the_readme_quickstart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(capstan_binary())
        .current_dir(dir.path())
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn capstan");
    let endpoint = format!("127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    while etcdctl(&endpoint, &["put", "k", "v"], None).status.code() != Some(0) {
        let exited = child.try_wait().expect("try_wait");
        assert!(exited.is_none(), "capstan exited: {exited:?}");
        assert!(
            std::time::Instant::now() < deadline,
            "server never answered"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(dir.path().join("default.etcd/member/wal").is_dir());
    let _ = child.kill();
    let _ = child.wait();
}
