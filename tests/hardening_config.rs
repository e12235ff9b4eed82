//! Issue 14 attacks on configuration and the local tools: each refusal runs
//! the real binary and checks the exit code, the message and that nothing
//! was created.

mod common;

use common::bin;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN_A: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const TOKEN_B: &str = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

/// Runs `witness serve` on `config` and returns (exit code, stderr). A
/// server that starts instead of refusing is killed and fails the test.
fn serve_refuses(dir: &Path, config: &str) -> String {
    let path = dir.join("witness.toml");
    let db = dir.join("witness.db");
    std::fs::write(
        &path,
        format!("[store]\nurl = \"sqlite://{}\"\n{config}", db.display()),
    )
    .unwrap();
    let mut child = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            assert_eq!(status.code(), Some(2), "{err}");
            assert!(!db.exists(), "a refused config must not create the store");
            return err;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("witness started with a config it must refuse:\n{config}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn principal(name: &str, token: &str) -> String {
    format!("[[principals]]\nname = \"{name}\"\ntoken_sha256 = \"{token}\"\nroles = [\"sre\"]\n")
}

#[test]
fn config_refuses_duplicate_tokens_naming_both_principals() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        principal("viewer", TOKEN_A) + &principal("other", TOKEN_B) + &principal("root", TOKEN_A);
    let err = serve_refuses(dir.path(), &config);
    assert!(err.contains("principals[2].token_sha256"), "{err}");
    assert!(
        err.contains("\"viewer\"") && err.contains("\"root\""),
        "{err}"
    );
}

#[test]
fn config_refuses_the_reserved_anonymous_principal() {
    let dir = tempfile::tempdir().unwrap();
    let err = serve_refuses(dir.path(), &principal("anonymous", TOKEN_A));
    assert!(
        err.contains("principals[0].name: \"anonymous\" is reserved"),
        "{err}"
    );
}

#[test]
fn config_refuses_tiny_messages_zero_attempts_and_bad_policies() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[limits]\nmax_message_bytes = 4095\n", "limits.max_message_bytes"),
        ("[limits]\nmax_timeout = \"0s\"\n", "limits.max_timeout"),
        ("[limits]\nmax_timeout = \"1000years\"\n", "limits.max_timeout"),
        ("[outbox]\nmax_attempts = 0\n", "outbox.max_attempts"),
        (
            "[[policies]]\nkind = \"a.*\"\ntimeout = \"0s\"\n",
            "policies[0].timeout: must be positive",
        ),
        (
            "[[policies]]\nkind = \"a.*\"\ntimeout = \"1h\"\non_timeout = \"approve\"\n",
            "policies[0].timeout_answer: required",
        ),
        (
            "[[policies]]\nkind = \"a.*\"\ntimeout = \"1h\"\non_timeout = \"reject\"\n",
            "policies[0].timeout_answer: required",
        ),
        (
            "[[policies]]\nkind = \"a.*\"\ntimeout = \"3651days\"\n",
            "policies[0].timeout: 3651 days is longer than the limit [limits] max_timeout = 3650 days",
        ),
        (
            "[limits]\nmax_timeout = \"1h\"\n[[policies]]\nkind = \"a.*\"\ncontext_max_age = \"2h\"\n",
            "policies[0].context_max_age",
        ),
        (
            "[[policies]]\nkind = \"a.*\"\nack_window = \"10000years\"\n",
            "policies[0].ack_window",
        ),
    ];
    for (config, expected) in cases {
        let err = serve_refuses(dir.path(), config);
        assert!(err.contains(expected), "{config}: {err}");
    }
}

#[test]
fn config_that_is_a_directory_is_refused_not_dev_mode() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is not a file"), "{err}");
    assert!(!dir.path().join("witness.db").exists());
}

/// A config whose store and key file live in `dir`, neither created yet.
fn read_only_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("witness.toml");
    std::fs::write(
        &path,
        format!(
            "[store]\nurl = \"sqlite://{}\"\n",
            dir.join("data/witness.db").display()
        ),
    )
    .unwrap();
    path
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = walk(dir);
    names.sort();
    names
}

fn walk(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flat_map(|e| {
            let p = e.unwrap().path();
            let mut v = vec![p.display().to_string()];
            if p.is_dir() {
                v.extend(walk(&p));
            }
            v
        })
        .collect()
}

#[test]
fn audit_verify_on_a_missing_store_fails_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = read_only_config(dir.path());
    let before = files_in(dir.path());
    let out = Command::new(bin())
        .current_dir(dir.path())
        .args(["audit", "verify", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no SQLite database"), "{err}");
    assert_eq!(files_in(dir.path()), before);
}

#[test]
fn receipt_public_key_without_a_key_file_fails_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = read_only_config(dir.path());
    let before = files_in(dir.path());
    let out = Command::new(bin())
        .current_dir(dir.path())
        .args(["receipt", "public-key", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("receipts.key_file"), "{err}");
    assert!(out.stdout.is_empty(), "no key printed");
    assert_eq!(files_in(dir.path()), before);
}

#[test]
fn token_help_points_to_the_environment_variable() {
    let out = Command::new(bin())
        .args(["list", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("WITNESS_TOKEN") && help.contains("ps"),
        "{help}"
    );
}
