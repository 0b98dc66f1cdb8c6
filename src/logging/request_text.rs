//! Requests and responses as etcd's slow-apply warning shows them: protobuf text with values
//! replaced by their sizes (etcd's `pb.InternalRaftStringer`), e.g.
//! `put:<key:"foo" value_size:3 >` and a response's `size:4`. Only written for slow applies.

use crate::mvcc::{WriteRequest, WriteResponse};
use capstan_proto::etcdserverpb::{request_op, Compare, RequestOp};
use prost::Message;
use std::fmt::Write as _;

/// Go's text-format quoting of bytes: printable ASCII as is, `"` and `\` escaped, the rest as
/// octal escapes.
fn quoted(bytes: &[u8], out: &mut String) {
    out.push('"');
    for &byte in bytes {
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(byte as char),
            other => {
                let _ = write!(out, "\\{other:03o}");
            }
        }
    }
    out.push('"');
}

fn key_and_end(key: &[u8], range_end: &[u8], out: &mut String) {
    out.push_str("key:");
    quoted(key, out);
    if !range_end.is_empty() {
        out.push_str(" range_end:");
        quoted(range_end, out);
    }
    out.push(' ');
}

fn compare(compare: &Compare, out: &mut String) {
    out.push_str("compare:<");
    let _ = write!(out, "target:{} ", compare.target().as_str_name());
    key_and_end(&compare.key, &compare.range_end, out);
    out.push('>');
}

fn request_op(op: &RequestOp, out: &mut String) {
    match &op.request {
        Some(request_op::Request::RequestRange(range)) => {
            out.push_str("request_range:<");
            key_and_end(&range.key, &range.range_end, out);
            out.push('>');
        }
        Some(request_op::Request::RequestPut(put)) => {
            out.push_str("request_put:<key:");
            quoted(&put.key, out);
            let _ = write!(out, " value_size:{} >", put.value.len());
        }
        Some(request_op::Request::RequestDeleteRange(delete)) => {
            out.push_str("request_delete_range:<");
            key_and_end(&delete.key, &delete.range_end, out);
            out.push('>');
        }
        Some(request_op::Request::RequestTxn(_)) => out.push_str("request_txn:<>"),
        None => {}
    }
}

/// The request's text (without etcd's `header:<ID:..>`, which Capstan's entries do not carry).
pub fn request(request: &WriteRequest) -> String {
    let mut out = String::new();
    match request {
        WriteRequest::Put(put) => {
            out.push_str("put:<key:");
            quoted(&put.key, &mut out);
            let _ = write!(out, " value_size:{} ", put.value.len());
            if put.lease != 0 {
                let _ = write!(out, "lease:{} ", put.lease);
            }
            out.push('>');
        }
        WriteRequest::DeleteRange(delete) => {
            out.push_str("delete_range:<");
            key_and_end(&delete.key, &delete.range_end, &mut out);
            out.push('>');
        }
        WriteRequest::Txn(txn) => {
            out.push_str("txn:<");
            for each in &txn.compare {
                compare(each, &mut out);
                out.push(' ');
            }
            out.push_str("success:<");
            txn.success.iter().for_each(|op| request_op(op, &mut out));
            out.push_str("> failure:<");
            txn.failure.iter().for_each(|op| request_op(op, &mut out));
            out.push_str(">>");
        }
        WriteRequest::Compaction(compaction) => {
            let _ = write!(out, "compaction:<revision:{} >", compaction.revision);
        }
        WriteRequest::LeaseGrant(grant) => {
            let _ = write!(out, "lease_grant:<ttl:{} id:{} >", grant.ttl, grant.id);
        }
        WriteRequest::LeaseRevoke(revoke) => {
            let _ = write!(out, "lease_revoke:<id:{} >", revoke.id);
        }
        WriteRequest::Alarm(alarm) => {
            let _ = write!(
                out,
                "alarm:<action:{} member_id:{} >",
                alarm.action, alarm.member_id
            );
        }
    }
    out
}

/// The response's text: etcd writes `size:N` (the encoded size), or the error.
pub fn response<E: std::fmt::Display>(outcome: Result<&WriteResponse, &E>) -> String {
    let size = match outcome {
        Err(error) => return format!("error:{error}"),
        Ok(WriteResponse::Put(response)) => response.encoded_len(),
        Ok(WriteResponse::DeleteRange(response)) => response.encoded_len(),
        Ok(WriteResponse::Txn(response)) => response.encoded_len(),
        Ok(WriteResponse::Compaction(response)) => response.encoded_len(),
        Ok(WriteResponse::LeaseGrant(response)) => response.encoded_len(),
        Ok(WriteResponse::LeaseRevoke(response)) => response.encoded_len(),
        Ok(WriteResponse::Alarm(response)) => response.encoded_len(),
    };
    format!("size:{size}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_proto::etcdserverpb::PutRequest;

    #[test]
    fn a_put_shows_its_key_and_value_size() {
        let put = WriteRequest::Put(PutRequest {
            key: bytes::Bytes::from_static(b"foo\x01"),
            value: bytes::Bytes::from_static(b"bar"),
            ..PutRequest::default()
        });
        assert_eq!(request(&put), "put:<key:\"foo\\001\" value_size:3 >");
    }
}
