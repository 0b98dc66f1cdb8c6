//! `txn-mixed [KEY [END]]`: each call is a `KV/Txn` holding either one range read (with
//! probability `rw-ratio / (1 + rw-ratio)`) or one put of key `call % key-space-size`. Reads
//! and writes are reported as two series.
//!
//! etcd reads every key limited to `--limit`; here the read starts at KEY (default: every key)
//! and ends at `--end-key`, END, or KEY's prefix end.

use super::{check_size, measure, mode_text, pacing, MeasureSpec, RunContext, RunResult};
use crate::cli::{Consistency, TxnMixedArgs};
use crate::client::Pool;
use crate::driver::{Call, Outcome};
use crate::error::BenchError;
use crate::keys::{check_key_space, prefix_end, random_bytes, spread, varint_key};
use bytes::Bytes;
use capstan_proto::etcdserverpb::{
    request_op, PutRequest, RangeRequest, RequestOp, TxnRequest, TxnResponse,
};
use capstan_proto::method::KV_TXN;
use std::sync::Arc;

const SERIES_READ: usize = 0;
const SERIES_WRITE: usize = 1;
/// Offsets the read/write draw from the key draw of the same call.
const READ_DRAW_SALT: u64 = 0x5eed_f00d_7ead;

/// The range every read covers. An empty KEY means every key: etcd's client turns a prefix
/// read of "" into `["\0", "\0")`, since the server refuses an empty key.
fn read_range(args: &TxnMixedArgs) -> (Bytes, Bytes) {
    let key = args.key.clone().unwrap_or_default().into_bytes();
    let explicit_end = if !args.end_key.is_empty() {
        Some(args.end_key.clone())
    } else {
        args.end.clone()
    };
    match (key.is_empty(), explicit_end) {
        (true, None) => (Bytes::from_static(b"\0"), Bytes::from_static(b"\0")),
        (true, Some(end)) => (Bytes::from_static(b"\0"), Bytes::from(end.into_bytes())),
        (false, Some(end)) => (Bytes::from(key), Bytes::from(end.into_bytes())),
        (false, None) => {
            let end = prefix_end(&key);
            (Bytes::from(key), end)
        }
    }
}

pub async fn run(args: &TxnMixedArgs, context: &RunContext) -> Result<RunResult, BenchError> {
    check_size("key-size", args.key_size)?;
    check_size("val-size", args.val_size)?;
    check_key_space(args.key_size, args.key_space_size)?;
    if !args.rw_ratio.is_finite() || args.rw_ratio < 0.0 {
        return Err(BenchError::Usage(format!(
            "--rw-ratio must be a non-negative number, got {}",
            args.rw_ratio
        )));
    }
    let rate = pacing("rate", args.rate)?;
    let pool = Pool::connect(&context.connect).await?;

    let (key, range_end) = read_range(args);
    let read = RequestOp {
        request: Some(request_op::Request::RequestRange(RangeRequest {
            key,
            range_end,
            limit: args.limit,
            serializable: args.consistency == Consistency::Serializable,
            ..Default::default()
        })),
    };
    let value = random_bytes(args.val_size, context.seed);
    let read_fraction = args.rw_ratio / (1.0 + args.rw_ratio);
    let (key_size, key_space_size, seed) = (args.key_size, args.key_space_size, context.seed);
    let operation = Arc::new(move |call: Call| {
        let draw = spread(call.index, seed ^ READ_DRAW_SALT) as f64 / u64::MAX as f64;
        let (series, op) = if draw < read_fraction {
            (SERIES_READ, read.clone())
        } else {
            let put = PutRequest {
                key: varint_key(call.index % key_space_size, key_size),
                value: value.clone(),
                ..Default::default()
            };
            let op = RequestOp {
                request: Some(request_op::Request::RequestPut(put)),
            };
            (SERIES_WRITE, op)
        };
        let request = TxnRequest {
            success: vec![op],
            ..Default::default()
        };
        async move {
            let result = call
                .channel
                .unary::<_, TxnResponse>(KV_TXN, &request)
                .await
                .map(|_| ());
            Outcome { series, result }
        }
    });
    let spec = MeasureSpec {
        series: &["read", "write"],
        rate,
        method: KV_TXN,
    };
    let measurement = measure(context, &pool, spec, operation).await?;
    Ok(RunResult {
        benchmark: "txn-mixed".to_string(),
        mode: mode_text(rate),
        series: measurement.series,
        notes: vec![format!("read/write ratio {}", args.rw_ratio)],
        warmup: context.warmup,
        send_lag: measurement.send_lag,
    })
}
