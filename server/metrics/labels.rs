//! The bounded label values of witness's metric families, and the series
//! created at 0 on start so that dashboards read 0, not "No data".

use super::METRICS;
use super::{
    on, KindPolicy, KindStatus, Level, RpcCode, TimerLabel, VerdictOutcome, WebhookResult,
};
use crate::core::Status;

/// A method name as a metric label. Labels stay bounded: an unknown method
/// is counted as `unknown`.
pub(crate) fn method_label(name: &str) -> &'static str {
    METHODS
        .iter()
        .find(|m| **m == name)
        .copied()
        .unwrap_or("unknown")
}

/// The methods of `witness.v1.WitnessService`.
pub(crate) const METHODS: [&str; 9] = [
    "Ask",
    "Answer",
    "StreamDecisions",
    "WatchDecision",
    "AckDelivery",
    "Cancel",
    "ReportContext",
    "GetDecision",
    "ListDecisions",
];

/// gRPC status code names by number, as `witness_refusals_total` labels them.
pub(crate) const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// Creates every labelled series a dashboard shows at 0, so panels read 0
/// rather than "No data" on a fresh server: each policy glob (and
/// `default`) by terminal status, every verdict and outcome, every method
/// and refusal code, every webhook and delivery result, and each
/// escalation level the policies configure (`fallback` included).
pub fn preset(policy_globs: &[String], webhooks: &[String], levels: usize) {
    if !on() {
        return;
    }
    let m = &*METRICS;
    let globs = policy_globs
        .iter()
        .map(String::as_str)
        .chain(std::iter::once("default"));
    for glob in globs {
        let _ = m.created.get_or_create(&KindPolicy {
            kind_policy: glob.to_string(),
        });
        for status in Status::ALL.iter().filter(|s| s.is_terminal()) {
            let labels = KindStatus {
                kind_policy: glob.to_string(),
                status: status.as_str().to_string(),
            };
            let _ = m.closed.get_or_create(&labels);
            let _ = m.time_to_decision.get_or_create(&labels);
        }
    }
    for verdict in ["approve", "reject"] {
        for outcome in ["awaiting_approvals", "closed", "context_changed"] {
            let _ = m.answers.get_or_create(&VerdictOutcome {
                verdict: verdict.into(),
                outcome: outcome.into(),
            });
        }
    }
    for rpc in METHODS {
        for code in &CODES[1..] {
            let _ = m.refusals.get_or_create(&RpcCode {
                rpc: rpc.to_string(),
                code: code.to_string(),
            });
        }
    }
    for webhook in webhooks {
        for result in ["delivered", "failed", "dead"] {
            let _ = m.deliveries.get_or_create(&WebhookResult {
                webhook: webhook.clone(),
                result: result.into(),
            });
        }
    }
    let levels = (1..=levels).map(|l| l.to_string());
    for level in levels.chain(std::iter::once("fallback".to_string())) {
        let _ = m.escalations.get_or_create(&Level { level });
    }
    for timer in ["expire", "fallback"] {
        let _ = m.timer_lag.get_or_create(&TimerLabel {
            timer: timer.into(),
        });
    }
}
