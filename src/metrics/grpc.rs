//! go-grpc-prometheus's server series: one row per method, labelled `grpc_type`,
//! `grpc_service`, `grpc_method` (and `grpc_code` for `grpc_server_handled_total`).
//!
//! The methods are a fixed table, so a call finds its row once, by path, and counts into a
//! fixed array: no map, no label strings on the hot path. etcd pre-registers every method of
//! its own services (go-grpc-prometheus's `Register`), so their rows are exported at zero;
//! the lock and election services are registered after that in etcd, so their rows appear once
//! used. Codes are named as grpc-go's `codes.Code.String()` does.

use super::cells::{HistogramCells, Tally, DEFAULT_BUCKETS_SECONDS};
use capstan_proto::method;
use std::collections::HashMap;
use std::sync::OnceLock;

/// `grpc_type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallType {
    Unary,
    ServerStream,
    BidiStream,
}

impl CallType {
    pub fn label(self) -> &'static str {
        match self {
            CallType::Unary => "unary",
            CallType::ServerStream => "server_stream",
            CallType::BidiStream => "bidi_stream",
        }
    }
}

/// One row of the method table.
#[derive(Debug, Clone, Copy)]
pub struct MethodInfo {
    pub path: &'static str,
    pub call_type: CallType,
    /// etcd exports the row at zero before any call.
    pub preregistered: bool,
}

impl MethodInfo {
    /// (`grpc_service`, `grpc_method`) from `/service/method`.
    pub fn service_and_method(&self) -> (&'static str, &'static str) {
        let trimmed = self.path.trim_start_matches('/');
        trimmed.split_once('/').unwrap_or((trimmed, ""))
    }
}

const fn row(path: &'static str, call_type: CallType, preregistered: bool) -> MethodInfo {
    MethodInfo {
        path,
        call_type,
        preregistered,
    }
}

use CallType::{BidiStream, ServerStream, Unary};

/// Every method with a row: etcd 3.6's (44, with `grpc.health.v1.Health/List`), then the lock
/// and election services.
pub const METHODS: [MethodInfo; 51] = [
    row(method::KV_RANGE, Unary, true),
    row(method::KV_PUT, Unary, true),
    row(method::KV_DELETE_RANGE, Unary, true),
    row(method::KV_TXN, Unary, true),
    row(method::KV_COMPACT, Unary, true),
    row(method::WATCH_WATCH, BidiStream, true),
    row(method::LEASE_LEASE_GRANT, Unary, true),
    row(method::LEASE_LEASE_REVOKE, Unary, true),
    row(method::LEASE_LEASE_KEEP_ALIVE, BidiStream, true),
    row(method::LEASE_LEASE_TIME_TO_LIVE, Unary, true),
    row(method::LEASE_LEASE_LEASES, Unary, true),
    row(method::CLUSTER_MEMBER_ADD, Unary, true),
    row(method::CLUSTER_MEMBER_REMOVE, Unary, true),
    row(method::CLUSTER_MEMBER_UPDATE, Unary, true),
    row(method::CLUSTER_MEMBER_LIST, Unary, true),
    row(method::CLUSTER_MEMBER_PROMOTE, Unary, true),
    row(method::MAINTENANCE_ALARM, Unary, true),
    row(method::MAINTENANCE_STATUS, Unary, true),
    row(method::MAINTENANCE_DEFRAGMENT, Unary, true),
    row(method::MAINTENANCE_HASH, Unary, true),
    row(method::MAINTENANCE_HASH_KV, Unary, true),
    row(method::MAINTENANCE_SNAPSHOT, ServerStream, true),
    row(method::MAINTENANCE_MOVE_LEADER, Unary, true),
    row(method::MAINTENANCE_DOWNGRADE, Unary, true),
    row(method::AUTH_AUTH_ENABLE, Unary, true),
    row(method::AUTH_AUTH_DISABLE, Unary, true),
    row(method::AUTH_AUTH_STATUS, Unary, true),
    row(method::AUTH_AUTHENTICATE, Unary, true),
    row(method::AUTH_USER_ADD, Unary, true),
    row(method::AUTH_USER_GET, Unary, true),
    row(method::AUTH_USER_LIST, Unary, true),
    row(method::AUTH_USER_DELETE, Unary, true),
    row(method::AUTH_USER_CHANGE_PASSWORD, Unary, true),
    row(method::AUTH_USER_GRANT_ROLE, Unary, true),
    row(method::AUTH_USER_REVOKE_ROLE, Unary, true),
    row(method::AUTH_ROLE_ADD, Unary, true),
    row(method::AUTH_ROLE_GET, Unary, true),
    row(method::AUTH_ROLE_LIST, Unary, true),
    row(method::AUTH_ROLE_DELETE, Unary, true),
    row(method::AUTH_ROLE_GRANT_PERMISSION, Unary, true),
    row(method::AUTH_ROLE_REVOKE_PERMISSION, Unary, true),
    row(method::HEALTH_CHECK, Unary, true),
    row("/grpc.health.v1.Health/List", Unary, true),
    row(method::HEALTH_WATCH, ServerStream, true),
    row(method::LOCK_LOCK, Unary, false),
    row(method::LOCK_UNLOCK, Unary, false),
    row(method::ELECTION_CAMPAIGN, Unary, false),
    row(method::ELECTION_PROCLAIM, Unary, false),
    row(method::ELECTION_LEADER, Unary, false),
    row(method::ELECTION_OBSERVE, ServerStream, false),
    row(method::ELECTION_RESIGN, Unary, false),
];

