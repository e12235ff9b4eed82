//! Identity from an OpenID provider (DESIGN §9), against a real one:
//! `oidc-provider` from npm (tests/oidc/), started by the tests. JWT bearer
//! tokens ask through the real binary; forged, stale and foreign tokens are
//! refused naming the check, and nothing is recorded; a rotated key is
//! fetched once.

mod common;

use common::oidc::{issuer_config, Provider};
use common::*;
use serde_json::json;
use std::time::Duration;
use tonic::Code;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims like the provider's machine tokens, for `/__test/sign`.
fn machine_claims() -> serde_json::Value {
    json!({"aud": "witness", "sub": "ci-bot", "email": "ci-bot@example.com", "groups": ["deployers"]})
}

/// The value of the Prometheus series `series` (0 when absent).
async fn metric(s: &Server, series: &str) -> f64 {
    let text = reqwest::get(format!("http://{}/metrics", s.addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// The Ask `token` makes, as the server answers it.
async fn ask_with(s: &Server, token: &str) -> Result<proto::Decision, tonic::Status> {
    let mut c = s.client_with_token(token).await;
    c.ask(ask("deploy.api", &["deployer"], 1, None))
        .await
        .map(|r| r.into_inner().decision.expect("decision"))
}

#[tokio::test]
async fn issuer_jwts_ask_and_every_bad_token_is_refused_naming_the_check() {
    let corp = Provider::start(&[]);
    let stranger = Provider::start(&[]);
    let s =
        Server::start(&(issuer_config(&corp.issuer) + &principal("auditor", &["deployer"], "")));

    // A real client-credentials token: RS256, then ES256 and EdDSA.
    let token = corp.machine_token("urn:witness").await;
    let d = ask_with(&s, &token).await.expect("a JWT asks");
    assert_eq!(d.asked_by, "ci-bot@example.com");
    for resource in ["urn:witness:es256", "urn:witness:eddsa"] {
        let t = corp.machine_token(resource).await;
        ask_with(&s, &t)
            .await
            .unwrap_or_else(|e| panic!("{resource}: {e:?}"));
    }
    let recorded = count_events(&s.db_path());

    let signed = |extra: serde_json::Value| {
        let mut claims = machine_claims();
        if let Some(extra_claims) = extra.get("claims") {
            for (k, v) in extra_claims.as_object().unwrap() {
                claims[k] = v.clone();
            }
        }
        let mut options = extra.clone();
        options["claims"] = claims;
        options
    };
    let t = now();
    let cases = [
        (
            "expired",
            corp.sign(signed(json!({"claims": {"exp": t - 120}}))).await,
            "exp:",
        ),
        (
            "nbf in the future",
            corp.sign(signed(json!({"claims": {"nbf": t + 600, "exp": t + 900}})))
                .await,
            "nbf:",
        ),
        ("wrong aud", corp.machine_token("urn:other").await, "aud:"),
        (
            "wrong iss",
            corp.sign(signed(
                json!({"claims": {"iss": "https://login.evil.example"}}),
            ))
            .await,
            "iss:",
        ),
        (
            "alg none",
            corp.sign(signed(json!({"alg": "none"}))).await,
            "alg none",
        ),
        (
            "HS256 keyed with the public key",
            corp.sign(signed(json!({"alg": "HS256"}))).await,
            "alg: HS256 is refused",
        ),
        (
            "unknown kid after a refresh",
            corp.sign(signed(json!({"kid": "no-such-key"}))).await,
            "kid:",
        ),
        (
            "a second, unconfigured provider",
            stranger.machine_token("urn:witness").await,
            "is not a configured issuer",
        ),
        (
            "tampered payload",
            corp.sign(signed(json!({"tamper": {"email": "auditor@example.com"}})))
                .await,
            "signature:",
        ),
    ];
    for (what, token, check) in &cases {
        let err = ask_with(&s, token).await.expect_err(what);
        assert_eq!(err.code(), Code::Unauthenticated, "{what}: {err:?}");
        assert!(
            err.message().contains(check),
            "{what}: {:?} should name {check:?}",
            err.message()
        );
        assert!(
            !err.message().contains(token.as_str()),
            "{what}: the refusal quotes the token"
        );
    }
    // Over HTTP (Connect) the same token is a 401 naming the check.
    let res = reqwest::Client::new()
        .post(format!("http://{}/witness.v1.WitnessService/Ask", s.addr))
        .bearer_auth(&cases[0].1)
        .header("content-type", "application/json")
        .body(r#"{"kind":"deploy.api","authorizedRoles":["deployer"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("exp:"));
    assert_eq!(
        count_events(&s.db_path()),
        recorded,
        "a refused token recorded something"
    );
    let log = s.stderr();
    for (what, token, _) in &cases {
        assert!(
            !log.contains(token.as_str()),
            "{what}: the token is in the log"
        );
    }

    // /mcp takes the same JWT, and its resource metadata names the issuer.
    let mcp = reqwest::Client::new()
        .post(format!("http://{}/mcp", s.addr))
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "identity-test", "version": "1"}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(mcp.status(), 200, "an issuer JWT opens an MCP session");
    let forged = reqwest::Client::new()
        .post(format!("http://{}/mcp", s.addr))
        .bearer_auth(&cases[8].1)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let meta = reqwest::get(format!(
        "http://{}/.well-known/oauth-protected-resource",
        s.addr
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(
        meta.contains(&format!(r#""authorization_servers":["{}"]"#, corp.issuer)),
        "{meta}"
    );

    // `witness whoami` with the JWT: principal, roles from role_map, source.
    let out = std::process::Command::new(bin())
        .args(["whoami", "--server", &s.addr])
        .env("WITNESS_TOKEN", &token)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("principal: ci-bot@example.com"), "{text}");
    assert!(text.contains("roles:     deployer"), "{text}");
    assert!(text.contains("source:    issuer corp"), "{text}");
}

#[tokio::test]
async fn a_rotated_key_is_fetched_once_and_unknown_kids_do_not_hammer_the_provider() {
    let corp = Provider::start(&[]);
    let s = Server::start(&issuer_config(&corp.issuer));
    let fetched = r#"witness_jwks_fetches_total{issuer="corp",result="ok"}"#;
    ask_with(&s, &corp.machine_token("urn:witness").await)
        .await
        .expect("first key");
    assert_eq!(metric(&s, fetched).await, 1.0);

    let kid = corp.rotate("RS256").await;
    for _ in 0..3 {
        let t = corp.machine_token("urn:witness").await;
        assert!(t.starts_with("ey"));
        ask_with(&s, &t).await.expect("the rotated key is accepted");
    }
    assert_eq!(
        metric(&s, fetched).await,
        2.0,
        "new kid {kid} fetched exactly once"
    );

    // An unknown kid within 30 s of the last fetch fetches nothing more.
    for _ in 0..3 {
        let forged = corp
            .sign(json!({"claims": machine_claims(), "kid": "nope"}))
            .await;
        let err = ask_with(&s, &forged).await.expect_err("unknown kid");
        assert_eq!(err.code(), Code::Unauthenticated);
    }
    assert_eq!(metric(&s, fetched).await, 2.0);
}

/// SIGHUP to the server.
fn hup(s: &Server) {
    let pid = s.pid().expect("running") as i32;
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
}

async fn reloads(s: &Server, result: &str) -> f64 {
    metric(
        s,
        &format!("witness_config_reloads_total{{result=\"{result}\"}}"),
    )
    .await
}

type Events = tonic::Streaming<proto::StreamDecisionsResponse>;

/// The id of the next decision event on `st`.
async fn next_id(st: &mut Events) -> String {
    let m = tokio::time::timeout(Duration::from_secs(20), st.message())
        .await
        .expect("an event within 20 s")
        .expect("stream ok")
        .expect("stream open");
    m.event.expect("event").decision.expect("decision").id
}

#[tokio::test]
async fn sighup_swaps_principals_and_roles_keeps_streams_and_refuses_bad_files() {
    let base = principal("alice", &["sre"], "");
    let s = Server::start(&(base.clone() + &principal("bob", &["sre"], "")));
    let store = format!("[store]\nurl = \"{}\"\n", sqlite_url(&s.db_path()));
    let write = |extra: &str| std::fs::write(s.config_path(), format!("{store}{extra}")).unwrap();

    let mut alice = s.client_with_token(&token("alice")).await;
    let mut bob = s.client_with_token(&token("bob")).await;
    let mut bob_stream = bob
        .stream_decisions(proto::StreamDecisionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let first = asked(&mut alice, ask("deploy.a", &["sre"], 1, None)).await;
    assert_eq!(next_id(&mut bob_stream).await, first.id);

    // carol is not known yet.
    let mut carol = s.client_with_token(&token("carol")).await;
    let err = carol
        .ask(ask("deploy.c", &["sre"], 1, None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // The new file: bob loses sre, carol arrives. `config check` shows it.
    let old = s.dir.path().join("old.toml");
    std::fs::copy(s.config_path(), &old).unwrap();
    write(&(base.clone() + &principal("bob", &[], "") + &principal("carol", &["sre"], "")));
    let out = std::process::Command::new(bin())
        .args(["config", "check"])
        .arg(s.config_path())
        .arg("--running")
        .arg(&old)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("principals: + carol"), "{text}");
    assert!(text.contains("principals: ~ bob (roles)"), "{text}");

    hup(&s);
    eventually("the reload", Duration::from_secs(10), || async {
        reloads(&s, "applied").await == 1.0
    })
    .await;
    asked(&mut carol, ask("deploy.c", &["sre"], 1, None)).await;
    // bob's open stream no longer receives sre decisions: the sre one is
    // asked first, then one bob asks himself; bob's next event is his own.
    let hidden = asked(&mut alice, ask("deploy.b", &["sre"], 1, None)).await;
    let own = asked(&mut bob, ask("deploy.own", &["nobody"], 1, None)).await;
    let seen = next_id(&mut bob_stream).await;
    assert_ne!(
        seen, hidden.id,
        "bob still sees an sre decision after losing the role"
    );
    assert_eq!(seen, own.id);
    let err = bob
        .get_decision(proto::GetDecisionRequest {
            decision_id: hidden.id.clone(),
        })
        .await;
    assert_eq!(err.unwrap_err().code(), Code::NotFound);

    // A broken file is refused; the running config stays.
    std::fs::write(s.config_path(), "listen = [\n").unwrap();
    hup(&s);
    eventually("the refusal", Duration::from_secs(10), || async {
        reloads(&s, "refused").await == 1.0
    })
    .await;
    asked(&mut carol, ask("deploy.c", &["sre"], 1, None)).await;
    assert!(
        s.stderr().contains("config reload refused"),
        "{}",
        s.stderr()
    );

    // A key that needs a restart refuses the reload and names the key.
    let elsewhere = s.dir.path().join("other.db");
    std::fs::write(
        s.config_path(),
        format!("[store]\nurl = \"{}\"\n{base}", sqlite_url(&elsewhere)),
    )
    .unwrap();
    hup(&s);
    eventually("the second refusal", Duration::from_secs(10), || async {
        reloads(&s, "refused").await == 2.0
    })
    .await;
    assert!(
        s.stderr().contains("[store] changed; that needs a restart"),
        "{}",
        s.stderr()
    );
    asked(&mut carol, ask("deploy.c", &["sre"], 1, None)).await;
}
