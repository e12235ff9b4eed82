//! `make chaos`: minutes of concurrent load against the real `witness`
//! binary while a nemesis kills and stalls it (and PostgreSQL), then a
//! Jepsen-style checker over the client's history, every stream
//! subscriber's events and the final log (read through the API and
//! `witness audit verify`). The run is ignored by default; the checker's
//! own tests (on fabricated histories) run with the other tests.
//!
//! CHAOS_SECONDS (default 120, per backend), CHAOS_SEED (default random,
//! printed first), CHAOS_BACKEND=sqlite|postgres|postgres-ha|both (default
//! both: sqlite and postgres). postgres-ha runs on a primary and a
//! streaming standby with failovers (CHAOS_PG_SYNC=off: asynchronous
//! replication, `synchronous_commit = local`, whose losses at failovers
//! are reported, not failed).

mod common;

#[path = "chaos/checker.rs"]
mod checker;
#[path = "chaos/load.rs"]
mod load;
#[path = "chaos/nemesis.rs"]
mod nemesis;

use checker::{Audit, Failover, Final, LogEvent, Record, Report, Subscription};
use common::{pg::PgCluster, pg_ha::HaPair, receiver::Receiver, Server};
use nemesis::Store;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use witness::proto;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}: cannot parse {v:?}"))
        })
}

fn config(hook: &str, key_file: &std::path::Path) -> String {
    format!(
        r#"
[limits]
requests_per_second = 0

[receipts]
key_file = "{key}"

[[webhooks]]
name = "hook"
url = "{hook}"
secret = "chaos-secret"

[[policies]]
kind = "chaos.timed"
timeout = "3s"
ack_window = "1s"
fallback = ["hook"]
context_max_age = "1h"
escalation = [{{ after = "2s", webhooks = ["hook"], unless = "answered" }}]

[[policies]]
kind = "chaos.*"
ack_window = "24h"
context_max_age = "1h"
"#,
        key = key_file.display()
    )
}

pub(crate) fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "make chaos: minutes of load and faults"]
async fn chaos() {
    let seed: u64 = env_or("CHAOS_SEED", nemesis::random_seed());
    let seconds: u64 = env_or("CHAOS_SECONDS", 120);
    let backend: String = env_or("CHAOS_BACKEND", "both".to_string());
    println!("chaos: CHAOS_SEED={seed} CHAOS_SECONDS={seconds} CHAOS_BACKEND={backend}");
    let sync = match env_or("CHAOS_PG_SYNC", "on".to_string()).as_str() {
        "on" => true,
        "off" => false,
        other => panic!("CHAOS_PG_SYNC: on or off, not {other:?}"),
    };
    let backends: Vec<Store> = match backend.as_str() {
        "sqlite" => vec![Store::Sqlite],
        "postgres" => vec![Store::Postgres],
        "postgres-ha" => vec![Store::PostgresHa],
        "both" => vec![Store::Sqlite, Store::Postgres],
        other => panic!("CHAOS_BACKEND: sqlite, postgres, postgres-ha or both, not {other:?}"),
    };
    let mut total = Report::default();
    let mut failed = Vec::new();
    for store in backends {
        let name = match store {
            Store::Sqlite => "sqlite",
            Store::Postgres => "postgres",
            Store::PostgresHa if sync => "postgres-ha",
            Store::PostgresHa => "postgres-ha-async",
        };
        let started = Instant::now();
        let r = run_backend(store, sync, name, seed, Duration::from_secs(seconds)).await;
        println!(
            "chaos[{name}]: {:.0}s, {} unknown outcomes {:?}; {}",
            started.elapsed().as_secs_f64(),
            r.unknown,
            r.unknown_codes,
            r.line()
        );
        if !r.passed() {
            failed.push(name);
        }
        total.ops += r.ops;
        total.acknowledged += r.acknowledged;
        total.lost.extend(r.lost);
        total.duplicated.extend(r.duplicated);
        total.violations.extend(r.violations);
        total.lost_at_failover.extend(r.lost_at_failover);
        total.streams_rewound.extend(r.streams_rewound);
        total.state_hash_equal = match (total.state_hash_equal, r.state_hash_equal) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (None, x) | (x, None) => x,
            (Some(true), Some(true)) => Some(true),
        };
    }
    if failed.is_empty() {
        println!("{}", total.line());
    } else {
        println!(
            "{} -- FAILED on {}: reproduce with CHAOS_SEED={seed} CHAOS_SECONDS={seconds} CHAOS_BACKEND={backend} make chaos",
            total.line(),
            failed.join(", ")
        );
        panic!("chaos run failed (CHAOS_SEED={seed})");
    }
}

