//! The KV service.

use crate::grpc::{Code, Status};
use crate::mvcc::quota::{put_cost_bytes, txn_cost_bytes};
use crate::mvcc::{check_delete_range, check_put, check_range, check_txn, WriteResponse};
use crate::shard::message::WriteOutcome;
use crate::shard::ShardContext;
use capstan_proto::capstanpb::internal_request::Request;
use capstan_proto::etcdserverpb::{
    response_op, CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader, TxnRequest, TxnResponse,
};

fn unexpected(outcome: &WriteOutcome) -> Status {
    Status::new(
        Code::Internal,
        format!("capstan: unexpected apply result {:?}", outcome.response),
    )
}

/// etcd fills only `revision` in the headers of the responses nested in a txn.
fn fill_nested_headers(response: &mut TxnResponse, revision: i64) {
    for op in &mut response.responses {
        let header = Some(ResponseHeader {
            revision,
            ..ResponseHeader::default()
        });
        match &mut op.response {
            Some(response_op::Response::ResponseRange(inner)) => inner.header = header,
            Some(response_op::Response::ResponsePut(inner)) => inner.header = header,
            Some(response_op::Response::ResponseDeleteRange(inner)) => inner.header = header,
            Some(response_op::Response::ResponseTxn(inner)) => {
                inner.header = header;
                fill_nested_headers(inner, revision);
            }
            None => {}
        }
    }
}

impl ShardContext {
    pub fn header(&self, revision: i64, raft_term: u64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term,
        }
    }

    async fn write(&self, request: Request) -> Result<WriteOutcome, Status> {
        Ok(self.owner.propose(request).await?)
    }

    pub async fn range(&self, request: RangeRequest) -> Result<RangeResponse, Status> {
        check_range(&request)?;
        if !request.serializable {
            self.refuse_if_learner()?;
            self.owner.read_index().await?;
        }
        let view = self.read_view.load_full();
        let mut response = view.range(&request)?;
        response.header = Some(self.header(view.current_revision(), self.raft_status.term()));
        Ok(response)
    }

    pub async fn put(&self, request: PutRequest) -> Result<PutResponse, Status> {
        // etcd's quota check comes before the request's own checks.
        self.check_quota(put_cost_bytes(&request)).await?;
        check_put(&request)?;
        let outcome = self.write(Request::Put(request)).await?;
        match outcome.response {
            WriteResponse::Put(mut response) => {
                response.header = Some(self.header(outcome.revision, outcome.raft_term));
                Ok(response)
            }
            _ => Err(unexpected(&outcome)),
        }
    }

    pub async fn delete_range(
        &self,
        request: DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, Status> {
        check_delete_range(&request)?;
        let outcome = self.write(Request::DeleteRange(request)).await?;
        match outcome.response {
            WriteResponse::DeleteRange(mut response) => {
                response.header = Some(self.header(outcome.revision, outcome.raft_term));
                Ok(response)
            }
            _ => Err(unexpected(&outcome)),
        }
    }

    pub async fn txn(&self, request: TxnRequest) -> Result<TxnResponse, Status> {
        self.check_quota(txn_cost_bytes(&request)).await?;
        check_txn(&request, self.config.max_txn_ops)?;
        let outcome = self.write(Request::Txn(request)).await?;
        match outcome.response {
            WriteResponse::Txn(mut response) => {
                fill_nested_headers(&mut response, outcome.revision);
                response.header = Some(self.header(outcome.revision, outcome.raft_term));
                Ok(response)
            }
            _ => Err(unexpected(&outcome)),
        }
    }

    pub async fn compact(&self, request: CompactionRequest) -> Result<CompactionResponse, Status> {
        let outcome = self.write(Request::Compaction(request)).await?;
        match outcome.response {
            WriteResponse::Compaction(mut response) => {
                response.header = Some(self.header(outcome.revision, outcome.raft_term));
                Ok(response)
            }
            _ => Err(unexpected(&outcome)),
        }
    }
}
