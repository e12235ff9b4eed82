//! Durable storage: one `Store` trait, one module per backend.
//!
//! Backends do I/O only. What a command does is planned here, once, by
//! [`plan`]: it runs the pure core, numbers and hash-chains the events, and
//! yields exactly the rows to write, so both backends write the same thing.

mod batch;
pub mod codec;
mod compact;
mod outbox;
pub mod postgres;
pub mod sqlite;

pub use outbox::{Delivery, Lane, OutboxItem, OutboxStatus, SLACK_PREFIX};

pub use batch::{
    changed_underneath, plan_batch, BatchWrites, DecisionWrite, Keys, Loaded, OutboxRow,
    RequestKey, RequestWrite,
};

use crate::core::{
    self, apply, Action, Decision, Event, Micros, NewDecision, Outcome, Policy, Refusal, Status,
};
use async_trait::async_trait;
use std::sync::Arc;
use tokio::sync::watch;

/// What can go wrong in a store. Each backend classifies its driver's
/// errors into these, once (`From` impls in `sqlite`/`postgres`); the gRPC
/// code of each lives in `api::error`, nowhere else.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}", crate::core::not_found_message(.0))]
    NotFound(String),
    #[error("request_id: {:?} was already used for a different request", crate::core::cut(.0))]
    AlreadyExists(String),
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The database cannot be reached or is busy: retryable.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The stored data contradicts itself or cannot be decoded.
    #[error("store data is inconsistent: {0}")]
    Corrupt(String),
    /// The database refused a statement in a way no retry fixes (a
    /// constraint or syntax error, an undefined table or column): a bug or
    /// an outside edit of the schema, not bad data and not an outage.
    #[error("store error: {0}")]
    Internal(String),
    /// `store.url` names no store this witness can open (unknown scheme,
    /// malformed URL, a read-only tool given a missing file).
    #[error("store.url: {0}")]
    BadUrl(String),
}

impl StoreError {
    /// The same class of error with the same text, for every command of a
    /// batch that failed as a whole (the error itself is not `Clone`).
    pub fn for_each_in_batch(&self) -> StoreError {
        let msg = match self {
            StoreError::Unavailable(m)
            | StoreError::Corrupt(m)
            | StoreError::Internal(m)
            | StoreError::BadUrl(m) => m.clone(),
            other => other.to_string(),
        };
        match self {
            StoreError::Corrupt(_) => StoreError::Corrupt(msg),
            StoreError::Internal(_) => StoreError::Internal(msg),
            StoreError::BadUrl(_) => StoreError::BadUrl(msg),
            // An outage, or a command-level refusal that aborted the whole
            // batch (never expected): the batch may be retried.
            _ => StoreError::Unavailable(msg),
        }
    }
}

/// Result alias for stores.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An idempotency key: a retry with the same key and fingerprint gets the
/// first result; the same key with another fingerprint is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    /// The principal the key belongs to.
    pub scope: String,
    pub request_id: String,
    /// Hash of the request content.
    pub fingerprint: String,
}

/// A state change to execute atomically.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per request, moved once: boxing buys nothing
pub enum Command {
    Create {
        idem: Option<Idempotency>,
        new: NewDecision,
        policy: Policy,
    },
    Act {
        decision_id: String,
        idem: Option<Idempotency>,
        action: Action,
    },
}

impl Command {
    pub fn idem(&self) -> Option<&Idempotency> {
        match self {
            Command::Create { idem, .. } | Command::Act { idem, .. } => idem.as_ref(),
        }
    }
}

/// The result of a command.
#[derive(Debug, Clone)]
pub struct Applied {
    pub decision: Decision,
    pub outcome: Outcome,
    /// False when an idempotent retry returned the first result.
    pub fresh: bool,
    /// Shared with the SQLite store's tail, which keeps recent events
    /// without copying each decision again.
    pub events: Vec<Arc<Event>>,
}

/// A stored idempotency record.
#[derive(Debug, Clone)]
pub struct RequestRow {
    pub fingerprint: String,
    pub decision_id: String,
    /// The first result: what the command did, or why the core refused it.
    pub outcome: std::result::Result<Outcome, Refusal>,
}

/// The head of the hash chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub sequence: u64,
    pub hash: String,
}

impl Chain {
    pub fn genesis() -> Self {
        Chain {
            sequence: 0,
            hash: core::GENESIS_HASH.to_string(),
        }
    }
}

/// An event row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    pub sequence: u64,
    pub decision_id: String,
    pub event_type: String,
    pub at: Micros,
    pub body: String,
    pub prev_hash: String,
    pub hash: String,
}

