//! The timer worker: durable timers live in the store (`expires_at`,
//! `fallback_at` on each open decision), so a restart loses none. Each
//! process polls for due timers, claiming them for a lease so that replicas
//! share the work, and applies them through the core; the core refuses a
//! timer that is no longer due, so a timer fires at most once even when
//! several processes see it.

use crate::core::Action;
use crate::store::{now_micros, Applied, Command, Store, TimerKind};
use std::sync::Arc;
use std::time::Duration;

/// How often due timers are looked for.
pub const POLL: Duration = Duration::from_millis(100);
/// How long a process owns the timers it claimed: one that fails to apply
/// them (or dies) leaves them to be claimed again after this.
pub const LEASE_US: i64 = 5_000_000;
const BATCH: usize = 256;

/// Runs forever, firing due timers.
pub async fn run(store: Arc<dyn Store>) {
    loop {
        match store.due_timers(now_micros(), LEASE_US, BATCH).await {
            Ok(due) if !due.is_empty() => {
                // All at once, so that the store commits them together
                // (one fsync for the lot, not one per timer).
                let fired = due.into_iter().map(|t| fire(store.as_ref(), t));
                let failed = futures::future::join_all(fired).await.contains(&false);
                if !failed {
                    continue; // more may be due right away
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read due timers; will retry"),
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Applies one due timer; false when it could not be (it is retried once
/// its lease runs out).
async fn fire(store: &dyn Store, t: crate::store::DueTimer) -> bool {
    let action = match t.kind {
        TimerKind::Expire => Action::Expire,
        TimerKind::Fallback => Action::FireFallback,
    };
    let cmd = Command::Act {
        decision_id: t.decision_id.clone(),
        idem: None,
        action,
    };
    match store.execute(cmd).await {
        Ok(applied) => {
            observe_lag(t.kind, &applied);
            true
        }
        Err(e) => {
            tracing::warn!(decision_id = %t.decision_id, error = %e, "timer not applied; will retry");
            false
        }
    }
}

/// Records how late a timer that took effect fired (`witness_timer_lag_seconds`).
fn observe_lag(kind: TimerKind, applied: &Applied) {
    let Some(fired_at) = applied.events.first().map(|e| e.at) else {
        return; // not due any more (another process fired it)
    };
    let d = &applied.decision;
    let (timer, due) = match kind {
        TimerKind::Expire => ("expire", d.expires_at),
        TimerKind::Fallback => (
            "fallback",
            Some(d.created_at.saturating_add(d.policy.ack_window_us)),
        ),
    };
    if let Some(due) = due {
        let lag_us = u64::try_from(fired_at.saturating_sub(due)).unwrap_or(0);
        crate::metrics::timer_fired(timer, Duration::from_micros(lag_us));
    }
}
