//! `txn-put`: one `KV/Txn` per call, without compares, whose success branch holds `--txn-ops`
//! puts of consecutive keys of the key space (`(call * txn-ops + j) % key-space-size`).
//!
//! This is etcd 3.4/3.5's `txn-put`; newer etcd versions turned it into a compare-and-swap
//! loop. Keys of one txn must differ (etcd refuses duplicate keys), hence
//! `--txn-ops <= --key-space-size`.

use super::{check_size, measure, mode_text, pacing, MeasureSpec, RunContext, RunResult};
use crate::cli::TxnPutArgs;
use crate::client::Pool;
use crate::driver::{Call, Outcome};
use crate::error::BenchError;
use crate::keys::{check_key_space, random_bytes, varint_key};
use capstan_proto::etcdserverpb::{request_op, PutRequest, RequestOp, TxnRequest, TxnResponse};
use capstan_proto::method::KV_TXN;
use std::sync::Arc;

/// etcd's default `--max-txn-ops`: a larger txn would be refused by a default server.
const TXN_OPS_MAX: u64 = 128;

pub async fn run(args: &TxnPutArgs, context: &RunContext) -> Result<RunResult, BenchError> {
    check_size("key-size", args.key_size)?;
    check_size("val-size", args.val_size)?;
    check_key_space(args.key_size, args.key_space_size)?;
    if args.txn_ops == 0 || args.txn_ops > TXN_OPS_MAX {
        return Err(BenchError::Usage(format!(
            "expected --txn-ops in 1..={TXN_OPS_MAX}, got {}",
            args.txn_ops
        )));
    }
    if args.txn_ops > args.key_space_size {
        return Err(BenchError::Usage(format!(
            "expected --txn-ops no larger than --key-space-size, got txn-ops({}) \
             key-space-size({})",
            args.txn_ops, args.key_space_size
        )));
    }
    let rate = pacing("rate", args.rate)?;
    let pool = Pool::connect(&context.connect).await?;

    let value = random_bytes(args.val_size, context.seed);
    let (key_size, key_space_size, txn_ops) = (args.key_size, args.key_space_size, args.txn_ops);
    let operation = Arc::new(move |call: Call| {
        let success = (0..txn_ops)
            .map(|op| {
                let index = (call.index.wrapping_mul(txn_ops) + op) % key_space_size;
                RequestOp {
                    request: Some(request_op::Request::RequestPut(PutRequest {
                        key: varint_key(index, key_size),
                        value: value.clone(),
                        ..Default::default()
                    })),
                }
            })
            .collect();
        let request = TxnRequest {
            success,
            ..Default::default()
        };
        async move {
            let result = call
                .channel
                .unary::<_, TxnResponse>(KV_TXN, &request)
                .await
                .map(|_| ());
            Outcome { series: 0, result }
        }
    });
    let spec = MeasureSpec {
        series: &["txn-put"],
        rate,
        method: KV_TXN,
    };
    let measurement = measure(context, &pool, spec, operation).await?;
    Ok(RunResult {
        benchmark: "txn-put".to_string(),
        mode: mode_text(rate),
        series: measurement.series,
        notes: Vec::new(),
        warmup: context.warmup,
        send_lag: measurement.send_lag,
    })
}
