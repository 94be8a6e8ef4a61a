//! Compiles the echo reference's .proto the way `proto/build.rs` does: with
//! `protox`, so no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PROTO: &str = "proto/bench/echo/v1/echo.proto";
    let descriptors = protox::compile([PROTO], ["proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    println!("cargo:rerun-if-changed={PROTO}");
    Ok(())
}
