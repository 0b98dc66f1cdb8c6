//! Wire-compatibility checks. Expected bytes are written by hand from the
//! protobuf encoding rules (tag = field_number << 3 | wire_type; wire type 0 is
//! varint, 2 is length-delimited) and etcd's published field numbers.

use bytes::Bytes;
use capstan_proto::etcdserverpb::{
    compare, request_op, response_op, watch_request, Compare, DowngradeInfo, HashKvResponse,
    LeaseGrantResponse, Member, PutRequest, RangeRequest, RangeResponse, RangeStreamResponse,
    RequestOp, ResponseHeader, ResponseOp, SnapshotResponse, StatusResponse, TxnRequest,
    TxnResponse, WatchCreateRequest, WatchRequest, WatchResponse,
};
use capstan_proto::{authpb, capstanpb, grpc_health_v1, method, mvccpb, v3electionpb, v3lockpb};
use prost::Message;

fn enc<M: Message>(m: &M) -> Vec<u8> {
    m.encode_to_vec()
}

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

#[test]
fn range_request_basic() {
    let r = RangeRequest {
        key: b("a"),
        limit: 5,
        ..Default::default()
    };
    assert_eq!(enc(&r), [0x0a, 0x01, 0x61, 0x18, 0x05]);
    assert_eq!(RangeRequest::decode(&enc(&r)[..]).unwrap(), r);
}

#[test]
fn range_request_fields() {
    let r = RangeRequest {
        range_end: b("b"),
        revision: 3,
        sort_order: 2,
        sort_target: 4,
        serializable: true,
        keys_only: true,
        count_only: true,
        min_mod_revision: 7,
        max_mod_revision: 8,
        min_create_revision: 1,
        max_create_revision: 2,
        ..Default::default()
    };
    assert_eq!(
        enc(&r),
        [
            0x12, 0x01, 0x62, // range_end = 2
            0x20, 0x03, // revision = 4
            0x28, 0x02, // sort_order = 5
            0x30, 0x04, // sort_target = 6
            0x38, 0x01, // serializable = 7
            0x40, 0x01, // keys_only = 8
            0x48, 0x01, // count_only = 9
            0x50, 0x07, // min_mod_revision = 10
            0x58, 0x08, // max_mod_revision = 11
            0x60, 0x01, // min_create_revision = 12
            0x68, 0x02, // max_create_revision = 13
        ]
    );
    assert_eq!(
        r.sort_order(),
        capstan_proto::etcdserverpb::range_request::SortOrder::Descend
    );
    assert_eq!(
        r.sort_target(),
        capstan_proto::etcdserverpb::range_request::SortTarget::Value
    );
}

#[test]
fn int64_is_plain_varint_not_zigzag() {
    let r = RangeRequest {
        limit: -1,
        ..Default::default()
    };
    let mut want = vec![0x18];
    want.extend([0xff; 9]);
    want.push(0x01);
    assert_eq!(enc(&r), want);
}

#[test]
fn put_request_flags() {
    let p = PutRequest {
        key: b("k"),
        value: b("v"),
        lease: 9,
        prev_kv: true,
        ignore_value: true,
        ignore_lease: true,
    };
    assert_eq!(
        enc(&p),
        [0x0a, 0x01, b'k', 0x12, 0x01, b'v', 0x18, 0x09, 0x20, 0x01, 0x28, 0x01, 0x30, 0x01]
    );
}

#[test]
fn compare_target_union_and_range_end() {
    let c = Compare {
        result: compare::CompareResult::NotEqual as i32,
        target: compare::CompareTarget::Value as i32,
        key: b("k"),
        target_union: Some(compare::TargetUnion::Value(b("x"))),
        range_end: b("z"),
    };
    assert_eq!(
        enc(&c),
        [
            0x08, 0x03, // result = 1
            0x10, 0x03, // target = 2
            0x1a, 0x01, b'k', // key = 3
            0x3a, 0x01, b'x', // value = 7
            0x82, 0x04, 0x01, b'z', // range_end = 64 (tag 514 as a 2-byte varint)
        ]
    );
    let variants = [
        (compare::TargetUnion::Version(1), 0x20),
        (compare::TargetUnion::CreateRevision(1), 0x28),
        (compare::TargetUnion::ModRevision(1), 0x30),
        (compare::TargetUnion::Lease(1), 0x40),
    ];
    for (tu, tag) in variants {
        let c = Compare {
            target_union: Some(tu),
            ..Default::default()
        };
        assert_eq!(enc(&c), [tag, 0x01]);
    }
}

