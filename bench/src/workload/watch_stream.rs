//! One `Watch/Watch` stream: create watchers on it, one at a time or all at once.

use crate::grpc::{CallError, Channel, StreamReceiver, StreamSender};
use bytes::Bytes;
use capstan_proto::etcdserverpb::{watch_request, WatchCreateRequest, WatchRequest, WatchResponse};
use capstan_proto::method::WATCH_WATCH;

pub type WatchSender = StreamSender<WatchRequest>;
pub type WatchReceiver = StreamReceiver<WatchResponse>;

/// Opens a watch stream on `channel`.
pub async fn open(channel: &Channel) -> Result<(WatchSender, WatchReceiver), CallError> {
    channel.open_stream(WATCH_WATCH).await
}

/// A create request for `key` (one key), from `start_revision` (0: from now).
pub fn create_request(key: &Bytes, start_revision: i64, prev_kv: bool) -> WatchRequest {
    WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: key.clone(),
                start_revision,
                prev_kv,
                ..Default::default()
            },
        )),
    }
}

/// Reads until the server confirms a watcher was created; returns its id. Nothing else may
/// be arriving on the stream meanwhile (no writes to watched keys during creation).
pub async fn wait_created(receiver: &mut WatchReceiver) -> Result<i64, CallError> {
    loop {
        let Some(response) = receiver.message().await? else {
            return Err(CallError::Protocol(
                "watch stream ended before the watcher was created".to_string(),
            ));
        };
        if response.canceled {
            return Err(CallError::Protocol(format!(
                "watch create refused: {}",
                response.cancel_reason
            )));
        }
        if response.created {
            return Ok(response.watch_id);
        }
    }
}
