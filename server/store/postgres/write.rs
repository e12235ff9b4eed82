//! The Postgres write path: group commit under the chain-row lock, one
//! savepoint per command, NOTIFY on commit.

use super::super::{plan, replay_request, Applied, Chain, Command, RequestRow, Result, StoreError};
use super::{corrupt, parse, Reply, CHANNEL, MAX_BATCH};
use crate::core::{Decision, Outcome, Status};
use deadpool_postgres::{GenericClient, Pool};
use tokio::sync::{mpsc, watch};

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
        let results = match write_batch(&pool, cmds).await {
            Ok((results, head)) => {
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
    let mut tx = client.transaction().await?;
    let row = tx
        .query_one("SELECT sequence, hash FROM chain FOR UPDATE", &[])
        .await?;
    let start = Chain {
        sequence: row.get::<_, i64>(0) as u64,
        hash: row.get(1),
    };
    let mut chain = start.clone();
    let now = super::super::now_micros();
    let mut results = Vec::with_capacity(cmds.len());
    for cmd in cmds {
        let before = chain.clone();
        let sp = tx.savepoint("command").await?;
        match execute_one(&sp, cmd, &mut chain, now).await {
            Ok(applied) => {
                sp.commit().await?;
                results.push(Ok(applied));
            }
            Err(e) if is_refusal(&e) => {
                sp.rollback().await?;
                chain = before;
                results.push(Err(e));
            }
            Err(e) => return Err(e),
        }
    }
    if chain != start {
        tx.execute(
            "UPDATE chain SET sequence = $1, hash = $2",
            &[&(chain.sequence as i64), &chain.hash],
        )
        .await?;
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[&CHANNEL, &chain.sequence.to_string()],
        )
        .await?;
    }
    tx.commit().await?;
    Ok((results, chain.sequence))
}

pub(super) async fn load_decision(c: &impl GenericClient, id: &str) -> Result<Option<Decision>> {
    let row = c
        .query_opt("SELECT body FROM decisions WHERE id = $1", &[&id])
        .await?;
    row.map(|r| parse(r.get::<_, &str>(0))).transpose()
}

async fn execute_one(
    c: &impl GenericClient,
    cmd: Command,
    chain: &mut Chain,
    now: i64,
) -> Result<Applied> {
    if let Some(idem) = cmd.idem() {
        let row = c
            .query_opt(
                "SELECT fingerprint, decision_id, outcome FROM requests WHERE scope = $1 AND request_id = $2",
                &[&idem.scope, &idem.request_id],
            )
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
    if !plan.events.is_empty() {
        let insert = c
            .prepare_cached(
                "INSERT INTO events (sequence, decision_id, type, at, body, prev_hash, hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .await?;
        for e in &plan.events {
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
            .await?;
        }
        let d = &plan.decision;
        let body = serde_json::to_string(d).map_err(corrupt)?;
        let expires_at = d.expires_at.filter(|_| d.status == Status::Open);
        let changed = c
            .execute(
                "INSERT INTO decisions (id, kind, status, asked_by, created_at, version, last_sequence,
                                        expires_at, fallback_at, body)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (id) DO UPDATE SET status = excluded.status, version = excluded.version,
                     last_sequence = excluded.last_sequence, expires_at = excluded.expires_at,
                     fallback_at = excluded.fallback_at, timer_lease = NULL, body = excluded.body
                 WHERE decisions.version = excluded.version - $11",
                &[
                    &d.id,
                    &d.kind,
                    &d.status.as_str(),
                    &d.asked_by,
                    &d.created_at,
                    &(d.version as i64),
                    &(d.last_sequence as i64),
                    &expires_at,
                    &d.fallback_due_at(),
                    &body,
                    &(plan.events.len() as i64),
                ],
            )
            .await?;
        if changed != 1 {
            return Err(StoreError::Corrupt(format!(
                "decision {} changed underneath its writer",
                d.id
            )));
        }
    }
    if let Some(body) = &plan.receipt {
        c.execute(
            "INSERT INTO receipts (decision_id, body) VALUES ($1, $2)",
            &[&plan.decision.id, body],
        )
        .await?;
    }
    for n in &plan.outbox {
        c.execute(
            "INSERT INTO outbox (webhook, decision_id, sequence, event_type, body, next_attempt_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &n.webhook,
                &n.decision_id,
                &(n.sequence as i64),
                &n.event_type,
                &n.body,
                &now,
            ],
        )
        .await?;
    }
    if let Some((idem, outcome)) = &plan.request {
        let outcome = serde_json::to_string(outcome).map_err(corrupt)?;
        c.execute(
            "INSERT INTO requests (scope, request_id, fingerprint, decision_id, outcome) VALUES ($1, $2, $3, $4, $5)",
            &[&idem.scope, &idem.request_id, &idem.fingerprint, &plan.decision.id, &outcome],
        )
        .await?;
    }
    Ok(plan.applied)
}
