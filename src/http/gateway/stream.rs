//! The gateway's streaming calls, as grpc-gateway v1 streams them: status 200, chunked, one
//! piece per response message, `{"result":MESSAGE}` and a newline; a failure after the first
//! message adds one `{"error":{…}}` piece and ends the stream.
//!
//! The request side is the body, read whole before the call starts: a sequence of JSON
//! request messages (etcd3gw and curl send one). A first message that cannot be decoded is
//! grpc-gateway's 500 (`Unknown`); a later one ends the requests, as grpc-gateway stops
//! sending at the first bad one. A Watch stays open after its requests, until the client goes
//! away (as etcd keeps watchers when the client half-closes); LeaseKeepAlive answers each of
//! its requests and ends; Snapshot and Observe run as on the gRPC port.
//!
//! Each call is written as plain async code that hands pieces to a [`PieceSink`]; [`generate`]
//! turns it into the body's stream. The code runs only while the connection pulls pieces, so
//! a client that stops reading stops it (the watch hub then holds its events in the stream's
//! bounded outbox, or lets the watcher catch up from history, as for a slow gRPC client), and
//! dropping the stream when the client goes away drops the call and closes its watchers.

use super::call::CallOptions;
use super::codec;
use super::errors::{self, APPLICATION_JSON};
use super::observe::observe_leader;
use crate::grpc::routes::leader_lost;
use crate::grpc::{Code, Status};
use crate::http::Response;
use crate::server::snapshot::snapshot_responses;
use crate::shard::ShardContext;
use crate::watch::StreamId;
use capstan_proto::etcdserverpb::watch_request::RequestUnion;
use capstan_proto::etcdserverpb::{
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, SnapshotRequest, WatchRequest,
};
use capstan_proto::v3electionpb::LeaderRequest;
use futures::channel::mpsc;
use futures::stream::{LocalBoxStream, StreamExt};
use futures::SinkExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::rc::Rc;

/// Pieces written ahead of the connection (the rest waits in the call).
const PIECES_AHEAD: usize = 1;

/// Where a streaming call writes its messages.
pub struct PieceSink {
    pieces: mpsc::Sender<Vec<u8>>,
}

/// The client is gone: the call should end.
#[derive(Debug)]
pub struct ClientGone;

impl PieceSink {
    /// Sends `message` as `{"result":…}` and a newline.
    pub async fn result<Message: Serialize>(
        &mut self,
        message: &Message,
    ) -> Result<(), ClientGone> {
        let json = codec::encode(message);
        let mut piece = Vec::with_capacity(json.len() + 12);
        piece.extend_from_slice(b"{\"result\":");
        piece.extend_from_slice(&json);
        piece.extend_from_slice(b"}\n");
        self.pieces.send(piece).await.map_err(|_| ClientGone)
    }

    /// Sends the failure that ends the call.
    pub async fn error(&mut self, status: &Status) {
        let _gone = self.pieces.send(errors::stream_error_piece(status)).await;
    }
}

/// The stream of pieces `call` sends to its sink; `call` runs as the stream is polled and is
/// dropped with it.
pub fn generate<Work>(call: impl FnOnce(PieceSink) -> Work) -> LocalBoxStream<'static, Vec<u8>>
where
    Work: Future<Output = ()> + 'static,
{
    let (sender, receiver) = mpsc::channel(PIECES_AHEAD);
    let running = futures::stream::once(call(PieceSink { pieces: sender }))
        .filter_map(|()| async { None::<Vec<u8>> });
    futures::stream::select(receiver, running).boxed_local()
}

/// A streamed answer.
fn streamed(pieces: LocalBoxStream<'static, Vec<u8>>) -> Response {
    Response::new(200)
        .with_header("Content-Type", APPLICATION_JSON)
        .with_header("Grpc-Metadata-Content-Type", "application/grpc")
        .with_chunked_body(pieces, Vec::new())
}

