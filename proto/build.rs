//! Compiles Capstan's `.proto` files into Rust with prost, using protox as a
//! pure-Rust protobuf compiler (no system `protoc` needed), and generates the proto3 JSON
//! mapping of the client API's messages with pbjson-build (`serde` impls in
//! `<package>.serde.rs`), as etcd's JSON gateway (grpc-gateway) needs it: proto field names on
//! output (grpc-gateway's `OrigName`), either name on input, 64-bit integers as strings,
//! bytes as base64, enums by name, default values left out, unknown fields ignored.

const PROTOS: &[&str] = &[
    "proto/mvccpb/kv.proto",
    "proto/authpb/auth.proto",
    "proto/etcdserverpb/rpc.proto",
    "proto/v3lockpb/v3lock.proto",
    "proto/v3electionpb/v3election.proto",
    "proto/grpc/health/v1/health.proto",
    "proto/capstanpb/internal.proto",
];

/// Packages whose messages get the JSON mapping: those the JSON gateway serves.
const JSON_PACKAGES: &[&str] = &[
    ".mvccpb",
    ".authpb",
    ".etcdserverpb",
    ".v3lockpb",
    ".v3electionpb",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    for p in PROTOS {
        println!("cargo:rerun-if-changed={p}");
    }

    let fds = protox::compile(PROTOS, ["proto"])?;

    let encoded_descriptors = prost::Message::encode_to_vec(&fds);
    prost_build::Config::new()
        // Every protobuf `bytes` field becomes `bytes::Bytes` (cheap clones, zero-copy decode).
        .bytes(["."])
        .compile_fds(fds)?;

    pbjson_build::Builder::new()
        .register_descriptors(&encoded_descriptors)?
        .preserve_proto_field_names()
        .ignore_unknown_fields()
        .build(JSON_PACKAGES)?;
    Ok(())
}