/// The number of gRPC status codes (0 OK to 16 Unauthenticated).
pub const CODE_COUNT: usize = 17;

/// grpc-go's names of the codes, by number.
pub const CODE_NAMES: [&str; CODE_COUNT] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// A row of [`METHODS`]: what a call carries to count itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodId(pub(super) u8);

impl MethodId {
    /// The row of `path`; `None` for a path with no row (an unknown method).
    pub fn of_path(path: &str) -> Option<MethodId> {
        static INDEX: OnceLock<HashMap<&'static str, u8>> = OnceLock::new();
        let index = INDEX.get_or_init(|| {
            METHODS
                .iter()
                .enumerate()
                .map(|(row, info)| (info.path, row as u8))
                .collect()
        });
        index.get(path).copied().map(MethodId)
    }

    pub fn info(self) -> &'static MethodInfo {
        &METHODS[usize::from(self.0)]
    }
}

/// One thread's counts for one method.
#[derive(Debug, Default)]
pub struct MethodCells {
    pub started: Tally,
    pub handled: [Tally; CODE_COUNT],
    pub received_messages: Tally,
    pub sent_messages: Tally,
    /// `grpc_server_handling_seconds`, only with `--metrics extensive`.
    pub handling_seconds: HistogramCells,
}

/// The bucket of `seconds` in Go's default buckets (`DEFAULT_BUCKETS_SECONDS.len()` for +Inf).
pub fn default_bucket_of(seconds: f64) -> usize {
    DEFAULT_BUCKETS_SECONDS
        .iter()
        .position(|bound| seconds <= *bound)
        .unwrap_or(DEFAULT_BUCKETS_SECONDS.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_is_found_by_its_path() {
        for (row, info) in METHODS.iter().enumerate() {
            assert_eq!(MethodId::of_path(info.path), Some(MethodId(row as u8)));
        }
        assert_eq!(MethodId::of_path("/etcdserverpb.KV/Nope"), None);
        let (service, method) = METHODS[0].service_and_method();
        assert_eq!((service, method), ("etcdserverpb.KV", "Range"));
        assert_eq!(METHODS.iter().filter(|info| info.preregistered).count(), 44);
    }
}