#[test]
fn txn_request_success_and_failure() {
    let op = RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: b("k"),
            ..Default::default()
        })),
    };
    let t = TxnRequest {
        compare: vec![],
        success: vec![op.clone()],
        failure: vec![],
    };
    // TxnRequest.success = 2 { RequestOp.request_put = 2 { PutRequest.key = 1 } }
    assert_eq!(enc(&t), [0x12, 0x05, 0x12, 0x03, 0x0a, 0x01, b'k']);
    let t = TxnRequest {
        failure: vec![op],
        ..Default::default()
    };
    assert_eq!(enc(&t), [0x1a, 0x05, 0x12, 0x03, 0x0a, 0x01, b'k']);

    let nested = RequestOp {
        request: Some(request_op::Request::RequestTxn(TxnRequest::default())),
    };
    assert_eq!(enc(&nested), [0x22, 0x00]);
    let range = RequestOp {
        request: Some(request_op::Request::RequestRange(RangeRequest::default())),
    };
    assert_eq!(enc(&range), [0x0a, 0x00]);
}

#[test]
fn txn_response_oneof() {
    let t = TxnResponse {
        header: None,
        succeeded: true,
        responses: vec![ResponseOp {
            response: Some(response_op::Response::ResponseDeleteRange(
                Default::default(),
            )),
        }],
    };
    assert_eq!(enc(&t), [0x10, 0x01, 0x1a, 0x02, 0x1a, 0x00]);
}

#[test]
fn response_header_fields() {
    let h = ResponseHeader {
        cluster_id: 1,
        member_id: 2,
        revision: 3,
        raft_term: 9,
    };
    assert_eq!(enc(&h), [0x08, 0x01, 0x10, 0x02, 0x18, 0x03, 0x20, 0x09]);
}

#[test]
fn range_stream_response_wraps_range_response() {
    let r = RangeStreamResponse {
        range_response: Some(RangeResponse {
            more: true,
            count: 2,
            ..Default::default()
        }),
    };
    assert_eq!(enc(&r), [0x0a, 0x04, 0x18, 0x01, 0x20, 0x02]);
}

#[test]
fn status_response_newer_fields() {
    let s = StatusResponse {
        db_size_in_use: 5,
        is_learner: true,
        storage_version: "3.6".into(),
        db_size_quota: 7,
        downgrade_info: Some(DowngradeInfo {
            enabled: true,
            target_version: String::new(),
        }),
        ..Default::default()
    };
    assert_eq!(
        enc(&s),
        [
            0x48, 0x05, // dbSizeInUse = 9
            0x50, 0x01, // isLearner = 10
            0x5a, 0x03, b'3', b'.', b'6', // storageVersion = 11
            0x60, 0x07, // dbSizeQuota = 12
            0x6a, 0x02, 0x08, 0x01, // downgradeInfo = 13 { enabled = 1 }
        ]
    );
    let s = StatusResponse {
        raft_applied_index: 1,
        errors: vec!["e".into()],
        ..Default::default()
    };
    assert_eq!(enc(&s), [0x38, 0x01, 0x42, 0x01, b'e']);
}

#[test]
fn watch_create_request_fields() {
    let w = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: b("a"),
                prev_kv: true,
                watch_id: 3,
                fragment: true,
                filters: vec![1],
                ..Default::default()
            },
        )),
    };
    assert_eq!(
        enc(&w),
        [
            0x0a, 0x0c, // create_request = 1
            0x0a, 0x01, b'a', // key = 1
            0x2a, 0x01, 0x01, // filters = 5 (packed)
            0x30, 0x01, // prev_kv = 6
            0x38, 0x03, // watch_id = 7
            0x40, 0x01, // fragment = 8
        ]
    );
    let p = WatchRequest {
        request_union: Some(watch_request::RequestUnion::ProgressRequest(
            Default::default(),
        )),
    };
    assert_eq!(enc(&p), [0x1a, 0x00]);
}

#[test]
fn watch_response_fields() {
    let w = WatchResponse {
        watch_id: 1,
        canceled: true,
        compact_revision: 4,
        cancel_reason: "x".into(),
        fragment: true,
        events: vec![mvccpb::Event {
            r#type: mvccpb::event::EventType::Delete as i32,
            kv: None,
            prev_kv: None,
        }],
        ..Default::default()
    };
    assert_eq!(
        enc(&w),
        [
            0x10, 0x01, // watch_id = 2
            0x20, 0x01, // canceled = 4
            0x28, 0x04, // compact_revision = 5
            0x32, 0x01, b'x', // cancel_reason = 6
            0x38, 0x01, // fragment = 7
            0x5a, 0x02, 0x08, 0x01, // events = 11 { type = 1 (DELETE) }
        ]
    );
}

#[test]
fn member_is_learner() {
    let m = Member {
        id: 1,
        name: "n".into(),
        peer_ur_ls: vec!["p".into()],
        client_ur_ls: vec!["c".into()],
        is_learner: true,
    };
    assert_eq!(
        enc(&m),
        [0x08, 0x01, 0x12, 0x01, b'n', 0x1a, 0x01, b'p', 0x22, 0x01, b'c', 0x28, 0x01]
    );
}

