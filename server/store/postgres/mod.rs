//! The PostgreSQL store, for production and several replicas on one
//! database.
//!
//! Writes: one writer task per process batches concurrent commands into one
//! transaction (group commit). Every write transaction first locks the
//! single `chain` row, which orders writers across replicas, keeps sequences
//! gap-free and the hash chain linear. A refusal is decided before its
//! command writes anything, so it affects only that command without a
//! savepoint; a database error fails the whole batch. Each COMMIT carries
//! the next transaction's BEGIN and chain lock, which the writer keeps for
//! up to 1 ms waiting for commands (`write::LINGER`). The commit notifies
//! `witness_events`; every replica LISTENs and wakes its hub, which then
//! reads events by sequence (a missed notification is caught up by the
//! hub's periodic read).

mod columns;
mod migrate;
mod outbox;
mod write;
use migrate::migrate;
use write::{load_decision, write_loop};

use super::{
    codec, Applied, Command, Delivery, DueTimer, Lane, OutboxItem, OutboxStatus, PageQuery,
    ProjectionRow, RawEvent, Result, Store, StoreError, StoreGauges,
};
use super::{due_timer, in_id_order};
use crate::core::{Decision, Event};
use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures::StreamExt;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::{AsyncMessage, NoTls};

const CHANNEL: &str = "witness_events";
const MAX_BATCH: usize = 512;

/// Connection settings of the Postgres store.
#[derive(Debug, Clone)]
pub struct PgOptions {
    pub pool_size: usize,
    pub statement_timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            pool_size: 16,
            statement_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
        }
    }
}

type Reply = oneshot::Sender<Result<Applied>>;

/// The PostgreSQL store.
#[derive(Debug)]
pub struct PostgresStore {
    pool: Pool,
    writer: mpsc::Sender<(Command, Reply)>,
    commits: watch::Receiver<u64>,
}

/// Classifies a driver error by its SQLSTATE: what a retry may fix
/// (connection, resources, shutdown, timeout, serialization failure,
/// deadlock) is `Unavailable`; everything else the server said is a
/// statement no retry fixes (constraint violations, `42xxx` syntax and
/// undefined table/column, data exceptions): `Internal`, a bug, not
/// corrupt data. Undecodable stored data is `Corrupt`, classified where it
/// is decoded.
impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.code() {
            Some(code) if !retryable_sqlstate(code.code()) => {
                StoreError::Internal(format!("postgres ({}): {e}", code.code()))
            }
            // No SQLSTATE: I/O, a closed connection, a client-side timeout.
            // Or one of the retryable states above.
            _ => StoreError::Unavailable(e.to_string()),
        }
    }
}

/// Whether a SQLSTATE names a condition a later retry may not meet again.
fn retryable_sqlstate(c: &str) -> bool {
    c.starts_with("08") // connection exceptions
        || c.starts_with("53") // insufficient resources
        || c.starts_with("57") // operator intervention: 57P01 admin shutdown, 57014 statement timeout
        || c.starts_with("58") // system error (I/O) outside PostgreSQL
        || c == "40001" // serialization failure
        || c == "40P01" // deadlock detected
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        use deadpool_postgres::PoolError;
        match e {
            // The server answered the connection attempt with an error of
            // its own (e.g. a wrong password or a missing database).
            PoolError::Backend(e) => e.into(),
            // Timeouts, a closed pool, a failed connect: an outage.
            other => StoreError::Unavailable(format!("database: {other}")),
        }
    }
}

/// A `decisions` row's columns, in `projection_row` order.
const ROW_COLUMNS: &str = "id, kind, status, asked_by, created_at, version, last_sequence,
     expires_at, fallback_at, body";

fn projection_row(r: &tokio_postgres::Row) -> Result<ProjectionRow> {
    projection_row_at(r, 0)
}

