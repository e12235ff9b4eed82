//! The issue-18 ratios from one run, driven by h2load (nghttp2's HTTP/2
//! load generator) so that the Ask and its ceiling, the health Check, are
//! loaded by the same client with the same -n/-c/-m; then 100k small asks
//! for bytes per decision and the server's memory before, at the peak and
//! 10 s after the load.

use super::{start_servers, Servers};
use crate::proto;
use prost::Message;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const ASK_PATH: &str = "/witness.v1.WitnessService/Ask";
const HEALTH_PATH: &str = "/grpc.health.v1.Health/Check";

/// What one h2load run measured.
struct Run {
    per_second: f64,
    succeeded: u64,
}

/// A gRPC request body: the 5-byte frame header and the message.
fn grpc_frame(message: &impl Message) -> Vec<u8> {
    let bytes = message.encode_to_vec();
    let mut out = Vec::with_capacity(5 + bytes.len());
    out.push(0);
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(&bytes);
    out
}

/// The small ask every request sends (no request_id: each one creates a
/// decision; h2load repeats one body).
fn small_ask() -> proto::AskRequest {
    proto::AskRequest {
        kind: "bench.deploy".into(),
        input: Some(crate::api::convert::json_to_proto(
            &serde_json::json!({"task": 1, "service": "api"}),
        )),
        authorized_roles: vec!["sre".into()],
        surfaces: vec!["console".into()],
        ..Default::default()
    }
}

fn h2load(
    addr: &str,
    path: &str,
    body: &Path,
    n: usize,
    c: usize,
    m: usize,
) -> Result<Run, String> {
    let out = Command::new("h2load")
        .args([
            "-n",
            &n.to_string(),
            "-c",
            &c.to_string(),
            "-m",
            &m.to_string(),
        ])
        .arg("--data")
        .arg(body)
        .args([
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            "-H",
            "x-witness-principal: bench",
            "-H",
            "x-witness-roles: sre",
        ])
        .arg(format!("http://{addr}{path}"))
        .output()
        .map_err(|e| format!("h2load: {e} (install nghttp2-client; `make bench` does)"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "finished in 5.01s, 3230.12 req/s, 1.2MB/s"
    let per_second = text
        .lines()
        .find_map(|l| l.strip_prefix("finished in "))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|r| r.trim_end_matches(" req/s").parse().ok())
        .ok_or_else(|| format!("h2load printed no rate:\n{text}"))?;
    // "requests: 100 total, 100 started, 100 done, 100 succeeded, 0 failed, ..."
    let succeeded = text
        .lines()
        .find_map(|l| l.strip_prefix("requests: "))
        .and_then(|l| l.split(", ").find(|p| p.ends_with(" succeeded")))
        .and_then(|p| p.trim_end_matches(" succeeded").parse().ok())
        .unwrap_or(0);
    Ok(Run {
        per_second,
        succeeded,
    })
}

/// Decisions in the bench database: h2load sees HTTP status only, so the
/// asks that really succeeded are counted in the store.
fn decisions(db: &Path) -> Result<u64, String> {
    let conn = rusqlite::Connection::open(db).map_err(|e| e.to_string())?;
    conn.query_row("SELECT count(*) FROM decisions", [], |r| r.get::<_, i64>(0))
        .map(|n| n.max(0) as u64)
        .map_err(|e| e.to_string())
}

fn write_body(
    dir: &Path,
    name: &str,
    message: &impl Message,
) -> Result<std::path::PathBuf, String> {
    let path = dir.join(name);
    std::fs::write(&path, grpc_frame(message)).map_err(|e| e.to_string())?;
    Ok(path)
}

/// Ask and health at one shape on a fresh server: (Ask/s, health/s).
fn ratio_at(n: usize, c: usize, m: usize) -> Result<(f64, f64), String> {
    let servers = start_servers(None, 1)?;
    let dir = servers.dir.clone();
    let addr = &servers.addrs[0];
    let health = write_body(
        &dir,
        "health.bin",
        &tonic_health::pb::HealthCheckRequest::default(),
    )?;
    let ask = write_body(&dir, "ask.bin", &small_ask())?;
    // Warm up both paths (connections, caches) before measuring.
    h2load(addr, HEALTH_PATH, &health, 2000, c, m)?;
    h2load(addr, ASK_PATH, &ask, 1000, c, m)?;
    let before = decisions(&dir.join("bench.db"))?;
    let h = h2load(addr, HEALTH_PATH, &health, n, c, m)?;
    let a = h2load(addr, ASK_PATH, &ask, n, c, m)?;
    let created = decisions(&dir.join("bench.db"))? - before;
    if created != n as u64 || a.succeeded != n as u64 || h.succeeded != n as u64 {
        return Err(format!(
            "h2load -c {c} -m {m}: {created} of {n} asks created, {} health checks succeeded",
            h.succeeded
        ));
    }
    Ok((a.per_second, h.per_second))
}

fn rss(servers: &Servers) -> u64 {
    servers.rss_kib().unwrap_or(0)
}

/// Prints the issue-18 figures: Ask/health at both shapes, then bytes per
/// decision and memory over `asks` small asks at full rate.
pub(super) fn run(n: usize, asks: usize) -> Result<(), String> {
    println!("h2load, same -n {n} for Ask and its ceiling (health Check), fresh SQLite server per shape, rate limit off:");
    for (c, m) in [(32, 1), (16, 8)] {
        let (ask, health) = ratio_at(n, c, m)?;
        println!(
            "  -c {c:>2} -m {m}: Ask {ask:>7.0} req/s   health Check {health:>7.0} req/s   Ask / health {:.2}",
            ask / health.max(1.0)
        );
    }
    if asks == 0 {
        return Ok(());
    }
    let servers = start_servers(None, 1)?;
    let dir = servers.dir.clone();
    let ask = write_body(&dir, "ask.bin", &small_ask())?;
    std::thread::sleep(Duration::from_millis(300));
    let before = rss(&servers);
    let addr = servers.addrs[0].clone();
    let load = std::thread::spawn(move || h2load(&addr, ASK_PATH, &ask, asks, 32, 1));
    let mut peak = before;
    while !load.is_finished() {
        peak = peak.max(rss(&servers));
        std::thread::sleep(Duration::from_millis(100));
    }
    let run = load.join().map_err(|_| "h2load thread panicked")??;
    peak = peak.max(rss(&servers));
    let stopped = Instant::now();
    let db = dir.join("bench.db");
    let created = decisions(&db)?;
    let conn = rusqlite::Connection::open(&db).map_err(|e| e.to_string())?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(|e| e.to_string())?;
    drop(conn);
    let size = std::fs::metadata(&db).map_err(|e| e.to_string())?.len();
    std::thread::sleep(Duration::from_secs(10).saturating_sub(stopped.elapsed()));
    let after = rss(&servers);
    println!(
        "  {asks} small asks (h2load -c 32 -m 1, {:.0} req/s): {created} decisions, {:.0} bytes per decision (file {:.1} MB after a checkpoint)",
        run.per_second,
        size as f64 / created.max(1) as f64,
        size as f64 / 1e6
    );
    println!(
        "  server RSS: {:.1} MB before, {:.1} MB at the peak, {:.1} MB 10 s after the load",
        before as f64 / 1024.0,
        peak as f64 / 1024.0,
        after as f64 / 1024.0
    );
    Ok(())
}
