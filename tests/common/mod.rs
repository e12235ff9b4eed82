//! Test harness: starts the real `witness` binary on port 0 with its own
//! config and database directory, and connects real gRPC clients to it.
#![allow(dead_code)]

pub(crate) mod oidc;
pub(crate) mod pg;
pub(crate) mod pg_ha;
pub(crate) mod proc;
pub(crate) mod receiver;
pub(crate) mod slack;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use witness::client::{self, Credentials, GrpcClient};

pub(crate) use witness::proto;

/// A running server process.
pub(crate) struct Server {
    pub dir: tempfile::TempDir,
    pub addr: String,
    child: Option<Child>,
    stderr_log: PathBuf,
}

pub(crate) fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_witness")
}

/// The store URL of the SQLite file `db`.
pub(crate) fn sqlite_url(db: &Path) -> String {
    format!("sqlite://{}", db.display())
}

/// Runs `witness audit verify [--json] --config CONFIG`, with `store_url`
/// (when given) overriding the config's store.
fn audit_verify_output(config: &Path, store_url: Option<&str>, json: bool) -> std::process::Output {
    let mut cmd = Command::new(bin());
    cmd.args(["audit", "verify"]);
    if json {
        cmd.arg("--json");
    }
    cmd.arg("--config").arg(config);
    if let Some(url) = store_url {
        cmd.env("WITNESS__STORE__URL", url);
    }
    cmd.output().unwrap()
}

/// `witness audit verify` on the SQLite file `db`: the exit code, and what
/// it printed (stdout, then stderr).
pub(crate) fn audit_verify(config: &Path, db: &Path) -> (i32, String) {
    let out = audit_verify_output(config, Some(&sqlite_url(db)), false);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// `witness audit verify --json`: the exit code and the report.
pub(crate) fn audit_verify_json(
    config: &Path,
    store_url: Option<&str>,
) -> (i32, serde_json::Value) {
    let out = audit_verify_output(config, store_url, true);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let doc = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "audit verify printed no JSON ({e}): {text} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), doc)
}

impl Server {
    /// Starts a server with `extra` TOML appended to a config that points
    /// the store at a fresh directory.
    pub(crate) fn start(extra: &str) -> Server {
        Server::start_on("", extra)
    }

    /// Starts a server on the store at `url` (empty: a fresh SQLite file).
    pub(crate) fn start_on(url: &str, extra: &str) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = if url.is_empty() {
            format!("sqlite://{}", dir.path().join("witness.db").display())
        } else {
            url.to_string()
        };
        let config = format!("[store]\nurl = \"{url}\"\n{extra}");
        std::fs::write(dir.path().join("witness.toml"), config).expect("write config");
        let mut s = Server {
            stderr_log: dir.path().join("stderr.log"),
            dir,
            addr: String::new(),
            child: None,
        };
        s.spawn();
        s
    }

    pub(crate) fn config_path(&self) -> PathBuf {
        self.dir.path().join("witness.toml")
    }

    pub(crate) fn db_path(&self) -> PathBuf {
        self.dir.path().join("witness.db")
    }

    fn spawn(&mut self) {
        self.spawn_on("127.0.0.1:0");
    }

    fn spawn_on(&mut self, listen: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_log)
            .expect("log");
        let mut child = Command::new(bin())
            .args(["serve", "--listen", listen, "--config"])
            .arg(self.config_path())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start witness");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("witness listening on ") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => self.addr = addr,
            Err(_) => {
                let _ = child.kill();
                panic!("witness did not start: {}", self.stderr());
            }
        }
        self.child = Some(child);
    }

    /// Everything the server wrote to stderr so far.
    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// The server process's id while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no shutdown, no flush.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same config and database.
    pub(crate) fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Starts the server again on the same port, so connected clients
    /// reconnect to it.
    pub(crate) fn restart_same_port(&mut self) {
        self.kill9();
        let listen = self.addr.clone();
        self.spawn_on(&listen);
    }

    pub(crate) async fn client(&self, principal: &str, roles: &[&str]) -> GrpcClient {
        let creds = Credentials {
            token: None,
            principal: (!principal.is_empty()).then(|| principal.to_string()),
            roles: roles.iter().map(ToString::to_string).collect(),
            ..Credentials::default()
        };
        client::connect(&self.addr, &creds).await.expect("connect")
    }

    pub(crate) async fn client_with_token(&self, token: &str) -> GrpcClient {
        let creds = Credentials {
            token: Some(token.to_string()),
            ..Credentials::default()
        };
        client::connect(&self.addr, &creds).await.expect("connect")
    }

    /// Runs the CLI against this server.
    pub(crate) fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin())
            .args(args)
            .args(["--server", &self.addr])
            .output()
            .expect("run cli")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Waits for `cond` with a deadline, polling.
pub(crate) async fn eventually<F, Fut>(what: &str, timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

pub(crate) fn json(v: serde_json::Value) -> prost_types::Value {
    proto::convert::json_to_proto(&v)
}

/// A typical Ask.
pub(crate) fn ask(
    kind: &str,
    roles: &[&str],
    approvals: u32,
    context: Option<serde_json::Value>,
) -> proto::AskRequest {
    proto::AskRequest {
        request_id: uuid::Uuid::now_v7().to_string(),
        kind: kind.into(),
        input: Some(json(serde_json::json!({"target": "cluster-a"}))),
        response_schema: None,
        authorized_roles: roles.iter().map(ToString::to_string).collect(),
        surfaces: vec!["console".into()],
        required_approvals: approvals,
        context_snapshot: context.map(json),
        timeout: None,
    }
}

pub(crate) fn approve(id: &str, rationale: &str) -> proto::AnswerRequest {
    proto::AnswerRequest {
        decision_id: id.into(),
        request_id: String::new(),
        verdict: proto::Verdict::Approve as i32,
        answer: None,
        rationale: rationale.into(),
        current_context: None,
        on_behalf_of: String::new(),
    }
}

pub(crate) fn reject(id: &str, rationale: &str) -> proto::AnswerRequest {
    proto::AnswerRequest {
        verdict: proto::Verdict::Reject as i32,
        ..approve(id, rationale)
    }
}

/// Opens the server's SQLite file directly (for tamper tests and counts).
pub(crate) fn open_db(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("open db")
}

pub(crate) fn count_events(path: &Path) -> i64 {
    open_db(path)
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .expect("count")
}

/// The bearer token the tests give principal `name`.
pub(crate) fn token(name: &str) -> String {
    format!("tok-{name}-0123456789abcdef")
}

/// A `[[principals]]` entry for `name` with [`token`]`(name)`, `roles`,
/// and `extra` TOML lines (`can_ask = …`, `can_act_for = …`).
pub(crate) fn principal(name: &str, roles: &[&str], extra: &str) -> String {
    format!(
        "[[principals]]\nname = \"{name}\"\ntoken_sha256 = \"{}\"\nroles = {:?}\n{extra}\n",
        witness::auth::token_sha256(&token(name)),
        roles
    )
}

/// Asks and returns the decision (the test fails if the Ask does).
pub(crate) async fn asked(c: &mut GrpcClient, req: proto::AskRequest) -> proto::Decision {
    c.ask(req)
        .await
        .expect("ask")
        .into_inner()
        .decision
        .expect("a decision")
}
