//! The one table from internal errors to gRPC status codes and etcd's exact message strings.
//! etcd's Go client maps errors back to typed errors by their message text, so every string
//! here is byte-for-byte etcd's (`api/v3rpc/rpctypes/error.go`).

use super::frame::FrameError;
use crate::membership::MembershipError;
use crate::mvcc::MvccError;
use crate::server::ServerError;

/// gRPC status codes (the numbering is part of the protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

/// A gRPC status: what goes into the `grpc-status` and `grpc-message` trailers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub message: String,
}

impl Code {
    /// The code with this number; `Unknown` for numbers outside gRPC's table.
    pub fn from_u32(number: u32) -> Code {
        const CODES: [Code; 17] = [
            Code::Ok,
            Code::Cancelled,
            Code::Unknown,
            Code::InvalidArgument,
            Code::DeadlineExceeded,
            Code::NotFound,
            Code::AlreadyExists,
            Code::PermissionDenied,
            Code::ResourceExhausted,
            Code::FailedPrecondition,
            Code::Aborted,
            Code::OutOfRange,
            Code::Unimplemented,
            Code::Internal,
            Code::Unavailable,
            Code::DataLoss,
            Code::Unauthenticated,
        ];
        CODES.get(number as usize).copied().unwrap_or(Code::Unknown)
    }
}

