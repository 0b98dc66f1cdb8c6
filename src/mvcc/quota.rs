//! What a write costs against the space quota (etcd's `storage/quota.go`).
//!
//! The cost is etcd's estimate of what a request adds to the store: a put costs its key and
//! value plus a fixed per-KV overhead, a lease grant a fixed per-lease overhead, a txn the
//! puts of its costlier branch. Reads, deletes, compactions and revokes cost nothing, so they
//! are never refused for space. The same rule decides, while the NOSPACE alarm is raised,
//! which writes the apply step refuses (a txn is refused exactly when its cost is not 0).
//!
//! One deliberate difference: etcd 3.4 to 3.7 count only the puts directly in a txn's
//! branches, so a put inside a nested txn costs nothing and slips past the alarm; here nested
//! puts count too.

use capstan_proto::etcdserverpb::{request_op, PutRequest, RequestOp, TxnRequest};

/// etcd's `kvOverhead`: estimated bytes of one key's metadata.
pub const KV_OVERHEAD_BYTES: u64 = 256;
/// etcd's `leaseOverhead`: estimated bytes of one lease.
pub const LEASE_OVERHEAD_BYTES: u64 = 64;
/// etcd's default `--quota-backend-bytes` (used when the flag is 0): 2 GiB.
pub const QUOTA_BACKEND_BYTES_DEFAULT: u64 = 2 * 1024 * 1024 * 1024;

/// etcd's `costPut`.
pub fn put_cost_bytes(put: &PutRequest) -> u64 {
    KV_OVERHEAD_BYTES + put.key.len() as u64 + put.value.len() as u64
}

/// etcd's `costTxn`: the puts of the success branch or of the failure branch, whichever
/// costs more (nested txns included, see the module doc).
pub fn txn_cost_bytes(txn: &TxnRequest) -> u64 {
    let branch = |ops: &[RequestOp]| -> u64 { ops.iter().map(op_cost_bytes).sum() };
    branch(&txn.success).max(branch(&txn.failure))
}

fn op_cost_bytes(op: &RequestOp) -> u64 {
    match &op.request {
        Some(request_op::Request::RequestPut(put)) => put_cost_bytes(put),
        Some(request_op::Request::RequestTxn(nested)) => txn_cost_bytes(nested),
        Some(request_op::Request::RequestRange(_))
        | Some(request_op::Request::RequestDeleteRange(_))
        | None => 0,
    }
}

/// A lease grant's cost.
pub fn lease_grant_cost_bytes() -> u64 {
    LEASE_OVERHEAD_BYTES
}

/// Whether a write of `cost_bytes` fits a store of `size_bytes` under `quota_bytes` (etcd's
/// `Available`: strictly below the quota after the write; a write that costs nothing always
/// fits).
pub fn fits_quota(size_bytes: u64, cost_bytes: u64, quota_bytes: u64) -> bool {
    cost_bytes == 0 || size_bytes.saturating_add(cost_bytes) < quota_bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use capstan_proto::etcdserverpb::DeleteRangeRequest;

    fn put(key: &str, value_bytes: usize) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: Bytes::from(key.to_string()),
                value: Bytes::from(vec![b'v'; value_bytes]),
                ..PutRequest::default()
            })),
        }
    }

    fn delete(key: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestDeleteRange(
                DeleteRangeRequest {
                    key: Bytes::from(key.to_string()),
                    ..DeleteRangeRequest::default()
                },
            )),
        }
    }

    #[test]
    fn a_txn_costs_its_costlier_branch() {
        let txn = TxnRequest {
            success: vec![put("a", 10), put("b", 0)],
            failure: vec![put("c", 100), delete("d")],
            ..TxnRequest::default()
        };
        assert_eq!(txn_cost_bytes(&txn), (256 + 1 + 10) + (256 + 1));
        let deletes_only = TxnRequest {
            success: vec![delete("a")],
            ..TxnRequest::default()
        };
        assert_eq!(txn_cost_bytes(&deletes_only), 0);
    }

    #[test]
    fn nested_puts_count() {
        let nested = TxnRequest {
            success: vec![put("n", 4)],
            ..TxnRequest::default()
        };
        let txn = TxnRequest {
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestTxn(nested)),
            }],
            ..TxnRequest::default()
        };
        assert_eq!(txn_cost_bytes(&txn), 256 + 1 + 4);
    }

    #[test]
    fn fitting_is_strictly_below_the_quota() {
        assert!(fits_quota(0, 99, 100));
        assert!(!fits_quota(1, 99, 100));
        assert!(fits_quota(1_000, 0, 100));
        // 100 GiB quotas work in 64-bit arithmetic.
        let hundred_gib = 100 * 1024 * 1024 * 1024;
        assert!(fits_quota(hundred_gib - 1_000, 999, hundred_gib));
        assert!(!fits_quota(hundred_gib - 1_000, 1_000, hundred_gib));
        assert!(!fits_quota(u64::MAX, 1, u64::MAX));
    }
}
