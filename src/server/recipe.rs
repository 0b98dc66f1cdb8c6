//! The steps the lock and election services share. etcd serves both through its Go client's
//! `concurrency` recipes; these are the same steps, run on the shard that holds the call:
//!
//! - a caller is a *session key* `name + "/" + hex(lease)`, created in one txn if absent;
//! - the holder (lock owner, election leader) is the key under `name/` with the lowest create
//!   revision;
//! - a caller waits its turn by waiting, one at a time, for the deletion of the newest key
//!   created before its own, until none is left;
//! - a call that ends while waiting (client cancel, deadline) deletes the key it queued, as
//!   etcd does when the waiting call's context is cancelled.

use crate::grpc::Status;
use crate::shard::ShardContext;
use crate::watch::InternalWatch;
use bytes::{Bytes, BytesMut};
use capstan_proto::etcdserverpb::{
    compare, range_request, request_op, response_op, watch_create_request, Compare,
    DeleteRangeRequest, LeaseGrantRequest, PutRequest, RangeRequest, RequestOp, ResponseHeader,
    TxnRequest, TxnResponse, WatchCreateRequest,
};
use capstan_proto::mvccpb::KeyValue;
use futures::channel::oneshot;
use std::rc::Rc;

/// TTL of the lease etcd grants when a Lock, Campaign or Proclaim names lease 0
/// (`concurrency.defaultSessionTTL`); it is never kept alive, so it expires after this long.
pub const DEFAULT_SESSION_TTL_SECONDS: i64 = 60;

/// `name + "/"`: every session key of the lock or election lives under it.
pub fn key_prefix(name: &[u8]) -> Bytes {
    let mut prefix = BytesMut::with_capacity(name.len() + 1);
    prefix.extend_from_slice(name);
    prefix.extend_from_slice(b"/");
    prefix.freeze()
}

/// The session key of `lease` under `prefix` (Go's `fmt.Sprintf("%s%x", prefix, lease)`).
pub fn session_key(prefix: &[u8], lease: i64) -> Bytes {
    let hex = if lease < 0 {
        format!("-{:x}", lease.unsigned_abs())
    } else {
        format!("{lease:x}")
    };
    let mut key = BytesMut::with_capacity(prefix.len() + hex.len());
    key.extend_from_slice(prefix);
    key.extend_from_slice(hex.as_bytes());
    key.freeze()
}

/// The end of the range of keys starting with `prefix` (clientv3's `GetPrefixRangeEnd`).
pub fn prefix_end(prefix: &[u8]) -> Bytes {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Bytes::from(end);
        }
    }
    // Only 0xff bytes (or nothing): every key from the prefix on.
    Bytes::from_static(b"\0")
}

/// `Compare(CreateRevision(key), "=", revision)`.
pub fn created_at(key: &Bytes, revision: i64) -> Compare {
    Compare {
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Create as i32,
        key: key.clone(),
        target_union: Some(compare::TargetUnion::CreateRevision(revision)),
        ..Compare::default()
    }
}

pub fn put_op(key: &Bytes, value: Bytes, lease: i64) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.clone(),
            value,
            lease,
            ..PutRequest::default()
        })),
    }
}

pub fn get_op(key: &Bytes) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(RangeRequest {
            key: key.clone(),
            ..RangeRequest::default()
        })),
    }
}

pub fn delete_op(key: &Bytes) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            DeleteRangeRequest {
                key: key.clone(),
                ..DeleteRangeRequest::default()
            },
        )),
    }
}