/// A `decisions` row, column by column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionRow {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub asked_by: String,
    pub created_at: Micros,
    pub version: i64,
    pub last_sequence: i64,
    /// The expiry timer: due time while open.
    pub expires_at: Option<Micros>,
    /// The ack-window fallback timer: due time while it can still fire.
    pub fallback_at: Option<Micros>,
    /// The decision as JSON.
    pub body: String,
    /// A process's claim on the row's due timers (`timers`): operational,
    /// not state, so never written from a decision nor hashed; read back by
    /// `projection_rows` for `audit verify`.
    pub timer_lease: Option<Micros>,
}

impl ProjectionRow {
    /// The row a store writes for `d`, every column.
    pub fn write(d: &Decision) -> Result<ProjectionRow> {
        Ok(ProjectionRow {
            body: codec::encode_decision(d)?,
            ..ProjectionRow::of(d)
        })
    }

    /// The row a store writes for `d`, except `body`, which is compared as
    /// JSON (key order is the serializer's).
    pub fn of(d: &Decision) -> ProjectionRow {
        ProjectionRow {
            id: d.id.clone(),
            kind: d.kind.clone(),
            status: d.status.as_str().to_string(),
            asked_by: d.asked_by.clone(),
            created_at: d.created_at,
            version: d.version as i64,
            last_sequence: d.last_sequence as i64,
            expires_at: d.expires_at.filter(|_| d.status == Status::Open),
            // The ladder: the fallback or the next escalation level.
            fallback_at: d.ladder_due_at(),
            body: String::new(),
            timer_lease: None,
        }
    }

    /// The columns, named, without `body`.
    pub fn columns(&self) -> [(&'static str, String); 9] {
        let opt = |v: Option<Micros>| v.map_or("NULL".to_string(), |v| v.to_string());
        [
            ("id", format!("{:?}", self.id)),
            ("kind", format!("{:?}", self.kind)),
            ("status", format!("{:?}", self.status)),
            ("asked_by", format!("{:?}", self.asked_by)),
            ("created_at", self.created_at.to_string()),
            ("version", self.version.to_string()),
            ("last_sequence", self.last_sequence.to_string()),
            ("expires_at", opt(self.expires_at)),
            ("fallback_at", opt(self.fallback_at)),
        ]
    }
}

/// Exactly the rows a command writes.
#[derive(Debug, Clone)]
pub struct Plan {
    pub events: Vec<RawEvent>,
    /// Webhook deliveries the events cause, for the outbox.
    pub outbox: Vec<core::notify::Notification>,
    /// The receipt body, when the command closed the decision.
    pub receipt: Option<String>,
    /// The decision's new state (unchanged when no events).
    pub decision: Decision,
    pub request: Option<(Idempotency, Outcome)>,
    pub applied: Applied,
}

/// Plans `cmd` against the current state. `current` is the decision for
/// `Act` (None for `Create`); `chain` advances past the planned events.
pub fn plan(
    cmd: Command,
    current: Option<Decision>,
    chain: &mut Chain,
    now: Micros,
) -> Result<Plan> {
    let (idem, kinds, outcome, mut state) = match cmd {
        Command::Create { idem, new, policy } => (
            idem,
            vec![core::create(new, policy, now)?],
            Outcome::Done,
            None,
        ),
        Command::Act {
            decision_id,
            idem,
            action,
        } => {
            let d = current.ok_or(StoreError::NotFound(decision_id))?;
            let decided = core::decide(&d, &action, now)?;
            (idem, decided.events, decided.outcome, Some(d))
        }
    };
    let mut events = Vec::with_capacity(kinds.len());
    let mut raw = Vec::with_capacity(kinds.len());
    let mut outbox = Vec::new();
    let mut receipt = None;
    for kind in kinds {
        let decision_id = match (&kind, &state) {
            (core::EventKind::Created { decision }, _) => decision.id.clone(),
            (_, Some(d)) => d.id.clone(),
            (_, None) => return Err(StoreError::Corrupt("event without a decision".into())),
        };
        let sequence = chain.sequence + 1;
        let event_type = kind.type_name();
        let body = codec::encode_event(&Event {
            sequence,
            decision_id: decision_id.clone(),
            at: now,
            kind,
        })?;
        // Re-read what is stored, so the projection is built from exactly
        // the bytes a replay will read.
        let event = codec::decode_event(sequence, &decision_id, event_type, now, &body)?;
        let hash = codec::event_hash(&chain.hash, sequence, &decision_id, event_type, now, &body);
        let was_open = state.as_ref().is_some_and(|d| !d.status.is_terminal());
        let after = apply(state, &event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        outbox.extend(core::notify::notifications(&event, &after));
        if was_open && after.status.is_terminal() {
            receipt = Some(core::receipt::body(&after, &hash));
        }
        state = Some(after);
        raw.push(RawEvent {
            sequence,
            decision_id: event.decision_id.clone(),
            event_type: event.kind.type_name().to_string(),
            at: now,
            body,
            prev_hash: std::mem::replace(&mut chain.hash, hash.clone()),
            hash,
        });
        chain.sequence = sequence;
        events.push(Arc::new(event));
    }
    let decision =
        state.ok_or_else(|| StoreError::Corrupt("command produced no decision".into()))?;
    Ok(Plan {
        events: raw,
        outbox,
        receipt,
        decision: decision.clone(),
        request: idem.map(|i| (i, outcome)),
        applied: Applied {
            decision,
            outcome,
            fresh: true,
            events,
        },
    })
}

/// Resolves an idempotency hit: the first result (a refusal too), or a
/// conflict when the retry's content differs.
pub fn replay_request(
    idem: &Idempotency,
    row: RequestRow,
    decision: Option<Decision>,
) -> Result<Applied> {
    if row.fingerprint != idem.fingerprint {
        return Err(StoreError::AlreadyExists(idem.request_id.clone()));
    }
    let outcome = row.outcome?;
    let decision = decision.ok_or_else(|| {
        StoreError::Corrupt(format!("request for missing decision {}", row.decision_id))
    })?;
    Ok(Applied {
        decision,
        outcome,
        fresh: false,
        events: vec![],
    })
}

/// Filters for a page of decisions, in id (= creation) order.
#[derive(Debug, Clone, Default)]
pub struct PageQuery {
    /// Only ids greater than this.
    pub after_id: Option<String>,
    /// Only these statuses (empty: all).
    pub statuses: Vec<Status>,
    pub limit: usize,
}

/// Which durable timer is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKind {
    /// `expires_at` passed: close per `on_timeout`.
    Expire,
    /// The ack window passed without an ACK: fire the fallback.
    Fallback,
}

/// A due timer of one decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTimer {
    pub decision_id: String,
    pub kind: TimerKind,
}

