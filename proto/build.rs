//! Compiles the .proto files with `protox` (pure Rust, so no system `protoc`)
//! and keeps the encoded descriptor set for gRPC server reflection.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &["bookstore/auth/v1/auth.proto", "bookstore/books/v1/books.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let descriptors = protox::compile(PROTOS, ["."])?;
    fs::write(out_dir.join("bookstore_descriptor.bin"), descriptors.encode_to_vec())?;
    // Every client and server decodes with `codec::ProtoCodec` (src/codec.rs).
    tonic_prost_build::configure().codec_path("crate::codec::ProtoCodec").compile_fds(descriptors)?;
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    Ok(())
}
