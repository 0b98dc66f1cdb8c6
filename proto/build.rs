//! Compiles Capstan's `.proto` files into Rust with prost, using protox as a
//! pure-Rust protobuf compiler (no system `protoc` needed).

const PROTOS: &[&str] = &[
    "proto/mvccpb/kv.proto",
    "proto/authpb/auth.proto",
    "proto/etcdserverpb/rpc.proto",
    "proto/v3lockpb/v3lock.proto",
    "proto/v3electionpb/v3election.proto",
    "proto/grpc/health/v1/health.proto",
    "proto/capstanpb/internal.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    for p in PROTOS {
        println!("cargo:rerun-if-changed={p}");
    }

    let fds = protox::compile(PROTOS, ["proto"])?;

    prost_build::Config::new()
        // Every protobuf `bytes` field becomes `bytes::Bytes` (cheap clones, zero-copy decode).
        .bytes(["."])
        .compile_fds(fds)?;
    Ok(())
}
