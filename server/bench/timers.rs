//! Timer lateness and webhook throughput: `n` decisions fall due together
//! (ack window 2 s, fallback to a loopback receiver in this process); how
//! late each FALLBACK_FIRED page arrives after its due time, and how fast
//! the outbox delivers them. Then the same burst for escalation level 1
//! (`after = "2s"`): how late each ESCALATED page arrives.

use super::{ask_request, clients, start_servers_with, summarise};
use axum::{body::Bytes, extract::State, routing::post, Router};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Arrivals = Arc<Mutex<Vec<(i64, Instant)>>>;

async fn hook(State(arrivals): State<Arrivals>, body: Bytes) -> &'static str {
    let now = crate::store::now_micros();
    let due = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            let d = &v["decision"];
            if v["type"] == "ESCALATED" {
                let level = usize::try_from(v["level"].as_u64()?).ok()?;
                return d["escalations"][level.checked_sub(1)?]["due_at"].as_i64();
            }
            Some(d["created_at"].as_i64()? + d["policy"]["ack_window_us"].as_i64()?)
        });
    if let (Some(due), Ok(mut a)) = (due, arrivals.lock()) {
        a.push((now - due, Instant::now()));
    }
    "ok"
}

pub(crate) async fn run(store: Option<&str>, replicas: usize, n: usize) -> Result<(), String> {
    let fallback = "ack_window = \"2s\"\nfallback = [\"pager\"]\n";
    burst(store, replicas, n, "fallback", fallback).await?;
    let escalation =
        "ack_window = \"1h\"\nescalation = [{ after = \"2s\", webhooks = [\"pager\"] }]\n";
    burst(store, replicas, n, "escalation level 1", escalation).await
}

/// `n` decisions whose `policy` keys page the receiver 2 s after creation.
async fn burst(
    store: Option<&str>,
    replicas: usize,
    n: usize,
    what: &str,
    policy: &str,
) -> Result<(), String> {
    let arrivals: Arrivals = Arc::default();
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(arrivals.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let url = format!(
        "http://{}/hook",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let extra = format!(
        "[[webhooks]]\nname = \"pager\"\nurl = \"{url}\"\nsecret = \"bench\"\n\
         [[policies]]\nkind = \"bench.*\"\n{policy}"
    );
    let servers = start_servers_with(store, replicas, &extra)?;
    let cs = clients(&servers, 4).await?;
    let asks = (0..n).map(|i| {
        let mut c = cs[i % cs.len()].clone();
        async move { c.ask(ask_request(i)).await.is_ok() }
    });
    let asked = futures::future::join_all(asks)
        .await
        .into_iter()
        .filter(|ok| *ok)
        .count();
    let deadline = Instant::now() + Duration::from_secs(120);
    while arrivals.lock().map(|a| a.len()).unwrap_or(0) < asked && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = arrivals.lock().map(|a| a.clone()).unwrap_or_default();
    let late: Vec<Duration> = got
        .iter()
        .map(|(us, _)| Duration::from_micros((*us).max(0) as u64))
        .collect();
    let (first, last) = (got.iter().map(|g| g.1).min(), got.iter().map(|g| g.1).max());
    let rate = match (first, last) {
        (Some(f), Some(l)) if l > f => got.len() as f64 / l.duration_since(f).as_secs_f64(),
        _ => 0.0,
    };
    let m = summarise(late, 1.0);
    println!(
        "timers: {asked} due together on {} replica(s): {what} page arrives p50 {:.0} ms, p99 {:.0} ms after due; \
         {} of {asked} delivered, outbox {:.0} deliveries/s",
        servers.addrs.len(),
        m.p50.as_secs_f64() * 1e3,
        m.p99.as_secs_f64() * 1e3,
        got.len(),
        rate
    );
    Ok(())
}
