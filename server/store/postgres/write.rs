//! The Postgres write path: group commit under the chain-row lock,
//! following the shared plan in `store::batch`, in two round trips per
//! batch whatever its size: BEGIN, the chain lock and steps 1 and 2
//! (pipelined); then step 4 as one multi-row statement per table (`UNNEST`
//! of one array per column), the chain update, NOTIFY and COMMIT
//! (pipelined). A batch that updates decision rows checks the update's
//! count before a COMMIT of its own: three round trips. Behind each COMMIT
//! go the next transaction's BEGIN and chain lock, so under load a batch
//! needs one round trip (plus one for reads, if it has any); the writer
//! lets that lock go after [`LINGER`] without commands. A connection whose
//! batch failed is closed, not pooled: it may still be inside a
//! transaction.

use super::super::batch::{parse_outcome, BatchWrites, Keys, Loaded, RequestKey};
use super::super::StoreError;
use super::super::{changed_underneath, plan_batch, Applied, Chain, Command, RequestRow, Result};
use super::columns::Columns;
use super::{Reply, CHANNEL, MAX_BATCH};
use crate::core::Decision;
use deadpool_postgres::{GenericClient, Pool};
use std::collections::HashMap;
use std::task::Poll;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

/// How long a writer keeps the next transaction open, chain row locked,
/// waiting for a command. Under load the next batch is already queued and
/// starts without a round trip for BEGIN and the lock; when none comes,
/// the lock is let go (ROLLBACK), so another replica waits at most this
/// long for it.
const LINGER: std::time::Duration = std::time::Duration::from_millis(1);

/// COMMIT, with the writer bounding the wait. With a synchronous standby,
/// COMMIT waits for the standby's confirmation, and `statement_timeout`
/// does not end that wait (PostgreSQL 15 here: a COMMIT under a 1 s
/// timeout waited as long as the standby was stopped). Were the wait
/// cancelled, PostgreSQL would answer with a WARNING and success, though
/// only the primary has the write; so the timeout is lifted for the COMMIT
/// alone (re-read per statement of a query string), whatever the version,
/// and the writer bounds the wait itself ([`transact`]): a batch not
/// confirmed in time is answered UNAVAILABLE (its outcome unknown to the
/// caller) and its connection closed, never acknowledged.
const COMMIT: &str = "SET LOCAL statement_timeout = 0; COMMIT";

/// A connection whose transaction is open with the chain row locked, and
/// the chain head read under that lock.
type Held = (deadpool_postgres::Object, Chain);

pub(super) async fn write_loop(
    pool: Pool,
    mut rx: mpsc::Receiver<(Command, Reply)>,
    commits: watch::Sender<u64>,
    clock: super::super::Clock,
    limit: std::time::Duration,
) {
    let mut held: Option<Held> = None;
    loop {
        let first = match held.take() {
            None => rx.recv().await,
            Some(open) => match tokio::time::timeout(LINGER, rx.recv()).await {
                Ok(first) => {
                    held = Some(open);
                    first
                }
                Err(_) => {
                    release(open.0).await;
                    continue;
                }
            },
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (cmds, replies): (Vec<Command>, Vec<Reply>) = batch.into_iter().unzip();
        let span = tracing::info_span!("store.commit", store = "postgres", batch_size = cmds.len());
        let outcome = Outcome {
            replies,
            commits: &commits,
            began: std::time::Instant::now(),
        };
        held = execute_batch(&pool, held.take(), cmds, &clock, limit, outcome)
            .instrument(span)
            .await;
    }
    if let Some((client, _)) = held {
        release(client).await;
    }
}

/// Ends the open transaction (it wrote nothing) and returns the connection
/// to the pool; a connection that cannot is closed instead.
async fn release(client: deadpool_postgres::Object) {
    if client.batch_execute("ROLLBACK").await.is_err() {
        drop(deadpool_postgres::Object::take(client));
    }
}

/// What a batch's commands are told, once: their results when the batch
/// is durable, or the batch's error.
struct Outcome<'a> {
    replies: Vec<Reply>,
    commits: &'a watch::Sender<u64>,
    began: std::time::Instant,
}

