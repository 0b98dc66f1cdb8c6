//! `Election.Observe` for the gateway: `server::election`'s rounds (find the oldest key under
//! `name/` or wait for the first put, send it, send its new values until it is deleted, start
//! over), written to a [`PieceSink`] instead of a gRPC stream.

use super::stream::PieceSink;
use crate::grpc::{Code, Status};
use crate::server::election::LeaderSink;
use crate::server::recipe::key_prefix;
use crate::shard::ShardContext;
use capstan_proto::v3electionpb::LeaderResponse;

impl LeaderSink for PieceSink {
    async fn send_leader(&mut self, response: &LeaderResponse) -> Result<(), Status> {
        self.result(response)
            .await
            .map_err(|_gone| Status::new(Code::Cancelled, "the client went away"))
    }
}

/// Observes the election `name` until the client goes away or a read fails (`Err`).
pub async fn observe_leader(
    context: &ShardContext,
    name: &[u8],
    sink: &mut PieceSink,
) -> Result<(), Status> {
    let prefix = key_prefix(name);
    loop {
        context.observe_once(&prefix, sink).await?;
    }
}
