//! Generates the gRPC code from `witness/v1/witness.proto` with a vendored
//! protoc, so a fresh machine needs nothing but cargo.
use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC.
    unsafe { env::set_var("PROTOC", protoc) };
    let out = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("witness_descriptor.bin"))
        .compile_protos(&["witness/v1/witness.proto"], &["."])?;
    println!("cargo:rerun-if-changed=witness");
    Ok(())
}
