//! The single writer thread: batches commands into one transaction each,
//! one savepoint per command, and runs outbox bookkeeping in order.

use super::super::{plan, replay_request, Applied, Chain, Command, RequestRow, Result, StoreError};
use super::{corrupt, load_decision, Job, Reply, MAX_BATCH};
use crate::core::Outcome;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{mpsc, watch};

/// The single writer: batches commands into one transaction each.
pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) chain: Chain,
    pub(super) commits: watch::Sender<u64>,
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
        let results = match self.write_batch(batch.iter().map(|(c, _)| c.clone())) {
            Ok(results) => {
                crate::metrics::store_committed(
                    batch.len(),
                    began.elapsed(),
                    results.iter().filter_map(|r| r.as_ref().ok()),
                );
                results
            }
            Err(e) => {
                self.chain = start.clone();
                // Every command shares the batch's fate, and its class of error.
                batch.iter().map(|_| Err(e.for_each_in_batch())).collect()
            }
        };
        if self.chain.sequence != start.sequence {
            self.commits.send_replace(self.chain.sequence);
        }
        for ((_, reply), result) in batch.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }

    /// Writes every command of the batch, each in its own savepoint so that a
    /// refusal or failure affects only that command, and commits once.
    fn write_batch(&mut self, cmds: impl Iterator<Item = Command>) -> Result<Vec<Result<Applied>>> {
        let now = (self.clock)();
        let mut tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut results = Vec::new();
        for cmd in cmds {
            let before = self.chain.clone();
            let mut sp = tx.savepoint()?;
            let result = execute_one(&sp, cmd, &mut self.chain, now);
            match result {
                Ok(applied) => {
                    sp.commit()?;
                    results.push(Ok(applied));
                }
                Err(e) => {
                    sp.rollback()?;
                    self.chain = before;
                    results.push(Err(e));
                }
            }
        }
        tx.commit()?;
        Ok(results)
    }
}

fn execute_one(conn: &Connection, cmd: Command, chain: &mut Chain, now: i64) -> Result<Applied> {
    if let Some(idem) = cmd.idem() {
        let row = conn
            .query_row(
                "SELECT fingerprint, decision_id, outcome FROM requests WHERE scope = ?1 AND request_id = ?2",
                params![idem.scope, idem.request_id],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)),
            )
            .optional()?;
        if let Some((fingerprint, decision_id, outcome)) = row {
            let outcome: Outcome = serde_json::from_str(&outcome).map_err(corrupt)?;
            let decision = load_decision(conn, &decision_id)?;
            return replay_request(
                idem,
                RequestRow {
                    fingerprint,
                    decision_id,
                    outcome,
                },
                decision,
            );
        }
    }
    let current = match &cmd {
        Command::Act { decision_id, .. } => load_decision(conn, decision_id)?,
        Command::Create { .. } => None,
    };
    let plan = plan(cmd, current, chain, now)?;
    for e in &plan.events {
        conn.prepare_cached(
            "INSERT INTO events (sequence, decision_id, type, at, body, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            e.sequence as i64,
            e.decision_id,
            e.event_type,
            e.at,
            e.body,
            e.prev_hash,
            e.hash
        ])?;
    }
    if !plan.events.is_empty() {
        let d = &plan.decision;
        let body = super::super::codec::encode_decision(d)?;
        conn.prepare_cached(
            "INSERT INTO decisions (id, kind, status, asked_by, created_at, version, last_sequence,
                                    expires_at, fallback_at, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (id) DO UPDATE SET status = excluded.status, version = excluded.version,
                 last_sequence = excluded.last_sequence, expires_at = excluded.expires_at,
                 fallback_at = excluded.fallback_at, body = excluded.body
             WHERE decisions.version = excluded.version - ?11",
        )?
        .execute(params![
            d.id,
            d.kind,
            d.status.as_str(),
            d.asked_by,
            d.created_at,
            d.version as i64,
            d.last_sequence as i64,
            d.expires_at
                .filter(|_| d.status == crate::core::Status::Open),
            d.ladder_due_at(),
            body,
            plan.events.len() as i64
        ])
        .and_then(|n| {
            if n == 1 {
                Ok(())
            } else {
                Err(rusqlite::Error::StatementChangedRows(n))
            }
        })
        .map_err(|_| {
            StoreError::Corrupt(format!("decision {} changed underneath its writer", d.id))
        })?;
    }
    if let Some(body) = &plan.receipt {
        conn.prepare_cached("INSERT INTO receipts (decision_id, body) VALUES (?1, ?2)")?
            .execute(params![plan.decision.id, body])?;
    }
    for n in &plan.outbox {
        conn.prepare_cached(
            "INSERT INTO outbox (webhook, decision_id, sequence, event_type, body, next_attempt_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            n.webhook,
            n.decision_id,
            n.sequence as i64,
            n.event_type,
            n.body,
            now
        ])?;
    }
    if let Some((idem, outcome)) = &plan.request {
        let outcome = serde_json::to_string(outcome).map_err(corrupt)?;
        conn.prepare_cached(
            "INSERT INTO requests (scope, request_id, fingerprint, decision_id, outcome) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![idem.scope, idem.request_id, idem.fingerprint, plan.decision.id, outcome])?;
    }
    Ok(plan.applied)
}
