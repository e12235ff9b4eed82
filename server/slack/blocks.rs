//! What Slack shows (pure): the decision's message in Block Kit, the answer
//! modal, and the modal's submission read back into an answer. Everything
//! a decision carries is the asker's text: it is escaped, so it can never
//! mention `@channel` or render a link it did not spell out.

use crate::core::{Decision, Status, Verdict};
use serde_json::{json, Map, Value};

/// `action_id` of the message's buttons.
pub const APPROVE: &str = "witness_approve";
pub const REJECT: &str = "witness_reject";
/// `callback_id` of the answer modal.
pub const MODAL: &str = "witness_answer";
/// `block_id` of the modal's rationale input; refusals are shown under it.
pub const RATIONALE: &str = "rationale";
/// `block_id` prefix of a response-schema field's input.
const FIELD: &str = "field:";
/// `action_id` of every modal input.
const VALUE: &str = "value";

/// Slack's limit on a section's text.
const SECTION_MAX: usize = 3000;

/// `&`, `<` and `>` escaped, as Slack's mrkdwn requires of literal text.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `s` cut to at most `max` characters, with an ellipsis when cut.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn mrkdwn(text: &str) -> Value {
    json!({"type": "mrkdwn", "text": cut(text, SECTION_MAX)})
}

fn plain(text: &str, max: usize) -> Value {
    json!({"type": "plain_text", "text": cut(text, max), "emoji": true})
}

/// A readable summary of the decision's input: one line per top-level key
/// of an object (strings as they are, other values as compact JSON).
pub fn input_summary(input: &Value) -> String {
    let line = |v: &Value| match v {
        Value::String(s) => cut(s, 300),
        other => cut(&other.to_string(), 300),
    };
    let text = match input {
        Value::Object(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("• *{}*: {}", escape(k), escape(&line(v))))
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Null => "_(no input)_".into(),
        other => escape(&line(other)),
    };
    cut(&text, 2500)
}

/// Slack's date formatting: each reader sees their own time zone.
fn date(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let fallback = u64::try_from(secs)
        .ok()
        .map(|s| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(s),
            )
            .to_string()
        })
        .unwrap_or_default();
    format!("<!date^{secs}^{{date_short_pretty}} at {{time}}|{fallback}>")
}

fn votes(d: &Decision) -> String {
    if d.answers.is_empty() {
        return "_no votes yet_".into();
    }
    let lines: Vec<String> = d
        .answers
        .iter()
        .map(|a| {
            let mark = match a.verdict {
                Verdict::Approve => "✅ approved",
                Verdict::Reject => "❌ rejected",
            };
            let via = a
                .submitted_by
                .as_deref()
                .map(|s| format!(" (sent by {})", escape(s)))
                .unwrap_or_default();
            format!(
                "{mark} by *{}*{via}: {}",
                escape(&a.operator),
                escape(&cut(&a.rationale, 400))
            )
        })
        .collect();
    lines.join("\n")
}

fn status_line(d: &Decision) -> String {
    let approvals = d
        .answers
        .iter()
        .filter(|a| a.verdict == Verdict::Approve)
        .count();
    match d.status {
        Status::Open => format!(
            ":hourglass: *Open*: {approvals} of {} approvals",
            d.required_approvals
        ),
        Status::Approved => ":white_check_mark: *APPROVED*".into(),
        Status::Rejected => ":x: *REJECTED*".into(),
        Status::Expired => ":alarm_clock: *EXPIRED*: nobody decided in time".into(),
        Status::Cancelled => {
            let by = d.closed_by.as_deref().unwrap_or("the asker");
            let why = d.close_reason.as_deref().unwrap_or_default();
            format!(
                ":no_entry_sign: *CANCELLED* by {}{}",
                escape(by),
                if why.is_empty() {
                    String::new()
                } else {
                    format!(": {}", escape(why))
                }
            )
        }
        Status::ContextChanged => {
            ":warning: *CONTEXT CHANGED*: the situation changed before the approvals completed"
                .into()
        }
    }
}

fn paging(d: &Decision) -> Option<String> {
    let fired: Vec<String> = d
        .escalations
        .iter()
        .filter(|e| e.state == crate::core::model::EscalationState::Fired)
        .map(|e| e.level.to_string())
        .collect();
    let mut parts = Vec::new();
    if d.fallback_fired {
        parts.push("nobody acknowledged it in time: the fallback was paged".to_string());
    }
    if !fired.is_empty() {
        parts.push(format!("escalated (level {})", fired.join(", ")));
    }
    (!parts.is_empty()).then(|| format!(":rotating_light: {}", parts.join("; ")))
}

/// The message text shown in notifications and where blocks cannot be.
pub fn fallback_text(d: &Decision) -> String {
    let state = match d.status {
        Status::Open => "needs an answer".to_string(),
        s => format!("closed {}", s.as_str()),
    };
    cut(
        &format!("witness: {} {state} ({})", escape(&d.kind), d.id),
        3000,
    )
}

