//! Answering: who may vote, what a vote records, and when the votes close
//! the decision (quorum, vetoes, context confirmation). Part of the pure
//! state machine (`machine`), split out for size.

use super::*;

/// The fields of an `Action::Answer`, borrowed.
pub(super) struct AnswerArgs<'a> {
    pub(super) actor: &'a Actor,
    pub(super) verdict: Verdict,
    pub(super) answer: &'a Value,
    pub(super) rationale: &'a str,
    pub(super) current_context: Option<&'a str>,
    pub(super) current_roles: Option<&'a std::collections::BTreeMap<String, Vec<String>>>,
}

pub(super) fn decide_answer(d: &Decision, args: AnswerArgs<'_>, now: Micros) -> Result<Decided> {
    let AnswerArgs {
        actor,
        verdict,
        answer,
        rationale,
        current_context,
        current_roles,
    } = args;
    // Permission first: an operator who may not answer learns nothing about
    // the decision's state.
    if !d.holds_role(&actor.roles) {
        return Err(Refusal::denied(
            "the operator holds none of the decision's authorized roles",
        ));
    }
    if actor.is_asker(d) && !d.policy.allow_self_approval {
        return Err(Refusal::denied(
            "the decision's asker may not answer it (policy forbids self-approval)",
        ));
    }
    require_open(d)?;
    if d.answers.iter().any(|a| a.operator == actor.name) {
        return Err(Refusal::precondition(format!(
            "operator {} has already answered decision {}",
            actor.name, d.id
        )));
    }
    // One credential, one vote: a principal that relayed a vote may not also
    // vote as itself, nor the reverse. It may relay for several people (a
    // chat bot does); each counts as the distinct person it names.
    let sender = actor.submitted_by.as_deref().unwrap_or(&actor.name);
    let relayed = |a: &Answer| a.submitted_by.as_deref() == Some(sender);
    let voted_itself = |a: &Answer| a.operator == sender && a.submitted_by.is_none();
    if actor.submitted_by.is_none() && d.answers.iter().any(relayed) {
        return Err(Refusal::precondition(format!(
            "operator {sender} relayed a vote on decision {} and may not also vote as itself",
            d.id
        )));
    }
    if actor.submitted_by.is_some() && d.answers.iter().any(voted_itself) {
        return Err(Refusal::precondition(format!(
            "operator {sender} voted on decision {} as itself and may not also relay a vote",
            d.id
        )));
    }
    if rationale.trim().is_empty() {
        return Err(Refusal::invalid("rationale: must not be empty"));
    }
    let context_matched = match (current_context, &d.context_hash) {
        (None, _) => false,
        (Some(_), None) => {
            return Err(Refusal::invalid(format!(
                "current_context: decision {} was asked without a context_snapshot",
                d.id
            )))
        }
        (Some(seen), Some(expected)) if seen != expected => {
            return Ok(Decided::new(
                vec![EventKind::ContextChanged {
                    by: actor.name.clone(),
                    reported_hash: seen.to_string(),
                }],
                Outcome::ContextChanged,
            ));
        }
        (Some(_), Some(_)) => true,
    };
    if let Some(schema) = &d.response_schema {
        validate_answer(schema, answer)?;
    }
    let recorded = EventKind::Answered {
        answer: Answer {
            verdict,
            answer: answer.clone(),
            rationale: rationale.to_string(),
            operator: actor.name.clone(),
            submitted_by: actor.submitted_by.clone(),
            issuer: actor.issuer.clone(),
            answered_at: now,
            sequence: 0,
        },
    };
    if verdict == Verdict::Reject {
        return Ok(Decided::new(
            vec![recorded, EventKind::Rejected],
            Outcome::Closed,
        ));
    }
    // Approvals count only while their operators still hold an authorized
    // role in the current config. An issuer's roles came with its token at
    // the vote and cannot be looked up again.
    let still_authorized = |a: &Answer| match current_roles {
        Some(_) if a.issuer.is_some() => true,
        Some(roles) => roles.get(&a.operator).is_some_and(|r| d.holds_role(r)),
        None => true,
    };
    let approvals = d
        .answers
        .iter()
        .filter(|a| a.verdict == Verdict::Approve && still_authorized(a))
        .count()
        + 1;
    if approvals < d.required_approvals as usize {
        return Ok(Decided::new(vec![recorded], Outcome::AwaitingApprovals));
    }
    if d.required_approvals >= 2 && !context_matched && !confirmed_in_window(d, now) {
        return Err(Refusal::precondition(format!(
            "the context must be re-confirmed (ReportContext or this answer's \
             current_context) after the previous approval and within {}s before the approval \
             that completes the quorum",
            d.policy.context_max_age_us / 1_000_000
        )));
    }
    Ok(Decided::new(
        vec![recorded, EventKind::Approved],
        Outcome::Closed,
    ))
}

/// The sequence of the latest approval (0 before any).
fn last_approval(d: &Decision) -> u64 {
    d.answers
        .iter()
        .filter(|a| a.verdict == Verdict::Approve)
        .map(|a| a.sequence)
        .max()
        .unwrap_or(0)
}

/// Whether an unchanged-context confirmation at `now` must be logged: the
/// first one ever or after the latest approval, or when the last logged one
/// is older than half of `context_max_age`. Confirming every few seconds
/// thus keeps a logged confirmation at most about half the window old (so
/// quorum completes as before) while writing O(approvals + wait / max_age)
/// events.
pub(super) fn confirmation_matters(d: &Decision, now: Micros) -> bool {
    match d.context_confirmed_at {
        None => true,
        Some(at) => {
            d.context_confirmed_sequence < last_approval(d)
                || now.saturating_sub(at) > d.policy.context_max_age_us / 2
        }
    }
}

/// Whether a ReportContext confirmation came after the latest approval and
/// is no older than `context_max_age`.
fn confirmed_in_window(d: &Decision, now: Micros) -> bool {
    match d.context_confirmed_at {
        Some(at) => {
            d.context_confirmed_sequence > last_approval(d)
                && now.saturating_sub(at) <= d.policy.context_max_age_us
        }
        None => false,
    }
}