impl Outcome<'_> {
    fn committed(self, results: Vec<Result<Applied>>, head: u64) {
        crate::metrics::store_committed(
            results.len(),
            self.began.elapsed(),
            results
                .iter()
                .filter_map(|r| r.as_ref().ok())
                .map(|a| (&a.decision, &a.events[..])),
        );
        self.commits.send_if_modified(|h| {
            let newer = head > *h;
            *h = (*h).max(head);
            newer
        });
        for (reply, result) in self.replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }

    fn failed(self, e: &StoreError) {
        // Every command shares the batch's fate, and its class of error.
        for reply in self.replies {
            let _ = reply.send(Err(e.for_each_in_batch()));
        }
    }
}

/// Steps 1 to 5 of the shared plan in one transaction, under the chain-row
/// lock, which orders writers across replicas and keeps sequences gap-free.
/// Starts on `held` if given; returns the connection with the next
/// transaction open, or `None` if that did not open.
async fn execute_batch(
    pool: &Pool,
    held: Option<Held>,
    cmds: Vec<Command>,
    clock: &super::super::Clock,
    limit: std::time::Duration,
    outcome: Outcome<'_>,
) -> Option<Held> {
    let (client, open) = match held {
        Some((client, chain)) => (client, Some(chain)),
        None => match pool.get().await {
            Ok(client) => (client, None),
            Err(e) => {
                outcome.failed(&e.into());
                return None;
            }
        },
    };
    match transact(&client, open, cmds, clock, limit, outcome).await {
        Some(chain) => Some((client, chain)),
        None => {
            // BEGIN and COMMIT are pipelined with the statements around
            // them, so a failed transaction (or the next one) may still be
            // open on this connection: close it, which rolls back, rather
            // than hand it to the next user of the pool.
            drop(deadpool_postgres::Object::take(client));
            None
        }
    }
}

/// Runs the batch, tells its commands, and returns the chain head of the
/// next transaction, opened behind this one's COMMIT (`None`: the batch
/// failed, or the next transaction did not open). The batch, COMMIT
/// included, gets `limit` (the statement timeout) to be confirmed.
async fn transact(
    c: &deadpool_postgres::Client,
    open: Option<Chain>,
    cmds: Vec<Command>,
    clock: &super::super::Clock,
    limit: std::time::Duration,
    outcome: Outcome<'_>,
) -> Option<Chain> {
    let planned = async {
        let keys = Keys::of(&cmds);
        let (start, loaded) = begin(c, open, &keys).await?;
        let mut chain = start;
        // Read under the chain lock, so event times follow sequence order.
        let now = clock();
        let (results, writes) = plan_batch(cmds, loaded, &mut chain, now);
        let next = write_and_commit(c, &writes, &chain).await?;
        Ok::<_, StoreError>((results, chain.sequence, next))
    };
    let planned = async {
        tokio::time::timeout(limit, planned).await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "the write was not confirmed within {limit:?} (the database, or its synchronous standby, away?)"
            )))
        })
    };
    match planned.await {
        Ok((results, head, next)) => {
            // Told now, before the next transaction's lock (which may wait
            // for another replica's batch) is awaited.
            outcome.committed(results, head);
            tokio::time::timeout(limit, next).await.ok()?.ok()
        }
        Err(e) => {
            outcome.failed(&e);
            None
        }
    }
}

