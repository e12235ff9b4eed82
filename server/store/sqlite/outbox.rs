//! The outbox's SQL on SQLite (the `Store` methods delegate here).

use super::super::{Delivery, Lane, OutboxItem, OutboxStatus, Result};
use super::SqliteStore;
use rusqlite::params;

const OUTBOX_COLUMNS: &str =
    "id, webhook, decision_id, sequence, event_type, body, status, attempts, next_attempt_at, last_error, delivered_at, response";

/// One outbox row; the outer error is the driver's, the inner one a row
/// whose status does not decode.
fn outbox_item(r: &rusqlite::Row) -> rusqlite::Result<Result<OutboxItem>> {
    let id: i64 = r.get(0)?;
    let decoded = OutboxStatus::decode(id, &r.get::<_, String>(6)?).and_then(|status| {
        Ok((
            status,
            OutboxStatus::decode_event_type(id, &r.get::<_, String>(4)?)?,
        ))
    });
    let (status, event_type) = match decoded {
        Ok(x) => x,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(OutboxItem {
        id: r.get(0)?,
        webhook: r.get(1)?,
        decision_id: r.get(2)?,
        sequence: r.get::<_, i64>(3)? as u64,
        event_type,
        body: r.get(5)?,
        status,
        attempts: r.get(7)?,
        next_attempt_at: r.get(8)?,
        last_error: r.get(9)?,
        delivered_at: r.get(10)?,
        response: r.get(11)?,
    }))
}

impl SqliteStore {
    pub(super) async fn outbox_claim_lane_impl(
        &self,
        lane: Lane,
        now: i64,
        lease_us: i64,
        limit: usize,
    ) -> Result<Vec<OutboxItem>> {
        self.on_writer(move |c| {
            let sql = format!(
                "UPDATE outbox SET lease = ?1 + ?2 WHERE id IN (
                     SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?1
                       AND (lease IS NULL OR lease < ?1)
                       AND (substr(webhook, 1, 6) = 'slack:') = ?4 ORDER BY id LIMIT ?3)
                 RETURNING {OUTBOX_COLUMNS}"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(
                params![now, lease_us, limit as i64, lane.slack_flag()],
                outbox_item,
            )?;
            let mut items = rows
                .collect::<rusqlite::Result<Vec<_>>>()?
                .into_iter()
                .collect::<Result<Vec<_>>>()?;
            // RETURNING has no order; the claim's contract is id order.
            items.sort_by_key(|i| i.id);
            Ok(items)
        })
        .await
    }

    pub(super) async fn outbox_thread_impl(
        &self,
        webhook: &str,
        decision_id: &str,
    ) -> Result<Vec<OutboxItem>> {
        let (webhook, decision_id) = (webhook.to_string(), decision_id.to_string());
        self.read(move |c| {
            let sql = format!(
                "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE decision_id = ?1 AND webhook = ?2
                 ORDER BY sequence"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![decision_id, webhook], outbox_item)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
                .into_iter()
                .collect()
        })
        .await
    }

    pub(super) async fn outbox_complete_impl(&self, id: i64, result: Delivery) -> Result<()> {
        self.on_writer(move |c| {
            match result {
                Delivery::Delivered { at } => c.execute(
                    "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, delivered_at = ?2,
                         lease = NULL, last_error = NULL WHERE id = ?1",
                    params![id, at],
                )?,
                Delivery::Answered { at, response } => c.execute(
                    "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, delivered_at = ?2,
                         lease = NULL, last_error = NULL, response = ?3 WHERE id = ?1",
                    params![id, at, response],
                )?,
                Delivery::Retry { at, error } => c.execute(
                    "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3,
                         lease = NULL WHERE id = ?1",
                    params![id, at, error],
                )?,
                Delivery::Deferred { at, reason } => c.execute(
                    "UPDATE outbox SET next_attempt_at = ?2, last_error = ?3, lease = NULL WHERE id = ?1",
                    params![id, at, reason],
                )?,
                Delivery::Dead { error } => c.execute(
                    "UPDATE outbox SET status = 'dead', attempts = attempts + 1, last_error = ?2,
                         lease = NULL WHERE id = ?1",
                    params![id, error],
                )?,
            };
            Ok(())
        })
        .await
    }

    pub(super) async fn outbox_list_impl(
        &self,
        status: Option<OutboxStatus>,
        limit: usize,
    ) -> Result<Vec<OutboxItem>> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE ?1 IS NULL OR status = ?1 ORDER BY id DESC LIMIT ?2"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![status.map(OutboxStatus::as_str), limit as i64], outbox_item)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?.into_iter().collect()
        })
        .await
    }

    pub(super) async fn outbox_retry_impl(&self, id: Option<i64>, now: i64) -> Result<u64> {
        self.on_writer(move |c| {
            let n = c.execute(
                "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?2, lease = NULL
                 WHERE status != 'delivered' AND ((?1 IS NULL AND status = 'dead') OR id = ?1)",
                params![id, now],
            )?;
            Ok(n as u64)
        })
        .await
    }
}