#[test]
fn key_value_fields_and_bytes_type() {
    let kv = mvccpb::KeyValue {
        key: b("k"),
        create_revision: 2,
        mod_revision: 3,
        version: 4,
        value: b("v"),
        lease: 6,
    };
    let wire = enc(&kv);
    assert_eq!(
        wire,
        [0x0a, 0x01, b'k', 0x10, 0x02, 0x18, 0x03, 0x20, 0x04, 0x2a, 0x01, b'v', 0x30, 0x06]
    );
    let back = mvccpb::KeyValue::decode(Bytes::from(wire)).unwrap();
    let key: Bytes = back.key;
    assert_eq!(&key[..], b"k");
}

#[test]
fn misc_field_numbers() {
    let h = HashKvResponse {
        hash: 1,
        compact_revision: 2,
        hash_revision: 3,
        ..Default::default()
    };
    assert_eq!(enc(&h), [0x10, 0x01, 0x18, 0x02, 0x20, 0x03]);

    let s = SnapshotResponse {
        remaining_bytes: 1,
        blob: b("z"),
        version: "v".into(),
        ..Default::default()
    };
    assert_eq!(enc(&s), [0x10, 0x01, 0x1a, 0x01, b'z', 0x22, 0x01, b'v']);

    let l = LeaseGrantResponse {
        id: 7,
        ttl: 5,
        error: "e".into(),
        ..Default::default()
    };
    assert_eq!(enc(&l), [0x10, 0x07, 0x18, 0x05, 0x22, 0x01, b'e']);

    let p = authpb::Permission {
        perm_type: authpb::permission::Type::Readwrite as i32,
        key: b("a"),
        range_end: b("b"),
    };
    assert_eq!(enc(&p), [0x08, 0x02, 0x12, 0x01, b'a', 0x1a, 0x01, b'b']);

    let l = v3lockpb::LockResponse {
        header: Some(ResponseHeader::default()),
        key: b("k"),
    };
    assert_eq!(enc(&l), [0x0a, 0x00, 0x12, 0x01, b'k']);

    let lk = v3electionpb::LeaderKey {
        name: b("n"),
        key: b("k"),
        rev: 3,
        lease: 4,
    };
    assert_eq!(
        enc(&lk),
        [0x0a, 0x01, b'n', 0x12, 0x01, b'k', 0x18, 0x03, 0x20, 0x04]
    );

    let hc = grpc_health_v1::HealthCheckResponse {
        status: grpc_health_v1::health_check_response::ServingStatus::Serving as i32,
    };
    assert_eq!(enc(&hc), [0x08, 0x01]);
}

#[test]
fn internal_request_layout() {
    let r = capstanpb::InternalRequest {
        id: 1,
        origin_shard: 2,
        proposer_incarnation: 3,
        request: Some(capstanpb::internal_request::Request::Put(PutRequest {
            key: b("k"),
            ..Default::default()
        })),
    };
    assert_eq!(
        enc(&r),
        [0x08, 0x01, 0x10, 0x02, 0x18, 0x03, 0x52, 0x03, 0x0a, 0x01, b'k']
    );
    let tags = [
        (
            capstanpb::internal_request::Request::DeleteRange(Default::default()),
            0x5a,
        ),
        (
            capstanpb::internal_request::Request::Txn(Default::default()),
            0x62,
        ),
        (
            capstanpb::internal_request::Request::Compaction(Default::default()),
            0x6a,
        ),
    ];
    for (req, tag) in tags {
        let r = capstanpb::InternalRequest {
            request: Some(req),
            ..Default::default()
        };
        assert_eq!(enc(&r), [tag, 0x00]);
    }
    // Field 19 needs a two-byte tag: (19 << 3) | 2 = 154 = varint [0x9a, 0x01].
    let alarm = capstanpb::InternalRequest {
        request: Some(capstanpb::internal_request::Request::Alarm(
            Default::default(),
        )),
        ..Default::default()
    };
    assert_eq!(enc(&alarm), [0x9a, 0x01, 0x00]);
}

#[test]
fn method_paths() {
    assert_eq!(method::KV_RANGE, "/etcdserverpb.KV/Range");
    assert_eq!(method::KV_RANGE_STREAM, "/etcdserverpb.KV/RangeStream");
    assert_eq!(method::WATCH_WATCH, "/etcdserverpb.Watch/Watch");
    assert_eq!(method::LOCK_LOCK, "/v3lockpb.Lock/Lock");
    assert_eq!(method::HEALTH_CHECK, "/grpc.health.v1.Health/Check");
    // 6 KV + 1 Watch + 5 Lease + 5 Cluster + 8 Maintenance + 17 Auth + 2 Lock + 5 Election + 2 Health
    assert_eq!(method::ALL.len(), 51);
    let mut seen = std::collections::HashSet::new();
    for m in method::ALL {
        assert!(seen.insert(*m), "duplicate {m}");
        let rest = m.strip_prefix('/').expect("leading slash");
        let (svc, rpc) = rest.split_once('/').expect("service/method");
        assert!(svc.contains('.') && !rpc.is_empty() && !rpc.contains('/'));
    }
}
