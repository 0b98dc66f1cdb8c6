//! A small gRPC client on `h2`: unary calls and bidirectional streams, nothing else.
//!
//! A call is one HTTP/2 stream: `POST /package.Service/Method` with `content-type:
//! application/grpc` and `te: trailers`; each message travels with a 5-byte prefix (a
//! compression flag that must be 0, then the length as a big-endian u32) ([`frame`]). The
//! outcome is the `grpc-status` trailer, or the same header in a trailers-only answer; anything
//! but 0 is a [`CallError::Status`] ([`status`]).

pub mod channel;
pub mod frame;
pub mod status;
pub mod stream;

pub use channel::Channel;
pub use status::{code_name, CallError, CODE_UNIMPLEMENTED};
pub use stream::{StreamReceiver, StreamSender};
