//! Requests that send their headers and never the body, strangers that
//! connect and wait, and idle keep-alive connections (issue 28.1): the real
//! binary, real sockets, a lowered fd limit (`prlimit` from util-linux).

mod common;

use common::proc::*;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The three shapes of the attack: a Connect JSON Ask, a gRPC-Web Ask and
/// a chunked Connect Ask, each promising a body that never comes.
fn half_request(i: usize, extra_header: &str) -> String {
    let path = "/witness.v1.WitnessService/Ask";
    match i % 3 {
        0 => format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: 100\r\n{extra_header}\r\n"
        ),
        1 => format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/grpc-web+proto\r\n\
             X-Grpc-Web: 1\r\nContent-Length: 100\r\n{extra_header}\r\n"
        ),
        _ => format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: chunked\r\n{extra_header}\r\n5\r\n{{\"kin\r\n"
        ),
    }
}

/// Everything the server sends on `s` until it closes it (or `limit`).
fn read_to_close(s: &mut TcpStream, limit: Duration) -> (String, bool) {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), true),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), false)
}

fn attack(addr: &str, n: usize, extra_header: &str) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut s = TcpStream::connect(addr).expect("the kernel queues the connection");
            s.write_all(half_request(i, extra_header).as_bytes())
                .unwrap();
            s
        })
        .collect()
}

async fn healthy(addr: &str) -> bool {
    let addr = addr.to_string();
    tokio::task::spawn_blocking(move || get(&addr, "/healthz") == Some(200))
        .await
        .unwrap()
}

#[tokio::test]
async fn bodies_that_never_come_time_out_free_their_sockets_and_memory() {
    let p = Proc::start(
        &["prlimit", "--nofile=200:200", "--"],
        "[limits]\nbody_timeout = \"1s\"\n",
    );
    // Warm up, then take the baseline.
    let creds = witness::client::Credentials {
        principal: Some("svc".into()),
        ..Default::default()
    };
    let mut early = witness::client::connect(&p.addr, &creds).await.unwrap();
    for _ in 0..20 {
        early.ask(ask("warm.up", &["sre"], 1, None)).await.unwrap();
        assert!(healthy(&p.addr).await);
    }
    let rss_before = p.rss_kib();
    let started = Instant::now();
    let mut flood = attack(&p.addr, 600, "");
    // A connection open before the flood is served throughout.
    early
        .list_decisions(proto::ListDecisionsRequest::default())
        .await
        .expect("served during the flood");
    // Every half-sent request ends, with a timeout, not a decision.
    let mut answers = Vec::new();
    for s in &mut flood {
        let (text, closed) = read_to_close(s, Duration::from_secs(60));
        assert!(closed, "the server closed it: {text}");
        answers.push(text);
    }
    let timed_out = answers
        .iter()
        .filter(|t| {
            t.starts_with("HTTP/1.1 408")
                || t.contains("deadline_exceeded")
                || t.contains("grpc-status: 4")
        })
        .count();
    assert!(
        answers
            .iter()
            .all(|t| t.is_empty() || !t.contains(" 200 OK\r\ncontent-type: application/json")),
        "no Ask succeeded"
    );
    assert!(timed_out > 0, "{:?}", &answers[..3]);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "freed within the body timeout, not held"
    );
    drop(flood);
    let addr = p.addr.clone();
    eventually("health answers again", Duration::from_secs(10), || {
        healthy(&addr)
    })
    .await;
    let listed = early
        .list_decisions(proto::ListDecisionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.decisions.len(), 20, "the flood recorded nothing");
    // Memory comes back once the sockets are gone.
    let mut rss_after = p.rss_kib();
    let deadline = Instant::now() + Duration::from_secs(30);
    while rss_after > rss_before + rss_before / 10 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        rss_after = p.rss_kib();
    }
    eprintln!("RSS {rss_before} KiB before the flood, {rss_after} KiB after");
    assert!(
        rss_after <= rss_before + rss_before / 10,
        "RSS {rss_before} KiB before, {rss_after} KiB after"
    );
}

