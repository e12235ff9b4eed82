//! `witness audit verify`: checks the hash chain event by event, then
//! replays the whole log through the core and compares every decision row.
//! It also reports two state hashes (see [`state_hash`]): of the projection
//! rebuilt from the log, and of the rows as stored.

use crate::core::canonical::{canonical_json, sha256_hex};
use crate::core::{apply, Decision, GENESIS_HASH};
use crate::store::{codec, ProjectionRow, Result, Store};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// The first thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The first bad (or missing) event's sequence.
    pub sequence: u64,
    pub reason: String,
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    pub events: u64,
    pub decisions: usize,
    pub head_hash: String,
    /// State hash of the projection rebuilt from the log (None when the
    /// chain is broken, so the log cannot be replayed to its end).
    pub state_hash_replayed: Option<String>,
    /// State hash of the decision rows as stored.
    pub state_hash_stored: String,
    pub problem: Option<Problem>,
}

/// One decision row in its canonical form: its columns and its decision
/// (`body`) as one canonical JSON object, the decision re-encoded from what
/// it decodes to, so that both backends and both sides encode it alike.
pub fn canonical_row(row: &ProjectionRow, decision: Value) -> String {
    canonical_json(&json!({
        "id": row.id,
        "kind": row.kind,
        "status": row.status,
        "asked_by": row.asked_by,
        "created_at": row.created_at,
        "version": row.version,
        "last_sequence": row.last_sequence,
        "expires_at": row.expires_at,
        "fallback_at": row.fallback_at,
        "decision": decision,
    }))
}

/// The canonical form of the row a store writes for `d`.
pub fn canonical_decision_row(d: &Decision) -> String {
    let value = serde_json::to_value(d).unwrap_or(Value::Null);
    canonical_row(&ProjectionRow::of(d), value)
}

/// The canonical form of a row as stored, decoded from its (compact) stored
/// form. A body that is not a decision is kept as the JSON (or text) it is,
/// so it hashes differently.
pub fn canonical_stored_row(row: &ProjectionRow) -> String {
    let decision = match codec::decode_row(row) {
        Ok(d) => serde_json::to_value(d).unwrap_or(Value::Null),
        Err(_) => serde_json::from_str::<Value>(&row.body)
            .unwrap_or_else(|_| Value::String(row.body.clone())),
    };
    canonical_row(row, decision)
}

/// The state hash: lowercase hex SHA-256 over every row's canonical form,
/// each followed by a newline, in id order (by bytes, whatever the
/// database's collation). The empty projection hashes the empty string.
pub fn state_hash<'a>(rows_by_id: impl IntoIterator<Item = &'a String>) -> String {
    let mut bytes = Vec::new();
    for line in rows_by_id {
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
    }
    sha256_hex(&bytes)
}

const PAGE: usize = 1000;

