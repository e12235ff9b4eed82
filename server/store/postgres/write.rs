//! The Postgres write path: group commit under the chain-row lock,
//! following the shared plan in `store::batch`, in two round trips per
//! batch whatever its size: BEGIN, the chain lock and steps 1 and 2
//! (pipelined); then step 4 as one multi-row statement per table (`UNNEST`
//! of one array per column), the chain update, NOTIFY and COMMIT
//! (pipelined). A batch that updates decision rows checks the update's
//! count before a COMMIT of its own: three round trips. A connection whose
//! batch failed is closed, not pooled: it may still be inside the
//! transaction.

use super::super::batch::{parse_outcome, BatchWrites, Keys, Loaded, RequestKey};
use super::super::StoreError;
use super::super::{changed_underneath, plan_batch, Applied, Chain, Command, RequestRow, Result};
use super::{Reply, CHANNEL, MAX_BATCH};
use crate::core::Decision;
use deadpool_postgres::{GenericClient, Pool};
use std::collections::HashMap;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

pub(super) async fn write_loop(
    pool: Pool,
    mut rx: mpsc::Receiver<(Command, Reply)>,
    commits: watch::Sender<u64>,
    clock: super::super::Clock,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (cmds, replies): (Vec<Command>, Vec<Reply>) = batch.into_iter().unzip();
        let span = tracing::info_span!("store.commit", store = "postgres", batch_size = cmds.len());
        let began = std::time::Instant::now();
        let results = match execute_batch(&pool, cmds, &clock).instrument(span).await {
            Ok((results, head)) => {
                crate::metrics::store_committed(
                    results.len(),
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
                // Every command shares the batch's fate, and its class of error.
                replies.iter().map(|_| Err(e.for_each_in_batch())).collect()
            }
        };
        // Reply, only now that the batch is durable.
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}

/// Steps 1 to 5 of the shared plan in one transaction, under the chain-row
/// lock, which orders writers across replicas and keeps sequences gap-free.
async fn execute_batch(
    pool: &Pool,
    cmds: Vec<Command>,
    clock: &super::super::Clock,
) -> Result<(Vec<Result<Applied>>, u64)> {
    let client = pool.get().await?;
    let result = transact(&client, cmds, clock).await;
    if result.is_err() {
        // BEGIN and COMMIT are pipelined with the statements between them,
        // so the failed transaction may still be open (or aborted) on this
        // connection: close it, which rolls the transaction back, rather
        // than hand it to the next user of the pool.
        drop(deadpool_postgres::Object::take(client));
    }
    result
}

async fn transact(
    c: &deadpool_postgres::Client,
    cmds: Vec<Command>,
    clock: &super::super::Clock,
) -> Result<(Vec<Result<Applied>>, u64)> {
    let keys = Keys::of(&cmds);
    // Prepared first (cached after the first batch), so that the queries
    // below go out in this order in one round trip: the reads run after the
    // lock is granted, so they see every batch committed before this one,
    // by any replica.
    let lock = c
        .prepare_cached("SELECT sequence, hash FROM chain FOR UPDATE")
        .await?;
    let reads = Reads::prepare(c).await?;
    let (_, start, requests, decisions) = tokio::try_join!(
        biased; // each sends on its first poll, and in this order
        async { Ok::<_, StoreError>(c.batch_execute("BEGIN").await?) },
        async {
            let row = c.query_one(&lock, &[]).await?;
            Ok::<_, StoreError>(Chain {
                sequence: row.get::<_, i64>(0) as u64,
                hash: row.get(1),
            })
        },
        reads.lookup_requests(c, &keys.requests),
        reads.load_decisions(c, &keys.decisions),
    )?;
    let (requests, mut request_decisions) = requests;
    request_decisions.extend(decisions);
    let loaded = Loaded {
        requests,
        decisions: request_decisions,
    };
    let mut chain = start.clone();
    // Read under the chain lock, so event times follow sequence order.
    let now = clock();
    let (results, writes) = plan_batch(cmds, loaded, &mut chain, now);
    write_and_commit(c, &writes, &chain).await?;
    Ok((results, chain.sequence))
}

/// The statements of steps 1 and 2.
struct Reads {
    requests: tokio_postgres::Statement,
    decisions: tokio_postgres::Statement,
}

impl Reads {
    async fn prepare(c: &impl GenericClient) -> Result<Reads> {
        Ok(Reads {
            requests: c
                .prepare_cached(&format!(
                    "SELECT k.scope, k.request_id, r.fingerprint, r.decision_id, r.outcome, d.*
                         FROM UNNEST($1::text[], $2::text[]) AS k (scope, request_id)
                         JOIN requests r ON r.scope = k.scope AND r.request_id = k.request_id
                         LEFT JOIN LATERAL (SELECT {} FROM decisions WHERE id = r.decision_id) d
                           ON TRUE",
                    super::ROW_COLUMNS
                ))
                .await?,
            decisions: c
                .prepare_cached(&format!(
                    "SELECT {} FROM decisions WHERE id = ANY($1::text[])",
                    super::ROW_COLUMNS
                ))
                .await?,
        })
    }

    /// Step 1: the stored idempotency records of the batch's keys, with the
    /// decisions they point to.
    async fn lookup_requests(
        &self,
        c: &impl GenericClient,
        keys: &[RequestKey],
    ) -> Result<(HashMap<RequestKey, RequestRow>, HashMap<String, Decision>)> {
        let (mut requests, mut decisions) = (HashMap::new(), HashMap::new());
        if keys.is_empty() {
            return Ok((requests, decisions));
        }
        let scopes: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
        let ids: Vec<&str> = keys.iter().map(|k| k.1.as_str()).collect();
        for r in c.query(&self.requests, &[&scopes, &ids]).await? {
            let row = RequestRow {
                fingerprint: r.get(2),
                decision_id: r.get(3),
                outcome: parse_outcome(r.get(4))?,
            };
            if r.try_get::<_, Option<&str>>(5)?.is_some() {
                decisions.insert(row.decision_id.clone(), super::decision_at(&r, 5)?);
            }
            requests.insert((r.get(0), r.get(1)), row);
        }
        Ok((requests, decisions))
    }

    /// Step 2: the stored decisions the batch acts on.
    async fn load_decisions(
        &self,
        c: &impl GenericClient,
        ids: &[String],
    ) -> Result<HashMap<String, Decision>> {
        let mut found = HashMap::new();
        if ids.is_empty() {
            return Ok(found);
        }
        for r in c.query(&self.decisions, &[&ids]).await? {
            found.insert(r.get(0), super::decision(&r)?);
        }
        Ok(found)
    }
}

pub(super) async fn load_decision(c: &impl GenericClient, id: &str) -> Result<Option<Decision>> {
    let select = c
        .prepare_cached(&format!(
            "SELECT {} FROM decisions WHERE id = $1",
            super::ROW_COLUMNS
        ))
        .await?;
    let row = c.query_opt(&select, &[&id]).await?;
    row.as_ref().map(super::decision).transpose()
}

type Pending<'a> = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = std::result::Result<u64, tokio_postgres::Error>>
            + Send
            + 'a,
    >,
>;

const INSERT_EVENTS: &str = "INSERT INTO events (sequence, decision_id, type, at, body, prev_hash, hash)
     SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[])";
