//! KV semantics through the Rust `etcd-client` crate, against Capstan (each test its own server).
//!
//! The expectations mirror etcd 3.4. To check them against the reference, run the same tests on
//! Debian's etcd: `KV_CLIENT_FLAVOR=etcd cargo test --test kv_client`.
mod common;
use common::*;

use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, DeleteOptions, Error, GetOptions, KeyValue,
    PutOptions, ResponseHeader, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse,
};
use std::collections::BTreeSet;
use std::future::Future;

/// Member and cluster ids etcd 3.4 derives for the default `--initial-advertise-peer-urls`
/// (`http://localhost:2380`) and `--initial-cluster-token` (`etcd-cluster`).
const DEFAULT_MEMBER_ID: u64 = 10276657743932975437;
const DEFAULT_CLUSTER_ID: u64 = 14841639068965178418;

fn flavor() -> Flavor {
    match std::env::var("KV_CLIENT_FLAVOR").as_deref() {
        Ok("etcd") => Flavor::Etcd,
        _ => Flavor::Capstan,
    }
}

/// Starts a fresh server and runs `body` with a client connected to it.
fn with_client<F, Fut>(body: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(flavor(), dir.path(), &[]);
    let runtime = tokio_runtime();
    runtime.block_on(async {
        let client = connect(&server.endpoint()).await;
        body(client).await;
    });
    drop(server);
}

/// The gRPC code (as its Rust name, e.g. `"OutOfRange"`) and message of a failed call.
fn grpc_error<T: std::fmt::Debug>(result: Result<T, Error>) -> (String, String) {
    match result {
        Err(Error::GRpcStatus(status)) => (format!("{:?}", status.code()), status.message().into()),
        other => panic!("expected a gRPC status error, got {other:?}"),
    }
}

fn assert_grpc_error<T: std::fmt::Debug>(result: Result<T, Error>, code: &str, message: &str) {
    let (got_code, got_message) = grpc_error(result);
    assert_eq!(
        (got_code.as_str(), got_message.as_str()),
        (code, message),
        "gRPC code and message"
    );
}