/// The decision's message: kind, asker, input, roles, votes, expiry, and
/// the buttons while it is open (who decided and why once it is closed).
pub fn message(d: &Decision) -> Vec<Value> {
    let mut fields = vec![
        mrkdwn(&format!("*Asked by*\n{}", escape(&d.asked_by))),
        mrkdwn(&format!(
            "*Roles*\n{}",
            escape(&d.authorized_roles.join(", "))
        )),
        mrkdwn(&format!("*Approvals needed*\n{}", d.required_approvals)),
        mrkdwn(&format!(
            "*Expires*\n{}",
            d.expires_at.map_or_else(|| "never".to_string(), date)
        )),
    ];
    if let Some(closed) = d.closed_at {
        fields.push(mrkdwn(&format!("*Closed*\n{}", date(closed))));
    }
    let mut blocks = vec![
        json!({"type": "header", "text": plain(&d.kind, 150)}),
        json!({"type": "section", "text": mrkdwn(&status_line(d)), "fields": fields}),
        json!({"type": "section", "text": mrkdwn(&format!("*Input*\n{}", input_summary(&d.input)))}),
        json!({"type": "section", "text": mrkdwn(&format!("*Votes*\n{}", votes(d)))}),
    ];
    if let Some(p) = paging(d) {
        blocks.push(json!({"type": "context", "elements": [mrkdwn(&p)]}));
    }
    if d.status == Status::Open {
        blocks.push(json!({
            "type": "actions",
            "block_id": "witness_vote",
            "elements": [
                {"type": "button", "action_id": APPROVE, "style": "primary",
                 "text": plain("Approve", 75), "value": d.id},
                {"type": "button", "action_id": REJECT, "style": "danger",
                 "text": plain("Reject", 75), "value": d.id},
            ],
        }));
    }
    blocks.push(json!({"type": "context", "elements": [
        mrkdwn(&format!("decision `{}` · event #{}", d.id, d.last_sequence))
    ]}));
    blocks
}

/// What the modal carries back in `private_metadata`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModalState {
    pub decision_id: String,
    pub verdict: Verdict,
}

/// One property of a simple response schema, as a modal input.
struct Field {
    name: String,
    /// `string`, `number`, `integer` or `boolean`.
    ty: String,
    /// The `enum` choices (empty: free input).
    options: Vec<Value>,
    required: bool,
}

/// A response schema the modal can ask for field by field: an object whose
/// properties are strings (maybe an `enum`), numbers, integers or booleans.
fn simple_fields(schema: Option<&Value>) -> Option<Vec<Field>> {
    let schema = schema?;
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        return None;
    }
    let props = schema.get("properties")?.as_object()?;
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    props
        .iter()
        .take(20)
        .map(|(name, p)| {
            let ty = p.get("type").and_then(Value::as_str)?;
            if !matches!(ty, "string" | "number" | "integer" | "boolean") {
                return None;
            }
            let options = p
                .get("enum")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            Some(Field {
                name: name.clone(),
                ty: ty.to_string(),
                options,
                required: required.contains(&name.as_str()),
            })
        })
        .collect()
}

fn option(v: &Value) -> Value {
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    json!({"text": plain(&text, 75), "value": cut(&v.to_string(), 150)})
}

/// The answer modal for `verdict` on `d`.
pub fn modal(d: &Decision, verdict: Verdict) -> Value {
    let word = match verdict {
        Verdict::Approve => "Approve",
        Verdict::Reject => "Reject",
    };
    let state = ModalState {
        decision_id: d.id.clone(),
        verdict,
    };
    let mut blocks = vec![
        json!({"type": "section", "text": mrkdwn(&format!(
            "*{}*\n{}", escape(&d.kind), input_summary(&d.input)
        ))}),
        json!({
            "type": "input", "block_id": RATIONALE,
            "label": plain("Rationale", 2000),
            "element": {"type": "plain_text_input", "action_id": VALUE, "multiline": true,
                        "placeholder": plain("Why? Recorded in the audit log.", 150)},
        }),
    ];
    match simple_fields(d.response_schema.as_ref()) {
        Some(fields) => {
            for Field {
                name,
                ty,
                options,
                required,
            } in fields
            {
                let element = if !options.is_empty() || ty == "boolean" {
                    let opts: Vec<Value> = if options.is_empty() {
                        vec![option(&json!(true)), option(&json!(false))]
                    } else {
                        options.iter().take(100).map(option).collect()
                    };
                    json!({"type": "static_select", "action_id": VALUE, "options": opts})
                } else if ty == "string" {
                    json!({"type": "plain_text_input", "action_id": VALUE})
                } else {
                    json!({"type": "number_input", "action_id": VALUE,
                           "is_decimal_allowed": ty == "number"})
                };
                blocks.push(json!({
                    "type": "input", "block_id": format!("{FIELD}{name}"),
                    "optional": !required, "label": plain(&name, 2000), "element": element,
                }));
            }
        }
        None if d.response_schema.is_some() => {
            blocks.push(json!({"type": "context", "elements": [mrkdwn(
                "This decision's answer has a shape Slack cannot ask for; answer it in the console."
            )]}));
        }
        None => {}
    }
    json!({
        "type": "modal",
        "callback_id": MODAL,
        "private_metadata": serde_json::to_string(&state).unwrap_or_default(),
        "title": plain(word, 24),
        "submit": plain(word, 24),
        "close": plain("Cancel", 24),
        "blocks": blocks,
    })
}

