//! Local subcommands that work on the store directly (no server needed).

use crate::config::Config;
use crate::store::{now_micros, OutboxItem, OutboxStatus};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum OutboxCommand {
    /// Show webhook deliveries, newest first.
    List {
        #[arg(long)]
        config: Option<PathBuf>,
        /// pending, delivered or dead.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Put a dead delivery (or all of them) back in line now.
    Retry {
        /// The delivery id (from `outbox list`).
        id: Option<i64>,
        #[arg(long)]
        config: Option<PathBuf>,
        /// Every dead delivery.
        #[arg(long, conflicts_with = "id")]
        all_dead: bool,
    },
}

fn micros_text(us: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_micros(us.max(0) as u64);
    humantime::format_rfc3339_millis(at).to_string()
}

fn item_json(i: &OutboxItem) -> serde_json::Value {
    serde_json::json!({
        "id": i.id, "webhook": i.webhook, "decision_id": i.decision_id, "sequence": i.sequence,
        "event_type": i.event_type, "status": i.status.as_str(), "attempts": i.attempts,
        "next_attempt_at": micros_text(i.next_attempt_at), "last_error": i.last_error,
        "delivered_at": i.delivered_at.map(micros_text),
    })
}

async fn open(config: Option<PathBuf>) -> Result<std::sync::Arc<dyn crate::store::Store>, String> {
    let config = Config::load(config.as_deref()).map_err(|e| e.to_string())?;
    crate::store::open(&config.store.url, &config.store.pg_options())
        .await
        .map_err(|e| e.to_string())
}

/// Runs `witness outbox …`.
pub async fn outbox(cmd: OutboxCommand) -> Result<i32, String> {
    match cmd {
        OutboxCommand::List {
            config,
            status,
            limit,
            json,
        } => {
            let status = match status.as_deref() {
                None => None,
                Some(s) => Some(
                    OutboxStatus::parse(s)
                        .ok_or_else(|| format!("--status: unknown status {s:?}"))?,
                ),
            };
            let store = open(config).await?;
            let items = store
                .outbox_list(status, limit)
                .await
                .map_err(|e| e.to_string())?;
            for i in &items {
                if json {
                    println!("{}", item_json(i));
                } else {
                    println!(
                        "{:>6} {:<9} tries {:<2} {:<12} {} seq {} {}  next {}{}",
                        i.id,
                        i.status.as_str(),
                        i.attempts,
                        i.webhook,
                        i.decision_id,
                        i.sequence,
                        i.event_type,
                        micros_text(i.next_attempt_at),
                        i.last_error
                            .as_deref()
                            .map(|e| format!("  last error: {e}"))
                            .unwrap_or_default()
                    );
                }
            }
            Ok(0)
        }
        OutboxCommand::Retry {
            id,
            config,
            all_dead,
        } => {
            if id.is_none() && !all_dead {
                return Err("outbox retry: give a delivery id or --all-dead".into());
            }
            let store = open(config).await?;
            let n = store
                .outbox_retry(id, now_micros())
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "{n} deliver{} queued again",
                if n == 1 { "y" } else { "ies" }
            );
            Ok(if n == 0 && id.is_some() { 1 } else { 0 })
        }
    }
}
