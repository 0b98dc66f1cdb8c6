//! Errors of the MVCC state machine and of request validation.
//!
//! Every message is etcd's own text (`mvcc.ErrCompacted`, `rpctypes.ErrGRPC*`,
//! `lease.ErrLeaseNotFound`) so clients that match on strings keep working.

/// Why a read, a write or a request check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MvccError {
    /// The requested revision is older than the last compaction.
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    /// The requested revision has not been written yet.
    #[error("mvcc: required revision is a future revision")]
    FutureRevision,
    /// `ignore_value`/`ignore_lease` on a missing key, or an empty `RequestOp`.
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// `ignore_value` together with a non-empty value.
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// `ignore_lease` together with a non-zero lease.
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// The put or revoke names a lease that does not exist (or a grant names
    /// lease 0).
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// A grant names a lease that already exists.
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    /// A request (or a txn compare) with an empty key.
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    /// More compares, success ops or failure ops than the configured maximum.
    #[error("etcdserver: too many operations in txn request")]
    TooManyTxnOps,
    /// A txn writes one key twice (put/put or put/delete overlap).
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// The write would grow the store while the NOSPACE alarm is raised, or beyond the
    /// member's `--quota-backend-bytes` (etcd's `ErrNoSpace`).
    #[error("mvcc: database space exceeded")]
    NoSpace,
    /// A write while the CORRUPT alarm is raised (etcd's `ErrCorrupt`).
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
}

impl MvccError {
    /// The gRPC status code etcd answers with (`rpctypes` / `togRPCError`):
    /// 11 OUT_OF_RANGE, 3 INVALID_ARGUMENT, 5 NOT_FOUND, 9 FAILED_PRECONDITION,
    /// 8 RESOURCE_EXHAUSTED, 15 DATA_LOSS.
    pub fn grpc_code(&self) -> i32 {
        const INVALID_ARGUMENT: i32 = 3;
        const NOT_FOUND: i32 = 5;
        const RESOURCE_EXHAUSTED: i32 = 8;
        const FAILED_PRECONDITION: i32 = 9;
        const OUT_OF_RANGE: i32 = 11;
        const DATA_LOSS: i32 = 15;
        match self {
            MvccError::NoSpace => RESOURCE_EXHAUSTED,
            MvccError::Corrupt => DATA_LOSS,
            MvccError::Compacted | MvccError::FutureRevision => OUT_OF_RANGE,
            MvccError::LeaseNotFound => NOT_FOUND,
            MvccError::LeaseExists => FAILED_PRECONDITION,
            MvccError::KeyNotFound
            | MvccError::ValueProvided
            | MvccError::LeaseProvided
            | MvccError::EmptyKey
            | MvccError::TooManyTxnOps
            | MvccError::DuplicateKey => INVALID_ARGUMENT,
        }
    }
}
