//! `witness bench`: figures for the README, measured against real server
//! processes (this binary's `serve`) over real gRPC on loopback:
//! Ask throughput against the health RPC as the ceiling, Ask → event
//! latency with many subscribers, and server memory per idle subscriber.

use crate::client::{self, Credentials, GrpcClient};
use crate::proto;
use std::collections::HashMap;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod confirmations;
mod h2load;
mod mcp;
mod timers;

/// Options of `witness bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Seconds per throughput figure.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Concurrent requests in flight.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// HTTP/2 connections the requests share (per replica).
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Store URL (default: a fresh SQLite file in a temporary directory).
    #[arg(long)]
    pub store: Option<String>,
    /// Server processes sharing the store (Postgres only for more than 1).
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// Also measure stream latency and memory with 1, 100, 1000 subscribers.
    #[arg(long)]
    pub streams: bool,
    /// Subscriber counts for the stream figures.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 100, 1000])]
    pub subscribers: Vec<usize>,
    /// HTTP/2 connections the subscribers share (default: one per 100).
    #[arg(long)]
    pub subscriber_connections: Option<usize>,
    /// Only the stream figures (skip the Ask throughput ones).
    #[arg(long)]
    pub streams_only: bool,
    /// Server binary the stream figures measure (default: this one), e.g.
    /// an earlier release, for before/after figures from one run.
    #[arg(long)]
    pub server_exe: Option<std::path::PathBuf>,
    /// Also measure what metrics cost: Ask/s on fresh servers with
    /// `[metrics] enabled = false` and `true`, alternated.
    #[arg(long)]
    pub metrics_cost: bool,
    /// Also measure timer lateness and webhook delivery with this many
    /// decisions falling due at once (0: skip).
    #[arg(long, default_value_t = 0)]
    pub timers: usize,
    /// Also measure log growth with this many asks waiting and re-confirming
    /// their context (events written per waiting ask per hour; 0: skip).
    #[arg(long, default_value_t = 0)]
    pub confirmations: usize,
    /// Also print the issue-18 ratios from h2load runs of this many
    /// requests each (Ask / health Check at -c 32 -m 1 and -c 16 -m 8), then
    /// bytes per decision and server memory over --size-asks asks (0: skip).
    #[arg(long, default_value_t = 0)]
    pub h2load: usize,
    /// Also measure MCP: this many agents wait in `request_approval` at
    /// once, then are answered in a burst (0: skip).
    #[arg(long, default_value_t = 0)]
    pub mcp: usize,
    /// Small asks for the bytes-per-decision and memory figures (0: skip).
    #[arg(long, default_value_t = 100_000)]
    pub size_asks: usize,
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

pub(crate) fn summarise(mut lat: Vec<Duration>, elapsed: f64) -> Measurement {
    lat.sort();
    Measurement {
        ops: lat.len() as u64,
        per_second: lat.len() as f64 / elapsed,
        p50: percentile(&lat, 0.50),
        p99: percentile(&lat, 0.99),
    }
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
    let all: Vec<Duration> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    summarise(all, start.elapsed().as_secs_f64())
}

/// Server processes started for the benchmark; killed on drop.
#[derive(Debug)]
pub struct Servers {
    pub addrs: Vec<String>,
    children: Vec<Child>,
    dir: std::path::PathBuf,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Servers {
    /// CPU time the first server has used so far, all threads (from the
    /// scheduler's nanosecond counters, not the 10 ms tick of `stat`).
    pub fn cpu(&self) -> Option<Duration> {
        let pid = self.children.first()?.id();
        let mut ns = 0u64;
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
            let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
            ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
        }
        Some(Duration::from_nanos(ns))
    }

