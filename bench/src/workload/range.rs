//! `range KEY [END]`: one `KV/Range` per call, linearizable (`--consistency l`, a read index
//! round through raft) or serializable (`s`, the local state).

use super::{measure, mode_text, pacing, MeasureSpec, RunContext, RunResult};
use crate::cli::{Consistency, RangeArgs};
use crate::client::Pool;
use crate::driver::{Call, Outcome};
use crate::error::BenchError;
use bytes::Bytes;
use capstan_proto::etcdserverpb::{RangeRequest, RangeResponse};
use capstan_proto::method::KV_RANGE;
use std::sync::Arc;

pub async fn run(args: &RangeArgs, context: &RunContext) -> Result<RunResult, BenchError> {
    let rate = pacing("rate", args.rate)?;
    let pool = Pool::connect(&context.connect).await?;
    let serializable = args.consistency == Consistency::Serializable;
    let request = RangeRequest {
        key: Bytes::from(args.key.clone().into_bytes()),
        range_end: Bytes::from(args.end.clone().unwrap_or_default().into_bytes()),
        limit: args.limit,
        serializable,
        keys_only: args.keys_only,
        count_only: args.count_only,
        ..Default::default()
    };
    let operation = Arc::new(move |call: Call| {
        let request = request.clone();
        async move {
            let result = call
                .channel
                .unary::<_, RangeResponse>(KV_RANGE, &request)
                .await
                .map(|_| ());
            Outcome { series: 0, result }
        }
    });
    let spec = MeasureSpec {
        series: &["range"],
        rate,
        method: KV_RANGE,
    };
    let measurement = measure(context, &pool, spec, operation).await?;
    let consistency = if serializable {
        "serializable"
    } else {
        "linearizable"
    };
    Ok(RunResult {
        benchmark: "range".to_string(),
        mode: mode_text(rate),
        series: measurement.series,
        notes: vec![format!("bench with {consistency} range")],
        warmup: context.warmup,
        send_lag: measurement.send_lag,
    })
}
