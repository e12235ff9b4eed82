//! The embedded store: SQLite in WAL mode with `synchronous=FULL`.
//!
//! One writer thread owns the only write connection and commits concurrent
//! commands in one transaction per batch (group commit), so durable
//! throughput is not bounded by the disk's fsync rate; each caller is
//! answered only after its batch is durable. Reads use a small pool of
//! read-only connections.

mod migrate;
mod outbox;
mod tail;
mod writer;

use super::{
    codec, Applied, Chain, Command, Delivery, DueTimer, Lane, OutboxItem, OutboxStatus, PageQuery,
    ProjectionRow, RawEvent, Result, Store, StoreError, StoreGauges,
};
use super::{due_timer, in_id_order};
use crate::core::{Decision, Event};
use async_trait::async_trait;
pub use migrate::migrate;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, watch};
use writer::Writer;

const READERS: usize = 4;
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<Result<Applied>>;

/// Work for the writer thread: a command (batched with others) or a
/// closure that needs the write connection (outbox bookkeeping).
#[allow(clippy::large_enum_variant)] // commands are the common case; boxing them costs an allocation each
enum Job {
    Command(Command, Reply),
    Exec(Box<dyn FnOnce(&mut Connection) + Send>),
}

/// The embedded SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    writer: mpsc::Sender<Job>,
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: AtomicUsize,
    commits: watch::Receiver<u64>,
    tail: Arc<tail::Tail>,
}

/// Classifies a SQLite error: a busy or locked database, or a machine
/// that cannot write (I/O, full disk, out of memory), is `Unavailable`; a
/// damaged file or a column that does not decode is `Corrupt`; a statement
/// no retry fixes (constraint, syntax, no such table, API misuse) is
/// `Internal`, a bug.
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        match &e {
            rusqlite::Error::SqliteFailure(f, _) => match f.code {
                C::DatabaseBusy
                | C::DatabaseLocked
                | C::OutOfMemory
                | C::SystemIoFailure
                | C::DiskFull
                | C::CannotOpen
                | C::FileLockingProtocolFailed
                | C::OperationInterrupted
                | C::SchemaChanged
                | C::PermissionDenied
                | C::ReadOnly => StoreError::Unavailable(e.to_string()),
                C::DatabaseCorrupt | C::NotADatabase => StoreError::Corrupt(e.to_string()),
                _ => StoreError::Internal(format!("sqlite: {e}")),
            },
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::Utf8Error(..) => StoreError::Corrupt(e.to_string()),
            _ => StoreError::Internal(format!("sqlite: {e}")),
        }
    }
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn connect(path: &str) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub async fn open(path: &str) -> Result<Self> {
        Self::open_with_clock(path, super::system_clock()).await
    }

    /// [`SqliteStore::open`], stamping events with `clock`'s time.
    pub async fn open_with_clock(path: &str, clock: super::Clock) -> Result<Self> {
        let path = path.to_string();
        tokio::task::spawn_blocking(move || Self::open_blocking(&path, clock))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }

    fn open_blocking(path: &str, clock: super::Clock) -> Result<Self> {
        if let Some(dir) = Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Unavailable(format!("{path}: {e}")))?;
        }
        let mut conn = connect(path)?;
        migrate(&mut conn)?;
        let chain = read_chain(&conn)?;
        let readers = (0..READERS)
            .map(|_| {
                let c = connect(path)?;
                c.pragma_update(None, "query_only", true)?;
                Ok(Mutex::new(c))
            })
            .collect::<Result<Vec<_>>>()?;
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        let (commit_tx, commit_rx) = watch::channel(chain.sequence);
        let tail = Arc::new(tail::Tail::default());
        let writer_tail = tail.clone();
        std::thread::Builder::new()
            .name("witness-sqlite-writer".into())
            .spawn(move || {
                Writer {
                    conn,
                    chain,
                    commits: commit_tx,
                    tail: writer_tail,
                    clock,
                }
                .run(rx);
            })
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(SqliteStore {
            writer: tx,
            readers: Arc::new(readers),
            next_reader: AtomicUsize::new(0),
            commits: commit_rx,
            tail,
        })
    }

    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % readers.len();
        tokio::task::spawn_blocking(move || {
            let mut conn = readers[i]
                .lock()
                .map_err(|_| StoreError::Unavailable("reader connection poisoned".into()))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }
}

impl SqliteStore {
    /// Runs `f` on the writer thread's connection, in order with commands.
    async fn on_writer<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = Job::Exec(Box::new(move |conn| {
            let _ = tx.send(f(conn));
        }));
        self.writer
            .send(job)
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?
    }
}