const INSERT_DECISIONS: &str = "INSERT INTO decisions (id, kind, status, asked_by, created_at, version, last_sequence,
                            expires_at, fallback_at, body)
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[],
                          $7::bigint[], $8::bigint[], $9::bigint[], $10::text[])";
/// A changed row drops its timer lease: its timers are new.
const UPDATE_DECISIONS: &str = "UPDATE decisions AS d SET status = u.status, version = u.version,
         last_sequence = u.last_sequence, expires_at = u.expires_at, fallback_at = u.fallback_at,
         timer_lease = NULL, body = u.body
     FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
                 $7::text[], $8::bigint[])
          AS u (id, status, version, last_sequence, expires_at, fallback_at, body, stored_version)
     WHERE d.id = u.id AND d.version = u.stored_version";
const INSERT_OUTBOX: &str = "INSERT INTO outbox (webhook, decision_id, sequence, event_type, body, next_attempt_at)
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[])";
const INSERT_RECEIPTS: &str = "INSERT INTO receipts (decision_id, body)
     SELECT * FROM UNNEST($1::text[], $2::text[])";
const INSERT_REQUESTS: &str =
    "INSERT INTO requests (scope, request_id, fingerprint, decision_id, outcome)
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])";

/// Step 4 and COMMIT: one multi-row statement per table, then the chain
/// head, the wake-up and COMMIT, all issued together so tokio-postgres
/// pipelines them (in order) in one round trip. The first failure fails
/// the batch; a COMMIT after a failed statement only rolls back, and every
/// statement's result is checked, so a batch is never taken as committed
/// unless all of it was. Only the update's row count is checked after the
/// fact, so a batch with updates commits after that check.
async fn write_and_commit(c: &impl GenericClient, w: &BatchWrites, chain: &Chain) -> Result<()> {
    let (inserts, updates) = w.decision_rows();
    let events = Columns::events(w);
    let new_rows = Columns::inserts(&inserts);
    let changed = Columns::updates(&updates);
    let outbox = Columns::outbox(w);
    let receipts = Columns::receipts(w);
    let requests = Columns::requests(w);
    let head = (chain.sequence as i64, chain.sequence.to_string());
    let mut writes: Vec<Pending<'_>> = Vec::new();
    for (sql, columns) in [
        (INSERT_EVENTS, &events),
        (INSERT_DECISIONS, &new_rows),
        (INSERT_OUTBOX, &outbox),
        (INSERT_RECEIPTS, &receipts),
        (INSERT_REQUESTS, &requests),
    ] {
        if columns.rows > 0 {
            let statement = c.prepare_cached(sql).await?;
            writes.push(Box::pin(async move {
                c.execute(&statement, &columns.params()).await
            }));
        }
    }
    let updated = writes.len();
    if changed.rows > 0 {
        let statement = c.prepare_cached(UPDATE_DECISIONS).await?;
        let changed = &changed;
        writes.push(Box::pin(async move {
            c.execute(&statement, &changed.params()).await
        }));
    }
    if !w.events.is_empty() {
        let update = c
            .prepare_cached("UPDATE chain SET sequence = $1, hash = $2")
            .await?;
        let notify = c.prepare_cached("SELECT pg_notify($1, $2)").await?;
        let (head, chain_hash) = (&head, &chain.hash);
        writes.push(Box::pin(async move {
            c.execute(&update, &[&head.0, chain_hash]).await
        }));
        writes.push(Box::pin(async move {
            c.execute(&notify, &[&CHANNEL, &head.1]).await
        }));
    }
    // A batch that updates rows must see the update's count before it
    // commits (a row changed underneath fails the batch), so its COMMIT
    // takes a round trip of its own.
    let checked = changed.rows > 0;
    if !checked {
        writes.push(Box::pin(async move {
            c.batch_execute("COMMIT").await.map(|()| 0)
        }));
    }
    let counts = futures::future::try_join_all(writes).await?;
    if checked {
        if counts.get(updated) != Some(&(changed.rows as u64)) {
            let id = updates.first().map_or("", |(d, _)| d.id.as_str());
            return Err(changed_underneath(id));
        }
        c.batch_execute("COMMIT").await?;
    }
    Ok(())
}

