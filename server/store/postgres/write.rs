//! The Postgres write path: group commit under the chain-row lock (no
//! savepoints: a refusal is decided before its command writes), NOTIFY on
//! commit.

use super::super::{plan, replay_request, Applied, Chain, Command, RequestRow, Result, StoreError};
use super::{corrupt, parse, Reply, CHANNEL, MAX_BATCH};
use crate::core::{Decision, Outcome, Status};
use deadpool_postgres::{GenericClient, Pool};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

pub(super) async fn write_loop(
    pool: Pool,
    mut rx: mpsc::Receiver<(Command, Reply)>,
    commits: watch::Sender<u64>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let cmds: Vec<Command> = batch.iter().map(|(c, _)| c.clone()).collect();
        let span =
            tracing::info_span!("store.commit", store = "postgres", batch_size = batch.len());
        let began = std::time::Instant::now();
        let results = match write_batch(&pool, cmds).instrument(span).await {
            Ok((results, head)) => {
                crate::metrics::store_committed(
                    batch.len(),
                    began.elapsed(),
                    results.iter().filter_map(|r| r.as_ref().ok()),
                );
                commits.send_if_modified(|h| {
                    let newer = head > *h;
                    *h = (*h).max(head);
                    newer
                });
                results
            }
            Err(e) => {
                let msg = e.to_string();
                batch
                    .iter()
                    .map(|_| Err(StoreError::Unavailable(msg.clone())))
                    .collect()
            }
        };
        for ((_, reply), result) in batch.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}

/// Whether an error is the command's own (the batch goes on without it).
fn is_refusal(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Refused(_) | StoreError::NotFound(_) | StoreError::AlreadyExists(_)
    )
}

async fn write_batch(pool: &Pool, cmds: Vec<Command>) -> Result<(Vec<Result<Applied>>, u64)> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let lock = tx
        .prepare_cached("SELECT sequence, hash FROM chain FOR UPDATE")
        .await?;
    let row = tx.query_one(&lock, &[]).await?;
    let start = Chain {
        sequence: row.get::<_, i64>(0) as u64,
        hash: row.get(1),
    };
    let mut chain = start.clone();
    let now = super::super::now_micros();
    let mut results = Vec::with_capacity(cmds.len());
    for cmd in cmds {
        let before = chain.clone();
        // No savepoint per command: a refusal is decided before the command
        // writes anything, and any database error fails the whole batch.
        match execute_one(&tx, cmd, &mut chain, now).await {
            Ok(applied) => results.push(Ok(applied)),
            Err(e) if is_refusal(&e) => {
                chain = before;
                results.push(Err(e));
            }
            Err(e) => return Err(e),
        }
    }
    if chain != start {
        let update = tx
            .prepare_cached("UPDATE chain SET sequence = $1, hash = $2")
            .await?;
        let notify = tx.prepare_cached("SELECT pg_notify($1, $2)").await?;
        let (sequence, head) = (chain.sequence as i64, chain.sequence.to_string());
        let (update_params, notify_params) = (
            [&sequence as _, &chain.hash as _],
            [&CHANNEL as _, &head as _],
        );
        tokio::try_join!(
            tx.execute(&update, &update_params),
            tx.execute(&notify, &notify_params),
        )?;
    }
    tx.commit().await?;
    Ok((results, chain.sequence))
}

pub(super) async fn load_decision(c: &impl GenericClient, id: &str) -> Result<Option<Decision>> {
    let select = c
        .prepare_cached("SELECT body FROM decisions WHERE id = $1")
        .await?;
    let row = c.query_opt(&select, &[&id]).await?;
    row.map(|r| parse(r.get::<_, &str>(0))).transpose()
}

async fn execute_one(
    c: &impl GenericClient,
    cmd: Command,
    chain: &mut Chain,
    now: i64,
) -> Result<Applied> {
    if let Some(idem) = cmd.idem() {
        let select = c
            .prepare_cached(
                "SELECT fingerprint, decision_id, outcome FROM requests WHERE scope = $1 AND request_id = $2",
            )
            .await?;
        let row = c
            .query_opt(&select, &[&idem.scope, &idem.request_id])
            .await?;
        if let Some(row) = row {
            let outcome: Outcome = parse(row.get::<_, &str>(2))?;
            let decision_id: String = row.get(1);
            let decision = load_decision(c, &decision_id).await?;
            let stored = RequestRow {
                fingerprint: row.get(0),
                decision_id,
                outcome,
            };
            return replay_request(idem, stored, decision);
        }
    }
    let current = match &cmd {
        Command::Act { decision_id, .. } => load_decision(c, decision_id).await?,
        Command::Create { .. } => None,
    };
    let plan = plan(cmd, current, chain, now)?;
    write_plan(c, &plan, now).await?;
    Ok(plan.applied)
}