async fn run_backend(store: Store, sync: bool, name: &str, seed: u64, run: Duration) -> Report {
    let hook = Receiver::start(0).await;
    let keys = tempfile::tempdir().expect("temp dir");
    let cfg = config(&hook.url, &keys.path().join("receipt.key"));
    let cluster = (store == Store::Postgres).then(|| Arc::new(PgCluster::start()));
    let ha = (store == Store::PostgresHa).then(|| {
        let pair = HaPair::start(sync);
        pair.wait_streaming(Duration::from_secs(30))
            .expect("the standby streams");
        Arc::new(Mutex::new(pair))
    });
    let servers = match (&cluster, &ha) {
        (Some(c), _) => {
            let url = c.fresh_database().await;
            vec![Server::start_on(&url, &cfg), Server::start_on(&url, &cfg)]
        }
        (None, Some(ha)) => {
            let url = ha.lock().unwrap().url();
            // Outages are answered within the statement timeout.
            let cfg = format!("statement_timeout = \"2s\"\nconnect_timeout = \"1s\"\n{cfg}");
            vec![Server::start_on(&url, &cfg), Server::start_on(&url, &cfg)]
        }
        (None, None) => vec![Server::start(&cfg)],
    };
    let addrs: Vec<String> = servers.iter().map(|s| s.addr.clone()).collect();
    let config_path = servers[0].config_path();
    println!(
        "chaos[{name}]: witness at {addrs:?}, {}s of load and faults",
        run.as_secs()
    );

    let plan = nemesis::schedule(seed, run, servers.len(), store);
    let nemesis_stop = Arc::new(AtomicBool::new(false));
    let nemesis = {
        let stop = nemesis_stop.clone();
        let cluster = cluster.clone();
        let ha = ha.clone();
        std::thread::spawn(move || nemesis::run(plan, servers, cluster, ha, stop))
    };

    let shared = load::Shared::new();
    let workers: Vec<_> = (0..8)
        .map(|w| tokio::spawn(load::worker(w, seed, addrs.clone(), shared.clone())))
        .collect();
    let subs_stop = Arc::new(AtomicBool::new(false));
    let sub_specs: [(&str, Option<&str>, bool); 3] = [
        ("all-from-0", None, true),
        ("snapshot-then-resume", None, false),
        ("timed-only-from-0", Some("chaos.timed"), true),
    ];
    let mut targets = Vec::new();
    let subs: Vec<_> = sub_specs
        .iter()
        .enumerate()
        .map(|(i, (n, glob, from_zero))| {
            let target = Arc::new(AtomicU64::new(u64::MAX));
            targets.push(target.clone());
            tokio::spawn(load::subscriber(
                n,
                addrs.clone(),
                glob.map(str::to_string),
                *from_zero,
                seed.wrapping_add(i as u64),
                subs_stop.clone(),
                target,
            ))
        })
        .collect();

    tokio::time::sleep(run).await;
    shared.stop.store(true, Ordering::SeqCst);
    nemesis_stop.store(true, Ordering::SeqCst);
    let mut history = Vec::new();
    for w in workers {
        history.extend(w.await.expect("worker"));
    }
    let (servers, faults, failovers) = tokio::task::spawn_blocking(move || nemesis.join())
        .await
        .expect("join")
        .expect("nemesis: a witness replica or PostgreSQL did not come back");
    println!("chaos[{name}]: {} faults:", faults.len());
    for f in &faults {
        println!("  {f}");
    }

    let reader = load::client(
        &addrs[0],
        "auditor",
        &["sre"],
        Some(Duration::from_secs(30)),
    );
    let mut problems = Vec::new();
    if let Err(e) = settle_timers(&reader).await {
        problems.push(e);
    }
    let (log, listed) = match read_final(&reader).await {
        Ok(x) => x,
        Err(e) => {
            problems.push(e);
            (Vec::new(), Vec::new())
        }
    };
    let head = log.last().map_or(0, |e| e.sequence);
    for ((_, glob, _), target) in sub_specs.iter().zip(&targets) {
        let last_visible = log
            .iter()
            .rev()
            .find(|e| glob.is_none_or(|g| e.decision.kind == g))
            .map_or(0, |e| e.sequence);
        target.store(last_visible, Ordering::SeqCst);
    }
    subs_stop.store(true, Ordering::SeqCst);
    let mut subscriptions: Vec<Subscription> = Vec::new();
    for s in subs {
        match tokio::time::timeout(Duration::from_secs(60), s).await {
            Ok(Ok(sub)) => subscriptions.push(sub),
            _ => problems.push("a subscriber did not reach the log head within 60s".into()),
        }
    }
    let audit = audit_verify(&config_path);
    println!(
        "chaos[{name}]: log head {head}, {} decisions; audit verify: {}",
        listed.len(),
        audit.text.trim()
    );
    for s in &subscriptions {
        println!(
            "chaos[{name}]: subscriber {} saw {} events over {} resumes",
            s.name,
            s.seen.len(),
            s.resumes
        );
    }
    let undelivered = wait_webhooks(&hook, &log).await;
    println!(
        "chaos[{name}]: webhook receiver got {} requests; {} fallback/escalation pages not delivered",
        hook.hits().len(),
        undelivered.len()
    );
    problems.extend(undelivered);
    let fin = Final {
        log,
        listed,
        audit,
        end_us: now_us(),
        // Failovers come back to back (each holds writes for up to ~15 s
        // while the old primary is rebuilt), so a due timer may wait for
        // several of them.
        grace_us: if store == Store::PostgresHa {
            60_000_000
        } else {
            20_000_000
        },
        failovers: failovers.clone(),
        loss_allowed: store == Store::PostgresHa && !sync,
    };
    let mut report = checker::check(&history, &subscriptions, &fin);
    report.violations.extend(problems);
    if store == Store::PostgresHa {
        println!("chaos[{name}]: {}", outages(&history, &failovers));
    }
    for (what, list) in [
        ("LOST", &report.lost),
        ("DUPLICATED", &report.duplicated),
        ("VIOLATION", &report.violations),
        ("LOST AT FAILOVER", &report.lost_at_failover),
        ("STREAM REWOUND", &report.streams_rewound),
    ] {
        for l in list.iter().take(20) {
            println!("chaos[{name}]: {what}: {l}");
        }
    }
    if !report.passed() || std::env::var_os("CHAOS_DEBUG").is_some() {
        for (i, s) in servers.iter().enumerate() {
            let err = s.stderr();
            let tail: Vec<&str> = err.lines().rev().take(60).collect();
            println!("chaos[{name}]: replica {i} stderr (last lines):");
            for l in tail.iter().rev() {
                println!("    {l}");
            }
        }
    }
    drop(servers);
    report
}