fn keys(kvs: &[KeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect()
}

fn values(kvs: &[KeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
        .collect()
}

fn header_revision(header: Option<&ResponseHeader>) -> i64 {
    header.expect("a response header").revision()
}

async fn current_revision(client: &mut Client) -> i64 {
    let response = client.get("any-key", None).await.expect("get");
    header_revision(response.header())
}

fn assert_full_header(header: Option<&ResponseHeader>, what: &str) {
    let header = header.unwrap_or_else(|| panic!("{what}: no header"));
    assert_ne!(header.cluster_id(), 0, "{what}: cluster_id");
    assert_ne!(header.member_id(), 0, "{what}: member_id");
    assert!(header.revision() > 0, "{what}: revision");
    assert!(header.raft_term() > 0, "{what}: raft_term");
    assert_eq!(header.member_id(), DEFAULT_MEMBER_ID, "{what}: member_id");
    assert_eq!(
        header.cluster_id(),
        DEFAULT_CLUSTER_ID,
        "{what}: cluster_id"
    );
}

#[test]
fn put_get_and_prev_kv() {
    with_client(|mut client| async move {
        // A fresh store is at revision 1.
        assert_eq!(current_revision(&mut client).await, 1);

        let put = client.put("a", "1", None).await.expect("put");
        assert_eq!(header_revision(put.header()), 2);
        assert!(put.prev_key().is_none());

        // prev_kv of a key that did not exist: none.
        let put = client
            .put("b", "1", Some(PutOptions::new().with_prev_key()))
            .await
            .expect("put");
        assert_eq!(header_revision(put.header()), 3);
        assert!(put.prev_key().is_none());

        let put = client
            .put("a", "2", Some(PutOptions::new().with_prev_key()))
            .await
            .expect("put");
        assert_eq!(header_revision(put.header()), 4);
        let prev = put.prev_key().expect("prev kv");
        assert_eq!(prev.key(), b"a");
        assert_eq!(prev.value(), b"1");
        assert_eq!(prev.create_revision(), 2);
        assert_eq!(prev.mod_revision(), 2);
        assert_eq!(prev.version(), 1);
        assert_eq!(prev.lease(), 0);

        let get = client.get("a", None).await.expect("get");
        assert_eq!(header_revision(get.header()), 4);
        assert_eq!(get.count(), 1);
        assert!(!get.more());
        let kv = &get.kvs()[0];
        assert_eq!((kv.key(), kv.value()), (&b"a"[..], &b"2"[..]));
        assert_eq!(
            (
                kv.create_revision(),
                kv.mod_revision(),
                kv.version(),
                kv.lease()
            ),
            (2, 4, 2, 0)
        );

        // Empty values and binary keys/values are stored as given.
        client.put(vec![0u8, 255, 1], "", None).await.expect("put");
        let get = client.get(vec![0u8, 255, 1], None).await.expect("get");
        assert_eq!(get.kvs()[0].value(), b"");
        assert_eq!(get.kvs()[0].version(), 1);

        // A missing key: no kvs, count 0, the current revision in the header.
        let get = client.get("missing", None).await.expect("get");
        assert!(get.kvs().is_empty());
        assert_eq!(get.count(), 0);
        assert_eq!(header_revision(get.header()), 5);
    });
}

#[test]
fn ignore_value_ignore_lease_and_unknown_lease() {
    with_client(|mut client| async move {
        assert_grpc_error(
            client
                .put("k", "", Some(PutOptions::new().with_ignore_value()))
                .await,
            "InvalidArgument",
            "etcdserver: key not found",
        );
        assert_grpc_error(
            client
                .put("k", "v", Some(PutOptions::new().with_ignore_lease()))
                .await,
            "InvalidArgument",
            "etcdserver: key not found",
        );
        assert_eq!(current_revision(&mut client).await, 1);

        client.put("k", "v1", None).await.expect("put");
        assert_grpc_error(
            client
                .put("k", "v2", Some(PutOptions::new().with_ignore_value()))
                .await,
            "InvalidArgument",
            "etcdserver: value is provided",
        );
        assert_grpc_error(
            client
                .put(
                    "k",
                    "v2",
                    Some(PutOptions::new().with_ignore_lease().with_lease(0x1234)),
                )
                .await,
            "InvalidArgument",
            "etcdserver: lease is provided",
        );
        assert_grpc_error(
            client
                .put("k", "v2", Some(PutOptions::new().with_lease(0x1234)))
                .await,
            "NotFound",
            "etcdserver: requested lease not found",
        );
        assert_grpc_error(
            client
                .put("new", "v", Some(PutOptions::new().with_lease(1)))
                .await,
            "NotFound",
            "etcdserver: requested lease not found",
        );
        assert_eq!(current_revision(&mut client).await, 2);

        // ignore_value keeps the value, bumps version and mod revision.
        let put = client
            .put(
                "k",
                "",
                Some(PutOptions::new().with_ignore_value().with_prev_key()),
            )
            .await
            .expect("put ignore_value");
        assert_eq!(header_revision(put.header()), 3);
        assert_eq!(put.prev_key().expect("prev kv").value(), b"v1");
        let get = client.get("k", None).await.expect("get");
        let kv = &get.kvs()[0];
        assert_eq!(kv.value(), b"v1");
        assert_eq!(
            (kv.create_revision(), kv.mod_revision(), kv.version()),
            (2, 3, 2)
        );

        // ignore_lease takes the new value and keeps the (absent) lease.
        let put = client
            .put("k", "v3", Some(PutOptions::new().with_ignore_lease()))
            .await
            .expect("put ignore_lease");
        assert_eq!(header_revision(put.header()), 4);
        let get = client.get("k", None).await.expect("get");
        let kv = &get.kvs()[0];
        assert_eq!((kv.value(), kv.lease(), kv.version()), (&b"v3"[..], 0, 3));

        // Both at once.
        client
            .put(
                "k",
                "",
                Some(PutOptions::new().with_ignore_value().with_ignore_lease()),
            )
            .await
            .expect("put ignore both");
        let get = client.get("k", None).await.expect("get");
        assert_eq!(get.kvs()[0].value(), b"v3");
        assert_eq!(get.kvs()[0].version(), 4);
        assert_eq!(current_revision(&mut client).await, 5);

        // The same checks inside a txn, for the branch that runs.
        assert_grpc_error(
            client
                .txn(Txn::new().and_then([TxnOp::put(
                    "k",
                    "v",
                    Some(PutOptions::new().with_lease(0x1234)),
                )]))
                .await,
            "NotFound",
            "etcdserver: requested lease not found",
        );
        assert_grpc_error(
            client
                .txn(Txn::new().and_then([TxnOp::put(
                    "missing",
                    "",
                    Some(PutOptions::new().with_ignore_value()),
                )]))
                .await,
            "InvalidArgument",
            "etcdserver: key not found",
        );
        assert_grpc_error(
            client
                .txn(Txn::new().and_then([TxnOp::put(
                    "k",
                    "v",
                    Some(PutOptions::new().with_ignore_value()),
                )]))
                .await,
            "InvalidArgument",
            "etcdserver: value is provided",
        );
        // A missing key in the branch that does not run is not an error.
        let response = client
            .txn(Txn::new().or_else([TxnOp::put(
                "missing",
                "",
                Some(PutOptions::new().with_ignore_value()),
            )]))
            .await
            .expect("txn");
        assert!(response.succeeded());
        assert_eq!(current_revision(&mut client).await, 5);
    });
}

#[test]
fn empty_key_is_refused() {
    with_client(|mut client| async move {
        assert_grpc_error(
            client.put("", "v", None).await,
            "InvalidArgument",
            "etcdserver: key is not provided",
        );
        assert_grpc_error(
            client.get("", None).await,
            "InvalidArgument",
            "etcdserver: key is not provided",
        );
        assert_grpc_error(
            client.delete("", None).await,
            "InvalidArgument",
            "etcdserver: key is not provided",
        );
        assert_grpc_error(
            client
                .txn(Txn::new().and_then([TxnOp::put("", "v", None)]))
                .await,
            "InvalidArgument",
            "etcdserver: key is not provided",
        );
        assert_grpc_error(
            client.txn(Txn::new().or_else([TxnOp::get("", None)])).await,
            "InvalidArgument",
            "etcdserver: key is not provided",
        );
        assert_eq!(current_revision(&mut client).await, 1);
        // The empty key with a range end is the whole key space, not an error.
        client.put("x", "1", None).await.expect("put");
        let all = client
            .get("", Some(GetOptions::new().with_all_keys()))
            .await
            .expect("get all");
        assert_eq!(keys(all.kvs()), ["x"]);
    });
}

#[test]
fn range_limit_more_count_keys_only_count_only() {
    with_client(|mut client| async move {
        for key in ["r/1", "r/2", "r/3", "r/4", "r/5", "s/1"] {
            client
                .put(key, format!("value of {key}"), None)
                .await
                .expect("put");
        }
        let get = client
            .get("r/", Some(GetOptions::new().with_prefix()))
            .await
            .expect("get");
        assert_eq!(keys(get.kvs()), ["r/1", "r/2", "r/3", "r/4", "r/5"]);
        assert_eq!((get.count(), get.more()), (5, false));

        let get = client
            .get("r/", Some(GetOptions::new().with_prefix().with_limit(2)))
            .await
            .expect("get");
        assert_eq!(keys(get.kvs()), ["r/1", "r/2"]);
        assert_eq!(
            (get.count(), get.more()),
            (5, true),
            "count ignores the limit"
        );

        let get = client
            .get("r/", Some(GetOptions::new().with_prefix().with_limit(5)))
            .await
            .expect("get");
        assert_eq!(get.kvs().len(), 5);
        assert_eq!((get.count(), get.more()), (5, false));

        let get = client
            .get("r/", Some(GetOptions::new().with_prefix().with_limit(100)))
            .await
            .expect("get");
        assert_eq!((get.kvs().len(), get.count(), get.more()), (5, 5, false));

        // A range given by its end, and from-key.
        let get = client
            .get("r/2", Some(GetOptions::new().with_range("r/4")))
            .await
            .expect("get");
        assert_eq!(keys(get.kvs()), ["r/2", "r/3"]);
        let get = client
            .get("r/4", Some(GetOptions::new().with_from_key()))
            .await
            .expect("get");
        assert_eq!(keys(get.kvs()), ["r/4", "r/5", "s/1"]);
        let get = client
            .get("r/4", Some(GetOptions::new().with_from_key().with_limit(1)))
            .await
            .expect("get");
        assert_eq!(keys(get.kvs()), ["r/4"]);
        assert_eq!((get.count(), get.more()), (3, true));
        let get = client
            .get("", Some(GetOptions::new().with_all_keys()))
            .await
            .expect("get");
        assert_eq!(get.count(), 6);
        // A range end not after the key: nothing.
        let get = client
            .get("r/4", Some(GetOptions::new().with_range("r/2")))
            .await
            .expect("get");
        assert!(get.kvs().is_empty());
        assert_eq!(get.count(), 0);

        // count_only: no kvs, the full count.
        let get = client
            .get(
                "r/",
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await
            .expect("get");
        assert!(get.kvs().is_empty());
        assert_eq!(get.count(), 5);
        assert!(!get.more());
        let get = client
            .get(
                "r/",
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_count_only()
                        .with_limit(2),
                ),
            )
            .await
            .expect("get");
        assert!(get.kvs().is_empty());
        assert_eq!(get.count(), 5);

        // keys_only: keys and metadata, no values.
        let get = client
            .get("r/", Some(GetOptions::new().with_prefix().with_keys_only()))
            .await
            .expect("get");
        assert_eq!(keys(get.kvs()), ["r/1", "r/2", "r/3", "r/4", "r/5"]);
        assert!(get.kvs().iter().all(|kv| kv.value().is_empty()));
        assert_eq!(get.kvs()[0].create_revision(), 2);
        assert_eq!(get.kvs()[0].mod_revision(), 2);
        assert_eq!(get.kvs()[0].version(), 1);
        assert_eq!(get.count(), 5);

        // serializable reads see the same data.
        let get = client
            .get(
                "r/",
                Some(GetOptions::new().with_prefix().with_serializable()),
            )
            .await
            .expect("get");
        assert_eq!(get.count(), 5);
    });
}

#[test]
fn edge_values_of_limit_revision_and_range_end() {
    with_client(|mut client| async move {
        for key in ["e/1", "e/2", "e/3"] {
            client.put(key, "v", None).await.expect("put"); // r2..r4
        }
        // A negative limit means no limit; a negative revision means the newest.
        let get = client
            .get("e/", Some(GetOptions::new().with_prefix().with_limit(-1)))
            .await
            .expect("get");
        assert_eq!((get.kvs().len(), get.count(), get.more()), (3, 3, false));
        let get = client
            .get(
                "e/",
                Some(GetOptions::new().with_prefix().with_revision(-1)),
            )
            .await
            .expect("get");
        assert_eq!(get.kvs().len(), 3);
        // count_only never reports more.
        let get = client
            .get(
                "e/",
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_count_only()
                        .with_limit(1),
                ),
            )
            .await
            .expect("get");
        assert_eq!((get.kvs().len(), get.count(), get.more()), (0, 3, false));
        // keys_only and count_only together: the count.
        let get = client
            .get(
                "e/",
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_count_only()
                        .with_keys_only(),
                ),
            )
            .await
            .expect("get");
        assert_eq!((get.kvs().len(), get.count()), (0, 3));
        // An empty range [k, k).
        let get = client
            .get("e/2", Some(GetOptions::new().with_range("e/2")))
            .await
            .expect("get");
        assert_eq!((get.kvs().len(), get.count()), (0, 0));
        // Deleting an inverted range deletes nothing and creates no revision.
        let delete = client
            .delete("e/3", Some(DeleteOptions::new().with_range("e/1")))
            .await
            .expect("delete");
        assert_eq!(delete.deleted(), 0);
        assert_eq!(header_revision(delete.header()), 4);
        // Keys of 0xff bytes: their prefix range ends at "\0" (every key from there).
        client
            .put(vec![0xffu8, 0xff], "ff", None)
            .await
            .expect("put"); // r5
        let get = client
            .get(vec![0xffu8], Some(GetOptions::new().with_prefix()))
            .await
            .expect("get");
        assert_eq!(get.count(), 1);
        assert_eq!(get.kvs()[0].key(), [0xff, 0xff]);

        // Compacting at revision 0 is accepted once (nothing is compacted yet), like etcd.
        client.compact(0, None).await.expect("compact at 0");
        assert_grpc_error(
            client.compact(0, None).await,
            "OutOfRange",
            "etcdserver: mvcc: required revision has been compacted",
        );
        let get = client
            .get("e/1", Some(GetOptions::new().with_revision(2)))
            .await
            .expect("get at 2");
        assert_eq!(get.kvs().len(), 1);
    });
}

