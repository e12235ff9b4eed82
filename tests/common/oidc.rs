//! The test OpenID provider (`tests/oidc/server.mjs`: oidc-provider from
//! npm, pinned) as a child process on a free loopback port.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub(crate) struct Provider {
    pub issuer: String,
    pub admin: String,
    child: Child,
}

impl Provider {
    /// Starts a provider; `args` are its flags (`--redirect-uri URL`, ...).
    pub(crate) fn start(args: &[&str]) -> Provider {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc");
        assert!(
            std::path::Path::new(dir)
                .join("node_modules/oidc-provider")
                .is_dir(),
            "the test identity provider's packages are missing: run `make oidc-deps`"
        );
        let mut child = Command::new("node")
            .arg(format!("{dir}/server.mjs"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node tests/oidc/server.mjs");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the provider printed its address");
        let v: serde_json::Value = serde_json::from_str(&line).expect("provider JSON line");
        Provider {
            issuer: v["issuer"].as_str().expect("issuer").to_string(),
            admin: v["admin"].as_str().expect("admin").to_string(),
            child,
        }
    }

    async fn post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let res = reqwest::Client::new()
            .post(format!("{}{path}", self.admin))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("provider admin API");
        assert!(res.status().is_success(), "{path}: {}", res.status());
        serde_json::from_slice(&res.bytes().await.expect("body")).expect("JSON")
    }

    /// A real client-credentials JWT for `ci-bot` (`resource` picks the
    /// audience and algorithm: `urn:witness`, `urn:witness:es256`, ...).
    pub(crate) async fn machine_token(&self, resource: &str) -> String {
        let res = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .basic_auth("ci-bot", Some("ci-bot-secret"))
            .form(&[("grant_type", "client_credentials"), ("resource", resource)])
            .send()
            .await
            .expect("token endpoint");
        let v: serde_json::Value =
            serde_json::from_slice(&res.bytes().await.expect("body")).expect("token JSON");
        v["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token: {v}"))
            .to_string()
    }

    /// A token the provider signs with its current key, with these
    /// options (`claims`, `alg`, `kid`, `tamper`: see tests/oidc/README.md).
    pub(crate) async fn sign(&self, options: serde_json::Value) -> String {
        let v = self.post("/sign", options).await;
        v["token"].as_str().expect("token").to_string()
    }

    /// Rotates the signing key of `alg`; returns the new `kid`.
    pub(crate) async fn rotate(&self, alg: &str) -> String {
        let v = self
            .post("/rotate", serde_json::json!({ "alg": alg }))
            .await;
        v["kid"].as_str().expect("kid").to_string()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An `[[issuers]]` entry `corp` for `issuer` (machines only).
pub(crate) fn issuer_config(issuer: &str) -> String {
    format!(
        "[[issuers]]\nname = \"corp\"\nissuer = \"{issuer}\"\naudience = \"witness\"\n\
         principal_claim = \"email\"\nroles_claim = \"groups\"\n\
         role_map = {{ \"deployers\" = [\"deployer\"], \"sre-team\" = [\"sre\"] }}\n"
    )
}
