//! Request builders shared by the tests.

use bytes::Bytes;
use capstan_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use capstan_proto::etcdserverpb::{
    request_op::Request, response_op::Response, CompactionRequest, Compare, DeleteRangeRequest,
    LeaseGrantRequest, LeaseRevokeRequest, PutRequest, RangeRequest, RangeResponse, RequestOp,
    TxnRequest, TxnResponse,
};
use capstan_proto::mvccpb::KeyValue;

use crate::mvcc::{Applied, KvStore, WriteRequest, WriteResponse};

pub fn bytes(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

pub fn put_request(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: bytes(key),
        value: bytes(value),
        ..PutRequest::default()
    }
}

pub fn leased_put_request(key: &str, value: &str, lease: i64) -> PutRequest {
    PutRequest {
        lease,
        ..put_request(key, value)
    }
}

pub fn grant_request(id: i64, ttl: i64) -> WriteRequest {
    WriteRequest::LeaseGrant(LeaseGrantRequest { ttl, id })
}

pub fn revoke_request(id: i64) -> WriteRequest {
    WriteRequest::LeaseRevoke(LeaseRevokeRequest { id })
}

pub fn range_request(key: &str, range_end: &str) -> RangeRequest {
    RangeRequest {
        key: bytes(key),
        range_end: bytes(range_end),
        ..RangeRequest::default()
    }
}

pub fn delete_request(key: &str, range_end: &str) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: bytes(key),
        range_end: bytes(range_end),
        ..DeleteRangeRequest::default()
    }
}

pub fn compaction_request(revision: i64) -> WriteRequest {
    WriteRequest::Compaction(CompactionRequest {
        revision,
        physical: false,
    })
}

pub fn put_op(key: &str, value: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestPut(put_request(key, value))),
    }
}

pub fn range_op(key: &str, range_end: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestRange(range_request(key, range_end))),
    }
}

pub fn delete_op(key: &str, range_end: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestDeleteRange(delete_request(key, range_end))),
    }
}

pub fn txn_op(txn: TxnRequest) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestTxn(txn)),
    }
}

pub fn txn(compare: Vec<Compare>, success: Vec<RequestOp>, failure: Vec<RequestOp>) -> TxnRequest {
    TxnRequest {
        compare,
        success,
        failure,
    }
}

pub fn compare_number(
    key: &str,
    target: CompareTarget,
    result: CompareResult,
    number: i64,
) -> Compare {
    let target_union = match target {
        CompareTarget::Version => TargetUnion::Version(number),
        CompareTarget::Create => TargetUnion::CreateRevision(number),
        CompareTarget::Mod => TargetUnion::ModRevision(number),
        CompareTarget::Lease => TargetUnion::Lease(number),
        CompareTarget::Value => TargetUnion::Value(bytes(&number.to_string())),
    };
    Compare {
        result: result as i32,
        target: target as i32,
        key: bytes(key),
        range_end: Bytes::new(),
        target_union: Some(target_union),
    }
}

pub fn compare_value(key: &str, result: CompareResult, value: &str) -> Compare {
    Compare {
        result: result as i32,
        target: CompareTarget::Value as i32,
        key: bytes(key),
        range_end: Bytes::new(),
        target_union: Some(TargetUnion::Value(bytes(value))),
    }
}

/// Applies a plain put, panicking on failure (test setup only).
pub fn put(store: &mut KvStore, key: &str, value: &str) -> Applied {
    store
        .apply(&WriteRequest::Put(put_request(key, value)))
        .expect("test put")
}

/// Applies a put with a lease, panicking on failure (test setup only).
pub fn leased_put(store: &mut KvStore, key: &str, value: &str, lease: i64) -> Applied {
    store
        .apply(&WriteRequest::Put(leased_put_request(key, value, lease)))
        .expect("test leased put")
}

/// Grants a lease, panicking on failure (test setup only).
pub fn grant(store: &mut KvStore, id: i64, ttl: i64) {
    store.apply(&grant_request(id, ttl)).expect("test grant");
}

/// Keys attached to lease `id`, as strings; `None` if it does not exist.
pub fn lease_keys(store: &KvStore, id: i64) -> Option<Vec<String>> {
    store.lease(id).map(|lease| {
        lease
            .keys
            .iter()
            .map(|key| String::from_utf8_lossy(key).into_owned())
            .collect()
    })
}

/// Applies a delete, panicking on failure (test setup only).
pub fn delete(store: &mut KvStore, key: &str, range_end: &str) -> Applied {
    store
        .apply(&WriteRequest::DeleteRange(delete_request(key, range_end)))
        .expect("test delete")
}

/// Applies a txn, panicking on failure, and returns its response.
pub fn apply_txn(store: &mut KvStore, request: TxnRequest) -> TxnResponse {
    match store
        .apply(&WriteRequest::Txn(request))
        .expect("test txn")
        .response
    {
        WriteResponse::Txn(response) => response,
        other => panic!("expected a txn response, got {other:?}"),
    }
}

/// `(key, value)` pairs of a range response, as strings.
pub fn pairs(response: &RangeResponse) -> Vec<(String, String)> {
    response.kvs.iter().map(pair).collect()
}

pub fn pair(kv: &KeyValue) -> (String, String) {
    (
        String::from_utf8_lossy(&kv.key).into_owned(),
        String::from_utf8_lossy(&kv.value).into_owned(),
    )
}

pub fn owned_pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

/// The range response nested in a txn response op.
pub fn nested_range(response: &TxnResponse, index: usize) -> &RangeResponse {
    match response
        .responses
        .get(index)
        .and_then(|op| op.response.as_ref())
    {
        Some(Response::ResponseRange(range)) => range,
        other => panic!("expected a range response, got {other:?}"),
    }
}