#[test]
fn sort_by_every_target_and_order() {
    with_client(|mut client| async move {
        // Each target orders these three keys differently.
        for (key, value) in [
            ("s/c", "a0"), // r2
            ("s/a", "m0"), // r3
            ("s/b", "z0"), // r4
            ("s/c", "a1"), // r5
            ("s/a", "m1"), // r6
            ("s/a", "m2"), // r7
        ] {
            client.put(key, value, None).await.expect("put");
        }
        let cases = [
            (SortTarget::Key, ["s/a", "s/b", "s/c"]),
            (SortTarget::Version, ["s/b", "s/c", "s/a"]),
            (SortTarget::Create, ["s/c", "s/a", "s/b"]),
            (SortTarget::Mod, ["s/b", "s/c", "s/a"]),
            (SortTarget::Value, ["s/c", "s/a", "s/b"]),
        ];
        for (target, ascending) in cases {
            let get = client
                .get(
                    "s/",
                    Some(
                        GetOptions::new()
                            .with_prefix()
                            .with_sort(target, SortOrder::Ascend),
                    ),
                )
                .await
                .expect("get");
            assert_eq!(keys(get.kvs()), ascending, "{target:?} ascending");
            let get = client
                .get(
                    "s/",
                    Some(
                        GetOptions::new()
                            .with_prefix()
                            .with_sort(target, SortOrder::Descend),
                    ),
                )
                .await
                .expect("get");
            let mut descending = ascending.to_vec();
            descending.reverse();
            assert_eq!(keys(get.kvs()), descending, "{target:?} descending");
            // Sort first, then limit.
            let get = client
                .get(
                    "s/",
                    Some(
                        GetOptions::new()
                            .with_prefix()
                            .with_sort(target, SortOrder::Descend)
                            .with_limit(1),
                    ),
                )
                .await
                .expect("get");
            assert_eq!(
                keys(get.kvs()),
                [descending[0]],
                "{target:?} descending, limit 1"
            );
            assert_eq!((get.count(), get.more()), (3, true));
        }
        // SortOrder::None with a target other than the key sorts ascending (as etcd 3.4 does).
        let get = client
            .get(
                "s/",
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_sort(SortTarget::Value, SortOrder::None),
                ),
            )
            .await
            .expect("get");
        assert_eq!(keys(get.kvs()), ["s/c", "s/a", "s/b"]);
        assert_eq!(values(get.kvs()), ["a1", "m2", "z0"]);
        let get = client
            .get(
                "s/",
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_sort(SortTarget::Key, SortOrder::None),
                ),
            )
            .await
            .expect("get");
        assert_eq!(keys(get.kvs()), ["s/a", "s/b", "s/c"]);
    });
}