type Pending<'a> = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = std::result::Result<u64, tokio_postgres::Error>>
            + Send
            + 'a,
    >,
>;

/// Writes a command's rows. The statements are issued together, so
/// tokio-postgres pipelines them (in order) in one round trip instead of
/// one each; the first failure fails the batch.
async fn write_plan(c: &impl GenericClient, plan: &super::super::Plan, now: i64) -> Result<()> {
    let mut writes: Vec<Pending<'_>> = Vec::new();
    let mut decision_write = None;
    if !plan.events.is_empty() {
        let insert = c
            .prepare_cached(
                "INSERT INTO events (sequence, decision_id, type, at, body, prev_hash, hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .await?;
        for e in &plan.events {
            let insert = insert.clone();
            writes.push(Box::pin(async move {
                c.execute(
                    &insert,
                    &[
                        &(e.sequence as i64),
                        &e.decision_id,
                        &e.event_type,
                        &e.at,
                        &e.body,
                        &e.prev_hash,
                        &e.hash,
                    ],
                )
                .await
            }));
        }
        let d = &plan.decision;
        let body = serde_json::to_string(d).map_err(corrupt)?;
        let expires_at = d.expires_at.filter(|_| d.status == Status::Open);
        let fallback_at = d.ladder_due_at();
        let (version, last, events) = (
            d.version as i64,
            d.last_sequence as i64,
            plan.events.len() as i64,
        );
        let upsert = c
            .prepare_cached(
                "INSERT INTO decisions (id, kind, status, asked_by, created_at, version, last_sequence,
                                        expires_at, fallback_at, body)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (id) DO UPDATE SET status = excluded.status, version = excluded.version,
                     last_sequence = excluded.last_sequence, expires_at = excluded.expires_at,
                     fallback_at = excluded.fallback_at, timer_lease = NULL, body = excluded.body
                 WHERE decisions.version = excluded.version - $11",
            )
            .await?;
        decision_write = Some(writes.len());
        writes.push(Box::pin(async move {
            c.execute(
                &upsert,
                &[
                    &d.id,
                    &d.kind,
                    &d.status.as_str(),
                    &d.asked_by,
                    &d.created_at,
                    &version,
                    &last,
                    &expires_at,
                    &fallback_at,
                    &body,
                    &events,
                ],
            )
            .await
        }));
    }
    if let Some(body) = &plan.receipt {
        let insert = c
            .prepare_cached("INSERT INTO receipts (decision_id, body) VALUES ($1, $2)")
            .await?;
        writes.push(Box::pin(async move {
            c.execute(&insert, &[&plan.decision.id, body]).await
        }));
    }
    for n in &plan.outbox {
        let sequence = n.sequence as i64;
        let insert = c
            .prepare_cached(
                "INSERT INTO outbox (webhook, decision_id, sequence, event_type, body, next_attempt_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .await?;
        writes.push(Box::pin(async move {
            c.execute(
                &insert,
                &[
                    &n.webhook,
                    &n.decision_id,
                    &sequence,
                    &n.event_type,
                    &n.body,
                    &now,
                ],
            )
            .await
        }));
    }
    if let Some((idem, outcome)) = &plan.request {
        let outcome = serde_json::to_string(outcome).map_err(corrupt)?;
        let insert = c
            .prepare_cached(
                "INSERT INTO requests (scope, request_id, fingerprint, decision_id, outcome) VALUES ($1, $2, $3, $4, $5)",
            )
            .await?;
        writes.push(Box::pin(async move {
            c.execute(
                &insert,
                &[
                    &idem.scope,
                    &idem.request_id,
                    &idem.fingerprint,
                    &plan.decision.id,
                    &outcome,
                ],
            )
            .await
        }));
    }
    let counts = futures::future::try_join_all(writes).await?;
    if let Some(i) = decision_write {
        if counts.get(i) != Some(&1) {
            return Err(StoreError::Corrupt(format!(
                "decision {} changed underneath its writer",
                plan.decision.id
            )));
        }
    }
    Ok(())
}