/// One array per column of a multi-row statement.
struct Columns<'a> {
    rows: usize,
    values: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send + 'a>>,
}

impl<'a> Columns<'a> {
    fn params(&self) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
        self.values
            .iter()
            .map(|v| v.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect()
    }

    fn from_rows<T>(rows: &'a [T]) -> ColumnsOf<'a, T> {
        ColumnsOf {
            rows,
            columns: Columns {
                rows: rows.len(),
                values: Vec::new(),
            },
        }
    }

    fn events(w: &'a BatchWrites) -> Columns<'a> {
        Columns::from_rows(&w.events)
            .col(|e| e.sequence as i64)
            .col(|e| e.decision_id.as_str())
            .col(|e| e.event_type.as_str())
            .col(|e| e.at)
            .col(|e| e.body.as_str())
            .col(|e| e.prev_hash.as_str())
            .col(|e| e.hash.as_str())
            .done()
    }

    fn inserts(rows: &'a [&'a super::super::ProjectionRow]) -> Columns<'a> {
        Columns::from_rows(rows)
            .col(|d| d.id.as_str())
            .col(|d| d.kind.as_str())
            .col(|d| d.status.as_str())
            .col(|d| d.asked_by.as_str())
            .col(|d| d.created_at)
            .col(|d| d.version)
            .col(|d| d.last_sequence)
            .col(|d| d.expires_at)
            .col(|d| d.fallback_at)
            .col(|d| d.body.as_str())
            .done()
    }

    fn updates(rows: &'a [(&'a super::super::ProjectionRow, i64)]) -> Columns<'a> {
        Columns::from_rows(rows)
            .col(|(d, _)| d.id.as_str())
            .col(|(d, _)| d.status.as_str())
            .col(|(d, _)| d.version)
            .col(|(d, _)| d.last_sequence)
            .col(|(d, _)| d.expires_at)
            .col(|(d, _)| d.fallback_at)
            .col(|(d, _)| d.body.as_str())
            .col(|(_, stored_version)| *stored_version)
            .done()
    }

    fn outbox(w: &'a BatchWrites) -> Columns<'a> {
        Columns::from_rows(&w.outbox)
            .col(|n| n.webhook.as_str())
            .col(|n| n.decision_id.as_str())
            .col(|n| n.sequence)
            .col(|n| n.event_type.as_str())
            .col(|n| n.body.as_str())
            .col(|n| n.next_attempt_at)
            .done()
    }

    fn receipts(w: &'a BatchWrites) -> Columns<'a> {
        Columns::from_rows(&w.receipts)
            .col(|(id, _)| id.as_str())
            .col(|(_, body)| body.as_str())
            .done()
    }

    fn requests(w: &'a BatchWrites) -> Columns<'a> {
        Columns::from_rows(&w.requests)
            .col(|r| r.idem.scope.as_str())
            .col(|r| r.idem.request_id.as_str())
            .col(|r| r.idem.fingerprint.as_str())
            .col(|r| r.decision_id.as_str())
            .col(|r| r.outcome.as_str())
            .done()
    }
}

/// Builds [`Columns`] from rows, one column at a time.
struct ColumnsOf<'a, T> {
    rows: &'a [T],
    columns: Columns<'a>,
}

impl<'a, T> ColumnsOf<'a, T> {
    fn col<V>(mut self, f: impl Fn(&'a T) -> V) -> Self
    where
        V: tokio_postgres::types::ToSql + Sync + Send + 'a,
    {
        let column: Vec<V> = self.rows.iter().map(f).collect();
        self.columns.values.push(Box::new(column));
        self
    }

    fn done(self) -> Columns<'a> {
        self.columns
    }
}