#[test]
fn reads_at_past_revisions() {
    with_client(|mut client| async move {
        client.put("k", "v1", None).await.expect("put"); // r2
        client.put("other", "o", None).await.expect("put"); // r3
        client.put("k", "v2", None).await.expect("put"); // r4
        client.delete("k", None).await.expect("delete"); // r5
        client.put("k", "v3", None).await.expect("put"); // r6

        let at = |revision: i64| GetOptions::new().with_revision(revision);
        // (revision, (value, create, mod, version) of k at that revision)
        type Seen = Option<(&'static str, i64, i64, i64)>;
        let expectations: [(i64, Seen); 6] = [
            (1, None),
            (2, Some(("v1", 2, 2, 1))),
            (3, Some(("v1", 2, 2, 1))),
            (4, Some(("v2", 2, 4, 2))),
            (5, None),
            (6, Some(("v3", 6, 6, 1))),
        ];
        for (revision, expected) in expectations {
            let get = client.get("k", Some(at(revision))).await.expect("get");
            // The header carries the current revision, not the one read.
            assert_eq!(header_revision(get.header()), 6);
            match expected {
                None => assert!(get.kvs().is_empty(), "at {revision}: {:?}", get.kvs()),
                Some((value, create, modified, version)) => {
                    let kv = &get.kvs()[0];
                    assert_eq!(
                        (
                            kv.value(),
                            kv.create_revision(),
                            kv.mod_revision(),
                            kv.version()
                        ),
                        (value.as_bytes(), create, modified, version),
                        "at revision {revision}"
                    );
                }
            }
        }
        // Revision 0 (or negative) means the newest.
        let get = client.get("k", Some(at(0))).await.expect("get");
        assert_eq!(get.kvs()[0].value(), b"v3");
        let get = client
            .get("", Some(GetOptions::new().with_all_keys().with_revision(3)))
            .await
            .expect("get");
        assert_eq!(keys(get.kvs()), ["k", "other"]);
        let get = client
            .get(
                "",
                Some(
                    GetOptions::new()
                        .with_all_keys()
                        .with_revision(5)
                        .with_count_only(),
                ),
            )
            .await
            .expect("get");
        assert_eq!(get.count(), 1);

        assert_grpc_error(
            client.get("k", Some(at(7))).await,
            "OutOfRange",
            "etcdserver: mvcc: required revision is a future revision",
        );
    });
}

#[test]
fn min_and_max_mod_and_create_revision_filters() {
    with_client(|mut client| async move {
        client.put("f/a", "1", None).await.expect("put"); // r2
        client.put("f/b", "1", None).await.expect("put"); // r3
        client.put("f/c", "1", None).await.expect("put"); // r4
        client.put("f/a", "2", None).await.expect("put"); // r5: f/a create 2, mod 5
        client.put("f/d", "1", None).await.expect("put"); // r6
                                                          // create: a2 b3 c4 d6; mod: a5 b3 c4 d6
        let filtered = |options: GetOptions| options.with_prefix();
        let cases: [(GetOptions, &[&str]); 8] = [
            (
                GetOptions::new().with_min_mod_revision(4),
                &["f/a", "f/c", "f/d"],
            ),
            (GetOptions::new().with_max_mod_revision(4), &["f/b", "f/c"]),
            (
                GetOptions::new()
                    .with_min_mod_revision(4)
                    .with_max_mod_revision(5),
                &["f/a", "f/c"],
            ),
            (
                GetOptions::new().with_min_create_revision(3),
                &["f/b", "f/c", "f/d"],
            ),
            (
                GetOptions::new().with_max_create_revision(3),
                &["f/a", "f/b"],
            ),
            (
                GetOptions::new()
                    .with_min_create_revision(3)
                    .with_max_create_revision(4),
                &["f/b", "f/c"],
            ),
            (
                GetOptions::new()
                    .with_min_create_revision(2)
                    .with_max_mod_revision(4),
                &["f/b", "f/c"],
            ),
            (GetOptions::new().with_min_mod_revision(7), &[]),
        ];
        for (index, (options, expected)) in cases.into_iter().enumerate() {
            let get = client
                .get("f/", Some(filtered(options)))
                .await
                .expect("get");
            assert_eq!(keys(get.kvs()), expected, "case {index}");
            // etcd counts the keys in the range before filtering.
            assert_eq!(get.count(), 4, "case {index}: count");
        }
        // The filter applies first, then the limit.
        let get = client
            .get(
                "f/",
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_min_create_revision(3)
                        .with_limit(1),
                ),
            )
            .await
            .expect("get");
        assert_eq!(keys(get.kvs()), ["f/b"]);
        assert!(get.more());
        // Filters apply to a past revision's view too.
        let get = client
            .get(
                "f/",
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_revision(4)
                        .with_max_mod_revision(3),
                ),
            )
            .await
            .expect("get");
        assert_eq!(keys(get.kvs()), ["f/a", "f/b"]);
    });
}

#[test]
fn delete_prev_kv_counts_and_revisions() {
    with_client(|mut client| async move {
        for key in ["d/1", "d/2", "d/3", "e/1", "e/2"] {
            client.put(key, format!("{key}!"), None).await.expect("put");
        }
        assert_eq!(current_revision(&mut client).await, 6);

        // Deleting nothing succeeds, deletes 0 and does not bump the revision.
        let delete = client.delete("missing", None).await.expect("delete");
        assert_eq!(delete.deleted(), 0);
        assert_eq!(header_revision(delete.header()), 6);
        let delete = client
            .delete(
                "zzz/",
                Some(DeleteOptions::new().with_prefix().with_prev_key()),
            )
            .await
            .expect("delete");
        assert_eq!(delete.deleted(), 0);
        assert!(delete.prev_kvs().is_empty());
        assert_eq!(current_revision(&mut client).await, 6);

        let delete = client.delete("d/1", None).await.expect("delete");
        assert_eq!(delete.deleted(), 1);
        assert!(delete.prev_kvs().is_empty(), "no prev_kv unless asked");
        assert_eq!(header_revision(delete.header()), 7);

        let delete = client
            .delete(
                "d/",
                Some(DeleteOptions::new().with_prefix().with_prev_key()),
            )
            .await
            .expect("delete");
        assert_eq!(delete.deleted(), 2);
        assert_eq!(keys(delete.prev_kvs()), ["d/2", "d/3"]);
        assert_eq!(values(delete.prev_kvs()), ["d/2!", "d/3!"]);
        assert_eq!(delete.prev_kvs()[0].mod_revision(), 3);
        // One revision for the whole range.
        assert_eq!(header_revision(delete.header()), 8);

        let delete = client
            .delete(
                "e/1",
                Some(DeleteOptions::new().with_range("e/3").with_prev_key()),
            )
            .await
            .expect("delete");
        assert_eq!(delete.deleted(), 2);
        assert_eq!(keys(delete.prev_kvs()), ["e/1", "e/2"]);
        assert_eq!(header_revision(delete.header()), 9);

        let get = client
            .get("", Some(GetOptions::new().with_all_keys()))
            .await
            .expect("get");
        assert_eq!(get.count(), 0);

        // A re-created key starts a new generation.
        let put = client.put("d/1", "again", None).await.expect("put");
        assert_eq!(header_revision(put.header()), 10);
        let get = client.get("d/1", None).await.expect("get");
        assert_eq!(
            (get.kvs()[0].create_revision(), get.kvs()[0].version()),
            (10, 1)
        );
        let delete = client
            .delete(
                "c",
                Some(DeleteOptions::new().with_from_key().with_prev_key()),
            )
            .await
            .expect("delete");
        assert_eq!(delete.deleted(), 1);
        assert_eq!(keys(delete.prev_kvs()), ["d/1"]);
        assert_eq!(header_revision(delete.header()), 11);
    });
}

