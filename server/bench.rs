//! `witness bench`: throughput and latency of the real server over real
//! gRPC on loopback, with the health RPC on the same server as the ceiling.

use crate::client::{self, Credentials};
use crate::config::Config;
use crate::proto;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Options of `witness bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Concurrent requests in flight.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// HTTP/2 connections the requests share.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Store URL (default: a fresh SQLite file in a temporary directory).
    #[arg(long)]
    pub store: Option<String>,
}

/// One measured operation.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub ops: u64,
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Runs `op` from `concurrency` tasks for `seconds` and measures it.
pub async fn measure<F, Fut>(seconds: u64, concurrency: usize, op: F) -> Measurement
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let tasks = (0..concurrency).map(|i| {
        let op = op.clone();
        tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                if op(i).await {
                    lat.push(t.elapsed());
                }
            }
            lat
        })
    });
    let mut all: Vec<Duration> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    Measurement {
        ops: all.len() as u64,
        per_second: all.len() as f64 / elapsed,
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
    }
}

/// A server started in this process for the benchmark.
pub struct BenchServer {
    pub addr: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: Option<TempDir>,
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A directory removed on drop.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts a dev-mode server on 127.0.0.1:0 over `store` (or a temp SQLite).
pub async fn start_server(store: Option<String>) -> Result<BenchServer, String> {
    let (url, dir) = match store {
        Some(url) => (url, None),
        None => {
            let dir = std::env::temp_dir().join(format!("witness-bench-{}", uuid::Uuid::now_v7()));
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            (
                format!("sqlite://{}", dir.join("bench.db").display()),
                Some(TempDir(dir)),
            )
        }
    };
    let mut config = Config::load(None).map_err(|e| e.to_string())?;
    config.store.url = url;
    let witness = crate::server::build(&config)
        .await
        .map_err(|e| e.to_string())?;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener
        .local_addr()
        .map_err(|e| e.to_string())?
        .to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(crate::server::serve_on(listener, witness, async {
        let _ = stopped.await;
    }));
    Ok(BenchServer {
        addr,
        stop: Some(stop),
        _dir: dir,
    })
}

fn ask_request(i: usize) -> proto::AskRequest {
    proto::AskRequest {
        request_id: uuid::Uuid::now_v7().to_string(),
        kind: "bench.deploy".into(),
        input: Some(crate::api::convert::json_to_proto(
            &serde_json::json!({"task": i, "service": "api"}),
        )),
        authorized_roles: vec!["sre".into()],
        surfaces: vec!["console".into()],
        ..Default::default()
    }
}

/// Runs the benchmark and prints its figures.
pub async fn run(args: BenchArgs) -> Result<(), String> {
    let server = start_server(args.store.clone()).await?;
    let creds = Credentials {
        principal: Some("bench".into()),
        roles: vec!["sre".into()],
        ..Default::default()
    };
    let mut clients = Vec::new();
    let mut health = Vec::new();
    for _ in 0..args.connections.max(1) {
        let c = client::connect(&server.addr, &creds)
            .await
            .map_err(|e| e.to_string())?;
        let channel = tonic::transport::Endpoint::from_shared(client::server_url(&server.addr))
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        health.push(tonic_health::pb::health_client::HealthClient::new(channel));
        clients.push(c);
    }
    println!(
        "witness bench: {}s per figure, {} in flight over {} connections, store {}",
        args.seconds,
        args.concurrency,
        clients.len(),
        args.store
            .as_deref()
            .unwrap_or("sqlite (temp file, WAL, synchronous=FULL)")
    );
    let h = health.clone();
    let ceiling = measure(args.seconds, args.concurrency, move |i| {
        let mut c = h[i % h.len()].clone();
        async move {
            c.check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .is_ok()
        }
    })
    .await;
    report("health Check (ceiling)", &ceiling);
    let cs = clients.clone();
    let asks = measure(args.seconds, args.concurrency, move |i| {
        let mut c = cs[i % cs.len()].clone();
        async move { c.ask(ask_request(i)).await.is_ok() }
    })
    .await;
    report("Ask (durable)", &asks);
    println!(
        "Ask / health ratio: {:.2}",
        asks.per_second / ceiling.per_second.max(1.0)
    );
    Ok(())
}

fn report(name: &str, m: &Measurement) {
    println!(
        "{name:<24} {:>9.0} ops/s   p50 {:>7.2} ms   p99 {:>7.2} ms   ({} ops)",
        m.per_second,
        m.p50.as_secs_f64() * 1e3,
        m.p99.as_secs_f64() * 1e3,
        m.ops
    );
}
