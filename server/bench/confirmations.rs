//! Log growth while asks wait: `n` open two-person asks, each re-confirming
//! an unchanged context as the SDKs do, against a real server. Time is
//! compressed 30x (confirm every 1/6 s with `context_max_age` 2 s, the
//! ratio of the SDKs' 5 s against the default 60 s), so the run covers
//! `seconds` x 30 of real waiting; the figure is scaled to one hour.

use super::{ask_request, clients, start_servers_with};
use crate::proto;
use std::time::{Duration, Instant};

/// Compression of time: 5 s / 60 s in real use, 1/6 s / 2 s here.
const SPEEDUP: f64 = 30.0;

pub(crate) async fn run(store: Option<&str>, n: usize, seconds: u64) -> Result<(), String> {
    let extra = "[[policies]]\nkind = \"bench.*\"\ncontext_max_age = \"2s\"\n";
    let servers = start_servers_with(store, 1, extra)?;
    let cs = clients(&servers, 4).await?;
    let context = proto::convert::json_to_proto(&serde_json::json!({"leader": "db-1"}));
    let mut ids = Vec::with_capacity(n);
    let mut c0 = cs[0].clone();
    for i in 0..n {
        let req = proto::AskRequest {
            required_approvals: 2,
            context_snapshot: Some(context.clone()),
            ..ask_request(i)
        };
        let d = c0.ask(req).await.map_err(|e| e.to_string())?.into_inner();
        ids.push(d.decision.map(|d| d.id).unwrap_or_default());
    }
    let head = |mut c: crate::client::GrpcClient| async move {
        // The next Ask's sequence is the head + 1.
        c.ask(ask_request(usize::MAX))
            .await
            .ok()
            .and_then(|r| r.into_inner().decision)
            .map(|d| d.last_sequence)
            .unwrap_or(0)
    };
    let before = head(c0.clone()).await;
    let interval = Duration::from_secs_f64(5.0 / SPEEDUP);
    let end = Instant::now() + Duration::from_secs(seconds);
    let tasks = ids.into_iter().enumerate().map(|(i, id)| {
        let mut c = cs[i % cs.len()].clone();
        let context = context.clone();
        async move {
            let mut calls = 0u64;
            let mut tick = tokio::time::interval(interval);
            while Instant::now() < end {
                tick.tick().await;
                let req = proto::ReportContextRequest {
                    decision_id: id.clone(),
                    context_snapshot: Some(context.clone()),
                };
                if c.report_context(req)
                    .await
                    .is_ok_and(|r| r.get_ref().matched)
                {
                    calls += 1;
                }
            }
            calls
        }
    });
    let calls: u64 = futures::future::join_all(tasks).await.into_iter().sum();
    // The head() Ask itself is one event.
    let written = head(c0).await.saturating_sub(before + 1);
    let hours = seconds as f64 * SPEEDUP / 3600.0;
    let per_ask_hour = written as f64 / n as f64 / hours;
    let calls_per_ask_hour = calls as f64 / n as f64 / hours;
    println!(
        "context confirmations: {n} waiting asks re-confirming every 5 s (context_max_age 60 s, \
         time compressed {SPEEDUP:.0}x over {seconds} s): {calls_per_ask_hour:.0} ReportContext calls \
         and {per_ask_hour:.0} events written per waiting ask per hour ({written} events for {calls} calls)"
    );
    Ok(())
}
