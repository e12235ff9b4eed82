//! Generates the gRPC code from `proto/` with a vendored protoc, so a fresh
//! machine needs nothing but cargo, and stamps the version with the git
//! commit when built from a checkout.
use std::{env, path::PathBuf, process::Command};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC.
    unsafe { env::set_var("PROTOC", protoc) };
    let out = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("witness_descriptor.bin"))
        .compile_protos(&["proto/witness/v1/witness.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    version();
    Ok(())
}

/// `WITNESS_VERSION` for `witness --version`: the package version, plus the
/// commit when git can tell (a packager may set `WITNESS_GIT_COMMIT`
/// instead); outside a checkout it is the package version alone.
fn version() {
    println!("cargo:rerun-if-env-changed=WITNESS_GIT_COMMIT");
    let commit = env::var("WITNESS_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            let c = git(&["rev-parse", "--short=12", "HEAD"])?;
            // Rebuild the stamp when HEAD moves (new commit, checkout).
            if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
                println!("cargo:rerun-if-changed={dir}/HEAD");
            }
            if let (Some(common), Some(head)) = (
                git(&["rev-parse", "--git-common-dir"]),
                git(&["symbolic-ref", "-q", "HEAD"]),
            ) {
                println!("cargo:rerun-if-changed={common}/{head}");
                println!("cargo:rerun-if-changed={common}/packed-refs");
            }
            Some(c)
        });
    let pkg = env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let version = match commit {
        Some(c) => format!("{pkg} (git {c})"),
        None => pkg,
    };
    println!("cargo:rustc-env=WITNESS_VERSION={version}");
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}
