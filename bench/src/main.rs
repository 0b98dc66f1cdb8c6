//! `capstan-bench`: measure the latency of etcd v3 endpoints (Capstan or etcd) over the wire.
//!
//! See the library crate (`capstan_bench`) for how one run goes from flags to figures;
//! `capstan-bench --help` lists the sub-commands, which mirror etcd's `tools/benchmark`.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = capstan_bench::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("capstan-bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(capstan_bench::app::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("capstan-bench: {error}");
            ExitCode::FAILURE
        }
    }
}
