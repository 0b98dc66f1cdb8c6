//! `put`: one `KV/Put` per call, of a key from the key space (`--sequential-keys` or uniformly
//! random) and one random value made for the whole run, as etcd's benchmark does.

use super::{check_size, measure, mode_text, pacing, MeasureSpec, RunContext, RunResult};
use crate::cli::PutArgs;
use crate::client::Pool;
use crate::driver::{Call, Outcome};
use crate::error::BenchError;
use crate::keys::{check_key_space, key_index, random_bytes, varint_key};
use capstan_proto::etcdserverpb::{PutRequest, PutResponse};
use capstan_proto::method::KV_PUT;
use std::sync::Arc;

pub async fn run(args: &PutArgs, context: &RunContext) -> Result<RunResult, BenchError> {
    check_size("key-size", args.key_size)?;
    check_size("val-size", args.val_size)?;
    check_key_space(args.key_size, args.key_space_size)?;
    let rate = pacing("rate", args.rate)?;
    let pool = Pool::connect(&context.connect).await?;

    let value = random_bytes(args.val_size, context.seed);
    let (key_size, key_space_size, sequential, seed) = (
        args.key_size,
        args.key_space_size,
        args.sequential_keys,
        context.seed,
    );
    let operation = Arc::new(move |call: Call| {
        let index = key_index(call.index, key_space_size, sequential, seed);
        let request = PutRequest {
            key: varint_key(index, key_size),
            value: value.clone(),
            ..Default::default()
        };
        async move {
            let result = call
                .channel
                .unary::<_, PutResponse>(KV_PUT, &request)
                .await
                .map(|_| ());
            Outcome { series: 0, result }
        }
    });
    let spec = MeasureSpec {
        series: &["put"],
        rate,
        method: KV_PUT,
    };
    let measurement = measure(context, &pool, spec, operation).await?;
    Ok(RunResult {
        benchmark: "put".to_string(),
        mode: mode_text(rate),
        series: measurement.series,
        notes: Vec::new(),
        warmup: context.warmup,
        send_lag: measurement.send_lag,
    })
}