fn read_chain(conn: &Connection) -> Result<Chain> {
    let head = conn
        .query_row(
            "SELECT sequence, hash FROM events ORDER BY sequence DESC LIMIT 1",
            [],
            |r| {
                Ok(Chain {
                    sequence: r.get::<_, i64>(0)? as u64,
                    hash: hex::encode(r.get::<_, Vec<u8>>(1)?),
                })
            },
        )
        .optional()?;
    Ok(head.unwrap_or_else(Chain::genesis))
}

/// Claims due timers for a lease. A lease further ahead than a claim made
/// now would set was not set by a claim (an edit, or a clock that jumped
/// back) and is void, so no lease holds a timer past the lease length.
/// One range of each partial timer index
/// (named: the planner would rather scan every row in id order to skip a
/// sort), so a tick reads only the due rows.
const DUE_TIMERS: &str = "UPDATE decisions SET timer_lease = ?1 + ?2
     WHERE id IN (
         SELECT id FROM decisions INDEXED BY decisions_expiring
         WHERE expires_at <= ?1 AND (timer_lease IS NULL OR timer_lease < ?1 OR timer_lease > ?1 + ?2)
         UNION
         SELECT id FROM decisions INDEXED BY decisions_unacked
         WHERE fallback_at <= ?1 AND (timer_lease IS NULL OR timer_lease < ?1 OR timer_lease > ?1 + ?2)
         ORDER BY id LIMIT ?3)
     RETURNING id, COALESCE(expires_at <= ?1, FALSE)";

/// A `decisions` row's columns, in `projection_row` order.
const ROW_COLUMNS: &str = "id, kind, status, asked_by, created_at, version, last_sequence,
     expires_at, fallback_at, body";

fn projection_row(r: &rusqlite::Row) -> rusqlite::Result<ProjectionRow> {
    Ok(ProjectionRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        status: r.get(2)?,
        asked_by: r.get(3)?,
        created_at: r.get(4)?,
        version: r.get(5)?,
        last_sequence: r.get(6)?,
        expires_at: r.get(7)?,
        fallback_at: r.get(8)?,
        body: r.get(9)?,
        timer_lease: None,
    })
}

fn decode_rows(rows: Vec<ProjectionRow>) -> Result<Vec<Decision>> {
    Ok(rows
        .iter()
        .map(codec::decode_row)
        .collect::<Result<_, _>>()?)
}

fn load_decision(conn: &Connection, id: &str) -> Result<Option<Decision>> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {ROW_COLUMNS} FROM decisions WHERE id = ?1"
        ))?
        .query_row([id], projection_row)
        .optional()?;
    Ok(row.as_ref().map(codec::decode_row).transpose()?)
}

/// The columns an event is decoded from, in `codec::decode_event` order.
const EVENT_COLUMNS: &str = "sequence, decision_id, type, at, body";

