//! Errors of the service layer. `crate::grpc::status` is the only place that turns them into
//! gRPC codes and etcd's message strings.

use crate::mvcc::MvccError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Mvcc(#[from] MvccError),
    #[error("request is too large")]
    RequestTooLarge,
    #[error("request timed out")]
    TimedOut,
    #[error("server stopped")]
    Stopped,
    #[error("no leader")]
    NoLeader,
    /// A leader-only operation reached a follower (etcd's ErrGRPCNotLeader).
    #[error("not leader")]
    NotLeader,
    #[error("too large lease TTL")]
    LeaseTtlTooLarge,
}
