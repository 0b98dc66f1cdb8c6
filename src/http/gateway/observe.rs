//! `Election.Observe` for the gateway: the same rounds as `server::election`'s Observe (find
//! the oldest key under `name/` or wait for the first put, send it, send its new values until
//! it is deleted, start over), written to a [`PieceSink`] instead of a gRPC stream.

use super::stream::PieceSink;
use crate::grpc::Status;
use crate::server::recipe::{first_created, header_revision, key_prefix, prefix_end};
use crate::shard::ShardContext;
use crate::watch::InternalWatch;
use bytes::Bytes;
use capstan_proto::etcdserverpb::{watch_create_request, ResponseHeader, WatchCreateRequest};
use capstan_proto::mvccpb::{event::EventType, KeyValue};
use capstan_proto::v3electionpb::LeaderResponse;

/// Observes the election `name` until the client goes away (`Ok`) or a read fails.
pub async fn observe_leader(
    context: &ShardContext,
    name: &[u8],
    sink: &mut PieceSink,
) -> Result<(), Status> {
    let prefix = key_prefix(name);
    loop {
        let leader = context
            .range(first_created(&prefix))
            .await
            .map_err(Status::through_embedded_client)?;
        let read_revision = header_revision(&leader.header);
        let (header, kv) = match leader.kvs.into_iter().next() {
            Some(kv) => (leader.header, kv),
            None => match first_put(context, &prefix, read_revision).await {
                Some(found) => found,
                None => continue,
            },
        };
        let key = kv.key.clone();
        let revision = header_revision(&header);
        let response = LeaderResponse {
            header,
            kv: Some(kv),
        };
        if sink.result(&response).await.is_err() {
            return Ok(());
        }
        match follow_leader(context, &key, revision, sink).await {
            Following::Deleted => {}
            Following::ClientGone => return Ok(()),
        }
    }
}

/// The first key put under `prefix` after `revision`, with the watch response's header at
/// that put's revision; `None` if the watcher ended.
async fn first_put(
    context: &ShardContext,
    prefix: &Bytes,
    revision: i64,
) -> Option<(Option<ResponseHeader>, KeyValue)> {
    let request = WatchCreateRequest {
        key: prefix.clone(),
        range_end: prefix_end(prefix),
        start_revision: revision + 1,
        filters: vec![watch_create_request::FilterType::Nodelete as i32],
        ..WatchCreateRequest::default()
    };
    let view = context.read_view.load_full();
    let mut watch = InternalWatch::open(&context.watch_hub, &request, &view);
    drop(view);
    let response = watch.next_events().await?;
    let kv = response.events.into_iter().next()?.kv?;
    let header = response.header.map(|header| ResponseHeader {
        revision: kv.mod_revision,
        ..header
    });
    Some((header, kv))
}

enum Following {
    /// The leader's key was deleted (or the watcher ended): read the leader again.
    Deleted,
    ClientGone,
}

/// Sends every put on the leader's `key` after `revision`.
async fn follow_leader(
    context: &ShardContext,
    key: &Bytes,
    revision: i64,
    sink: &mut PieceSink,
) -> Following {
    let request = WatchCreateRequest {
        key: key.clone(),
        start_revision: revision + 1,
        ..WatchCreateRequest::default()
    };
    let view = context.read_view.load_full();
    let mut watch = InternalWatch::open(&context.watch_hub, &request, &view);
    drop(view);
    while let Some(response) = watch.next_events().await {
        for event in response.events {
            if event.r#type == EventType::Delete as i32 {
                return Following::Deleted;
            }
            let leader = LeaderResponse {
                header: response.header,
                kv: event.kv,
            };
            if sink.result(&leader).await.is_err() {
                return Following::ClientGone;
            }
        }
    }
    Following::Deleted
}