#[test]
fn without_a_token_a_half_sent_request_is_refused_from_its_headers() {
    let config = [
        principal("svc", &[], ""),
        "[limits]\nbody_timeout = \"60s\"\n".to_string(),
    ]
    .concat();
    let p = Proc::start(&["prlimit", "--nofile=200:200", "--"], &config);
    let started = Instant::now();
    let mut flood = attack(&p.addr, 400, "");
    for s in &mut flood {
        let (text, closed) = read_to_close(s, Duration::from_secs(30));
        assert!(closed, "closed after the refusal: {text}");
        assert!(
            text.starts_with("HTTP/1.1 401") || text.contains("grpc-status: 16"),
            "{text}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "refused at once, long before the 60 s body timeout"
    );
    assert_eq!(get(&p.addr, "/healthz"), Some(200));
    // A valid token's request is read as usual.
    let out = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["-H", "content-type: application/json"])
        .args(["-H", &format!("authorization: Bearer {}", token("svc"))])
        .args(["-d", r#"{"kind":"k","authorized_roles":["sre"]}"#])
        .arg(format!("http://{}/witness.v1.WitnessService/Ask", p.addr))
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"200");
}

#[tokio::test]
async fn strangers_past_the_cap_close_the_oldest_so_newcomers_get_in() {
    let p = Proc::start(
        &[],
        "[limits]\nmax_unauthenticated_connections = 20\nhandshake_timeout = \"60s\"\n",
    );
    let mut strangers = idle(&p.addr, 50);
    // A newcomer (a health check) is served, past the 50.
    assert_eq!(get(&p.addr, "/healthz"), Some(200));
    assert!(
        closed_within(&mut strangers[0], Duration::from_secs(10)),
        "the oldest stranger was closed"
    );
    assert!(
        !closed_within(&mut strangers[49], Duration::from_millis(300)),
        "the newest strangers stay"
    );
    assert!(
        p.stderr()
            .contains("max_unauthenticated_connections reached"),
        "{}",
        p.stderr()
    );
    // An authenticated connection no longer counts: it outlives more strangers.
    let creds = witness::client::Credentials {
        principal: Some("alice".into()),
        roles: vec!["sre".into()],
        ..Default::default()
    };
    let mut known = witness::client::connect(&p.addr, &creds).await.unwrap();
    known
        .list_decisions(proto::ListDecisionsRequest::default())
        .await
        .unwrap();
    let _more = idle(&p.addr, 60);
    assert_eq!(get(&p.addr, "/healthz"), Some(200));
    known
        .list_decisions(proto::ListDecisionsRequest::default())
        .await
        .expect("the authenticated connection was not evicted");
}

#[tokio::test]
async fn idle_connections_close_after_idle_timeout_and_streams_stay_open() {
    let p = Proc::start(&[], "[limits]\nidle_timeout = \"1s\"\n");
    // A keep-alive HTTP/1.1 connection that made one request, then idles.
    let mut keep = TcpStream::connect(&p.addr).unwrap();
    keep.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let (text, closed) = read_to_close(&mut keep, Duration::from_secs(10));
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(closed, "the idle connection was closed");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before the idle timeout"
    );
    // A stream with nothing to say for three idle timeouts stays open.
    let creds = witness::client::Credentials {
        principal: Some("alice".into()),
        roles: vec!["sre".into()],
        ..Default::default()
    };
    let mut c = witness::client::connect(&p.addr, &creds).await.unwrap();
    let mut stream = c
        .stream_decisions(proto::StreamDecisionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let svc = witness::client::Credentials {
        principal: Some("svc".into()),
        ..Default::default()
    };
    let mut asker = witness::client::connect(&p.addr, &svc).await.unwrap();
    let d = asked(&mut asker, ask("deploy.prod", &["sre"], 1, None)).await;
    let event = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an event in time")
        .expect("the stream is still open")
        .expect("an event");
    assert_eq!(event.event.unwrap().decision.unwrap().id, d.id);
}
