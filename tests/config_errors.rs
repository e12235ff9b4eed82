//! Configuration mistakes are refused at start with a message that names
//! the file and the key as the user wrote them, and nothing is written.

mod common;

use common::bin;
use std::process::Command;

/// Runs `witness serve` on `toml` in a fresh directory; returns the exit
/// code, stderr and whether a database file appeared.
fn serve_with(toml: &str, env: &[(&str, &str)]) -> (Option<i32>, String, bool) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("witness.db");
    let config = format!("{toml}\n[store]\nurl = \"sqlite://{}\"\n", db.display());
    let path = dir.path().join("witness.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .envs(env.iter().copied())
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), stderr, db.exists())
}

#[test]
fn an_unknown_key_names_the_file_and_the_dotted_key() {
    let (code, err, wrote) = serve_with("[outbox]\nmax_atempts = 3\n", &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(!wrote, "a refused config must not create the database");
    assert!(
        err.contains("witness.toml: unknown key outbox.max_atempts"),
        "{err}"
    );
    assert!(
        err.contains("max_attempts"),
        "the known keys are listed: {err}"
    );
    assert!(!err.contains("``"), "no doubled backticks: {err}");
    assert!(
        !err.contains("default."),
        "no figment profile prefix: {err}"
    );
}

#[test]
fn an_unknown_top_level_key_and_a_bad_value_name_the_key() {
    let (code, err, _) = serve_with("lisen = \"127.0.0.1:1\"\n", &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("unknown key lisen (known keys here: listen,"),
        "{err}"
    );

    let hook =
        "[[webhooks]]\nname = \"p\"\nurl = \"http://x\"\nsecret = \"s\"\nformat = \"teams\"\n";
    let (code, err, _) = serve_with(hook, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("webhooks[0].format: unknown value \"teams\" (expected one of: witness, pagerduty, slack)"),
        "{err}"
    );
}

#[test]
fn the_removed_streams_subscriber_buffer_key_says_what_replaced_it() {
    let (code, err, wrote) = serve_with("[streams]\nsubscriber_buffer = 64\n", &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(!wrote);
    assert!(
        err.contains("witness.toml: streams.subscriber_buffer was removed in 0.2.0"),
        "{err}"
    );
    assert!(
        err.contains("[streams] ring"),
        "names its replacement: {err}"
    );
    assert!(!err.contains("unknown key"), "{err}");
}

#[test]
fn an_unknown_environment_override_names_the_variable() {
    let (code, err, wrote) = serve_with("", &[("WITNESS__STREAMS__SUBSCRIBER_BUFFER", "8")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(!wrote);
    assert!(
        err.contains("environment variable WITNESS__STREAMS__SUBSCRIBER_BUFFER: streams.subscriber_buffer was removed"),
        "{err}"
    );
    let (code, err, _) = serve_with("", &[("WITNESS__LIMITS__BURTS", "8")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("environment variable WITNESS__LIMITS__BURTS: unknown key limits.burts"),
        "{err}"
    );
}

#[test]
fn a_malformed_or_unknown_store_url_is_a_config_error_naming_store_url() {
    for (url, says) in [
        (
            "postgres://w:hunter2@db:notaport/witness",
            "not a valid PostgreSQL URL",
        ),
        ("mysql://db/witness", "unsupported store"),
        ("sqlite://", "needs a path"),
    ] {
        let (code, err, wrote) = serve_with("", &[("WITNESS__STORE__URL", url)]);
        assert_eq!(code, Some(2), "{url}: {err}");
        assert!(!wrote, "{url}: nothing written");
        assert!(err.contains("config: store.url: "), "{url}: {err}");
        assert!(err.contains(says), "{url}: {err}");
        assert!(!err.contains("unavailable"), "not an outage: {err}");
        assert!(!err.contains("hunter2"), "the password stays secret: {err}");
    }
}