/// A claimed timer row: its decision and whether it expired (else its
/// ladder, the fallback or an escalation level, is due).
fn due_timer(decision_id: String, expired: bool) -> DueTimer {
    DueTimer {
        decision_id,
        kind: if expired {
            TimerKind::Expire
        } else {
            TimerKind::Fallback
        },
    }
}

/// `RETURNING` has no order: the claim's contract is id order.
fn in_id_order(mut due: Vec<DueTimer>) -> Vec<DueTimer> {
    due.sort_by(|a, b| a.decision_id.cmp(&b.decision_id));
    due
}

/// The gauges a scrape reads (`metrics` defines them: it needs nothing
/// from the store).
pub use crate::metrics::StoreGauges;

/// Durable storage of the event log and its projection.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Executes a command atomically; answered only once durable.
    async fn execute(&self, cmd: Command) -> Result<Applied>;
    async fn get(&self, id: &str) -> Result<Option<Decision>>;
    async fn page(&self, q: &PageQuery) -> Result<Vec<Decision>>;
    /// Events with a sequence above `after`, in order, at most `limit`.
    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>>;
    /// Every event of one decision, in order.
    async fn decision_events(&self, id: &str) -> Result<Vec<Event>>;
    /// The open decisions and the log position they reflect, read atomically.
    async fn open_snapshot(&self) -> Result<(Vec<Decision>, u64)>;
    /// Stored rows, for audit, with a sequence above `after`.
    async fn raw_events(&self, after: u64, limit: usize) -> Result<Vec<RawEvent>>;
    /// Claims up to `limit` timers due at `now` (open decisions past
    /// `expires_at`, or past their ack window or an escalation level), one per
    /// decision (`Expire` when it expired), in id order, for `lease_us`: a
    /// claimed timer is not handed out again (by any process) before
    /// `now + lease_us`, unless a write changes its decision. Exactly-once
    /// firing comes from the core refusing a timer that is no longer due;
    /// the lease keeps replicas from doing the same work twice.
    async fn due_timers(&self, now: Micros, lease_us: i64, limit: usize) -> Result<Vec<DueTimer>>;
    /// Claims up to `limit` pending deliveries that are due, for `lease_us`
    /// (another process will not take them meanwhile).
    async fn outbox_claim(
        &self,
        now: Micros,
        lease_us: i64,
        limit: usize,
    ) -> Result<Vec<OutboxItem>> {
        self.outbox_claim_lane(Lane::Webhooks, now, lease_us, limit)
            .await
    }
    /// [`Store::outbox_claim`] for one lane, in id order.
    async fn outbox_claim_lane(
        &self,
        lane: Lane,
        now: Micros,
        lease_us: i64,
        limit: usize,
    ) -> Result<Vec<OutboxItem>>;
    /// Every delivery of one decision to one destination, in sequence
    /// order, whatever its status (the Slack worker reads its message `ts`
    /// and what was already shown from it).
    async fn outbox_thread(&self, webhook: &str, decision_id: &str) -> Result<Vec<OutboxItem>>;
    /// Records the result of an attempt on a claimed delivery.
    async fn outbox_complete(&self, id: i64, result: Delivery) -> Result<()>;
    /// Deliveries, newest first, optionally of one status.
    async fn outbox_list(
        &self,
        status: Option<OutboxStatus>,
        limit: usize,
    ) -> Result<Vec<OutboxItem>>;
    /// Puts a dead (or pending) delivery back in line now: one id, or every
    /// dead one. Returns how many.
    async fn outbox_retry(&self, id: Option<i64>, now: Micros) -> Result<u64>;
    /// The stored receipt bodies of closed decisions with ids above
    /// `after_id`, in id order.
    async fn receipts(&self, after_id: &str, limit: usize) -> Result<Vec<(String, String)>>;
    /// The stored receipt body of one decision.
    async fn receipt(&self, decision_id: &str) -> Result<Option<String>>;
    /// The sequence of the latest event in the log (0 when empty).
    async fn head(&self) -> Result<u64>;
    /// Decision rows with ids above `after_id`, every column as stored, in
    /// id order (for `witness audit verify`).
    async fn projection_rows(&self, after_id: &str, limit: usize) -> Result<Vec<ProjectionRow>>;
    /// Open decisions and pending deliveries, for metrics.
    async fn gauges(&self) -> Result<StoreGauges>;
    /// The sequence of the latest committed event; changes wake streams.
    fn commits(&self) -> watch::Receiver<u64>;
}