/// The requests of a stream's body, or the answer when there is none to run.
fn requests<Req: DeserializeOwned + Default + prost::Message>(
    body: &[u8],
    options: CallOptions,
) -> Result<Vec<Req>, Response> {
    let (mut requests, error) = codec::decode_stream::<Req>(body);
    if let (true, Some(error)) = (requests.is_empty(), error) {
        return Err(errors::from_gateway(&Status::new(Code::Unknown, error)));
    }
    if let Some(index) = requests
        .iter()
        .position(|request| options.refuse_size(request.encoded_len()).is_some())
    {
        if index == 0 {
            let size = requests[0].encoded_len();
            let status = options
                .refuse_size(size)
                .unwrap_or_else(|| Status::new(Code::Unknown, ""));
            return Err(errors::from_server(&status));
        }
        requests.truncate(index);
    }
    Ok(requests)
}

/// Closes the hub stream of a gateway Watch however the call ends.
struct OpenWatch {
    context: Rc<ShardContext>,
    stream: StreamId,
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.context
            .watch_hub
            .borrow_mut()
            .close_stream(self.stream);
    }
}

/// `Watch.Watch`: the body's create, cancel and progress requests go to the shard's watch
/// hub, as a gRPC stream's do; every response the hub queues becomes a piece.
pub fn watch(context: Rc<ShardContext>, body: &[u8], options: CallOptions) -> Response {
    let requests = match requests::<WatchRequest>(body, options) {
        Ok(requests) => requests,
        Err(answer) => return answer,
    };
    streamed(generate(move |mut sink| async move {
        let (stream, outbox) = context.watch_hub.borrow_mut().open_stream();
        let _open = OpenWatch {
            context: context.clone(),
            stream,
        };
        for request in requests {
            let view = context.read_view.load();
            let mut hub = context.watch_hub.borrow_mut();
            match request.request_union {
                Some(RequestUnion::CreateRequest(create)) => hub.create(stream, &create, &view),
                Some(RequestUnion::CancelRequest(cancel)) => {
                    hub.cancel(stream, cancel.watch_id, &view)
                }
                Some(RequestUnion::ProgressRequest(_)) => hub.request_progress(stream),
                None => {}
            }
        }
        let sending = async {
            while let Some(response) = outbox.pop().await {
                if sink.result(&response).await.is_err() {
                    return None;
                }
            }
            None
        };
        let lost = async { Some(leader_lost(&context, options.require_leader).await) };
        if let Some(status) = futures_lite::future::or(sending, lost).await {
            sink.error(&status).await;
        }
    }))
}

/// `Lease.LeaseKeepAlive`: one answer per request in the body, then the end.
pub fn keep_alive(context: Rc<ShardContext>, body: &[u8], options: CallOptions) -> Response {
    let requests = match requests::<LeaseKeepAliveRequest>(body, options) {
        Ok(requests) => requests,
        Err(answer) => return answer,
    };
    streamed(generate(move |mut sink| async move {
        for request in requests {
            let ttl = match context.owner.lease_keep_alive(request.id).await {
                Ok(ttl) => ttl,
                Err(error) => return sink.error(&Status::from(error)).await,
            };
            let revision = context.read_view.load().current_revision();
            let response = LeaseKeepAliveResponse {
                header: Some(context.header(revision, context.raft_status.term())),
                id: request.id,
                ttl,
            };
            if sink.result(&response).await.is_err() {
                return;
            }
        }
    }))
}

/// `Maintenance.Snapshot`: the backup of one read view, in the same answers as on the gRPC
/// port.
pub fn snapshot(context: Rc<ShardContext>, body: &[u8], options: CallOptions) -> Response {
    if let Err(answer) = requests::<SnapshotRequest>(body, options) {
        return answer;
    }
    streamed(generate(move |mut sink| async move {
        for response in snapshot_responses(context.snapshot_archive().await) {
            if sink.result(&response).await.is_err() {
                return;
            }
        }
    }))
}

/// `Election.Observe`: the leader of the first request's election, then every change.
pub fn observe(context: Rc<ShardContext>, body: &[u8], options: CallOptions) -> Response {
    let request = match requests::<LeaderRequest>(body, options) {
        Ok(requests) => requests.into_iter().next(),
        Err(answer) => return answer,
    };
    streamed(generate(move |mut sink| async move {
        let Some(request) = request else {
            return;
        };
        let observing = observe_leader(&context, &request.name, &mut sink);
        let lost = async { Err(leader_lost(&context, options.require_leader).await) };
        let outcome = futures_lite::future::or(observing, lost).await;
        if let Err(status) = outcome {
            sink.error(&status).await;
        }
    }))
}