/// Puts `k` three times (create 2, mod 4, version 3, value "v3") and `other` once.
async fn compare_fixture(client: &mut Client) {
    client.put("k", "v1", None).await.expect("put"); // r2
    client.put("other", "o", None).await.expect("put"); // r3
    client.put("k", "v2", None).await.expect("put"); // r4
    client.put("k", "v3", None).await.expect("put"); // r5
}

async fn compare_holds(client: &mut Client, compare: Compare) -> bool {
    let description = format!("{compare:?}");
    let response = client
        .txn(Txn::new().when([compare]))
        .await
        .unwrap_or_else(|error| panic!("txn {description}: {error}"));
    response.succeeded()
}

#[test]
fn txn_compares_every_target_and_result() {
    with_client(|mut client| async move {
        compare_fixture(&mut client).await;
        // k: create 2, mod 5, version 3, value "v3", lease 0.
        use CompareOp::{Equal, Greater, Less, NotEqual};
        type MakeCompare = fn(&str, CompareOp, i64) -> Compare;
        let numeric: [(&str, MakeCompare, i64); 4] = [
            ("version", |k, op, n| Compare::version(k, op, n), 3),
            ("create", |k, op, n| Compare::create_revision(k, op, n), 2),
            ("mod", |k, op, n| Compare::mod_revision(k, op, n), 5),
            ("lease", |k, op, n| Compare::lease(k, op, n), 0),
        ];
        for (name, make, actual) in numeric {
            for (op, operand, expected) in [
                (Equal, actual, true),
                (Equal, actual + 1, false),
                (NotEqual, actual, false),
                (NotEqual, actual + 1, true),
                (Greater, actual - 1, true),
                (Greater, actual, false),
                (Less, actual + 1, true),
                (Less, actual, false),
            ] {
                assert_eq!(
                    compare_holds(&mut client, make("k", op, operand)).await,
                    expected,
                    "{name}(k) {op:?} {operand} (actual {actual})"
                );
            }
        }
        for (op, operand, expected) in [
            (Equal, "v3", true),
            (Equal, "v2", false),
            (NotEqual, "v3", false),
            (NotEqual, "v2", true),
            (Greater, "v2", true),
            (Greater, "v3", false),
            (Greater, "v", true),
            (Less, "v4", true),
            (Less, "v3", false),
            (Less, "v30", true),
        ] {
            assert_eq!(
                compare_holds(&mut client, Compare::value("k", op, operand)).await,
                expected,
                "value(k) {op:?} {operand:?}"
            );
        }

        // A missing key compares as zeroes, but any value compare on it fails.
        for (compare, expected) in [
            (Compare::version("missing", Equal, 0), true),
            (Compare::create_revision("missing", Equal, 0), true),
            (Compare::mod_revision("missing", Equal, 0), true),
            (Compare::mod_revision("missing", Less, 1), true),
            (Compare::lease("missing", Equal, 0), true),
            (Compare::version("missing", Greater, 0), false),
            (Compare::value("missing", Equal, ""), false),
            (Compare::value("missing", NotEqual, "x"), false),
            (Compare::value("missing", Less, "x"), false),
        ] {
            let description = format!("{compare:?}");
            assert_eq!(
                compare_holds(&mut client, compare).await,
                expected,
                "{description}"
            );
        }

        // Several compares: all must hold.
        let response = client
            .txn(Txn::new().when([
                Compare::version("k", Equal, 3),
                Compare::value("other", Equal, "o"),
            ]))
            .await
            .expect("txn");
        assert!(response.succeeded());
        let response = client
            .txn(Txn::new().when([
                Compare::version("k", Equal, 3),
                Compare::value("other", Equal, "nope"),
            ]))
            .await
            .expect("txn");
        assert!(!response.succeeded());
        // Compares alone never bump the revision.
        assert_eq!(current_revision(&mut client).await, 5);
    });
}

#[test]
fn txn_compare_over_a_range() {
    with_client(|mut client| async move {
        client.put("r/a", "1", None).await.expect("put"); // r2
        client.put("r/b", "1", None).await.expect("put"); // r3
        client.put("r/b", "2", None).await.expect("put"); // r4
        client.put("r/c", "1", None).await.expect("put"); // r5
        client.put("s", "1", None).await.expect("put"); // r6
        use CompareOp::{Equal, Greater, Less, NotEqual};
        for (compare, expected) in [
            // Every key in the range must satisfy the compare.
            (Compare::version("r/", Greater, 0).with_prefix(), true),
            (Compare::version("r/", Equal, 1).with_prefix(), false),
            (Compare::version("r/a", Equal, 1).with_range("r/b"), true),
            (Compare::version("r/a", Equal, 1).with_range("r/c"), false),
            (Compare::version("r/c", Equal, 1).with_range("s"), true),
            (Compare::mod_revision("r/", Less, 6).with_prefix(), true),
            (Compare::mod_revision("r/", Less, 5).with_prefix(), false),
            (
                Compare::create_revision("r/", NotEqual, 4).with_prefix(),
                true,
            ),
            (Compare::value("r/", Equal, "1").with_prefix(), false),
            (Compare::value("r/", Greater, "0").with_prefix(), true),
            (Compare::value("r/a", Equal, "1").with_range("r/b"), true),
            (Compare::lease("r/", Equal, 0).with_prefix(), true),
            // An empty range: version/create/mod compare as zero, value compares fail.
            (Compare::version("x/", Equal, 0).with_prefix(), true),
            (Compare::value("x/", Equal, "").with_prefix(), false),
            // range_end "\0": every key from the given one.
            (
                Compare::version("r/c", Equal, 1).with_range(vec![0u8]),
                true,
            ),
            (
                Compare::version("r/b", Equal, 1).with_range(vec![0u8]),
                false,
            ),
        ] {
            let description = format!("{compare:?}");
            assert_eq!(
                compare_holds(&mut client, compare).await,
                expected,
                "{description}"
            );
        }
    });
}

