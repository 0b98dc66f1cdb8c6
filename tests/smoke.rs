//! The smallest end-to-end check: a server starts, etcdctl writes and reads a key.
mod common;
use common::*;

#[test]
fn put_then_get_with_etcdctl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::capstan(dir.path());
    assert_eq!(
        etcdctl_ok(&server.endpoint(), &["put", "k", "v"]).trim(),
        "OK"
    );
    assert_eq!(etcdctl_ok(&server.endpoint(), &["get", "k"]), "k\nv\n");
}