/// The `ROW_COLUMNS` of a row that starts at column `at`.
fn projection_row_at(r: &tokio_postgres::Row, at: usize) -> Result<ProjectionRow> {
    let row = || -> std::result::Result<_, tokio_postgres::Error> {
        Ok(ProjectionRow {
            id: r.try_get(at)?,
            kind: r.try_get(at + 1)?,
            status: r.try_get(at + 2)?,
            asked_by: r.try_get(at + 3)?,
            created_at: r.try_get(at + 4)?,
            version: r.try_get(at + 5)?,
            last_sequence: r.try_get(at + 6)?,
            expires_at: r.try_get(at + 7)?,
            fallback_at: r.try_get(at + 8)?,
            body: r.try_get(at + 9)?,
            timer_lease: None,
        })
    };
    row().map_err(|e| StoreError::Corrupt(format!("decisions row: {e}")))
}

/// A decision from a `SELECT {ROW_COLUMNS}` row.
fn decision(r: &tokio_postgres::Row) -> Result<Decision> {
    decision_at(r, 0)
}

/// A decision from `ROW_COLUMNS` starting at column `at`.
fn decision_at(r: &tokio_postgres::Row, at: usize) -> Result<Decision> {
    Ok(codec::decode_row(&projection_row_at(r, at)?)?)
}

/// An event from `SELECT sequence, decision_id, type, at, body`.
fn event(r: &tokio_postgres::Row) -> Result<Event> {
    let sequence: i64 = r.try_get(0)?;
    Ok(codec::decode_event(
        sequence as u64,
        r.try_get(1)?,
        r.try_get(2)?,
        r.try_get(3)?,
        r.try_get(4)?,
    )?)
}

impl PostgresStore {
    /// Connects, migrates, and starts the writer and the listener.
    pub async fn open(url: &str, opts: &PgOptions) -> Result<Self> {
        Self::open_with_clock(url, opts, super::system_clock()).await
    }

    /// [`PostgresStore::open`], stamping events with `clock`'s time.
    pub async fn open_with_clock(url: &str, opts: &PgOptions, clock: super::Clock) -> Result<Self> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| StoreError::BadUrl(e.to_string()))?;
        config.connect_timeout(opts.connect_timeout);
        config.options(format!(
            "-c statement_timeout={}",
            opts.statement_timeout.as_millis()
        ));
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(opts.pool_size.max(2))
            .wait_timeout(Some(opts.connect_timeout))
            .create_timeout(Some(opts.connect_timeout))
            .recycle_timeout(Some(opts.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Internal(format!("connection pool: {e}")))?;
        migrate(&pool).await?;
        let head = head(&pool.get().await?).await?;
        let (commit_tx, commits) = watch::channel(head);
        let (writer, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(write_loop(
            pool.clone(),
            rx,
            commit_tx.clone(),
            clock,
            // 0 turns PostgreSQL's timeout off; the writer's, too.
            Some(opts.statement_timeout)
                .filter(|t| !t.is_zero())
                .unwrap_or(Duration::from_secs(365 * 24 * 3600)),
        ));
        tokio::spawn(listen_loop(config, commit_tx));
        Ok(PostgresStore {
            pool,
            writer,
            commits,
        })
    }
}

async fn head(c: &impl GenericClient) -> Result<u64> {
    let row = c.query_one("SELECT sequence FROM chain", &[]).await?;
    Ok(row.get::<_, i64>(0) as u64)
}