#[test]
fn txn_branches_one_revision_and_nesting() {
    with_client(|mut client| async move {
        compare_fixture(&mut client).await; // now at r5

        // Success branch: several writes, one new revision.
        let response = client
            .txn(
                Txn::new()
                    .when([Compare::value("k", CompareOp::Equal, "v3")])
                    .and_then([
                        TxnOp::put("t/1", "a", None),
                        TxnOp::put("t/2", "b", Some(PutOptions::new().with_prev_key())),
                        TxnOp::put("k", "v4", Some(PutOptions::new().with_prev_key())),
                        TxnOp::delete("other", Some(DeleteOptions::new().with_prev_key())),
                        TxnOp::get("t/", Some(GetOptions::new().with_prefix())),
                    ])
                    .or_else([TxnOp::put("failed", "1", None)]),
            )
            .await
            .expect("txn");
        assert!(response.succeeded());
        assert_eq!(header_revision(response.header()), 6);
        let ops = response.op_responses();
        assert_eq!(ops.len(), 5);
        match &ops[2] {
            TxnOpResponse::Put(put) => assert_eq!(put.prev_key().expect("prev").value(), b"v3"),
            other => panic!("expected a put response, got {other:?}"),
        }
        match &ops[3] {
            TxnOpResponse::Delete(delete) => {
                assert_eq!(delete.deleted(), 1);
                assert_eq!(keys(delete.prev_kvs()), ["other"]);
            }
            other => panic!("expected a delete response, got {other:?}"),
        }
        match &ops[4] {
            // Reads inside a txn see its earlier writes.
            TxnOpResponse::Get(get) => {
                assert_eq!(keys(get.kvs()), ["t/1", "t/2"]);
                assert!(get.kvs().iter().all(|kv| kv.mod_revision() == 6));
            }
            other => panic!("expected a get response, got {other:?}"),
        }
        let get = client
            .get("", Some(GetOptions::new().with_all_keys()))
            .await
            .expect("get");
        assert_eq!(keys(get.kvs()), ["k", "t/1", "t/2"]);
        assert!(get.kvs().iter().all(|kv| kv.mod_revision() == 6));
        assert!(client
            .get("failed", None)
            .await
            .expect("get")
            .kvs()
            .is_empty());

        // Failure branch.
        let response = client
            .txn(
                Txn::new()
                    .when([Compare::version("k", CompareOp::Greater, 100)])
                    .and_then([TxnOp::put("succeeded", "1", None)])
                    .or_else([TxnOp::put("failed", "1", None), TxnOp::get("k", None)]),
            )
            .await
            .expect("txn");
        assert!(!response.succeeded());
        assert_eq!(header_revision(response.header()), 7);
        match &response.op_responses()[1] {
            TxnOpResponse::Get(get) => assert_eq!(values(get.kvs()), ["v4"]),
            other => panic!("expected a get response, got {other:?}"),
        }
        assert!(client
            .get("succeeded", None)
            .await
            .expect("get")
            .kvs()
            .is_empty());

        // Read-only and empty txns do not bump the revision.
        let response = client
            .txn(Txn::new().and_then([TxnOp::get("k", None)]))
            .await
            .expect("txn");
        assert_eq!(header_revision(response.header()), 7);
        let response = client.txn(Txn::new()).await.expect("txn");
        assert!(response.succeeded());
        assert!(response.op_responses().is_empty());
        assert_eq!(header_revision(response.header()), 7);
        // A failed compare with an empty failure branch neither.
        let response = client
            .txn(
                Txn::new()
                    .when([Compare::value("k", CompareOp::Equal, "nope")])
                    .and_then([TxnOp::put("k", "x", None)]),
            )
            .await
            .expect("txn");
        assert!(!response.succeeded());
        assert_eq!(header_revision(response.header()), 7);
        // Deleting nothing inside a txn: no new revision either.
        let response = client
            .txn(Txn::new().and_then([TxnOp::delete("nothing", None)]))
            .await
            .expect("txn");
        assert_eq!(header_revision(response.header()), 7);

        // Nested txns: evaluated with the outer one, all in one revision.
        let inner_true = Txn::new()
            .when([Compare::value("k", CompareOp::Equal, "v4")])
            .and_then([TxnOp::put("n/1", "inner-success", None)])
            .or_else([TxnOp::put("n/1", "inner-failure", None)]);
        let inner_false = Txn::new()
            .when([Compare::value("k", CompareOp::Equal, "no")])
            .and_then([TxnOp::put("n/2", "inner-success", None)])
            .or_else([
                TxnOp::put("n/2", "inner-failure", None),
                TxnOp::get("n/1", None),
            ]);
        let response = client
            .txn(
                Txn::new()
                    .when([Compare::version("k", CompareOp::Greater, 0)])
                    .and_then([
                        TxnOp::put("n/0", "outer", None),
                        TxnOp::txn(inner_true),
                        TxnOp::txn(inner_false),
                    ]),
            )
            .await
            .expect("nested txn");
        assert!(response.succeeded());
        assert_eq!(header_revision(response.header()), 8);
        let ops = response.op_responses();
        assert_eq!(ops.len(), 3);
        match &ops[1] {
            TxnOpResponse::Txn(inner) => {
                assert!(inner.succeeded());
                assert_eq!(inner.op_responses().len(), 1);
            }
            other => panic!("expected a txn response, got {other:?}"),
        }
        match &ops[2] {
            TxnOpResponse::Txn(inner) => {
                assert!(!inner.succeeded());
                match &inner.op_responses()[1] {
                    TxnOpResponse::Get(get) => assert_eq!(values(get.kvs()), ["inner-success"]),
                    other => panic!("expected a get response, got {other:?}"),
                }
            }
            other => panic!("expected a txn response, got {other:?}"),
        }
        let get = client
            .get("n/", Some(GetOptions::new().with_prefix()))
            .await
            .expect("get");
        assert_eq!(
            values(get.kvs()),
            ["outer", "inner-success", "inner-failure"]
        );
        assert!(get.kvs().iter().all(|kv| kv.mod_revision() == 8));
    });
}

