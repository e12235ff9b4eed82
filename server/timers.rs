//! The timer worker: durable timers live in the store (`expires_at`,
//! `fallback_at` on each open decision), so a restart loses none. Each
//! process polls for due timers and applies them through the core; the core
//! refuses a timer that is no longer due, so a timer fires at most once
//! even when several processes see it.

use crate::core::Action;
use crate::store::{now_micros, Command, Store, TimerKind};
use std::sync::Arc;
use std::time::Duration;

/// How often due timers are looked for.
pub const POLL: Duration = Duration::from_millis(100);
const BATCH: usize = 256;

/// Runs forever, firing due timers.
pub async fn run(store: Arc<dyn Store>) {
    loop {
        match store.due_timers(now_micros(), BATCH).await {
            Ok(due) if !due.is_empty() => {
                let mut failed = false;
                for t in due {
                    let action = match t.kind {
                        TimerKind::Expire => Action::Expire,
                        TimerKind::Fallback => Action::FireFallback,
                    };
                    let cmd = Command::Act {
                        decision_id: t.decision_id.clone(),
                        idem: None,
                        action,
                    };
                    // METRICS (observability branch): count each fired level
                    // here as `witness_escalations_total{level}`, from the
                    // `EventKind::Escalated { level, .. }` events of the
                    // returned `Applied` (level 0 = FALLBACK_FIRED).
                    if let Err(e) = store.execute(cmd).await {
                        tracing::warn!(decision = %t.decision_id, error = %e, "timer not applied; will retry");
                        failed = true;
                    }
                }
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