impl Status {
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status {
            code,
            message: message.into(),
        }
    }

    pub fn unimplemented(path: &str) -> Status {
        Status::new(
            Code::Unimplemented,
            format!("unknown method {path}: not implemented by this server"),
        )
    }

    pub fn deadline_exceeded() -> Status {
        Status::new(Code::DeadlineExceeded, "context deadline exceeded")
    }

    pub fn malformed_request(error: prost::DecodeError) -> Status {
        Status::new(
            Code::Internal,
            format!("grpc: error unmarshalling request: {error}"),
        )
    }

    /// etcd's lock and election services call the KV and lease APIs through an in-process
    /// client, which turns a failed call's status into a plain error carrying only its text;
    /// grpc-go then sends that as `Unknown` with the same message (e.g. "etcdserver: requested
    /// lease not found" from a Lock with a missing lease). A deadline stays a deadline.
    pub fn through_embedded_client(self) -> Status {
        match self.code {
            Code::DeadlineExceeded | Code::Cancelled => self,
            _ => Status::new(Code::Unknown, self.message),
        }
    }

    /// `grpc-message` is percent-encoded: bytes outside printable ASCII, and `%`, as `%XX`.
    pub fn encoded_message(&self) -> String {
        let mut out = String::with_capacity(self.message.len());
        for byte in self.message.bytes() {
            if (0x20..=0x7e).contains(&byte) && byte != b'%' {
                out.push(byte as char);
            } else {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
        out
    }
}

impl From<FrameError> for Status {
    fn from(error: FrameError) -> Status {
        match error {
            FrameError::TooLarge {
                declared_bytes,
                limit_bytes,
            } => Status::new(
                Code::ResourceExhausted,
                format!(
                    "grpc: received message larger than max ({declared_bytes} vs. {limit_bytes})"
                ),
            ),
            FrameError::Compressed => Status::new(
                Code::Unimplemented,
                "grpc: Decompressor is not installed for grpc-encoding",
            ),
            FrameError::Truncated => Status::new(
                Code::Internal,
                "grpc: stream ended in the middle of a message",
            ),
        }
    }
}

impl From<MvccError> for Status {
    fn from(error: MvccError) -> Status {
        let (code, message) = match error {
            MvccError::Compacted => (
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
            ),
            MvccError::FutureRevision => (
                Code::OutOfRange,
                "etcdserver: mvcc: required revision is a future revision",
            ),
            MvccError::KeyNotFound => (Code::InvalidArgument, "etcdserver: key not found"),
            MvccError::ValueProvided => (Code::InvalidArgument, "etcdserver: value is provided"),
            MvccError::LeaseProvided => (Code::InvalidArgument, "etcdserver: lease is provided"),
            MvccError::LeaseNotFound => (Code::NotFound, "etcdserver: requested lease not found"),
            MvccError::LeaseExists => {
                (Code::FailedPrecondition, "etcdserver: lease already exists")
            }
            MvccError::EmptyKey => (Code::InvalidArgument, "etcdserver: key is not provided"),
            MvccError::TooManyTxnOps => (
                Code::InvalidArgument,
                "etcdserver: too many operations in txn request",
            ),
            MvccError::DuplicateKey => (
                Code::InvalidArgument,
                "etcdserver: duplicate key given in txn request",
            ),
            MvccError::NoSpace => (
                Code::ResourceExhausted,
                "etcdserver: mvcc: database space exceeded",
            ),
            MvccError::Corrupt => (Code::DataLoss, "etcdserver: corrupt cluster"),
        };
        Status::new(code, message)
    }
}

impl From<MembershipError> for Status {
    fn from(error: MembershipError) -> Status {
        let code = match error {
            MembershipError::BadUrls => Code::InvalidArgument,
            MembershipError::NotFound => Code::NotFound,
            MembershipError::Unhealthy => Code::Unavailable,
            MembershipError::IdExists
            | MembershipError::PeerUrlExists
            | MembershipError::NotEnoughStarted
            | MembershipError::NotLearner
            | MembershipError::LearnerNotReady
            | MembershipError::TooManyLearners
            | MembershipError::NotSupportedForLearner => Code::FailedPrecondition,
        };
        Status::new(code, format!("etcdserver: {error}"))
    }
}

impl From<ServerError> for Status {
    fn from(error: ServerError) -> Status {
        match error {
            ServerError::Mvcc(error) => error.into(),
            ServerError::RequestTooLarge => {
                Status::new(Code::InvalidArgument, "etcdserver: request is too large")
            }
            ServerError::TimedOut => {
                Status::new(Code::Unavailable, "etcdserver: request timed out")
            }
            ServerError::Stopped => Status::new(Code::Unavailable, "etcdserver: server stopped"),
            ServerError::NoLeader => Status::new(Code::Unavailable, "etcdserver: no leader"),
            ServerError::NotLeader => {
                Status::new(Code::FailedPrecondition, "etcdserver: not leader")
            }
            ServerError::LeaseTtlTooLarge => {
                Status::new(Code::OutOfRange, "etcdserver: too large lease TTL")
            }
            ServerError::Membership(error) => error.into(),
            ServerError::BadLeaderTransferee => Status::new(
                Code::FailedPrecondition,
                "etcdserver: bad leader transferee",
            ),
            ServerError::TimedOutDueToLeaderFail => Status::new(
                Code::Unavailable,
                "etcdserver: request timed out, possibly due to previous leader failure",
            ),
            // Capstan's own: etcd always listens for peers (on localhost:2380 by default).
            ServerError::NoPeerListener => Status::new(
                Code::FailedPrecondition,
                "capstan: this member was started alone without --listen-peer-urls, so it \
                 listens for no peers; restart it with --listen-peer-urls to add members",
            ),
            ServerError::Remote { code, message } => Status::new(Code::from_u32(code), message),
            // The lock and election services' own errors are plain Go errors in etcd
            // (`concurrency`, `v3election`), which grpc-go sends as Unknown.
            ServerError::SessionExpired => Status::new(Code::Unknown, "mutex: session is expired"),
            ServerError::ElectionNotLeader => Status::new(Code::Unknown, "election: not leader"),
            ServerError::ElectionNoLeader => Status::new(Code::Unknown, "election: no leader"),
            ServerError::MissingLeaderKey => {
                Status::new(Code::Unknown, "\"leader\" field must be provided")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_percent_encoded() {
        let status = Status::new(Code::Internal, "a%b\nc é");
        assert_eq!(status.encoded_message(), "a%25b%0Ac %C3%A9");
    }

    #[test]
    fn etcd_strings_are_exact() {
        let status: Status = MvccError::Compacted.into();
        assert_eq!(status.code, Code::OutOfRange);
        assert_eq!(
            status.message,
            "etcdserver: mvcc: required revision has been compacted"
        );
        let status: Status = MvccError::NoSpace.into();
        assert_eq!(status.code, Code::ResourceExhausted);
        assert_eq!(status.message, "etcdserver: mvcc: database space exceeded");
        let status: Status = ServerError::RequestTooLarge.into();
        assert_eq!(status.message, "etcdserver: request is too large");
        // etcd's rpctypes.ErrGRPCTimeoutDueToLeaderFail: codes.Unavailable.
        let status: Status = ServerError::TimedOutDueToLeaderFail.into();
        assert_eq!(status.code, Code::Unavailable);
        assert_eq!(
            status.message,
            "etcdserver: request timed out, possibly due to previous leader failure"
        );
    }
}
