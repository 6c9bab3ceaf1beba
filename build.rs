//! Generates the coordinator's gRPC client (and the server half the tests' fake coordinator
//! uses) from `proto/`. protox parses the `.proto` files in Rust, so a build needs no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/zisk_coordinator_api.proto", "proto/grpc_health.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(descriptors)?;
    Ok(())
}
