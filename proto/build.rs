//! Compiles `prism/**/*.proto` with the pure-Rust `protox` compiler, so a fresh machine
//! needs no system `protoc`, and keeps the descriptor set for gRPC reflection.

use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &[
    "prism/common/v1/errors.proto",
    "prism/keyvalue/v1/keyvalue.proto",
    "prism/pubsub/v1/pubsub.proto",
    "prism/queue/v1/queue.proto",
    "prism/timeseries/v1/timeseries.proto",
    "prism/meta/v1/meta.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(PROTOS, ["."])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("prism_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure().bytes(".").compile_fds(fds)?;
    Ok(())
}
