//! The accept loop under idle and excess connections (issue #14.2), and
//! `[http] listen`: the real binary, real sockets, a lowered fd limit
//! (`prlimit` from util-linux).

mod common;

use common::proc::*;
use common::*;
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

#[tokio::test]
async fn idle_sockets_cannot_exhaust_file_descriptors() {
    // A soft limit below the hard one is raised; the hard one is low enough
    // that 150 idle sockets exhaust it.
    let p = Proc::start(
        &["prlimit", "--nofile=40:80", "--"],
        "[limits]\nhandshake_timeout = \"1s\"\n",
    );
    let log = p.stderr();
    assert!(
        log.contains("RLIMIT_NOFILE") && log.contains("soft_was=40") && log.contains("soft=80"),
        "the raise is logged with both limits: {log}"
    );
    // A client connected before the flood keeps being served through it.
    let creds = witness::client::Credentials {
        principal: Some("alice".into()),
        roles: vec!["sre".into()],
        ..Default::default()
    };
    let mut early = witness::client::connect(&p.addr, &creds).await.unwrap();
    early
        .list_decisions(proto::ListDecisionsRequest::default())
        .await
        .unwrap();
    let mut flood = idle(&p.addr, 150);
    early
        .list_decisions(proto::ListDecisionsRequest::default())
        .await
        .expect("an open connection is served while the fd table is full");
    // New clients get through once the handshake timeout frees idle ones
    // (the flood stays open on our side: the server must close it).
    let addr = p.addr.clone();
    eventually("a new client is served", Duration::from_secs(30), || {
        let addr = addr.clone();
        async move {
            tokio::task::spawn_blocking(move || get(&addr, "/healthz") == Some(200))
                .await
                .unwrap()
        }
    })
    .await;
    assert!(
        closed_within(&mut flood[0], Duration::from_secs(10)),
        "the server closed an idle socket"
    );
    let log = p.stderr();
    assert!(log.contains("accept failed; backing off"), "{log}");
    let bursts = log.matches("accept failed; backing off").count();
    assert!(
        bursts <= 20,
        "logged once per burst, not per failure: {bursts} lines"
    );
    drop(flood);
}

#[tokio::test]
async fn max_connections_refuses_the_excess_until_some_close() {
    let p = Proc::start(
        &[],
        "[limits]\nmax_connections = 4\nhandshake_timeout = \"60s\"\n",
    );
    let held = idle(&p.addr, 4);
    // Accepts are in order, so the fifth is seen after the first four.
    let mut fifth = TcpStream::connect(&p.addr).unwrap();
    assert!(
        closed_within(&mut fifth, Duration::from_secs(10)),
        "a connection beyond max_connections is closed at once"
    );
    assert_eq!(get(&p.addr, "/healthz"), None, "refused while full");
    assert!(p.stderr().contains("max_connections reached"));
    drop(held);
    let addr = p.addr.clone();
    eventually(
        "served again once some closed",
        Duration::from_secs(20),
        || {
            let addr = addr.clone();
            async move {
                tokio::task::spawn_blocking(move || get(&addr, "/healthz") == Some(200))
                    .await
                    .unwrap()
            }
        },
    )
    .await;
}

#[test]
fn a_connection_that_sends_nothing_is_closed_after_the_handshake_timeout() {
    let p = Proc::start(&[], "[limits]\nhandshake_timeout = \"300ms\"\n");
    let mut silent = TcpStream::connect(&p.addr).unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(10)));
    // One that starts a request in time is served.
    assert_eq!(get(&p.addr, "/healthz"), Some(200));
}

#[test]
fn limits_must_be_positive_and_origins_must_be_origins() {
    for (extra, field) in [
        ("[limits]\nmax_connections = 0\n", "limits.max_connections"),
        (
            "[limits]\nhandshake_timeout = \"0s\"\n",
            "limits.handshake_timeout",
        ),
        (
            "[limits]\nmax_unauthenticated_connections = 0\n",
            "limits.max_unauthenticated_connections",
        ),
        ("[limits]\nbody_timeout = \"0s\"\n", "limits.body_timeout"),
        ("[limits]\nidle_timeout = \"0s\"\n", "limits.idle_timeout"),
        (
            "[http]\nallowed_origins = [\"https://dash.example/app\"]\n",
            "http.allowed_origins[0]",
        ),
        (
            "[http]\nallowed_origins = [\"dash.example\"]\n",
            "http.allowed_origins[0]",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("w.toml");
        std::fs::write(&cfg, extra).unwrap();
        let o = Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&cfg)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(field), "{err}");
    }
}

#[tokio::test]
async fn http_listen_moves_the_http_side_to_its_own_port() {
    let p = Proc::start(&[], "[http]\nlisten = \"127.0.0.1:0\"\n");
    let http = p.http_addr.clone().unwrap();
    assert_ne!(http, p.addr);
    assert_eq!(get(&http, "/healthz"), Some(200));
    assert_eq!(get(&p.addr, "/healthz"), Some(404), "not on the gRPC port");
    let ask = |addr: &str| {
        Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(["-H", "content-type: application/json"])
            .args(["-H", "x-witness-principal: deployer"])
            .args(["-d", r#"{"kind":"k","authorized_roles":["sre"]}"#])
            .arg(format!("http://{addr}/witness.v1.WitnessService/Ask"))
            .output()
            .unwrap()
            .stdout
    };
    assert_eq!(ask(&http), b"200");
    assert_eq!(ask(&p.addr), b"404", "Connect is on the HTTP port only");
    // gRPC stays on the main port.
    let creds = witness::client::Credentials {
        principal: Some("alice".into()),
        roles: vec!["sre".into()],
        ..Default::default()
    };
    let mut c = witness::client::connect(&p.addr, &creds).await.unwrap();
    let listed = c
        .list_decisions(proto::ListDecisionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.decisions.len(), 1);
}

#[test]
fn with_tls_a_silent_connection_is_closed_and_a_real_client_is_served() {
    let certs = tempfile::tempdir().unwrap();
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert, key) = (certs.path().join("s.crt"), certs.path().join("s.key"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let p = Proc::start(
        &[],
        &format!(
            "[limits]\nhandshake_timeout = \"300ms\"\n[tls]\ncert = {:?}\nkey = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        ),
    );
    let mut silent = TcpStream::connect(&p.addr).unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(10)));
    let o = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(&cert)
        .arg(format!("https://{}/healthz", p.addr))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "ok\n",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