#[test]
fn txn_limits_and_duplicate_keys() {
    with_client(|mut client| async move {
        let puts = |count: usize| -> Vec<TxnOp> {
            (0..count)
                .map(|index| TxnOp::put(format!("many/{index:03}"), "v", None))
                .collect()
        };
        assert_grpc_error(
            client.txn(Txn::new().and_then(puts(129))).await,
            "InvalidArgument",
            "etcdserver: too many operations in txn request",
        );
        assert_grpc_error(
            client.txn(Txn::new().or_else(puts(129))).await,
            "InvalidArgument",
            "etcdserver: too many operations in txn request",
        );
        let compares: Vec<Compare> = (0..129)
            .map(|index| Compare::version(format!("c/{index}"), CompareOp::Equal, 0))
            .collect();
        assert_grpc_error(
            client.txn(Txn::new().when(compares)).await,
            "InvalidArgument",
            "etcdserver: too many operations in txn request",
        );
        assert_eq!(current_revision(&mut client).await, 1);

        // 128 is the limit, per branch.
        let response = client
            .txn(Txn::new().and_then(puts(128)).or_else(puts(128)))
            .await
            .expect("128 ops");
        assert_eq!(header_revision(response.header()), 2);
        let get = client
            .get(
                "many/",
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await
            .expect("get");
        assert_eq!(get.count(), 128);

        let duplicate = "etcdserver: duplicate key given in txn request";
        assert_grpc_error(
            client
                .txn(
                    Txn::new()
                        .and_then([TxnOp::put("dup", "1", None), TxnOp::put("dup", "2", None)]),
                )
                .await,
            "InvalidArgument",
            duplicate,
        );
        assert_grpc_error(
            client
                .txn(
                    Txn::new()
                        .or_else([TxnOp::put("dup", "1", None), TxnOp::put("dup", "2", None)]),
                )
                .await,
            "InvalidArgument",
            duplicate,
        );
        // A put inside a deleted range.
        assert_grpc_error(
            client
                .txn(Txn::new().and_then([
                    TxnOp::put("many/005", "1", None),
                    TxnOp::delete("many/", Some(DeleteOptions::new().with_prefix())),
                ]))
                .await,
            "InvalidArgument",
            duplicate,
        );
        // The same key put in a nested txn and its parent.
        assert_grpc_error(
            client
                .txn(Txn::new().and_then([
                    TxnOp::put("dup", "1", None),
                    TxnOp::txn(Txn::new().and_then([TxnOp::put("dup", "2", None)])),
                ]))
                .await,
            "InvalidArgument",
            duplicate,
        );
        assert_eq!(current_revision(&mut client).await, 2);

        // Not duplicates: the same key in both branches, two deletes, reads of written keys.
        let response = client
            .txn(
                Txn::new()
                    .and_then([
                        TxnOp::put("dup", "1", None),
                        TxnOp::get("dup", None),
                        TxnOp::delete("many/000", None),
                        TxnOp::delete("many/", Some(DeleteOptions::new().with_prefix())),
                    ])
                    .or_else([TxnOp::put("dup", "2", None)]),
            )
            .await
            .expect("txn");
        assert!(response.succeeded());
        assert_eq!(header_revision(response.header()), 3);
        let get = client
            .get("", Some(GetOptions::new().with_all_keys()))
            .await
            .expect("get");
        assert_eq!(keys(get.kvs()), ["dup"]);
    });
}

#[test]
fn compaction_and_revision_errors() {
    with_client(|mut client| async move {
        for index in 1..=6 {
            client
                .put("k", format!("v{index}"), None)
                .await
                .expect("put"); // r2..r7
        }
        let compacted = "etcdserver: mvcc: required revision has been compacted";
        let future = "etcdserver: mvcc: required revision is a future revision";

        let response = client.compact(3, None).await.expect("compact");
        assert_full_header(response.header(), "compact");
        assert_eq!(header_revision(response.header()), 7);
        // Compaction does not create a revision.
        assert_eq!(current_revision(&mut client).await, 7);

        let at = |revision: i64| Some(GetOptions::new().with_revision(revision));
        assert_grpc_error(client.get("k", at(2)).await, "OutOfRange", compacted);
        assert_grpc_error(client.get("k", at(1)).await, "OutOfRange", compacted);
        let get = client
            .get("k", at(3))
            .await
            .expect("read at the compacted revision");
        assert_eq!(values(get.kvs()), ["v2"]);
        let get = client.get("k", at(5)).await.expect("get");
        assert_eq!(values(get.kvs()), ["v4"]);
        assert_grpc_error(client.get("k", at(8)).await, "OutOfRange", future);
        assert_grpc_error(client.get("k", at(1000)).await, "OutOfRange", future);

        // Compacting again at or before the compacted revision, or into the future.
        assert_grpc_error(client.compact(3, None).await, "OutOfRange", compacted);
        assert_grpc_error(client.compact(2, None).await, "OutOfRange", compacted);
        assert_grpc_error(client.compact(8, None).await, "OutOfRange", future);

        // Physical compaction returns once done; its reads behave the same.
        let response = client
            .compact(5, Some(CompactionOptions::new().with_physical()))
            .await
            .expect("physical compact");
        assert_eq!(header_revision(response.header()), 7);
        assert_grpc_error(client.get("k", at(4)).await, "OutOfRange", compacted);
        let get = client.get("k", at(5)).await.expect("get");
        assert_eq!(values(get.kvs()), ["v4"]);
        assert_grpc_error(
            client
                .compact(4, Some(CompactionOptions::new().with_physical()))
                .await,
            "OutOfRange",
            compacted,
        );

        // Reads inside a txn get the same errors.
        assert_grpc_error(
            client
                .txn(Txn::new().and_then([TxnOp::get("k", at(4))]))
                .await,
            "OutOfRange",
            compacted,
        );
        assert_grpc_error(
            client
                .txn(Txn::new().and_then([TxnOp::get("k", at(9))]))
                .await,
            "OutOfRange",
            future,
        );

        // Compacting up to the current revision keeps the latest value.
        client.compact(7, None).await.expect("compact to current");
        let get = client.get("k", None).await.expect("get");
        assert_eq!(values(get.kvs()), ["v6"]);
        assert_eq!(
            (get.kvs()[0].create_revision(), get.kvs()[0].version()),
            (2, 6)
        );
        let get = client.get("k", at(7)).await.expect("get");
        assert_eq!(values(get.kvs()), ["v6"]);
        // Writes continue after compaction.
        let put = client.put("k", "v7", None).await.expect("put");
        assert_eq!(header_revision(put.header()), 8);
        assert_eq!(
            client.get("k", None).await.expect("get").kvs()[0].version(),
            7
        );
    });
}

#[test]
fn compaction_removes_deleted_keys_from_history() {
    with_client(|mut client| async move {
        client.put("gone", "1", None).await.expect("put"); // r2
        client.delete("gone", None).await.expect("delete"); // r3
        client.put("kept", "1", None).await.expect("put"); // r4
        client
            .compact(4, Some(CompactionOptions::new().with_physical()))
            .await
            .expect("compact");
        let get = client
            .get("", Some(GetOptions::new().with_all_keys().with_revision(4)))
            .await
            .expect("get");
        assert_eq!(keys(get.kvs()), ["kept"]);
        // Re-creating a compacted-away key starts at version 1.
        client.put("gone", "2", None).await.expect("put"); // r5
        let get = client.get("gone", None).await.expect("get");
        assert_eq!(
            (get.kvs()[0].create_revision(), get.kvs()[0].version()),
            (5, 1)
        );
    });
}

#[test]
fn response_headers_are_complete() {
    with_client(|mut client| async move {
        let put = client.put("h", "1", None).await.expect("put");
        assert_full_header(put.header(), "put");
        let get = client.get("h", None).await.expect("get");
        assert_full_header(get.header(), "get");
        let get = client.get("nothing", None).await.expect("get");
        assert_full_header(get.header(), "get of a missing key");
        let txn = client
            .txn(Txn::new().and_then([TxnOp::put("h", "2", None)]))
            .await
            .expect("txn");
        assert_full_header(txn.header(), "txn");
        let delete = client.delete("h", None).await.expect("delete");
        assert_full_header(delete.header(), "delete");
        let delete = client.delete("h", None).await.expect("delete");
        assert_full_header(delete.header(), "delete of nothing");
        let compact = client.compact(2, None).await.expect("compact");
        assert_full_header(compact.header(), "compact");
        assert_eq!(header_revision(compact.header()), 4);

        let term = get.header().expect("header").raft_term();
        assert_eq!(delete.header().expect("header").raft_term(), term);

        let status = client.status().await.expect("status");
        assert_full_header(status.header(), "status");
        assert_eq!(status.leader(), DEFAULT_MEMBER_ID);
        assert_eq!(status.raft_term(), term);
        assert!(status.raft_index() > 0);
    });
}

#[test]
fn oversized_requests_are_refused_and_the_server_keeps_serving() {
    with_client(|mut client| async move {
        client.put("before", "1", None).await.expect("put"); // r2

        // Over --max-request-bytes (1.5 MiB) but under the gRPC receive limit (+512 KiB).
        let value = vec![b'x'; 1_600_000];
        assert_grpc_error(
            client.put("big", value, None).await,
            "InvalidArgument",
            "etcdserver: request is too large",
        );
        let txn = Txn::new().and_then([
            TxnOp::put("big/1", vec![b'x'; 800_000], None),
            TxnOp::put("big/2", vec![b'x'; 800_000], None),
        ]);
        assert_grpc_error(
            client.txn(txn).await,
            "InvalidArgument",
            "etcdserver: request is too large",
        );

        // Over the gRPC receive limit (2 MiB): refused by gRPC itself.
        let (code, message) = grpc_error(client.put("huge", vec![b'x'; 3 << 20], None).await);
        assert_eq!(code, "ResourceExhausted", "{message}");
        assert!(
            message.starts_with("grpc: received message larger than max"),
            "{message}"
        );
        // grpc-go names the sizes: the PutRequest (key 4 + value 3 MiB + 7 bytes of framing)
        // against --max-request-bytes + 512 KiB.
        assert_eq!(
            message,
            "grpc: received message larger than max (3145739 vs. 2097152)"
        );

        // Just under the limit is fine.
        let put = client
            .put("large", vec![b'y'; 1_500_000], None)
            .await
            .expect("a 1.5 MB put");
        assert_eq!(header_revision(put.header()), 3);

        // The same connection and a new one keep working.
        let put = client.put("after", "1", None).await.expect("put");
        assert_eq!(header_revision(put.header()), 4);
        let get = client
            .get("", Some(GetOptions::new().with_all_keys().with_keys_only()))
            .await
            .expect("get");
        assert_eq!(keys(get.kvs()), ["after", "before", "large"]);
        let get = client.get("large", None).await.expect("get large");
        assert_eq!(get.kvs()[0].value().len(), 1_500_000);
        assert!(get.kvs()[0].value().iter().all(|byte| *byte == b'y'));
    });
}

/// etcd compares `--max-request-bytes` (1,572,864) with the size of the raft entry it would
/// propose, an `InternalRaftRequest`: its header (field 100: 2-byte tag, 1-byte length,
/// `RequestHeader{ID}` with a 9-byte varint id = 13 bytes) and the put (1-byte tag, 3-byte
/// length, key 3 bytes, value 4 bytes + the value) = the value + 24 bytes for a one-byte key.
/// So a 1,572,840-byte value is the largest etcd 3.4 accepts.
#[test]
fn request_size_limit_boundary() {
    with_client(|mut client| async move {
        client
            .put("b", vec![b'x'; 1_572_840], None)
            .await
            .expect("the largest put etcd accepts");
        assert_grpc_error(
            client.put("b", vec![b'x'; 1_572_841], None).await,
            "InvalidArgument",
            "etcdserver: request is too large",
        );
        assert_eq!(current_revision(&mut client).await, 2);
    });
}

#[test]
fn concurrent_puts_get_distinct_revisions() {
    const TASKS: usize = 16;
    const PUTS_PER_TASK: usize = 20;
    with_client(|client| async move {
        let mut handles = Vec::new();
        for task in 0..TASKS {
            let mut client = client.clone();
            handles.push(tokio::spawn(async move {
                let mut revisions = Vec::new();
                for index in 0..PUTS_PER_TASK {
                    let key = format!("c/{task:02}/{index:02}");
                    let put = client.put(key, format!("{task}-{index}"), None).await;
                    revisions.push(header_revision(put.expect("concurrent put").header()));
                }
                revisions
            }));
        }
        let mut revisions = Vec::new();
        for handle in handles {
            let task_revisions = handle.await.expect("task");
            // Each task's own puts are acknowledged in order.
            assert!(task_revisions.windows(2).all(|pair| pair[0] < pair[1]));
            revisions.extend(task_revisions);
        }
        let total = TASKS * PUTS_PER_TASK;
        let distinct: BTreeSet<i64> = revisions.iter().copied().collect();
        assert_eq!(distinct.len(), total, "every put has its own revision");
        let expected: BTreeSet<i64> = (2..2 + total as i64).collect();
        assert_eq!(distinct, expected);

        let mut client = client;
        let get = client
            .get("c/", Some(GetOptions::new().with_prefix()))
            .await
            .expect("get");
        assert_eq!(get.count(), total as i64);
        assert_eq!(header_revision(get.header()), 1 + total as i64);
        for kv in get.kvs() {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let parts: Vec<&str> = key.split('/').collect();
            let expected_value = format!(
                "{}-{}",
                parts[1].parse::<usize>().expect("task"),
                parts[2].parse::<usize>().expect("index")
            );
            assert_eq!(kv.value(), expected_value.as_bytes());
            assert_eq!(kv.version(), 1);
            assert!(revisions.contains(&kv.mod_revision()));
        }
    });
}
