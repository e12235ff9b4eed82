//! The console's session cookie (DESIGN §9) against the real binary: a
//! cookie sealed with the shared `[auth] session_key` identifies its
//! person on every protocol; one sealed with another key, an expired one,
//! or a cross-origin or wrongly typed state change through it is refused
//! and records nothing. Sign-in off loopback without the key refuses to
//! start.

mod common;

use common::*;
use witness::auth::session::{Session, Sessions};

const KEY: [u8; 32] = [7; 32];

fn config() -> String {
    use base64::Engine as _;
    format!(
        "[auth]\nsession_key = \"{}\"\n\
         [[issuers]]\nname = \"corp\"\nissuer = \"http://127.0.0.1:9\"\naudience = \"witness\"\n\
         principal_claim = \"email\"\nrole_map = {{ \"sre-team\" = [\"sre\"] }}\n\
         client_id = \"witness-console\"\nredirect_url = \"http://127.0.0.1:9/auth/callback\"\n{}",
        base64::engine::general_purpose::STANDARD.encode(KEY),
        principal("svc", &[], "")
    )
}

/// `Cookie:` for alice's session, sealed with `key`, expiring in `ttl` s.
fn cookie(key: &[u8], ttl: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let set = Sessions::new(key, std::time::Duration::from_secs(3600)).seal_session(&Session {
        principal: "alice@example.com".into(),
        issuer: "corp".into(),
        claims: vec!["sre-team".into()],
        expires: now + ttl,
    });
    set.split(';').next().unwrap().to_string()
}

async fn answer(s: &Server, id: &str, cookie: &str, origin: Option<&str>, ct: &str) -> u16 {
    let mut req = reqwest::Client::new()
        .post(format!(
            "http://{}/witness.v1.WitnessService/Answer",
            s.addr
        ))
        .header("cookie", cookie)
        .header("content-type", ct)
        .body(format!(
            r#"{{"decisionId":"{id}","verdict":"VERDICT_APPROVE","rationale":"looks fine"}}"#
        ));
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn the_session_cookie_identifies_and_every_misuse_is_refused() {
    let s = Server::start(&config());
    let mut svc = s.client_with_token(&token("svc")).await;
    let d = asked(&mut svc, ask("deploy.api", &["sre"], 1, None)).await;
    let before = count_events(&s.db_path());

    let who = |c: String| {
        let addr = s.addr.clone();
        async move {
            let res = reqwest::Client::new()
                .get(format!("http://{addr}/console/whoami"))
                .header("cookie", c)
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    let (status, body) = who(cookie(&KEY, 600)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(r#""principal":"alice@example.com""#),
        "{body}"
    );
    assert!(body.contains(r#""roles":["sre"]"#), "{body}");
    assert!(body.contains(r#""source":"issuer corp""#), "{body}");
    assert_eq!(
        who(cookie(&[8; 32], 600)).await.0,
        401,
        "another replica's key"
    );
    assert_eq!(who(cookie(&KEY, -5)).await.0, 401, "expired");

    let good = cookie(&KEY, 600);
    let own = format!("http://{}", s.addr);
    assert_eq!(
        answer(
            &s,
            &d.id,
            &good,
            Some("https://evil.example"),
            "application/json"
        )
        .await,
        403
    );
    assert_ne!(
        answer(&s, &d.id, &good, Some(&own), "text/plain").await,
        200
    );
    assert_ne!(
        answer(&s, &d.id, &good, None, "application/x-www-form-urlencoded").await,
        200
    );
    assert_eq!(
        answer(
            &s,
            &d.id,
            &cookie(&[8; 32], 600),
            Some(&own),
            "application/json"
        )
        .await,
        401
    );
    assert_eq!(
        count_events(&s.db_path()),
        before,
        "a refused request recorded something"
    );

    assert_eq!(
        answer(&s, &d.id, &good, Some(&own), "application/json").await,
        200
    );
    let body: String = open_db(&s.db_path())
        .query_row(
            "SELECT body FROM events WHERE type = 'ANSWERED' ORDER BY sequence DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(body.contains(r#""operator":"alice@example.com""#), "{body}");
    assert!(
        body.contains(r#""issuer":"corp""#),
        "the audit log names the issuer: {body}"
    );
}

#[test]
fn console_sign_in_off_loopback_needs_the_shared_session_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("witness.toml");
    let without_key = config_without_key();
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = \"{}\"\n{without_key}",
            sqlite_url(&dir.path().join("w.db"))
        ),
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args(["serve", "--insecure", "--listen", "0.0.0.0:0", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("auth.session_key: required"), "{err}");
}

fn config_without_key() -> String {
    let c = config();
    c.split_once("[[issuers]]")
        .map(|(_, rest)| format!("[[issuers]]{rest}"))
        .unwrap()
}

#[tokio::test]
async fn a_callback_without_this_browsers_sign_in_or_with_another_state_is_refused() {
    use witness::auth::session::Login;
    let s = Server::start(&config());
    let callback = |cookie: Option<String>| {
        let addr = s.addr.clone();
        async move {
            let mut req = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap()
                .get(format!(
                    "http://{addr}/auth/callback?code=c0de&state=attacker-state"
                ));
            if let Some(c) = cookie {
                req = req.header("cookie", c);
            }
            let res = req.send().await.unwrap();
            let set_cookie = res.headers().get("set-cookie").is_some();
            (res.status().as_u16(), set_cookie, res.text().await.unwrap())
        }
    };
    // No sign-in started in this browser (a forged or replayed callback).
    let (status, set, body) = callback(None).await;
    assert_eq!(status, 401);
    assert!(!set, "no session cookie on a refused callback");
    assert!(body.contains("no sign-in in progress"), "{body}");
    // A sign-in in progress, but the callback carries another state.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let login = Sessions::new(&KEY, std::time::Duration::from_secs(3600)).seal_login(&Login {
        issuer: "corp".into(),
        state: "this-browsers-state".into(),
        nonce: "n".into(),
        pkce_verifier: "v".into(),
        expires: now + 300,
    });
    let (status, set, body) = callback(Some(login.split(';').next().unwrap().to_string())).await;
    assert_eq!(status, 401);
    assert!(!set, "no session cookie on a refused callback");
    assert!(body.contains("state: does not match"), "{body}");
}