/// Checks that `url` names a store this witness can open, without opening
/// it: `sqlite://PATH`, or a `postgres://` / `postgresql://` URL that
/// tokio-postgres accepts. Config validation calls it, so a typo is a
/// configuration error at startup, never an outage.
pub fn check_url(url: &str) -> Result<()> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(StoreError::BadUrl(
                "sqlite:// needs a path (e.g. sqlite://witness.db)".into(),
            ));
        }
        return Ok(());
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // The parser's messages name the bad part, never the password.
        return url
            .parse::<tokio_postgres::Config>()
            .map(|_| ())
            .map_err(|e| StoreError::BadUrl(format!("not a valid PostgreSQL URL: {e}")));
    }
    Err(StoreError::BadUrl(
        "unsupported store (expected sqlite://PATH or postgres://...)".into(),
    ))
}

/// Opens the store a URL names: `sqlite://PATH` or `postgres://…`.
pub async fn open(url: &str, pg: &postgres::PgOptions) -> Result<Arc<dyn Store>> {
    check_url(url)?;
    if let Some(path) = url.strip_prefix("sqlite://") {
        return Ok(Arc::new(sqlite::SqliteStore::open(path).await?));
    }
    Ok(Arc::new(postgres::PostgresStore::open(url, pg).await?))
}

/// Opens the store at `url` for a read-only tool: a SQLite file that does
/// not exist is an error, never a new empty database.
pub async fn open_existing(url: &str, pg: &postgres::PgOptions) -> Result<Arc<dyn Store>> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if !std::path::Path::new(path).is_file() {
            return Err(StoreError::BadUrl(format!(
                "no SQLite database at {path} (nothing to read)"
            )));
        }
    }
    open(url, pg).await
}

/// Where a store reads the time that stamps events: the system clock in
/// production; a test that writes the same log into two stores passes its
/// own (see `SqliteStore::open_with_clock`, `PostgresStore::open_with_clock`).
pub type Clock = Arc<dyn Fn() -> Micros + Send + Sync>;

/// The system clock, as a [`Clock`].
pub fn system_clock() -> Clock {
    Arc::new(now_micros)
}

/// Unix time now, in microseconds: the store stamps events with it.
pub fn now_micros() -> Micros {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
}
