//! Why a membership change was refused (etcd's errors; `grpc::status` has the strings).

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    #[error("member ID already exist")]
    IdExists,
    #[error("Peer URLs already exists")]
    PeerUrlExists,
    #[error("given member URLs are invalid")]
    BadUrls,
    #[error("member not found")]
    NotFound,
    #[error("re-configuration failed due to not enough started members")]
    NotEnoughStarted,
    #[error("unhealthy cluster")]
    Unhealthy,
    #[error("can only promote a learner member")]
    NotLearner,
    #[error("can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    #[error("too many learner members in cluster")]
    TooManyLearners,
    #[error("rpc not supported for learner")]
    NotSupportedForLearner,
}
