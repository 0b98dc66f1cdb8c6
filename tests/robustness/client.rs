//! One request through etcd-client, recorded: the only place that turns etcd-client's responses
//! and errors into [`Record`]s.

use super::history::{Actor, Clock, KeyValue, Outcome, Record, Request, Response};
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions,
    PutOptions, Txn, TxnOp, TxnOpResponse,
};
use std::future::Future;
use std::time::Duration;

/// A request that has not answered by then is recorded as unknown (the client's deadline).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A defragmentation may take longer than a request.
pub const DEFRAG_TIMEOUT: Duration = Duration::from_secs(10);

/// A lazily connecting client over `urls` (one member, or every member balanced). No
/// per-request timeout inside: every call is bounded here, so watch streams live on.
pub async fn connect(urls: &[String]) -> Result<Client, String> {
    let options = ConnectOptions::new().with_connect_timeout(CONNECT_TIMEOUT);
    Client::connect(urls, Some(options))
        .await
        .map_err(|error| format!("connect {urls:?}: {error}"))
}

async fn bounded<T>(
    timeout: Duration,
    future: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, Outcome> {
    match tokio::time::timeout(timeout, future).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(error)) => Err(Outcome::of_error(&error)),
        Err(_) => Err(Outcome::Unknown(format!(
            "client deadline after {timeout:?}"
        ))),
    }
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.map_or(0, |header| header.revision())
}

/// Sends `request`, returns its record. Malformed answers (a response that contradicts
/// itself) are pushed to `anomalies`.
pub async fn execute(
    client: &mut Client,
    clock: &Clock,
    actor: Actor,
    member: Option<usize>,
    request: Request,
    anomalies: &mut Vec<String>,
) -> Record {
    let call = clock.now();
    let result = send(client, &request, anomalies).await;
    let ret = clock.now();
    Record {
        actor,
        member,
        call,
        ret,
        request,
        outcome: match result {
            Ok(response) => Outcome::Ok(response),
            Err(outcome) => outcome,
        },
    }
}

async fn send(
    client: &mut Client,
    request: &Request,
    anomalies: &mut Vec<String>,
) -> Result<Response, Outcome> {
    let timeout = REQUEST_TIMEOUT;
    match request {
        Request::Put { key, value, lease } => {
            let mut options = PutOptions::new().with_prev_key();
            if *lease != 0 {
                options = options.with_lease(*lease);
            }
            let response = bounded(
                timeout,
                client.put(key.as_str(), value.to_string(), Some(options)),
            )
            .await?;
            Ok(Response::Put {
                prev: response.prev_key().map(KeyValue::of),
                revision: header_revision(response.header()),
            })
        }
        Request::Get { key, serializable } => {
            let options = serializable.then(|| GetOptions::new().with_serializable());
            let response = bounded(timeout, client.get(key.as_str(), options)).await?;
            if response.kvs().len() > 1 {
                anomalies.push(format!("get {key} returned {} kvs", response.kvs().len()));
            }
            Ok(Response::Range {
                kvs: response.kvs().iter().map(KeyValue::of).collect(),
                revision: header_revision(response.header()),
            })
        }
        Request::Range {
            prefix,
            serializable,
        } => {
            let mut options = GetOptions::new().with_prefix();
            if *serializable {
                options = options.with_serializable();
            }
            let response = bounded(timeout, client.get(prefix.as_str(), Some(options))).await?;
            if response.count() != response.kvs().len() as i64 {
                anomalies.push(format!(
                    "range {prefix}: count {} but {} kvs",
                    response.count(),
                    response.kvs().len()
                ));
            }
            Ok(Response::Range {
                kvs: response.kvs().iter().map(KeyValue::of).collect(),
                revision: header_revision(response.header()),
            })
        }
        Request::Delete { key } => {
            let options = DeleteOptions::new().with_prev_key();
            let response = bounded(timeout, client.delete(key.as_str(), Some(options))).await?;
            if response.deleted() != response.prev_kvs().len() as i64 {
                anomalies.push(format!(
                    "delete {key}: deleted={} but {} prev_kvs",
                    response.deleted(),
                    response.prev_kvs().len()
                ));
            }
            Ok(Response::Delete {
                prev: response.prev_kvs().iter().map(KeyValue::of).collect(),
                deleted: response.deleted(),
                revision: header_revision(response.header()),
            })
        }
        Request::Cas {
            key,
            expect,
            compare_mod_revision,
            value,
        } => {
            let compare = match (compare_mod_revision, expect) {
                (Some(revision), _) => {
                    Compare::mod_revision(key.as_str(), CompareOp::Equal, *revision)
                }
                (None, Some(expect)) => {
                    Compare::value(key.as_str(), CompareOp::Equal, expect.to_string())
                }
                (None, None) => Compare::mod_revision(key.as_str(), CompareOp::Equal, 0),
            };
            let txn = Txn::new()
                .when([compare])
                .and_then([TxnOp::put(key.as_str(), value.to_string(), None)])
                .or_else([TxnOp::get(key.as_str(), None)]);
            let response = bounded(timeout, client.txn(txn)).await?;
            let current = if response.succeeded() {
                None
            } else {
                match response.op_responses().first() {
                    Some(TxnOpResponse::Get(get)) => get.kvs().first().map(KeyValue::of),
                    other => {
                        anomalies.push(format!(
                            "txn on {key} failed its compare but answered {other:?}"
                        ));
                        None
                    }
                }
            };
            Ok(Response::Cas {
                succeeded: response.succeeded(),
                current,
                revision: header_revision(response.header()),
            })
        }
        Request::LeaseGrant { ttl_seconds } => {
            let response = bounded(timeout, client.lease_grant(*ttl_seconds, None)).await?;
            Ok(Response::LeaseGrant {
                id: response.id(),
                revision: header_revision(response.header()),
            })
        }
        Request::LeaseRevoke { id } => {
            let response = bounded(timeout, client.lease_revoke(*id)).await?;
            Ok(Response::LeaseRevoke {
                revision: header_revision(response.header()),
            })
        }
        Request::LeaseKeepAlive { id } => {
            let id = *id;
            let response = bounded(timeout, async {
                let (mut keeper, mut stream) = client.lease_keep_alive(id).await?;
                keeper.keep_alive().await?;
                match stream.message().await? {
                    Some(response) => Ok(response),
                    None => Err(etcd_client::Error::LeaseKeepAliveError(
                        "keep-alive stream closed without an answer".to_string(),
                    )),
                }
            })
            .await?;
            Ok(Response::LeaseKeepAlive {
                ttl: response.ttl(),
                revision: header_revision(response.header()),
            })
        }
        Request::Compact { revision, physical } => {
            let options = physical.then(|| CompactionOptions::new().with_physical());
            let response = bounded(timeout, client.compact(*revision, options)).await?;
            Ok(Response::Compact {
                revision: header_revision(response.header()),
            })
        }
        Request::Defrag { .. } => {
            bounded(DEFRAG_TIMEOUT, client.defragment()).await?;
            Ok(Response::Defrag)
        }
    }
}
