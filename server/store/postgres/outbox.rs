//! The outbox's SQL on PostgreSQL (the `Store` methods delegate here).

use super::super::{Delivery, Lane, OutboxItem, OutboxStatus, Result};
use super::PostgresStore;

const OUTBOX_COLUMNS: &str =
    "id, webhook, decision_id, sequence, event_type, body, status, attempts, next_attempt_at, last_error, delivered_at, response";

fn outbox_item(r: &tokio_postgres::Row) -> Result<OutboxItem> {
    let id: i64 = r.get(0);
    Ok(OutboxItem {
        id,
        webhook: r.get(1),
        decision_id: r.get(2),
        sequence: r.get::<_, i64>(3) as u64,
        event_type: OutboxStatus::decode_event_type(id, r.get(4))?,
        body: r.get(5),
        status: OutboxStatus::decode(id, r.get(6))?,
        attempts: r.get::<_, i32>(7) as u32,
        next_attempt_at: r.get(8),
        last_error: r.get(9),
        delivered_at: r.get(10),
        response: r.get(11),
    })
}

impl PostgresStore {
    pub(super) async fn outbox_claim_lane_impl(
        &self,
        lane: Lane,
        now: i64,
        lease_us: i64,
        limit: usize,
    ) -> Result<Vec<OutboxItem>> {
        let sql = format!(
            "UPDATE outbox SET lease = $1 + $2 WHERE id IN (
                 SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= $1
                   AND (lease IS NULL OR lease < $1)
                   AND (substr(webhook, 1, 6) = 'slack:') = $4
                 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
             RETURNING {OUTBOX_COLUMNS}"
        );
        let slack = lane == Lane::Slack;
        let rows = self
            .pool
            .get()
            .await?
            .query(&sql, &[&now, &lease_us, &(limit as i64), &slack])
            .await?;
        let mut items = rows.iter().map(outbox_item).collect::<Result<Vec<_>>>()?;
        // RETURNING has no order; the claim's contract is id order.
        items.sort_by_key(|i| i.id);
        Ok(items)
    }

    pub(super) async fn outbox_thread_impl(
        &self,
        webhook: &str,
        decision_id: &str,
    ) -> Result<Vec<OutboxItem>> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE decision_id = $1 AND webhook = $2 ORDER BY sequence"
        );
        let rows = self
            .pool
            .get()
            .await?
            .query(&sql, &[&decision_id, &webhook])
            .await?;
        rows.iter().map(outbox_item).collect()
    }

    pub(super) async fn outbox_complete_impl(&self, id: i64, result: Delivery) -> Result<()> {
        let c = self.pool.get().await?;
        match result {
            Delivery::Delivered { at } => {
                c.execute(
                    "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, delivered_at = $2,
                         lease = NULL, last_error = NULL WHERE id = $1",
                    &[&id, &at],
                )
                .await?
            }
            Delivery::Answered { at, response } => {
                c.execute(
                    "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, delivered_at = $2,
                         lease = NULL, last_error = NULL, response = $3 WHERE id = $1",
                    &[&id, &at, &response],
                )
                .await?
            }
            Delivery::Deferred { at, reason } => {
                c.execute(
                    "UPDATE outbox SET next_attempt_at = $2, last_error = $3, lease = NULL WHERE id = $1",
                    &[&id, &at, &reason],
                )
                .await?
            }
            Delivery::Retry { at, error } => {
                c.execute(
                    "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3,
                         lease = NULL WHERE id = $1",
                    &[&id, &at, &error],
                )
                .await?
            }
            Delivery::Dead { error } => {
                c.execute(
                    "UPDATE outbox SET status = 'dead', attempts = attempts + 1, last_error = $2,
                         lease = NULL WHERE id = $1",
                    &[&id, &error],
                )
                .await?
            }
        };
        Ok(())
    }

    pub(super) async fn outbox_list_impl(
        &self,
        status: Option<OutboxStatus>,
        limit: usize,
    ) -> Result<Vec<OutboxItem>> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE $1::text IS NULL OR status = $1 ORDER BY id DESC LIMIT $2"
        );
        let status = status.map(OutboxStatus::as_str);
        let rows = self
            .pool
            .get()
            .await?
            .query(&sql, &[&status, &(limit as i64)])
            .await?;
        rows.iter().map(outbox_item).collect()
    }

    pub(super) async fn outbox_retry_impl(&self, id: Option<i64>, now: i64) -> Result<u64> {
        let n = self
            .pool
            .get()
            .await?
            .execute(
                "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $2, lease = NULL
                 WHERE status != 'delivered' AND (($1::bigint IS NULL AND status = 'dead') OR id = $1)",
                &[&id, &now],
            )
            .await?;
        Ok(n)
    }
}