/// Verifies the chain and the projection.
pub async fn verify(store: &dyn Store) -> Result<AuditReport> {
    let mut report = AuditReport {
        events: 0,
        decisions: 0,
        head_hash: GENESIS_HASH.into(),
        state_hash_replayed: None,
        state_hash_stored: String::new(),
        problem: None,
    };
    let mut replayed: BTreeMap<String, Decision> = BTreeMap::new();
    let mut closing_hash: HashMap<u64, String> = HashMap::new();
    let mut after = 0u64;
    loop {
        let rows = store.raw_events(after, PAGE).await?;
        let done = rows.len() < PAGE;
        for row in rows {
            let expected = report.events + 1;
            let problem = |reason: String| {
                Some(Problem {
                    sequence: expected,
                    reason,
                })
            };
            let bad = if row.sequence != expected {
                problem(format!(
                    "event {expected} is missing (the next stored event is {})",
                    row.sequence
                ))
            } else if row.prev_hash != report.head_hash {
                problem(format!(
                    "event {expected}: prev_hash does not match event {}'s hash (an event was removed, inserted or reordered)",
                    expected - 1
                ))
            } else if codec::event_hash(
                &row.prev_hash,
                row.sequence,
                &row.decision_id,
                &row.event_type,
                row.at,
                &row.body,
            ) != row.hash
            {
                problem(format!(
                    "event {expected}: hash does not match its content (edited)"
                ))
            } else {
                match codec::decode_event(
                    row.sequence,
                    &row.decision_id,
                    &row.event_type,
                    row.at,
                    &row.body,
                ) {
                    Err(e) => problem(format!("event {expected}: body is not an event: {e}")),
                    Ok(ev)
                        if ev.sequence != row.sequence
                            || ev.decision_id != row.decision_id
                            || ev.kind.event_type().as_str() != row.event_type
                            || ev.at != row.at =>
                    {
                        problem(format!(
                            "event {expected}: stored columns disagree with the hashed body"
                        ))
                    }
                    Ok(ev) => {
                        let state = replayed.remove(&ev.decision_id);
                        match apply(state, &ev) {
                            Ok(d) => {
                                if d.status.is_terminal() && d.last_sequence == ev.sequence {
                                    closing_hash.insert(ev.sequence, row.hash.clone());
                                }
                                replayed.insert(d.id.clone(), d);
                                None
                            }
                            Err(e) => problem(format!(
                                "event {expected}: cannot be replayed: {}",
                                e.reason
                            )),
                        }
                    }
                }
            };
            if bad.is_some() {
                report.problem = bad;
                break;
            }
            report.events = row.sequence;
            report.head_hash = row.hash;
            after = row.sequence;
        }
        if done || report.problem.is_some() {
            break;
        }
    }
    let mut stored_rows = BTreeMap::new();
    let projection =
        compare_projection(store, &mut replayed, report.events, &mut stored_rows).await?;
    report.state_hash_stored = state_hash(stored_rows.values());
    report.decisions = replayed.len();
    if report.problem.is_some() {
        // The chain is broken: the replay stopped short, so its hash would
        // describe no state the log claims.
        return Ok(report);
    }
    let replayed_rows: BTreeMap<&String, String> = replayed
        .iter()
        .map(|(id, d)| (id, canonical_decision_row(d)))
        .collect();
    let replayed_hash = state_hash(replayed_rows.values());
    report.problem = projection;
    if report.problem.is_none() {
        report.problem = compare_receipts(store, &replayed, &closing_hash).await?;
    }
    if report.problem.is_none() && replayed_hash != report.state_hash_stored {
        report.problem = Some(Problem {
            sequence: report.events,
            reason: "the state hash of the stored rows differs from the replayed projection's"
                .into(),
        });
    }
    report.state_hash_replayed = Some(replayed_hash);
    Ok(report)
}

/// Every closed decision has a stored receipt, and each equals the receipt
/// rebuilt from the replayed decision and its closing event's chain hash.
async fn compare_receipts(
    store: &dyn Store,
    replayed: &BTreeMap<String, Decision>,
    closing_hash: &HashMap<u64, String>,
) -> Result<Option<Problem>> {
    let mut stored = HashMap::new();
    let mut after = String::new();
    loop {
        let page = store.receipts(&after, PAGE).await?;
        let done = page.len() < PAGE;
        if let Some((id, _)) = page.last() {
            after = id.clone();
        }
        stored.extend(page);
        if done {
            break;
        }
    }
    let mut first: Option<Problem> = None;
    for d in replayed.values().filter(|d| d.status.is_terminal()) {
        let expected = closing_hash
            .get(&d.last_sequence)
            .map(|h| crate::core::receipt::body(d, h));
        let reason = match (stored.remove(&d.id), expected) {
            (Some(body), Some(exp)) if body == exp => continue,
            (None, _) => format!("decision {} is closed but has no receipt", d.id),
            _ => format!("decision {}: receipt does not match the chain", d.id),
        };
        if first.as_ref().is_none_or(|p| d.last_sequence < p.sequence) {
            first = Some(Problem {
                sequence: d.last_sequence,
                reason,
            });
        }
    }
    if first.is_none() {
        if let Some(id) = stored.keys().next() {
            first = Some(Problem {
                sequence: 0,
                reason: format!("receipt for {id}, which is not closed in the log"),
            });
        }
    }
    Ok(first)
}