    /// Resident memory of the first server, in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.children.first()?.id()))
                .ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

/// Starts `replicas` dev-mode server processes on `store` (or a temp SQLite).
pub fn start_servers(store: Option<&str>, replicas: usize) -> Result<Servers, String> {
    start_servers_with(store, replicas, "")
}

/// Like [`start_servers`], with extra TOML in the config.
pub fn start_servers_with(
    store: Option<&str>,
    replicas: usize,
    extra: &str,
) -> Result<Servers, String> {
    start_servers_of(None, &[], store, replicas, extra)
}

/// Like [`start_servers_with`], running `exe` (default: this binary) with
/// `env` added to its environment.
pub fn start_servers_of(
    exe: Option<&std::path::Path>,
    env: &[(&str, &str)],
    store: Option<&str>,
    replicas: usize,
    extra: &str,
) -> Result<Servers, String> {
    let dir = std::env::temp_dir().join(format!("witness-bench-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let url = store
        .map(String::from)
        .unwrap_or_else(|| format!("sqlite://{}", dir.join("bench.db").display()));
    let config = dir.join("witness.toml");
    std::fs::write(&config, format!("[store]\nurl = \"{url}\"\n[limits]\nrequests_per_second = 0\nmax_streams_per_principal = 2000\n{extra}")).map_err(|e| e.to_string())?;
    // --server-exe, or WITNESS_BENCH_SERVER, measures another build's server (before/after).
    let exe = match exe
        .map(std::path::Path::to_path_buf)
        .or_else(|| std::env::var_os("WITNESS_BENCH_SERVER").map(std::path::PathBuf::from))
    {
        Some(e) => e,
        None => std::env::current_exe().map_err(|e| e.to_string())?,
    };
    let mut servers = Servers {
        addrs: Vec::new(),
        children: Vec::new(),
        dir,
    };
    for _ in 0..replicas.max(1) {
        let mut child = Command::new(&exe)
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .env("WITNESS_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        servers.children.push(child);
        let line = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.starts_with("witness listening on "));
        let addr = line
            .ok_or("server did not start")?
            .trim_start_matches("witness listening on ")
            .to_string();
        servers.addrs.push(addr);
    }
    Ok(servers)
}

pub(crate) fn ask_request(i: usize) -> proto::AskRequest {
    proto::AskRequest {
        request_id: uuid::Uuid::now_v7().to_string(),
        kind: "bench.deploy".into(),
        input: Some(proto::convert::json_to_proto(
            &serde_json::json!({"task": i, "service": "api"}),
        )),
        authorized_roles: vec!["sre".into()],
        surfaces: vec!["console".into()],
        ..Default::default()
    }
}

fn creds() -> Credentials {
    Credentials {
        principal: Some("bench".into()),
        roles: vec!["sre".into()],
        ..Default::default()
    }
}

pub(crate) async fn clients(
    servers: &Servers,
    per_server: usize,
) -> Result<Vec<GrpcClient>, String> {
    let mut out = Vec::new();
    for addr in &servers.addrs {
        for _ in 0..per_server.max(1) {
            out.push(
                client::connect(addr, &creds())
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
    }
    Ok(out)
}

/// Runs the benchmark and prints its figures.
pub async fn run(args: BenchArgs) -> Result<(), String> {
    if args.mcp > 0 {
        mcp::run(args.store.as_deref(), args.mcp).await?;
    }
    if args.confirmations > 0 {
        confirmations::run(
            args.store.as_deref(),
            args.confirmations,
            args.seconds.max(12),
        )
        .await?;
    }
    if args.h2load > 0 {
        let (n, asks) = (args.h2load, args.size_asks);
        tokio::task::spawn_blocking(move || h2load::run(n, asks))
            .await
            .map_err(|e| e.to_string())??;
    }
    if args.streams_only {
        stream_figures(&args).await?;
        return Ok(());
    }
    let servers = start_servers(args.store.as_deref(), args.replicas)?;
    let store = args.store.as_deref().map(crate::server::redact_url);
    println!(
        "witness bench: {}s per figure, {} in flight over {} connection(s) to each of {} server process(es), store {}",
        args.seconds,
        args.concurrency,
        args.connections,
        servers.addrs.len(),
        store.as_deref().unwrap_or("sqlite (temp file, WAL, synchronous=FULL)")
    );
    let mut health = Vec::new();
    for addr in &servers.addrs {
        for _ in 0..args.connections.max(1) {
            let channel = tonic::transport::Endpoint::from_shared(client::server_url(addr))
                .map_err(|e| e.to_string())?
                .connect()
                .await
                .map_err(|e| e.to_string())?;
            health.push(tonic_health::pb::health_client::HealthClient::new(channel));
        }
    }
    let ceiling = measure(args.seconds, args.concurrency, move |i| {
        let mut c = health[i % health.len()].clone();
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
    let cs = clients(&servers, args.connections).await?;
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
    if args.metrics_cost {
        metrics_cost(&args).await?;
    }
    if args.streams {
        stream_figures(&args).await?;
    }
    if args.timers > 0 {
        timers::run(args.store.as_deref(), args.replicas, args.timers).await?;
    }
    Ok(())
}

/// Ask/s with metrics off and on, each on a fresh server, alternated twice
/// so that drift on a noisy machine hits both alike.
async fn metrics_cost(args: &BenchArgs) -> Result<(), String> {
    let mut per_second = [Vec::new(), Vec::new()];
    for round in 0..4 {
        let on = round % 2 == 1;
        let extra = format!("[metrics]\nenabled = {on}\n");
        let servers = start_servers_with(args.store.as_deref(), args.replicas, &extra)?;
        let cs = clients(&servers, args.connections).await?;
        let m = measure(args.seconds, args.concurrency, move |i| {
            let mut c = cs[i % cs.len()].clone();
            async move { c.ask(ask_request(i)).await.is_ok() }
        })
        .await;
        report(
            if on {
                "Ask, metrics on"
            } else {
                "Ask, metrics off"
            },
            &m,
        );
        per_second[usize::from(on)].push(m.per_second);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (off, on) = (mean(&per_second[0]), mean(&per_second[1]));
    println!(
        "metrics cost: Ask {on:.0} req/s with metrics on, {off:.0} off (on/off {:.3})",
        on / off.max(1.0)
    );
    Ok(())
}

/// Which server a stream figure measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamMode {
    /// The real streams: every event, filtered and encoded.
    Real,
    /// The floor of the stack: the same subscribers fed one constant
    /// pre-encoded minimal message per CREATED event (`api::encoded`).
    Floor,
}

/// Ask → event figures at each subscriber count, each next to its floor
/// (unless `--server-exe` names another binary, which has no floor mode).
async fn stream_figures(args: &BenchArgs) -> Result<(), String> {
    println!(
        "stream figures: CPU/delivery = (server CPU over {ASKS} asks with n subscribers - over {ASKS} asks with none) / deliveries"
    );
    let exe = args.server_exe.as_deref();
    for &n in &args.subscribers {
        stream_latency(n, args.subscriber_connections, exe, StreamMode::Real).await?;
        if exe.is_none() {
            stream_latency(n, args.subscriber_connections, None, StreamMode::Floor).await?;
        }
    }
    Ok(())
}

/// Asks per stream figure, 40 ms apart.
const ASKS: usize = 100;

/// Sends [`ASKS`] asks one at a time; returns each reply's latency and, by
/// key (the decision id, and `#i` for the i-th ask), when it was sent.
async fn paced_asks(
    asker: &mut GrpcClient,
    sent: &mut HashMap<String, Instant>,
) -> Result<Vec<Duration>, String> {
    let mut answered = Vec::new();
    for i in 0..ASKS {
        let t = Instant::now();
        let d = asker
            .ask(ask_request(i))
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        answered.push(t.elapsed());
        sent.insert(d.decision.map(|d| d.id).unwrap_or_default(), t);
        sent.insert(format!("#{i}"), t);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    Ok(answered)
}

/// Ask → event-received latency with `n` subscribers on a fresh server,
/// the server's CPU per delivery, and its memory per idle subscriber.
async fn stream_latency(
    n: usize,
    connections: Option<usize>,
    exe: Option<&std::path::Path>,
    mode: StreamMode,
) -> Result<(), String> {
    let env: &[(&str, &str)] = match mode {
        StreamMode::Real => &[],
        StreamMode::Floor => &[(crate::api::encoded::FLOOR_ENV, "1")],
    };
    let servers = start_servers_of(exe, env, None, 1, "")?;
    let connections = connections.unwrap_or(n.div_ceil(100)).clamp(1, n.max(1));
    let mut asker = client::connect(&servers.addrs[0], &creds())
        .await
        .map_err(|e| e.to_string())?;
    // What the asks cost without subscribers, to subtract below.
    let mut warm_up = HashMap::new();
    let cpu0 = servers.cpu();
    paced_asks(&mut asker, &mut warm_up).await?;
    let cpu_asks = servers.cpu().zip(cpu0).map(|(b, a)| b.saturating_sub(a));
    let conns = clients(&servers, connections).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = servers.rss_kib();
    let received: Arc<Mutex<Vec<(String, Instant)>>> =
        Arc::new(Mutex::new(Vec::with_capacity(n * ASKS)));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(n);
    for i in 0..n {
        let mut c = conns[i % conns.len()].clone();
        let (received, ready) = (received.clone(), ready_tx.clone());
        tokio::spawn(async move {
            let Ok(resp) = c
                .stream_decisions(proto::StreamDecisionsRequest::default())
                .await
            else {
                return;
            };
            let _ = ready.send(()).await;
            let mut st = resp.into_inner();
            let mut nth = 0;
            while let Ok(Some(r)) = st.message().await {
                // The floor's messages carry no decision: the k-th is the k-th ask's.
                let key = match r.event.and_then(|e| e.decision) {
                    Some(d) => d.id,
                    None => format!("#{nth}"),
                };
                nth += 1;
                if let Ok(mut v) = received.lock() {
                    v.push((key, Instant::now()));
                }
            }
        });
    }
    for _ in 0..n {
        ready_rx.recv().await.ok_or("subscriber failed")?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = servers.rss_kib();
    let mut sent = HashMap::new();
    let cpu1 = servers.cpu();
    let answered = paced_asks(&mut asker, &mut sent).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.lock().map(|v| v.len()).unwrap_or(0) < n * ASKS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu_streams = servers.cpu().zip(cpu1).map(|(b, a)| b.saturating_sub(a));
    let samples: Vec<Duration> = received
        .lock()
        .map(|v| {
            v.iter()
                .filter_map(|(id, at)| sent.get(id).map(|t| at.duration_since(*t)))
                .collect()
        })
        .unwrap_or_default();
    let m = summarise(samples, 1.0);
    let ask = summarise(answered, 1.0);
    let per_sub = match (before, after) {
        (Some(b), Some(a)) if n >= 100 => format!(
            "   memory/idle subscriber {:.1} KiB",
            a.saturating_sub(b) as f64 / n as f64
        ),
        _ => String::new(),
    };
    let cpu = match (cpu_streams, cpu_asks) {
        (Some(s), Some(a)) if m.ops > 0 => format!(
            "   CPU/delivery {:>5.1} µs",
            s.saturating_sub(a).as_secs_f64() * 1e6 / m.ops as f64
        ),
        _ => String::new(),
    };
    let label = match (mode, exe) {
        (StreamMode::Floor, _) => " floor".to_string(),
        (StreamMode::Real, Some(e)) => format!(" [{}]", e.display()),
        (StreamMode::Real, None) => String::new(),
    };
    println!(
        "Ask → event{label}, {n:>4} subscribers on {connections:>4} connection(s): p50 {:>6.2} ms   p99 {:>6.2} ms{cpu}   (Ask reply p50 {:.2} ms; {} deliveries of {}){per_sub}",
        m.p50.as_secs_f64() * 1e3,
        m.p99.as_secs_f64() * 1e3,
        ask.p50.as_secs_f64() * 1e3,
        m.ops,
        n * ASKS
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
