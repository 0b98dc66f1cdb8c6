//! Errors of the service layer. `crate::grpc::status` is the only place that turns them into
//! gRPC codes and etcd's message strings.

use crate::membership::MembershipError;
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
    #[error(transparent)]
    Membership(#[from] MembershipError),
    /// The leadership a proposal was made under ended before it applied: it may or may not
    /// take effect (etcd's ErrTimeoutDueToLeaderFail). Never a definite "did not happen".
    #[error("request timed out, possibly due to previous leader failure")]
    TimedOutDueToLeaderFail,
    /// MemberAdd on a member that runs alone without a peer listener: the new member could
    /// never be reached, and a second voter would stop every write.
    #[error("no peer listener")]
    NoPeerListener,
    /// MoveLeader to a member that is not a voter (or not a member).
    #[error("bad leader transferee")]
    BadLeaderTransferee,
    /// A status decided elsewhere (the leader's answer to a forwarded request).
    #[error("{message}")]
    Remote { code: u32, message: String },
    /// A Lock's own key was gone once its turn came (its lease expired while it waited).
    #[error("mutex: session is expired")]
    SessionExpired,
    /// Proclaim on a key that no longer has the leader's create revision.
    #[error("election: not leader")]
    ElectionNotLeader,
    /// Leader on an election without candidates.
    #[error("election: no leader")]
    ElectionNoLeader,
    /// Proclaim or Resign without a `leader`.
    #[error("\"leader\" field must be provided")]
    MissingLeaderKey,
}