/// What the clients saw of the failovers: how long after each kill the
/// first write was acknowledged again, and the longest time without an
/// acknowledged write over the whole run (standby stalls included).
fn outages(history: &[Record], failovers: &[Failover]) -> String {
    let mut acked: Vec<i64> = history
        .iter()
        .filter(|r| matches!(r.outcome, checker::Outcome::Ok { .. }))
        .map(|r| r.at_us)
        .collect();
    acked.sort_unstable();
    let secs = |us: i64| us as f64 / 1e6;
    let mut after_kill: Vec<i64> = failovers
        .iter()
        .filter_map(|f| {
            let i = acked.partition_point(|t| *t <= f.kill_us);
            acked.get(i).map(|t| t - f.kill_us)
        })
        .collect();
    after_kill.sort_unstable();
    let longest_gap = acked.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    format!(
        "{} failovers; first acknowledged write after the kill: median {:.1}s, longest {:.1}s; longest time without an acknowledged write {:.1}s",
        failovers.len(),
        secs(after_kill.get(after_kill.len() / 2).copied().unwrap_or(0)),
        secs(after_kill.last().copied().unwrap_or(0)),
        secs(longest_gap)
    )
}

/// Waits until every timed decision has closed (its expiry, fallback and
/// escalation timers all due by then).
async fn settle_timers(c: &witness::client::GrpcClient) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut c = c.clone();
        let open = c
            .list_decisions(proto::ListDecisionsRequest {
                statuses: vec![proto::Status::Open as i32],
                kinds: vec!["chaos.timed".into()],
                page_size: 1000,
                page_token: String::new(),
            })
            .await;
        if let Ok(r) = open {
            if r.into_inner().decisions.is_empty() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(
                "timed decisions still open 60s after the load stopped (a timer was lost)".into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits (up to 60s) until every FALLBACK_FIRED and ESCALATED event has
/// reached the webhook receiver (at least once, by its Idempotency-Key);
/// returns the pages that never arrived.
async fn wait_webhooks(hook: &Receiver, log: &[LogEvent]) -> Vec<String> {
    let pages: Vec<String> = log
        .iter()
        .filter(|e| {
            e.etype == proto::EventType::FallbackFired as i32
                || e.etype == proto::EventType::Escalated as i32
        })
        .map(|e| format!("{}/{}", e.decision.id, e.sequence))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: std::collections::HashSet<String> = hook
            .delivered()
            .into_iter()
            .map(|h| h.idempotency_key)
            .collect();
        let missing: Vec<String> = pages
            .iter()
            .filter(|k| !got.contains(*k))
            .map(|k| format!("webhook page {k} (FALLBACK_FIRED/ESCALATED) never delivered"))
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            return missing;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// ListDecisions (every page), then the whole log by StreamDecisions from 0
/// up to the head (the highest last_sequence).
async fn read_final(
    c: &witness::client::GrpcClient,
) -> Result<(Vec<LogEvent>, Vec<proto::Decision>), String> {
    let mut c = c.clone();
    let mut listed = Vec::new();
    let mut token = String::new();
    loop {
        let r = c
            .list_decisions(proto::ListDecisionsRequest {
                page_size: 1000,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .map_err(|s| format!("ListDecisions: {s}"))?
            .into_inner();
        listed.extend(r.decisions);
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    let head = listed.iter().map(|d| d.last_sequence).max().unwrap_or(0);
    let mut log = Vec::new();
    let mut stream = c
        .stream_decisions(proto::StreamDecisionsRequest {
            after_sequence: Some(0),
            ..Default::default()
        })
        .await
        .map_err(|s| format!("StreamDecisions from 0: {s}"))?
        .into_inner();
    while log.last().map_or(0, |e: &LogEvent| e.sequence) < head {
        let m = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .map_err(|_| format!("StreamDecisions from 0 stalled before the head {head}"))?
            .map_err(|s| format!("StreamDecisions from 0: {s}"))?
            .ok_or("StreamDecisions from 0 ended before the head")?;
        let Some(e) = m.event else { continue };
        log.push(LogEvent {
            sequence: e.sequence,
            etype: e.r#type,
            at_us: checker::micros(&e.at).unwrap_or(0),
            decision: e.decision.unwrap_or_default(),
        });
    }
    Ok((log, listed))
}

/// `witness audit verify` on the store (JSON when the binary has it).
fn audit_verify(config: &std::path::Path) -> Audit {
    let run = |json: bool| {
        let mut cmd = std::process::Command::new(common::bin());
        cmd.args(["audit", "verify", "--config"]).arg(config);
        if json {
            cmd.arg("--json");
        }
        cmd.output().expect("run witness audit verify")
    };
    let out = run(true);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text.trim()) {
        return Audit {
            ok: v["ok"].as_bool() == Some(true) && v["problem"].is_null(),
            events: v["events"].as_u64().unwrap_or(0),
            state_hash_equal: v["state_hash_equal"].as_bool(),
            text,
        };
    }
    let out = run(false);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let events = text
        .strip_prefix("ok: ")
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Audit {
        ok: out.status.success() && text.starts_with("ok: "),
        events,
        text,
        state_hash_equal: None,
    }
}
