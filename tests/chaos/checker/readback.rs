//! Checks on what was read back at the end: the log itself (gap-free,
//! `audit verify` over all of it, the listed decisions equal to their last
//! event's state) and every resuming stream subscriber's view of it.

use super::{name, Final, Report, Subscription};
use std::collections::{HashMap, HashSet};
use witness::proto;

/// The log is gap-free from 1, `audit verify` passed over all of it, and
/// the decisions as listed equal the state after each one's last event.
pub(super) fn check_log(fin: &Final, r: &mut Report) {
    for (i, e) in fin.log.iter().enumerate() {
        if e.sequence != i as u64 + 1 {
            r.violations.push(format!(
                "log: event #{} has sequence {} (gap or duplicate in the log read from 0)",
                i + 1,
                e.sequence
            ));
            break;
        }
        if e.decision.last_sequence != e.sequence {
            r.violations.push(format!(
                "log: event {} carries a decision whose last_sequence is {}",
                e.sequence, e.decision.last_sequence
            ));
        }
    }
    if !fin.audit.ok {
        r.violations
            .push(format!("audit verify failed: {}", fin.audit.text.trim()));
    } else if fin.audit.events != fin.log.len() as u64 {
        r.violations.push(format!(
            "audit verify saw {} events, the API streamed {}",
            fin.audit.events,
            fin.log.len()
        ));
    }
    let mut last: HashMap<&str, &proto::Decision> = HashMap::new();
    for e in &fin.log {
        last.insert(&e.decision.id, &e.decision);
    }
    let mut listed = HashSet::new();
    for d in &fin.listed {
        if !listed.insert(d.id.as_str()) {
            r.violations
                .push(format!("ListDecisions lists {} twice", d.id));
        }
        match last.get(d.id.as_str()) {
            None => r.violations.push(format!(
                "ListDecisions shows {} which has no event in the log",
                d.id
            )),
            Some(l) => {
                if (l.status, l.version, l.last_sequence, l.answers.len())
                    != (d.status, d.version, d.last_sequence, d.answers.len())
                {
                    r.violations.push(format!(
                        "decision {}: stored row (status {}, version {}, last_sequence {}) differs from its last event's state (status {}, version {}, last_sequence {})",
                        d.id, d.status, d.version, d.last_sequence, l.status, l.version, l.last_sequence
                    ));
                }
            }
        }
    }
    for id in last.keys() {
        if !listed.contains(id) {
            r.violations
                .push(format!("decision {id} is in the log but not listed"));
        }
    }
}

fn glob_matches(glob: &Option<String>, kind: &str) -> bool {
    match glob {
        None => true,
        Some(g) => match g.strip_suffix('*') {
            Some(prefix) => kind.starts_with(prefix),
            None => g == kind,
        },
    }
}

/// A subscriber that resumed after every disconnect saw exactly the
/// visible events after its start, each once, in order.
pub(super) fn check_subscription(s: &Subscription, fin: &Final, r: &mut Report) {
    if fin.loss_allowed {
        // Asynchronous replication: events a subscriber streamed from the
        // old primary may be gone, their sequences reused on the new one.
        let at: HashMap<u64, &str> = fin
            .log
            .iter()
            .map(|e| (e.sequence, e.decision.id.as_str()))
            .collect();
        let gone = s
            .seen
            .iter()
            .filter(|(seq, _, id)| at.get(seq) != Some(&id.as_str()))
            .count();
        if gone > 0 {
            r.streams_rewound.push(format!(
                "subscriber {}: streamed {gone} events a failover lost (their sequences were reused)",
                s.name
            ));
            return;
        }
    }
    let expected: Vec<(u64, i32, &str)> = fin
        .log
        .iter()
        .filter(|e| e.sequence > s.start_after && glob_matches(&s.kind_glob, &e.decision.kind))
        .map(|e| (e.sequence, e.etype, e.decision.id.as_str()))
        .collect();
    for (i, exp) in expected.iter().enumerate() {
        match s.seen.get(i) {
            None => {
                r.violations.push(format!(
                    "subscriber {} ({} resumes): never received event {} (stopped after {} events)",
                    s.name,
                    s.resumes,
                    exp.0,
                    s.seen.len()
                ));
                return;
            }
            Some(got) if (got.0, got.1, got.2.as_str()) != *exp => {
                let near: Vec<&String> = s.trace.iter().take(6).collect();
                let what = if s.seen[..i].iter().any(|g| g.0 == got.0) {
                    "a duplicate of"
                } else if got.0 > exp.0 {
                    "a gap before"
                } else {
                    "out of order:"
                };
                r.violations.push(format!(
                    "subscriber {} ({} resumes): expected event {} ({} on {}), got {what} event {} ({}); first streams: {near:?}",
                    s.name,
                    s.resumes,
                    exp.0,
                    name(exp.1),
                    exp.2,
                    got.0,
                    name(got.1)
                ));
                return;
            }
            Some(_) => {}
        }
    }
    if s.seen.len() > expected.len() {
        let extra = &s.seen[expected.len()];
        r.violations.push(format!(
            "subscriber {}: received event {} that the log does not have (or a duplicate)",
            s.name, extra.0
        ));
    }
}