/// Every decision row must equal its replay, column by column (the
/// indexed columns drive listing, snapshots and the timers, so an edit to
/// one of them alone must not pass), and every replay must have a row.
/// Collects every stored row's canonical form into `stored` as it goes.
async fn compare_projection(
    store: &dyn Store,
    replayed: &mut BTreeMap<String, Decision>,
    head: u64,
    stored: &mut BTreeMap<String, String>,
) -> Result<Option<Problem>> {
    let mut first: Option<Problem> = None;
    let mut note = |sequence: u64, reason: String| {
        if first.as_ref().is_none_or(|p| sequence < p.sequence) {
            first = Some(Problem { sequence, reason });
        }
    };
    let now = crate::store::now_micros();
    let mut seen = 0usize;
    let mut after = String::new();
    loop {
        let rows = store.projection_rows(&after, PAGE).await?;
        for row in &rows {
            seen += 1;
            stored.insert(row.id.clone(), canonical_stored_row(row));
            let stored_seq = u64::try_from(row.last_sequence).unwrap_or(0);
            match replayed.get(&row.id) {
                _ if stored_seq > head => note(
                    head + 1,
                    format!(
                        "event {} is missing: decision {} was last changed by it",
                        row.last_sequence, row.id
                    ),
                ),
                None => note(
                    stored_seq,
                    format!("decision {} has a row but no events", row.id),
                ),
                Some(r) => {
                    if let Some(reason) = row_difference(row, r).or_else(|| lease_problem(row, now))
                    {
                        note(
                            stored_seq.min(r.last_sequence),
                            format!("decision {}: {reason}", row.id),
                        );
                    }
                }
            }
        }
        if rows.len() < PAGE {
            break;
        }
        after = rows.last().map(|r| r.id.clone()).unwrap_or_default();
    }
    if seen < replayed.len() {
        if let Some(d) = replayed.values().next() {
            note(
                d.last_sequence,
                format!(
                    "{} decision(s) have events but no row",
                    replayed.len() - seen
                ),
            );
        }
    }
    Ok(first)
}

/// A timer lease no claim could have set: further past the later of the
/// row's due time and now than a claim lasts. Such a lease (an edit made
/// with the server stopped) would keep the decision's timers from firing.
fn lease_problem(row: &ProjectionRow, now: i64) -> Option<String> {
    let lease = row.timer_lease?;
    let due = row.expires_at.into_iter().chain(row.fallback_at).min();
    let latest = due
        .unwrap_or(now)
        .max(now)
        .saturating_add(crate::timers::LEASE_US);
    (lease > latest).then(|| {
        format!(
            "column timer_lease is {lease}, {} past its due time and now; a timer claim lasts at \
             most {}s, so no claim set it (an edit would keep its timers from firing)",
            crate::core::schema::span(std::time::Duration::from_micros(
                u64::try_from(lease.saturating_sub(due.unwrap_or(now).max(now))).unwrap_or(0)
            )),
            crate::timers::LEASE_US / 1_000_000
        )
    })
}

/// The first column of `row` that differs from the replayed decision,
/// named, with both values; fields inside `body` are named too.
fn row_difference(row: &ProjectionRow, replayed: &Decision) -> Option<String> {
    let expected = ProjectionRow::of(replayed);
    for ((name, stored), (_, want)) in row.columns().into_iter().zip(expected.columns()) {
        if stored != want {
            return Some(format!(
                "column {name} is {stored}, the events say {want} (stored row differs from the replayed events)"
            ));
        }
    }
    let want = match serde_json::to_value(replayed) {
        Ok(v) => v,
        Err(e) => return Some(format!("cannot serialize the replayed decision: {e}")),
    };
    // Rows leave default-valued fields out (`store::codec`): compare whole.
    let stored = match codec::row_value(row) {
        Ok(v) => v,
        Err(e) => return Some(format!("column body is not JSON: {e}")),
    };
    // Compare as decisions, so defaults and number forms do not count.
    let same = serde_json::from_value::<Decision>(stored.clone()).is_ok_and(|d| &d == replayed);
    if same {
        return None;
    }
    let field = match (&stored, &want) {
        (Value::Object(s), Value::Object(w)) => w
            .iter()
            .find(|(k, v)| s.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .or_else(|| s.keys().find(|k| !w.contains_key(*k)).cloned()),
        _ => None,
    };
    Some(match field {
        Some(f) => format!(
            "column body: field {f} differs from the replayed events (stored row differs from the replayed events)"
        ),
        None => "column body differs from the replayed events".to_string(),
    })
}