/// The oldest key under `prefix` (clientv3's `WithFirstCreate`): the holder.
pub fn first_created(prefix: &Bytes) -> RangeRequest {
    RangeRequest {
        key: prefix.clone(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: range_request::SortOrder::Ascend as i32,
        sort_target: range_request::SortTarget::Create as i32,
        ..RangeRequest::default()
    }
}

/// The newest key under `prefix` created at or before `max_create_revision` (clientv3's
/// `WithLastCreate` + `WithMaxCreateRev`): the caller's direct predecessor.
fn last_created_before(prefix: &Bytes, max_create_revision: i64) -> RangeRequest {
    RangeRequest {
        key: prefix.clone(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: range_request::SortOrder::Descend as i32,
        sort_target: range_request::SortTarget::Create as i32,
        max_create_revision,
        ..RangeRequest::default()
    }
}

/// The key-values of the `index`th response of a txn, when it is a range.
pub fn txn_range_kvs(response: &TxnResponse, index: usize) -> &[KeyValue] {
    match response
        .responses
        .get(index)
        .and_then(|op| op.response.as_ref())
    {
        Some(response_op::Response::ResponseRange(range)) => &range.kvs,
        _ => &[],
    }
}

pub fn header_revision(header: &Option<ResponseHeader>) -> i64 {
    header.as_ref().map_or(0, |header| header.revision)
}

impl ShardContext {
    /// The lease a session key is attached to: the caller's, or for lease 0 a fresh lease of
    /// `DEFAULT_SESSION_TTL_SECONDS` that nobody keeps alive (etcd's `concurrency.NewSession`).
    pub async fn session_lease(&self, lease: i64) -> Result<i64, Status> {
        if lease != 0 {
            return Ok(lease);
        }
        let granted = self
            .lease_grant(LeaseGrantRequest {
                ttl: DEFAULT_SESSION_TTL_SECONDS,
                id: 0,
            })
            .await?;
        Ok(granted.id)
    }

    /// Waits until no key under `prefix` has a create revision at or below
    /// `max_create_revision`; returns the header of the read that found none.
    pub async fn wait_deletes(
        &self,
        prefix: &Bytes,
        max_create_revision: i64,
    ) -> Result<Option<ResponseHeader>, Status> {
        loop {
            let response = self
                .range(last_created_before(prefix, max_create_revision))
                .await?;
            let Some(predecessor) = response.kvs.first() else {
                return Ok(response.header);
            };
            self.wait_delete(&predecessor.key, header_revision(&response.header))
                .await;
        }
    }

    /// Waits for the deletion of `key`, which existed at `revision`. Also returns when the
    /// watcher is cancelled (compaction overtook it): the caller reads again either way.
    async fn wait_delete(&self, key: &Bytes, revision: i64) {
        let request = WatchCreateRequest {
            key: key.clone(),
            start_revision: revision + 1,
            filters: vec![watch_create_request::FilterType::Noput as i32],
            ..WatchCreateRequest::default()
        };
        let view = self.read_view.load_full();
        let mut watch = InternalWatch::open(&self.watch_hub, &request, &view);
        drop(view);
        // Only deletions pass the filter: the first response means the key is gone.
        let _deleted = watch.next_events().await;
    }

    /// Runs `cleanup` through raft if the returned guard is dropped before
    /// [`QueuedKey::keep`] is called — that is, if the call waiting with a queued session key
    /// ends (client cancel, deadline) before it hands the key to its client. The cleanup runs
    /// in its own task, spawned now, so nothing is spawned from a destructor.
    pub fn release_unless_kept(self: &Rc<Self>, cleanup: TxnRequest) -> QueuedKey {
        let (kept, outcome) = oneshot::channel::<()>();
        let context = self.clone();
        glommio::spawn_local(async move {
            if outcome.await.is_err() {
                if let Err(status) = context.txn(cleanup).await {
                    tracing::warn!(?status, "could not delete an abandoned lock/election key");
                }
            }
        })
        .detach();
        QueuedKey { kept }
    }
}

/// A session key queued by a call that is still waiting; see
/// [`ShardContext::release_unless_kept`].
pub struct QueuedKey {
    kept: oneshot::Sender<()>,
}

impl QueuedKey {
    /// The call hands the key to its client (or has cleaned it up itself): keep it.
    pub fn keep(self) {
        // The cleanup task only waits for this; if it is gone, so is the executor.
        let _ = self.kept.send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_keys_are_go_hex() {
        assert_eq!(&session_key(b"n/", 0x694d_77aa)[..], b"n/694d77aa");
        assert_eq!(&session_key(b"n/", 0)[..], b"n/0");
        assert_eq!(&session_key(b"n/", -1)[..], b"n/-1");
    }

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(&prefix_end(b"lock/")[..], b"lock0");
        assert_eq!(&prefix_end(b"a\xff")[..], b"b");
        assert_eq!(&prefix_end(b"\xff")[..], b"\0");
    }
}
