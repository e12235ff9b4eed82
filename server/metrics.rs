//! Prometheus metrics (DESIGN §7): one registry per process. Counters and
//! histograms count what this process did; gauges of shared state (open
//! decisions, the outbox) are read from the store at scrape time, so every
//! replica reports the same figure. Labels are bounded: a decision's kind
//! appears only as the policy glob that matched it (`kind_policy`).

use crate::core::{Decision, Event, EventKind, Outcome, Verdict};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::LazyLock;
use std::time::{Duration, Instant, SystemTime};

mod identity;
mod labels;
pub use labels::preset;
pub(crate) use labels::{method_label, CODES};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindPolicy {
    kind_policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindStatus {
    kind_policy: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictOutcome {
    verdict: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcCode {
    rpc: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookResult {
    webhook: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Level {
    level: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TimerLabel {
    timer: String,
}

type F64Gauge = Gauge<f64, AtomicU64>;
type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Human latency: from 10 ms to a week.
const HUMAN_BUCKETS: [f64; 19] = [
    0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
    14400.0, 43200.0, 86400.0, 259200.0, 604800.0,
];

fn human_histogram() -> Histogram {
    Histogram::new(HUMAN_BUCKETS)
}

fn lag_histogram() -> Histogram {
    // 1 ms .. ~65 s
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

struct Metrics {
    registry: Registry,
    created: Family<KindPolicy, Counter>,
    closed: Family<KindStatus, Counter>,
    answers: Family<VerdictOutcome, Counter>,
    refusals: Family<RpcCode, Counter>,
    time_to_decision: HistogramFamily<KindStatus>,
    time_to_ack: Histogram,
    open_decisions: Gauge,
    oldest_open_age: F64Gauge,
    stream_subscribers: Gauge,
    commit_seconds: Histogram,
    batch_size: Histogram,
    outbox_pending: Gauge,
    deliveries: Family<WebhookResult, Counter>,
    timer_lag: HistogramFamily<TimerLabel>,
    escalations: Family<Level, Counter>,
    recovery: F64Gauge,
    store_up: Gauge,
    rss: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
    start_time: F64Gauge,
    identity: identity::Identity,
}

static STARTED: LazyLock<(Instant, SystemTime)> =
    LazyLock::new(|| (Instant::now(), SystemTime::now()));
static ENABLED: AtomicBool = AtomicBool::new(true);

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut r = Registry::default();
    let m = Metrics {
        registry: Registry::default(),
        created: Family::default(),
        closed: Family::default(),
        answers: Family::default(),
        refusals: Family::default(),
        time_to_decision: Family::new_with_constructor(human_histogram as fn() -> Histogram),
        time_to_ack: human_histogram(),
        open_decisions: Gauge::default(),
        oldest_open_age: F64Gauge::default(),
        stream_subscribers: Gauge::default(),
        // 50 µs .. ~1.6 s
        commit_seconds: Histogram::new(exponential_buckets(0.00005, 2.0, 16)),
        // 1 .. 512 (the writers' largest batch)
        batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
        outbox_pending: Gauge::default(),
        deliveries: Family::default(),
        timer_lag: Family::new_with_constructor(lag_histogram as fn() -> Histogram),
        escalations: Family::default(),
        recovery: F64Gauge::default(),
        store_up: Gauge::default(),
        rss: Gauge::default(),
        open_fds: Gauge::default(),
        max_fds: Gauge::default(),
        start_time: F64Gauge::default(),
        identity: identity::Identity::default(),
    };
    r.register(
        "witness_decisions_created",
        "Decisions created by this process, by matched policy glob",
        m.created.clone(),
    );
    r.register(
        "witness_decisions_closed",
        "Decisions closed by this process, by matched policy glob and status",
        m.closed.clone(),
    );
    r.register(
        "witness_answers",
        "Answers recorded by this process, by verdict and outcome",
        m.answers.clone(),
    );
    r.register(
        "witness_refusals",
        "Requests refused, by RPC and status code",
        m.refusals.clone(),
    );
    r.register(
        "witness_time_to_decision_seconds",
        "From creation to close, by matched policy glob and status",
        m.time_to_decision.clone(),
    );
    r.register(
        "witness_time_to_ack_seconds",
        "From creation to the first delivery acknowledgement",
        m.time_to_ack.clone(),
    );
    r.register(
        "witness_open_decisions",
        "Open decisions in the store (same on every replica)",
        m.open_decisions.clone(),
    );
    r.register(
        "witness_oldest_open_decision_age_seconds",
        "Age of the oldest open decision (0 when none)",
        m.oldest_open_age.clone(),
    );
    r.register(
        "witness_stream_subscribers",
        "Server streams open on this process",
        m.stream_subscribers.clone(),
    );
    r.register(
        "witness_store_commit_seconds",
        "Duration of one store transaction (a batch of commands)",
        m.commit_seconds.clone(),
    );
    r.register(
        "witness_store_batch_size",
        "Commands per store transaction",
        m.batch_size.clone(),
    );
    r.register(
        "witness_outbox_pending",
        "Webhook deliveries waiting to be sent (same on every replica)",
        m.outbox_pending.clone(),
    );
    r.register(
        "witness_outbox_deliveries",
        "Webhook delivery attempts by this process, by webhook and result",
        m.deliveries.clone(),
    );
    r.register(
        "witness_timer_lag_seconds",
        "How late a durable timer fired, by timer",
        m.timer_lag.clone(),
    );
    r.register(
        "witness_escalations",
        "Escalations fired by this process, by level (the ack-window fallback is level 1)",
        m.escalations.clone(),
    );
    r.register(
        "witness_recovery_seconds",
        "From process start to serving",
        m.recovery.clone(),
    );
    r.register(
        "witness_store_up",
        "1 when the store answered this scrape's reads",
        m.store_up.clone(),
    );
    r.register(
        "process_resident_memory_bytes",
        "Resident memory size in bytes",
        m.rss.clone(),
    );
    r.register(
        "process_open_fds",
        "Open file descriptors",
        m.open_fds.clone(),
    );
    r.register(
        "process_max_fds",
        "Maximum open file descriptors",
        m.max_fds.clone(),
    );
    r.register(
        "process_start_time_seconds",
        "Start time of the process since the Unix epoch in seconds",
        m.start_time.clone(),
    );
    m.identity.register(&mut r);
    Metrics { registry: r, ..m }
});

/// Records the process start (call first thing in `main`).
pub fn init(enabled: bool) {
    LazyLock::force(&STARTED);
    ENABLED.store(enabled, std::sync::atomic::Ordering::Relaxed);
    LazyLock::force(&METRICS);
}

fn on() -> bool {
    ENABLED.load(std::sync::atomic::Ordering::Relaxed)
}

fn kind_policy(d: &Decision) -> String {
    match d.policy.matched_kind.as_str() {
        "" => "default".to_string(),
        glob => glob.to_string(),
    }
}

fn seconds_between(from: i64, to: i64) -> f64 {
    (to.saturating_sub(from)).max(0) as f64 / 1e6
}

/// What the store reads for a scrape: state every replica shares. Defined
/// here, where it is used, so that `metrics` needs nothing from `store`
/// (the store reports to `metrics`, not the reverse).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreGauges {
    pub open_decisions: u64,
    /// When the oldest open decision was created.
    pub oldest_open_created_at: Option<i64>,
    /// Deliveries waiting to be sent (not yet delivered nor dead).
    pub outbox_pending: u64,
}

/// One store transaction committed `batch` commands in `elapsed`;
/// `applied` are the decisions and events of the commands that took
/// effect. Called by both store backends.
pub fn store_committed<'a, E>(
    batch: usize,
    elapsed: Duration,
    applied: impl Iterator<Item = (&'a Decision, &'a [E])>,
) where
    E: std::ops::Deref<Target = Event> + 'a,
{
    if on() {
        let m = &*METRICS;
        m.commit_seconds.observe(elapsed.as_secs_f64());
        m.batch_size.observe(batch as f64);
    }
    for (d, events) in applied {
        decision_events(d, events);
    }
}

/// Counts and logs the events one command wrote.
fn decision_events<E: std::ops::Deref<Target = Event>>(d: &Decision, events: &[E]) {
    for e in events {
        let event_type = e.kind.type_name();
        match &e.kind {
            EventKind::Approved
            | EventKind::Rejected
            | EventKind::Cancelled { .. }
            | EventKind::Expired
            | EventKind::ContextChanged { .. } => {
                tracing::info!(decision_id = %e.decision_id, event_type, sequence = e.sequence,
                    status = d.status.as_str(), "decision closed");
            }
            EventKind::FallbackFired { .. } => {
                tracing::info!(decision_id = %e.decision_id, event_type, sequence = e.sequence,
                    "fallback fired");
            }
            EventKind::Escalated { level, .. } => {
                tracing::info!(decision_id = %e.decision_id, event_type, sequence = e.sequence,
                    level, "escalated");
            }
            _ => {
                tracing::debug!(decision_id = %e.decision_id, event_type, sequence = e.sequence,
                    "event committed");
            }
        }
        if !on() {
            continue;
        }
        let m = &*METRICS;
        match &e.kind {
            EventKind::Created { .. } => {
                m.created
                    .get_or_create(&KindPolicy {
                        kind_policy: kind_policy(d),
                    })
                    .inc();
            }
            EventKind::Delivered { .. } => {
                m.time_to_ack.observe(seconds_between(d.created_at, e.at));
            }
            EventKind::FallbackFired { .. } => escalated("fallback"),
            EventKind::Escalated { level, .. } => escalated(&level.to_string()),
            EventKind::Approved
            | EventKind::Rejected
            | EventKind::Cancelled { .. }
            | EventKind::Expired
            | EventKind::ContextChanged { .. } => {
                let labels = KindStatus {
                    kind_policy: kind_policy(d),
                    status: d.status.as_str().to_string(),
                };
                m.closed.get_or_create(&labels).inc();
                m.time_to_decision
                    .get_or_create(&labels)
                    .observe(seconds_between(d.created_at, e.at));
            }
            _ => {}
        }
    }
}

/// A page went out: an escalation level (`"1"`, `"2"`, ...) or the
/// ack-window fallback (`"fallback"`).
fn escalated(level: &str) {
    if on() {
        METRICS
            .escalations
            .get_or_create(&Level {
                level: level.to_string(),
            })
            .inc();
    }
}

/// A fresh answer was recorded with this outcome.
pub fn answered(verdict: Verdict, outcome: Outcome) {
    if !on() {
        return;
    }
    let verdict = match verdict {
        Verdict::Approve => "approve",
        Verdict::Reject => "reject",
    };
    let outcome = match outcome {
        Outcome::AwaitingApprovals => "awaiting_approvals",
        Outcome::Closed => "closed",
        Outcome::ContextChanged => "context_changed",
        _ => "other",
    };
    METRICS
        .answers
        .get_or_create(&VerdictOutcome {
            verdict: verdict.into(),
            outcome: outcome.into(),
        })
        .inc();
}

/// A request was refused: counted, and logged once at info with its code
/// and the field the message names (never a token: messages do not carry
/// credentials).
pub fn refused(rpc: &str, code: &str, message: &str) {
    let field = refusal_field(message);
    tracing::info!(rpc, code, field, reason = message, "request refused");
    if on() {
        METRICS
            .refusals
            .get_or_create(&RpcCode {
                rpc: rpc.to_string(),
                code: code.to_string(),
            })
            .inc();
    }
}

/// The field a refusal message names (`kind: required` names `kind`).
fn refusal_field(message: &str) -> &str {
    message
        .split_once(':')
        .map(|(f, _)| f)
        .filter(|f| {
            !f.is_empty()
                && f.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.[]".contains(&b))
        })
        .unwrap_or("")
}

/// One webhook delivery attempt ended: `delivered`, `failed` (will retry)
/// or `dead`.
pub fn delivery(webhook: &str, result: &str) {
    if on() {
        METRICS
            .deliveries
            .get_or_create(&WebhookResult {
                webhook: webhook.to_string(),
                result: result.to_string(),
            })
            .inc();
    }
}

/// One fetch of an issuer's keys ended: `ok` or `error`.
pub fn jwks_fetched(issuer: &str, result: &str) {
    if on() {
        METRICS.identity.jwks_fetched(issuer, result);
    }
}

/// A config reload was `applied` or `refused`.
pub fn config_reloaded(result: &str) {
    if on() {
        METRICS.identity.reloaded(result);
    }
}

/// A durable timer (`expire` or `fallback`) fired `lag` after it was due.
pub fn timer_fired(timer: &str, lag: Duration) {
    if on() {
        METRICS
            .timer_lag
            .get_or_create(&TimerLabel {
                timer: timer.to_string(),
            })
            .observe(lag.as_secs_f64());
    }
}

/// Keeps `witness_stream_subscribers` up while held.
#[derive(Debug)]
pub struct Subscriber(());

impl Subscriber {
    pub fn new() -> Self {
        METRICS.stream_subscribers.inc();
        Subscriber(())
    }
}

impl Default for Subscriber {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        METRICS.stream_subscribers.dec();
    }
}

/// The server is serving: records start-up to serving.
pub fn serving() {
    METRICS.recovery.set(STARTED.0.elapsed().as_secs_f64());
}

/// Whether metrics are collected and served.
pub fn enabled() -> bool {
    on()
}

/// The page, in the OpenMetrics text format. `store` is the store's gauges
/// read for this scrape (None: the store did not answer).
pub fn render(store: Option<StoreGauges>, now_us: i64) -> String {
    let m = &*METRICS;
    match store {
        Some(g) => {
            m.store_up.set(1);
            m.open_decisions.set(clamp(g.open_decisions));
            m.outbox_pending.set(clamp(g.outbox_pending));
            m.oldest_open_age.set(
                g.oldest_open_created_at
                    .map_or(0.0, |at| seconds_between(at, now_us)),
            );
        }
        None => {
            m.store_up.set(0);
        }
    }
    process(m);
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &m.registry);
    out
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The process's own figures, from /proc (Linux; left at 0 elsewhere).
fn process(m: &Metrics) {
    let since_epoch = STARTED
        .1
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    m.start_time.set(since_epoch.as_secs_f64());
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<i64>().ok());
        if let Some(kb) = kb {
            m.rss.set(kb * 1024);
        }
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        m.open_fds.set(clamp(fds.count() as u64));
    }
    if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
        let max = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse::<i64>().ok());
        if let Some(max) = max {
            m.max_fds.set(max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_field_is_the_message_prefix_when_it_names_one() {
        let field = refusal_field;
        assert_eq!(field("kind: required"), "kind");
        assert_eq!(field("statuses[0]: unknown"), "statuses[0]");
        assert_eq!(field("unknown bearer token"), "");
        assert_eq!(field("store unavailable: x"), "");
    }

    #[test]
    fn page_names_every_unlabelled_metric_with_its_type() {
        // Labelled families appear once they have a sample.
        init(true);
        let page = render(None, 0);
        for line in [
            "# TYPE witness_time_to_ack_seconds histogram",
            "# TYPE witness_open_decisions gauge",
            "# TYPE witness_store_commit_seconds histogram",
            "# TYPE process_resident_memory_bytes gauge",
            "witness_store_up 0",
            "# EOF",
        ] {
            assert!(page.contains(line), "{line} missing from\n{page}");
        }
    }
}
