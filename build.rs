//! Generates the coordinator's gRPC client (and the server half the tests' fake coordinator
//! uses) from `proto/`. protox parses the `.proto` files in Rust, so a build needs no `protoc`.
//! A release binary's debug sections (line tables; std's own) are stored compressed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/zisk_coordinator_api.proto", "proto/grpc_health.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(descriptors)?;
    // The line tables stay (a panic's backtrace has file and line; the backtrace reader inflates
    // compressed sections), at a quarter of their size. GNU ld and lld both take the flag.
    if std::env::var("PROFILE").as_deref() == Ok("release")
        && std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
    {
        println!("cargo:rustc-link-arg-bins=-Wl,--compress-debug-sections=zlib");
    }
    Ok(())
}