/// Wakes the hub on every commit of any replica.
async fn listen_loop(config: tokio_postgres::Config, commits: watch::Sender<u64>) {
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let (tx, mut rx) = mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    let mut messages =
                        futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(Ok(msg)) = messages.next().await {
                        if let AsyncMessage::Notification(n) = msg {
                            let _ = tx.send(n.payload().parse::<u64>().unwrap_or(0));
                        }
                    }
                });
                if client
                    .batch_execute(&format!("LISTEN {CHANNEL}"))
                    .await
                    .is_ok()
                {
                    // Reconnected: something may have been missed.
                    commits.send_modify(|_| {});
                    while let Some(seq) = rx.recv().await {
                        commits.send_if_modified(|head| {
                            let newer = seq > *head;
                            *head = (*head).max(seq);
                            newer
                        });
                    }
                }
                driver.abort();
            }
            Err(e) => tracing::warn!(error = %e, "cannot LISTEN for events; retrying"),
        }
        if commits.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn raw_event(r: &tokio_postgres::Row) -> RawEvent {
    RawEvent {
        sequence: r.get::<_, i64>(0) as u64,
        decision_id: r.get(1),
        event_type: r.get(2),
        at: r.get(3),
        body: r.get(4),
        prev_hash: r.get(5),
        hash: r.get(6),
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn execute(&self, cmd: Command) -> Result<Applied> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send((cmd, tx))
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?
    }

    async fn get(&self, id: &str) -> Result<Option<Decision>> {
        load_decision(&self.pool.get().await?, id).await
    }

    async fn page(&self, q: &PageQuery) -> Result<Vec<Decision>> {
        let statuses: Vec<&str> = q.statuses.iter().map(|s| s.as_str()).collect();
        let rows = self
            .pool
            .get()
            .await?
            .query(
                &format!(
                    "SELECT {ROW_COLUMNS} FROM decisions
                     WHERE id > $1 AND (cardinality($2::text[]) = 0 OR status = ANY($2))
                     ORDER BY id LIMIT $3"
                ),
                &[
                    &q.after_id.clone().unwrap_or_default(),
                    &statuses,
                    &(q.limit as i64),
                ],
            )
            .await?;
        rows.iter().map(decision).collect()
    }

    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>> {
        let rows = self
            .pool
            .get()
            .await?
            .query(
                "SELECT sequence, decision_id, type, at, body FROM events
                 WHERE sequence > $1 ORDER BY sequence LIMIT $2",
                &[&(after as i64), &(limit as i64)],
            )
            .await?;
        rows.iter().map(event).collect()
    }

    async fn decision_events(&self, id: &str) -> Result<Vec<Event>> {
        let rows = self
            .pool
            .get()
            .await?
            .query(
                "SELECT sequence, decision_id, type, at, body FROM events
                 WHERE decision_id = $1 ORDER BY sequence",
                &[&id],
            )
            .await?;
        rows.iter().map(event).collect()
    }

    async fn open_snapshot(&self) -> Result<(Vec<Decision>, u64)> {
        let mut client = self.pool.get().await?;
        // One snapshot for the rows and the head.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let head = head(&tx).await?;
        let rows = tx
            .query(
                &format!("SELECT {ROW_COLUMNS} FROM decisions WHERE status = 'OPEN' ORDER BY id"),
                &[],
            )
            .await?;
        tx.commit().await?;
        let open = rows.iter().map(decision).collect::<Result<_>>()?;
        Ok((open, head))
    }

    async fn raw_events(&self, after: u64, limit: usize) -> Result<Vec<RawEvent>> {
        let rows = self
            .pool
            .get()
            .await?
            .query(
                "SELECT sequence, decision_id, type, at, body, prev_hash, hash FROM events
                 WHERE sequence > $1 ORDER BY sequence LIMIT $2",
                &[&(after as i64), &(limit as i64)],
            )
            .await?;
        Ok(rows.iter().map(raw_event).collect())
    }

    /// Claims with `FOR UPDATE SKIP LOCKED`, so replicas share the work. A
    /// lease further ahead than a claim made now would set is void (see
    /// the SQLite store).
    async fn due_timers(&self, now: i64, lease_us: i64, limit: usize) -> Result<Vec<DueTimer>> {
        let rows = self
            .pool
            .get()
            .await?
            .query(
                "UPDATE decisions SET timer_lease = $1 + $3
                 WHERE id IN (
                     SELECT id FROM decisions
                     WHERE (expires_at <= $1 OR fallback_at <= $1)
                       AND (timer_lease IS NULL OR timer_lease < $1 OR timer_lease > $1 + $3)
                     ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
                 RETURNING id, COALESCE(expires_at <= $1, FALSE)",
                &[&now, &(limit as i64), &lease_us],
            )
            .await?;
        Ok(in_id_order(
            rows.iter().map(|r| due_timer(r.get(0), r.get(1))).collect(),
        ))
    }

    async fn head(&self) -> Result<u64> {
        let row = self
            .pool
            .get()
            .await?
            .query_one("SELECT COALESCE(MAX(sequence), 0)::BIGINT FROM events", &[])
            .await?;
        let head: i64 = row
            .try_get(0)
            .map_err(|e| StoreError::Corrupt(format!("events head: {e}")))?;
        Ok(u64::try_from(head).unwrap_or(0))
    }

    async fn projection_rows(&self, after_id: &str, limit: usize) -> Result<Vec<ProjectionRow>> {
        let rows = self
            .pool
            .get()
            .await?
            .query(
                &format!(
                    "SELECT {ROW_COLUMNS}, timer_lease FROM decisions WHERE id > $1 ORDER BY id LIMIT $2"
                ),
                &[&after_id, &(limit as i64)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let lease = r
                    .try_get(10)
                    .map_err(|e| StoreError::Corrupt(format!("decisions.timer_lease: {e}")))?;
                Ok(ProjectionRow {
                    timer_lease: lease,
                    ..projection_row(r)?
                })
            })
            .collect()
    }

    async fn receipts(&self, after_id: &str, limit: usize) -> Result<Vec<(String, String)>> {
        let rows = self
            .pool
            .get()
            .await?
            .query(
                "SELECT decision_id, body FROM receipts WHERE decision_id > $1 ORDER BY decision_id LIMIT $2",
                &[&after_id, &(limit as i64)],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn gauges(&self) -> Result<StoreGauges> {
        let row = self
            .pool
            .get()
            .await?
            .query_one(
                "SELECT (SELECT count(*) FROM decisions WHERE status = 'OPEN'),
                        (SELECT created_at FROM decisions WHERE status = 'OPEN' ORDER BY id LIMIT 1),
                        (SELECT count(*) FROM outbox WHERE status = 'pending')",
                &[],
            )
            .await?;
        Ok(StoreGauges {
            open_decisions: row.get::<_, i64>(0).max(0) as u64,
            oldest_open_created_at: row.get(1),
            outbox_pending: row.get::<_, i64>(2).max(0) as u64,
        })
    }

    async fn receipt(&self, decision_id: &str) -> Result<Option<String>> {
        let row = self
            .pool
            .get()
            .await?
            .query_opt(
                "SELECT body FROM receipts WHERE decision_id = $1",
                &[&decision_id],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn outbox_claim_lane(
        &self,
        lane: Lane,
        now: i64,
        lease_us: i64,
        limit: usize,
    ) -> Result<Vec<OutboxItem>> {
        self.outbox_claim_lane_impl(lane, now, lease_us, limit)
            .await
    }

    async fn outbox_thread(&self, webhook: &str, decision_id: &str) -> Result<Vec<OutboxItem>> {
        self.outbox_thread_impl(webhook, decision_id).await
    }

    async fn outbox_complete(&self, id: i64, result: Delivery) -> Result<()> {
        self.outbox_complete_impl(id, result).await
    }

    async fn outbox_list(
        &self,
        status: Option<OutboxStatus>,
        limit: usize,
    ) -> Result<Vec<OutboxItem>> {
        self.outbox_list_impl(status, limit).await
    }

    async fn outbox_retry(&self, id: Option<i64>, now: i64) -> Result<u64> {
        self.outbox_retry_impl(id, now).await
    }

    fn commits(&self) -> watch::Receiver<u64> {
        self.commits.clone()
    }
}

#[cfg(test)]
mod error_tests {
    use super::retryable_sqlstate;

    #[test]
    fn outages_are_retryable_refusals_are_not() {
        for c in [
            "08006", "53300", "57P01", "57014", "40001", "40P01", "58030",
        ] {
            assert!(retryable_sqlstate(c), "{c}");
        }
        for c in [
            "23505", "23503", "42601", "42P01", "42703", "22P02", "28P01",
        ] {
            assert!(!retryable_sqlstate(c), "{c}");
        }
    }
}