/// BEGIN, the chain lock and steps 1 and 2, pipelined in one round trip;
/// the reads go after the lock, so they see every batch committed before
/// this one, by any replica. On a transaction already open under the lock,
/// only the reads (and no round trip if there are none).
async fn begin(
    c: &deadpool_postgres::Client,
    open: Option<Chain>,
    keys: &Keys,
) -> Result<(Chain, Loaded)> {
    let reads = Reads::prepare(c).await?;
    let (start, requests, decisions) = match open {
        Some(chain) => {
            let (requests, decisions) = tokio::try_join!(
                biased;
                reads.lookup_requests(c, &keys.requests),
                reads.load_decisions(c, &keys.decisions),
            )?;
            (chain, requests, decisions)
        }
        None => {
            // Prepared first (cached after the first batch), so that the
            // queries go out in this order in one round trip.
            let lock = lock_statement(c).await?;
            let (_, start, requests, decisions) = tokio::try_join!(
                biased; // each sends on its first poll, and in this order
                async { Ok::<_, StoreError>(c.batch_execute("BEGIN").await?) },
                lock_chain(c, &lock),
                reads.lookup_requests(c, &keys.requests),
                reads.load_decisions(c, &keys.decisions),
            )?;
            (start, requests, decisions)
        }
    };
    let (requests, mut request_decisions) = requests;
    request_decisions.extend(decisions);
    let loaded = Loaded {
        requests,
        decisions: request_decisions,
    };
    Ok((start, loaded))
}

async fn lock_statement(c: &deadpool_postgres::Client) -> Result<tokio_postgres::Statement> {
    Ok(
        c.prepare_cached("SELECT sequence, hash FROM chain FOR UPDATE")
            .await?,
    )
}

async fn lock_chain(
    c: &deadpool_postgres::Client,
    lock: &tokio_postgres::Statement,
) -> Result<Chain> {
    let row = c.query_one(lock, &[]).await?;
    Ok(Chain {
        sequence: row.get::<_, i64>(0) as u64,
        hash: row.get(1),
    })
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
///
/// The next transaction's BEGIN and chain lock go out right behind the
/// COMMIT, and the lock's reply is returned to await later: the next batch
/// starts a round trip sooner. Another replica waiting for the lock gets
/// it first (PostgreSQL queues row-lock waiters).
async fn write_and_commit<'c>(
    c: &'c deadpool_postgres::Client,
    w: &BatchWrites,
    chain: &Chain,
) -> Result<Reopened<'c>> {
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
            c.batch_execute(COMMIT).await.map(|()| 0)
        }));
    }
    let lock = lock_statement(c).await?;
    let next: Reopened<'c> = Box::pin(async move {
        let (_, chain) = tokio::try_join!(
            biased;
            async { Ok::<_, StoreError>(c.batch_execute("BEGIN").await?) },
            lock_chain(c, &lock),
        )?;
        Ok(chain)
    });
    if !checked {
        let (_, next) = behind(futures::future::try_join_all(writes), next).await?;
        return Ok(next);
    }
    let counts = futures::future::try_join_all(writes).await?;
    if counts.get(updated) != Some(&(changed.rows as u64)) {
        let id = updates.first().map_or("", |(d, _)| d.id.as_str());
        return Err(changed_underneath(id));
    }
    let (_, next) = behind(c.batch_execute(COMMIT), next).await?;
    Ok(next)
}

/// Awaits `first` with `next` sent right behind it (tokio-postgres sends a
/// query on its first poll, and in the order polled), and returns `next`
/// unfinished.
async fn behind<'c, T, E>(
    first: impl std::future::Future<Output = std::result::Result<T, E>>,
    mut next: Reopened<'c>,
) -> Result<(T, Reopened<'c>)>
where
    StoreError: From<E>,
{
    let mut first = std::pin::pin!(first);
    if let Poll::Ready(done) = futures::poll!(first.as_mut()) {
        // Not reached (a reply is needed); `next` goes out when awaited.
        return Ok((done?, next));
    }
    if let Poll::Ready(chain) = futures::poll!(next.as_mut()) {
        next = Box::pin(std::future::ready(chain));
    }
    Ok((first.await?, next))
}

/// The next transaction's chain lock, sent behind a COMMIT.
type Reopened<'c> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Chain>> + Send + 'c>>;
