//! Cross-site requests and rebinding (issue 28.2) and unknown paths
//! (28.8), with curl against the real binary. The same attacks from a real
//! page in Chromium are in `tests/browser/test_cross_origin.py`.

mod common;

use common::*;
use std::process::Command;

/// `curl` with `args`; the status code and the body.
fn curl(args: &[&str], url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

const ASK_V01: &str = r#"{"kind":"deploy.x","input":{},"responseShape":{},"authorizedRoles":["sre"],"surfaces":["console"]}"#;
const ASK_CONNECT: &str = r#"{"kind":"deploy.x","authorizedRoles":["sre"]}"#;

#[test]
fn cross_site_content_types_origins_and_hosts_are_refused_and_record_nothing() {
    let s = Server::start("");
    let base = format!("http://{}", s.addr);
    let v01 = format!("{base}/v1/decisions");
    let connect = format!("{base}/witness.v1.WitnessService/Ask");
    // What a no-cors fetch or a form may send.
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let h = format!("content-type: {ct}");
        let (code, body) = curl(&["-H", &h, "-d", ASK_V01], &v01);
        assert_eq!(code, 415, "/v1/ {ct}: {body}");
        assert!(body.contains("unsupported_media_type"), "{body}");
        let (code, _) = curl(&["-H", &h, "-d", ASK_CONNECT], &connect);
        assert_eq!(code, 415, "Connect {ct}");
    }
    // A page elsewhere, with the protocol's own type.
    let json = "content-type: application/json";
    for origin in ["http://evil.example", "null", "http://127.0.0.1:1"] {
        let o = format!("origin: {origin}");
        let (code, body) = curl(&["-H", json, "-H", &o, "-d", ASK_V01], &v01);
        assert_eq!(code, 403, "/v1/ from {origin}: {body}");
        assert!(body.contains("cross-origin"), "{body}");
        let (code, _) = curl(&["-H", json, "-H", &o, "-d", ASK_CONNECT], &connect);
        assert_eq!(code, 403, "Connect from {origin}");
        // gRPC-Web says it in its own terms: PERMISSION_DENIED.
        let (_, head) = curl(
            &[
                "-i",
                "-H",
                &o,
                "-H",
                "content-type: application/grpc-web+proto",
                "--data-binary",
                "@/dev/null",
            ],
            &connect,
        );
        assert!(
            head.contains("grpc-status: 7"),
            "gRPC-Web from {origin}: {head}"
        );
    }
    // DNS rebinding: dev mode answers loopback names only, reads included.
    let list = format!("{v01}?authorized=sre");
    for host in ["evil.example", "evil.example:50051", "10.0.0.1"] {
        let h = format!("host: {host}");
        let (code, body) = curl(&["-H", &h], &list);
        assert_eq!(code, 403, "Host {host}: {body}");
        assert!(body.contains("loopback"), "{body}");
    }
    assert_eq!(count_events(&s.db_path()), 0, "nothing recorded");
    // The page's own origin, and the loopback names, are served.
    let own = format!("origin: {base}");
    let (code, body) = curl(&["-H", json, "-H", &own, "-d", ASK_V01], &v01);
    assert_eq!(code, 201, "{body}");
    let port = s.addr.rsplit(':').next().unwrap();
    for host in [format!("localhost:{port}"), format!("[::1]:{port}")] {
        let h = format!("host: {host}");
        assert_eq!(curl(&["-H", &h], &list).0, 200, "Host {host}");
    }
    // A CORS preflight from elsewhere is refused.
    let (code, _) = curl(
        &[
            "-X",
            "OPTIONS",
            "-H",
            "origin: http://evil.example",
            "-H",
            "access-control-request-method: POST",
            "-H",
            "access-control-request-headers: content-type",
        ],
        &connect,
    );
    assert_eq!(code, 403);
}

#[test]
fn a_dashboard_in_allowed_origins_may_call_with_a_bearer_token_only() {
    let dash = "https://dash.example";
    let config = [
        principal("svc", &[], ""),
        format!("[http]\nallowed_origins = [\"{dash}\"]\n"),
    ]
    .concat();
    let s = Server::start(&config);
    let connect = format!("http://{}/witness.v1.WitnessService/Ask", s.addr);
    let bearer = format!("authorization: Bearer {}", token("svc"));
    let origin = format!("origin: {dash}");
    // The preflight names the origin and the headers the protocols use.
    let out = Command::new("curl")
        .args(["-sS", "-i", "-X", "OPTIONS", "-H", &origin])
        .args(["-H", "access-control-request-method: POST"])
        .args([
            "-H",
            "access-control-request-headers: authorization, content-type",
        ])
        .arg(&connect)
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(head.starts_with("http/1.1 204"), "{head}");
    assert!(
        head.contains(&format!("access-control-allow-origin: {dash}")),
        "{head}"
    );
    assert!(head.contains("authorization"), "{head}");
    // With a token: served, with the CORS headers the page needs.
    let out = Command::new("curl")
        .args(["-sS", "-i", "-H", "content-type: application/json"])
        .args(["-H", &origin, "-H", &bearer, "-d", ASK_CONNECT])
        .arg(&connect)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(
        text.contains(&format!("access-control-allow-origin: {dash}")),
        "{text}"
    );
    // Without one (a cookie or nothing), or from another origin: refused.
    let json = "content-type: application/json";
    let (code, _) = curl(&["-H", json, "-H", &origin, "-d", ASK_CONNECT], &connect);
    assert_eq!(code, 403);
    let (code, _) = curl(
        &[
            "-H",
            json,
            "-H",
            "origin: https://other.example",
            "-H",
            &bearer,
            "-d",
            ASK_CONNECT,
        ],
        &connect,
    );
    assert_eq!(code, 403);
    assert_eq!(count_events(&s.db_path()), 1, "only the allowed call");
}

#[test]
fn unknown_paths_are_404_unless_the_request_is_grpc() {
    let s = Server::start("");
    let base = format!("http://{}", s.addr);
    let out = Command::new("curl")
        .args(["-sS", "-i"])
        .arg(format!("{base}/no/such/thing"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(text.starts_with("http/1.1 404"), "{text}");
    assert!(!text.contains("grpc-status"), "{text}");
    assert!(!text.contains("application/grpc"), "{text}");
    // A gRPC client still learns the service does not exist.
    let out = Command::new("curl")
        .args(["-sS", "-i", "--http2-prior-knowledge"])
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
        .args(["--data-binary", "@/dev/null"])
        .arg(format!("{base}/no.Such/Method"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(text.contains("grpc-status: 12"), "{text}");
}