fn event_row(r: &rusqlite::Row) -> rusqlite::Result<(i64, String, String, i64, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn parse_events(rows: Vec<(i64, String, String, i64, String)>) -> Result<Vec<Event>> {
    rows.iter()
        .map(|(seq, id, ty, at, body)| Ok(codec::decode_event(*seq as u64, id, ty, *at, body)?))
        .collect()
}

#[async_trait]
impl Store for SqliteStore {
    async fn execute(&self, cmd: Command) -> Result<Applied> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(Job::Command(cmd, tx))
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?
    }

    async fn get(&self, id: &str) -> Result<Option<Decision>> {
        let id = id.to_string();
        self.read(move |c| load_decision(c, &id)).await
    }

    async fn page(&self, q: &PageQuery) -> Result<Vec<Decision>> {
        let q = q.clone();
        self.read(move |c| {
            let statuses: Vec<&str> = q.statuses.iter().map(|s| s.as_str()).collect();
            // The status list is a JSON array so the statement stays fixed.
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {ROW_COLUMNS} FROM decisions
                 WHERE id > ?1 AND (?2 = '[]' OR status IN (SELECT value FROM json_each(?2)))
                 ORDER BY id LIMIT ?3"
            ))?;
            let statuses = serde_json::to_string(&statuses).map_err(corrupt)?;
            let rows = stmt
                .query_map(
                    params![q.after_id.unwrap_or_default(), statuses, q.limit as i64],
                    projection_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            decode_rows(rows)
        })
        .await
    }

    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>> {
        if let Some(events) = self.tail.after(after, limit) {
            return Ok(events);
        }
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE sequence > ?1 ORDER BY sequence LIMIT ?2"
            ))?;
            let rows = stmt
                .query_map(params![after as i64, limit as i64], event_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            parse_events(rows)
        })
        .await
    }

    async fn decision_events(&self, id: &str) -> Result<Vec<Event>> {
        let id = id.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE decision_id = ?1 ORDER BY sequence"
            ))?;
            let rows = stmt
                .query_map([id], event_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            parse_events(rows)
        })
        .await
    }

    async fn open_snapshot(&self) -> Result<(Vec<Decision>, u64)> {
        self.read(|c| {
            // One read transaction: the rows and the head are one snapshot.
            let tx = c.transaction()?;
            let head: i64 =
                tx.query_row("SELECT COALESCE(MAX(sequence), 0) FROM events", [], |r| {
                    r.get(0)
                })?;
            let rows = {
                let mut stmt = tx.prepare_cached(&format!(
                    "SELECT {ROW_COLUMNS} FROM decisions WHERE status = 'OPEN' ORDER BY id"
                ))?;
                let rows = stmt
                    .query_map([], projection_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                rows
            };
            tx.commit()?;
            Ok((decode_rows(rows)?, head as u64))
        })
        .await
    }

    /// The log stores no `prev_hash` (schema 6): each event's link is the
    /// hash of the row before it, read along from event `after` itself.
    async fn raw_events(&self, after: u64, limit: usize) -> Result<Vec<RawEvent>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT sequence, decision_id, type, at, body, hash FROM events
                 WHERE sequence >= ?1 ORDER BY sequence LIMIT ?2",
            )?;
            let mut rows = stmt.query(params![after as i64, limit as i64 + 1])?;
            // A missing event `after` (a damaged log) links to no hash, so
            // the audit names the event after the hole.
            let mut prev = if after == 0 {
                crate::core::GENESIS_HASH.to_string()
            } else {
                String::new()
            };
            let mut events = Vec::with_capacity(limit);
            while let Some(r) = rows.next()? {
                let sequence = r.get::<_, i64>(0)? as u64;
                let hash = hex::encode(r.get::<_, Vec<u8>>(5)?);
                if sequence == after {
                    prev = hash;
                    continue;
                }
                if events.len() == limit {
                    break;
                }
                events.push(RawEvent {
                    sequence,
                    decision_id: r.get(1)?,
                    event_type: r.get(2)?,
                    at: r.get(3)?,
                    body: r.get(4)?,
                    prev_hash: std::mem::replace(&mut prev, hash.clone()),
                    hash,
                });
            }
            Ok(events)
        })
        .await
    }

    async fn due_timers(&self, now: i64, lease_us: i64, limit: usize) -> Result<Vec<DueTimer>> {
        self.on_writer(move |c| {
            let mut stmt = c.prepare_cached(DUE_TIMERS)?;
            let rows = stmt
                .query_map(params![now, lease_us, limit as i64], |r| {
                    Ok(due_timer(r.get(0)?, r.get(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(in_id_order(rows))
        })
        .await
    }

    async fn head(&self) -> Result<u64> {
        self.read(|c| {
            let head: i64 = c
                .prepare_cached("SELECT COALESCE(MAX(sequence), 0) FROM events")?
                .query_row([], |r| r.get(0))?;
            Ok(u64::try_from(head).unwrap_or(0))
        })
        .await
    }

    async fn projection_rows(&self, after_id: &str, limit: usize) -> Result<Vec<ProjectionRow>> {
        let after_id = after_id.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {ROW_COLUMNS}, timer_lease FROM decisions WHERE id > ?1 ORDER BY id LIMIT ?2"
            ))?;
            let rows = stmt
                .query_map(params![after_id, limit as i64], |r| {
                    Ok(ProjectionRow {
                        timer_lease: r.get(10)?,
                        ..projection_row(r)?
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn receipts(&self, after_id: &str, limit: usize) -> Result<Vec<(String, String)>> {
        let after_id = after_id.to_string();
        self.read(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT decision_id, body FROM receipts WHERE decision_id > ?1 ORDER BY decision_id LIMIT ?2")?;
            let rows = stmt.query_map(params![after_id, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn gauges(&self) -> Result<StoreGauges> {
        self.read(|c| {
            let open: i64 = c.query_row(
                "SELECT count(*) FROM decisions WHERE status = 'OPEN'",
                [],
                |r| r.get(0),
            )?;
            let oldest: Option<i64> = c
                .query_row(
                    "SELECT created_at FROM decisions WHERE status = 'OPEN' ORDER BY id LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            let pending: i64 = c.query_row(
                "SELECT count(*) FROM outbox WHERE status = 'pending'",
                [],
                |r| r.get(0),
            )?;
            Ok(StoreGauges {
                open_decisions: open.max(0) as u64,
                oldest_open_created_at: oldest,
                outbox_pending: pending.max(0) as u64,
            })
        })
        .await
    }

    async fn receipt(&self, decision_id: &str) -> Result<Option<String>> {
        let id = decision_id.to_string();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT body FROM receipts WHERE decision_id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
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
#[path = "tests.rs"]
mod tests;
