//! The single writer thread: batches commands into one transaction each
//! (group commit) following the shared plan in `store::batch`, and runs
//! outbox and timer bookkeeping in order with them.

use super::super::batch::{parse_outcome, BatchWrites, Keys, Loaded};
use super::super::{changed_underneath, plan_batch, Applied, Chain, Command, RequestRow};
use super::super::{Result, StoreError};
use super::{load_decision, Job, Reply, MAX_BATCH};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{mpsc, watch};

/// The single writer: batches commands into one transaction each.
pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) chain: Chain,
    pub(super) commits: watch::Sender<u64>,
    /// Where the committed events go for the hub to read (`events_after`).
    pub(super) tail: std::sync::Arc<super::tail::Tail>,
    pub(super) clock: super::super::Clock,
}

impl Writer {
    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut next = None;
        while let Some(first) = next.take().or_else(|| rx.blocking_recv()) {
            let (cmd, reply) = match first {
                Job::Command(cmd, reply) => (cmd, reply),
                Job::Exec(f) => {
                    f(&mut self.conn);
                    continue;
                }
            };
            let mut batch = vec![(cmd, reply)];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(Job::Command(cmd, reply)) => batch.push((cmd, reply)),
                    Ok(exec) => {
                        // Runs after this batch, keeping the order of jobs.
                        next = Some(exec);
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.commit_batch(batch);
        }
    }

    fn commit_batch(&mut self, batch: Vec<(Command, Reply)>) {
        let start = self.chain.clone();
        let span = tracing::info_span!("store.commit", store = "sqlite", batch_size = batch.len());
        let _entered = span.enter();
        let began = std::time::Instant::now();
        let (cmds, replies): (Vec<Command>, Vec<Reply>) = batch.into_iter().unzip();
        let results = match self.execute_batch(cmds) {
            Ok(results) => {
                let applied = || results.iter().filter_map(|r| r.as_ref().ok());
                crate::metrics::store_committed(
                    results.len(),
                    began.elapsed(),
                    applied().map(|a| (&a.decision, &a.events[..])),
                );
                let fresh = applied().filter(|a| a.fresh);
                self.tail
                    .extend(fresh.flat_map(|a| a.events.iter().cloned()));
                results
            }
            Err(e) => {
                self.chain = start.clone();
                self.tail.clear();
                // Every command shares the batch's fate, and its class of error.
                replies.iter().map(|_| Err(e.for_each_in_batch())).collect()
            }
        };
        if self.chain.sequence != start.sequence {
            self.commits.send_replace(self.chain.sequence);
        }
        // Reply, only now that the batch is durable.
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }

    /// Steps 1 to 5 of the shared plan in one IMMEDIATE transaction.
    fn execute_batch(&mut self, cmds: Vec<Command>) -> Result<Vec<Result<Applied>>> {
        let now = (self.clock)();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let keys = Keys::of(&cmds);
        let mut loaded = Loaded {
            requests: lookup_requests(&tx, &keys)?,
            ..Loaded::default()
        };
        let mut ids = keys.decisions;
        ids.extend(loaded.missing_request_decisions());
        loaded.decisions = load_decisions(&tx, &ids)?;
        let (results, writes) = plan_batch(cmds, loaded, &mut self.chain, now);
        if !writes.is_empty() {
            write_batch(&tx, &writes)?;
        }
        tx.commit()?;
        Ok(results)
    }
}

/// Step 1: the stored idempotency records of the batch's keys.
fn lookup_requests(
    c: &Connection,
    keys: &Keys,
) -> Result<std::collections::HashMap<super::super::RequestKey, RequestRow>> {
    let mut select = c.prepare_cached(
        "SELECT fingerprint, decision_id, outcome FROM requests WHERE scope = ?1 AND request_id = ?2",
    )?;
    let mut found = std::collections::HashMap::new();
    for key in &keys.requests {
        let row = select
            .query_row(params![key.0, key.1], |r| {
                Ok((r.get::<_, String>(0)?, r.get(1)?, r.get::<_, String>(2)?))
            })
            .optional()?;
        if let Some((fingerprint, decision_id, outcome)) = row {
            let outcome = parse_outcome(&outcome)?;
            let row = RequestRow {
                fingerprint,
                decision_id,
                outcome,
            };
            found.insert(key.clone(), row);
        }
    }
    Ok(found)
}

/// Step 2: the stored decisions the batch needs.
fn load_decisions(
    c: &Connection,
    ids: &[String],
) -> Result<std::collections::HashMap<String, crate::core::Decision>> {
    let mut found = std::collections::HashMap::new();
    for id in ids {
        if let Some(d) = load_decision(c, id)? {
            found.insert(id.clone(), d);
        }
    }
    Ok(found)
}

/// Step 4: the batch's rows, one prepared statement per table (in-process
/// SQLite has no round trips to save).
fn write_batch(c: &Connection, w: &BatchWrites) -> Result<()> {
    let mut insert = c.prepare_cached(
        "INSERT INTO events (sequence, decision_id, type, at, body, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for e in &w.events {
        let hash = hex::decode(&e.hash)
            .map_err(|_| StoreError::Internal(format!("event {}: hash is not hex", e.sequence)))?;
        insert.execute(params![
            e.sequence as i64,
            e.decision_id,
            e.event_type,
            e.at,
            e.body,
            hash
        ])?;
    }
    let (inserts, updates) = w.decision_rows();
    let mut insert = c.prepare_cached(
        "INSERT INTO decisions (id, kind, status, asked_by, created_at, version, last_sequence,
                                expires_at, fallback_at, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for d in inserts {
        insert.execute(params![
            d.id,
            d.kind,
            d.status,
            d.asked_by,
            d.created_at,
            d.version,
            d.last_sequence,
            d.expires_at,
            d.fallback_at,
            d.body
        ])?;
    }
    // A changed row drops its timer lease: its timers are new.
    let mut update = c.prepare_cached(
        "UPDATE decisions SET status = ?2, version = ?3, last_sequence = ?4, expires_at = ?5,
             fallback_at = ?6, timer_lease = NULL, body = ?7
         WHERE id = ?1 AND version = ?8",
    )?;
    for (d, stored_version) in updates {
        let n = update.execute(params![
            d.id,
            d.status,
            d.version,
            d.last_sequence,
            d.expires_at,
            d.fallback_at,
            d.body,
            stored_version
        ])?;
        if n != 1 {
            return Err(changed_underneath(&d.id));
        }
    }
    let mut insert = c.prepare_cached(
        "INSERT INTO outbox (webhook, decision_id, sequence, event_type, body, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for n in &w.outbox {
        insert.execute(params![
            n.webhook,
            n.decision_id,
            n.sequence,
            n.event_type,
            n.body,
            n.next_attempt_at
        ])?;
    }
    let mut insert =
        c.prepare_cached("INSERT INTO receipts (decision_id, body) VALUES (?1, ?2)")?;
    for (decision_id, body) in &w.receipts {
        insert.execute(params![decision_id, body])?;
    }
    let mut insert = c.prepare_cached(
        "INSERT INTO requests (scope, request_id, fingerprint, decision_id, outcome)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for r in &w.requests {
        insert.execute(params![
            r.idem.scope,
            r.idem.request_id,
            r.idem.fingerprint,
            r.decision_id,
            r.outcome
        ])?;
    }
    Ok(())
}
