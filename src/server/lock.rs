//! The Lock service (`v3lockpb.Lock`), with the semantics of etcd's `v3lock` server, which runs
//! clientv3's `concurrency.Mutex` for the caller:
//!
//! - **Lock(name, lease)** queues the session key `name/<lease hex>` (empty value, attached to
//!   the lease) in one txn — or finds it already queued by the same lease, which makes the lock
//!   re-entrant per lease — and returns once every key under `name/` created before it is gone.
//!   The key is the lock: it is released by Unlock, by revoking the lease, or by its expiry.
//!   Lease 0 gets a fresh 60 s lease that nobody keeps alive.
//! - **Unlock(key)** deletes the key.
//!
//! A Lock that ends while waiting (client cancel, deadline, an error) deletes its key, as etcd
//! does; one that finds its own key gone after waiting (its lease expired) fails with etcd's
//! "mutex: session is expired".

use super::recipe::{
    created_at, delete_op, first_created, get_op, header_revision, key_prefix, put_op, session_key,
    txn_range_kvs,
};
use super::ServerError;
use crate::grpc::Status;
use crate::shard::ShardContext;
use bytes::Bytes;
use capstan_proto::etcdserverpb::{
    request_op, DeleteRangeRequest, RangeRequest, RequestOp, TxnRequest,
};
use capstan_proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use std::rc::Rc;

/// Queue `key` under `prefix` unless it exists; read it back otherwise; read the holder.
fn acquire_txn(key: &Bytes, prefix: &Bytes, lease: i64) -> TxnRequest {
    let owner = RequestOp {
        request: Some(request_op::Request::RequestRange(first_created(prefix))),
    };
    TxnRequest {
        compare: vec![created_at(key, 0)],
        success: vec![put_op(key, Bytes::new(), lease), owner.clone()],
        failure: vec![get_op(key), owner],
    }
}

/// etcd's `Mutex.Unlock`: an unconditional delete.
fn release_txn(key: &Bytes) -> TxnRequest {
    TxnRequest {
        success: vec![delete_op(key)],
        ..TxnRequest::default()
    }
}

impl ShardContext {
    pub async fn lock(self: Rc<Self>, request: LockRequest) -> Result<LockResponse, Status> {
        self.lock_inner(request)
            .await
            .map_err(Status::through_embedded_client)
    }

    async fn lock_inner(self: &Rc<Self>, request: LockRequest) -> Result<LockResponse, Status> {
        let lease = self.session_lease(request.lease).await?;
        let prefix = key_prefix(&request.name);
        let key = session_key(&prefix, lease);
        let acquired = self.txn(acquire_txn(&key, &prefix, lease)).await?;
        let my_revision = if acquired.succeeded {
            header_revision(&acquired.header)
        } else {
            // The failure branch's first read is the key itself, which the compare saw.
            match txn_range_kvs(&acquired, 0).first() {
                Some(kv) => kv.create_revision,
                None => return Err(ServerError::SessionExpired.into()),
            }
        };
        let holder = txn_range_kvs(&acquired, 1).first();
        if holder.is_none_or(|holder| holder.create_revision == my_revision) {
            return Ok(LockResponse {
                header: acquired.header,
                key: key.clone(),
            });
        }
        let queued = self.release_unless_kept(release_txn(&key));
        let waited = async {
            self.wait_deletes(&prefix, my_revision - 1).await?;
            // Still ours? The lease may have expired while we waited.
            self.range(RangeRequest {
                key: key.clone(),
                ..RangeRequest::default()
            })
            .await
        }
        .await;
        let mine = match waited {
            Ok(mine) => mine,
            Err(status) => {
                // etcd deletes the key before answering, so a retry with the same lease queues
                // afresh; should this call be cancelled meanwhile, the guard deletes it.
                if let Err(release) = self.txn(release_txn(&key)).await {
                    tracing::debug!(?release, "could not delete the key of a failed Lock");
                }
                queued.keep();
                return Err(status);
            }
        };
        queued.keep();
        if mine.kvs.is_empty() {
            return Err(ServerError::SessionExpired.into());
        }
        Ok(LockResponse {
            header: mine.header,
            key,
        })
    }

    pub async fn unlock(&self, request: UnlockRequest) -> Result<UnlockResponse, Status> {
        let deleted = self
            .delete_range(DeleteRangeRequest {
                key: request.key,
                ..DeleteRangeRequest::default()
            })
            .await
            .map_err(Status::through_embedded_client)?;
        Ok(UnlockResponse {
            header: deleted.header,
        })
    }
}
