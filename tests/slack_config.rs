//! `[slack]` configuration against the real binary: secrets from the
//! environment and from files (never logged), and mistakes refused at
//! start naming the key.

mod common;

use common::slack::{self, interact, FakeSlack};
use common::*;
use std::time::Duration;

/// Runs `witness serve` on `toml` with `env`; the exit code and stderr
/// when it stops, or the address when it listens (then it is killed by
/// the returned guard's drop).
struct Started(std::process::Child);

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve_with(
    dir: &std::path::Path,
    toml: &str,
    env: &[(&str, &str)],
) -> Result<(Started, String), String> {
    use std::io::{BufRead, BufReader};
    let config = format!(
        "[store]\nurl = \"sqlite://{}\"\n{toml}",
        dir.join("witness.db").display()
    );
    let path = dir.join("witness.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = std::process::Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = BufReader::new(stdout).lines().next();
    let stderr = || std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
    match line {
        Some(Ok(l)) if l.starts_with("witness listening on ") => {
            let addr = l.trim_start_matches("witness listening on ").to_string();
            Ok((Started(child), addr))
        }
        _ => {
            let _ = child.wait();
            Err(stderr())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_secrets_come_from_env_or_files_and_mistakes_are_refused() {
    let fake = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let principals = principal("ci", &["sre"], "") + &principal("alice", &["sre"], "");
    let policy = "[[policies]]\nkind = \"deploy.*\"\nslack_channel = \"C0DEPLOY\"\n";

    let refused = |toml: &str| serve_with(dir.path(), toml, &[]).err().expect("refused");
    let e = refused(&format!("{principals}{policy}"));
    assert!(
        e.contains("policies[0] (kind \"deploy.*\").slack_channel: needs a [slack] section"),
        "{e}"
    );
    let slack = fake.config("users = [{ slack_id = \"U1\", principal = \"nobody\" }]");
    let e = refused(&format!("{principals}{policy}{slack}"));
    assert!(
        e.contains("slack.users[0].principal: no [[principals]] entry is named \"nobody\""),
        "{e}"
    );
    let e = refused(&format!("{policy}{slack}"));
    assert!(e.contains("slack: needs [[principals]]"), "{e}");
    let bad_channel = "[[policies]]\nkind = \"deploy.*\"\nslack_channel = \"#deploys\"\n";
    let e = refused(&format!(
        "{principals}{bad_channel}{}",
        fake.config("users = []\nprincipal_from = \"email\"")
    ));
    assert!(
        e.contains("slack_channel: \"#deploys\" is not a channel id"),
        "{e}"
    );

    // The bot token from WITNESS__SLACK__BOT_TOKEN, the signing secret
    // from a file; neither appears in the logs.
    let secret_file = dir.path().join("signing.secret");
    std::fs::write(&secret_file, format!("{}\n", slack::SIGNING_SECRET)).unwrap();
    let toml = format!(
        "{principals}{policy}[slack]\nsigning_secret_file = \"{}\"\napi_base = \"{}\"\n\
         users = [{{ slack_id = \"U0ALICE\", principal = \"alice\" }}]\n",
        secret_file.display(),
        fake.api_base
    );
    let (_server, addr) = serve_with(
        dir.path(),
        &toml,
        &[
            ("WITNESS__SLACK__BOT_TOKEN", slack::BOT_TOKEN),
            ("WITNESS_LOG", "debug"),
        ],
    )
    .expect("starts");
    let creds = witness::client::Credentials {
        token: Some(token("ci")),
        ..Default::default()
    };
    let mut ci = witness::client::connect(&addr, &creds).await.unwrap();
    let id = asked(&mut ci, ask("deploy.api", &["sre"], 1, None))
        .await
        .id;
    eventually(
        "the decision's Slack message",
        Duration::from_secs(20),
        || async { fake.post_of(&id).is_some() },
    )
    .await;
    let (status, _) = interact(&addr, &fake.click("U0ALICE", &id, "witness_approve")).await;
    assert_eq!(status, 200, "signed with the secret from the file");
    assert_eq!(fake.ok_calls("views.open").len(), 1);
    assert_eq!(
        fake.violations(),
        Vec::<String>::new(),
        "the token from the environment"
    );
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(!log.contains(slack::BOT_TOKEN) && !log.contains(slack::SIGNING_SECRET));
}