/// The value of one modal input in `view.state.values`.
fn input_value(values: &Value, block: &str) -> Option<String> {
    let v = values.get(block)?.get(VALUE)?;
    v.get("selected_option")
        .and_then(|o| o.get("value"))
        .or_else(|| v.get("value"))
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string)
}

/// A submission read back: rationale and answer, or per-block errors.
pub fn submission(
    view: &Value,
    schema: Option<&Value>,
) -> Result<(String, Value), Map<String, Value>> {
    let values = &view["state"]["values"];
    let mut errors = Map::new();
    let rationale = input_value(values, RATIONALE).unwrap_or_default();
    if rationale.trim().is_empty() {
        errors.insert(RATIONALE.into(), json!("a rationale is required"));
    }
    let mut answer = Value::Null;
    if let Some(fields) = simple_fields(schema) {
        let mut obj = Map::new();
        for Field {
            name, ty, options, ..
        } in fields
        {
            let block = format!("{FIELD}{name}");
            let Some(raw) = input_value(values, &block) else {
                continue;
            };
            let parsed = if !options.is_empty() || ty == "boolean" {
                // Option values are the JSON of the choice.
                serde_json::from_str::<Value>(&raw).ok()
            } else {
                match ty.as_str() {
                    "string" => Some(Value::String(raw.clone())),
                    "integer" => raw.trim().parse::<i64>().ok().map(Value::from),
                    _ => raw
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                        .map(Value::Number),
                }
            };
            match parsed {
                Some(v) => {
                    obj.insert(name, v);
                }
                None => {
                    errors.insert(block, json!(format!("not a valid {ty}")));
                }
            }
        }
        answer = Value::Object(obj);
    }
    if errors.is_empty() {
        Ok((rationale, answer))
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::Answer;

    fn decision() -> Decision {
        Decision {
            id: "d1".into(),
            kind: "deploy.prod".into(),
            input: json!({"service": "api <@U1> & <!channel>", "replicas": 3}),
            authorized_roles: vec!["sre".into()],
            asked_by: "ci".into(),
            required_approvals: 2,
            ..Decision::default()
        }
    }

    #[test]
    fn the_message_escapes_input_and_shows_buttons_while_open() {
        let mut d = decision();
        let blocks = message(&d);
        let text = serde_json::to_string(&blocks).unwrap();
        assert!(text.contains("&lt;!channel&gt;"), "{text}");
        assert!(!text.contains("<!channel>"), "{text}");
        assert!(text.contains("0 of 2 approvals"), "{text}");
        assert!(text.contains(APPROVE) && text.contains(REJECT));
        d.answers.push(Answer {
            operator: "alice".into(),
            rationale: "fine".into(),
            ..Answer::default()
        });
        d.status = Status::Approved;
        let text = serde_json::to_string(&message(&d)).unwrap();
        assert!(!text.contains(APPROVE), "no buttons once closed");
        assert!(
            text.contains("APPROVED") && text.contains("*alice*: fine"),
            "{text}"
        );
    }

    #[test]
    fn a_simple_schema_becomes_fields_and_comes_back_typed() {
        let mut d = decision();
        d.response_schema = Some(json!({"type": "object", "required": ["ticket"],
            "properties": {"ticket": {"type": "string"}, "count": {"type": "integer"},
                           "ratio": {"type": "number"}, "env": {"enum": ["a", "b"], "type": "string"},
                           "ok": {"type": "boolean"}}}));
        let m = modal(&d, Verdict::Approve);
        assert_eq!(m["type"], "modal");
        assert_eq!(m["callback_id"], MODAL);
        let meta: ModalState =
            serde_json::from_str(m["private_metadata"].as_str().unwrap()).unwrap();
        assert_eq!(meta.decision_id, "d1");
        let view = json!({"state": {"values": {
            "rationale": {"value": {"type": "plain_text_input", "value": "looks right"}},
            "field:ticket": {"value": {"type": "plain_text_input", "value": "OPS-1"}},
            "field:count": {"value": {"type": "number_input", "value": "4"}},
            "field:ratio": {"value": {"type": "number_input", "value": "0.5"}},
            "field:env": {"value": {"type": "static_select", "selected_option": {"value": "\"b\""}}},
            "field:ok": {"value": {"type": "static_select", "selected_option": {"value": "true"}}},
        }}});
        let (why, answer) = submission(&view, d.response_schema.as_ref()).unwrap();
        assert_eq!(why, "looks right");
        assert_eq!(
            answer,
            json!({"ticket": "OPS-1", "count": 4, "ratio": 0.5, "env": "b", "ok": true})
        );
        let bad = json!({"state": {"values": {
            "field:count": {"value": {"type": "number_input", "value": "x"}},
        }}});
        let errors = submission(&bad, d.response_schema.as_ref()).unwrap_err();
        assert!(errors.contains_key(RATIONALE) && errors.contains_key("field:count"));
    }
}
