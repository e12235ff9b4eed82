//! `POST /slack/interactions`: Slack's interactivity request URL. Only
//! requests signed with the app's signing secret, within 5 minutes and
//! never seen before are read (else 401, and nothing happens). A button
//! opens the answer modal (`views.open`) and ACKs the decision for surface
//! `slack`; the modal's submission is an `Answer` by the mapped principal
//! through `Witness::answer`, like every other protocol's, and a refusal
//! is shown in the modal (`response_action: errors`) with nothing recorded.

use super::blocks::{self, ModalState};
use super::{Slack, INTERACTIVE_TIMEOUT};
use crate::auth::Principal;
use crate::core::Verdict;
use crate::service::{AnswerInput, Witness};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// What an unmapped Slack user is told.
pub const NOT_LINKED: &str = "your Slack account is not linked to a witness principal";
/// Slack's limit for answering an interaction; we stop working before it.
const BUDGET: Duration = Duration::from_millis(2800);

fn refuse(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{text}\n"),
    )
        .into_response()
}

fn json_response(v: &Value) -> Response {
    (
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// The route's handler.
pub async fn handle(State(w): State<Arc<Witness>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(slack) = w.slack().cloned() else {
        return refuse(StatusCode::NOT_FOUND, "no [slack] section is configured");
    };
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    let now = crate::store::now_micros() / 1_000_000;
    if let Err(e) = slack.replays.check(
        &slack.cfg.signing_secret,
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        &body,
        now,
    ) {
        tracing::warn!(reason = %e, "refused a Slack interaction");
        return refuse(StatusCode::UNAUTHORIZED, &e.to_string());
    }
    let payload = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
        .ok()
        .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "payload"))
        .and_then(|(_, p)| serde_json::from_str::<Value>(&p).ok());
    let Some(payload) = payload else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "expected a form field payload=JSON",
        );
    };
    let work = async {
        match payload["type"].as_str() {
            Some("block_actions") => block_actions(&w, &slack, &payload).await,
            Some("view_submission") => view_submission(&w, &slack, &payload).await,
            _ => StatusCode::OK.into_response(),
        }
    };
    match tokio::time::timeout(BUDGET, work).await {
        Ok(r) => r,
        Err(_) => {
            tracing::warn!("a Slack interaction took longer than Slack waits; answered empty");
            StatusCode::OK.into_response()
        }
    }
}

/// The witness principal of the payload's Slack user; Err is the text to
/// show that user.
async fn principal(w: &Witness, slack: &Slack, payload: &Value) -> Result<Principal, String> {
    let user = payload["user"]["id"].as_str().unwrap_or_default();
    match slack.principal_for(user, &w.auth()).await {
        Ok(Some(who)) => Ok(who),
        Ok(None) => Err(NOT_LINKED.into()),
        Err(e) => {
            tracing::warn!(error = %e, "cannot look up a Slack user");
            Err("witness cannot look up your Slack account right now; try again".into())
        }
    }
}

/// A button: open the modal for the mapped principal, then ACK.
async fn block_actions(w: &Witness, slack: &Arc<Slack>, payload: &Value) -> Response {
    let action = &payload["actions"][0];
    let verdict = match action["action_id"].as_str() {
        Some(blocks::APPROVE) => Verdict::Approve,
        Some(blocks::REJECT) => Verdict::Reject,
        _ => return StatusCode::OK.into_response(),
    };
    let decision_id = action["value"].as_str().unwrap_or_default().to_string();
    let response_url = payload["response_url"].as_str().unwrap_or_default();
    let tell = |text: String| {
        let (slack, url) = (slack.clone(), response_url.to_string());
        // Not awaited: Slack is waiting for this request's answer.
        tokio::spawn(async move { slack.reply_ephemeral(&url, &text).await });
        StatusCode::OK.into_response()
    };
    let who = match principal(w, slack, payload).await {
        Ok(p) => p,
        Err(text) => return tell(text),
    };
    if let Err(e) = w.admit(&who) {
        return tell(format!("witness: {e}"));
    }
    let decision = match w.get(&who, &decision_id).await {
        Ok(d) => d,
        Err(e) => return tell(format!("witness: {e}")),
    };
    let trigger = payload["trigger_id"].as_str().unwrap_or_default();
    let opened = slack
        .call(
            "views.open",
            &json!({"trigger_id": trigger, "view": blocks::modal(&decision, verdict)}),
            Some(INTERACTIVE_TIMEOUT),
        )
        .await;
    if let Err(e) = opened {
        tracing::warn!(decision_id = %decision_id, error = %e, "cannot open the Slack modal");
        return tell(format!(
            "witness could not open the answer form ({e}); try again"
        ));
    }
    if let Err(e) = w.ack(&who, decision_id.clone(), "slack".into()).await {
        tracing::warn!(decision_id = %decision_id, error = %e, "cannot ACK from Slack");
    }
    StatusCode::OK.into_response()
}

fn modal_errors(errors: serde_json::Map<String, Value>) -> Response {
    json_response(&json!({"response_action": "errors", "errors": errors}))
}

fn modal_error(text: &str) -> Response {
    let mut errors = serde_json::Map::new();
    errors.insert(blocks::RATIONALE.into(), json!(text));
    modal_errors(errors)
}

/// The modal's submission: an Answer by the mapped principal.
async fn view_submission(w: &Witness, slack: &Slack, payload: &Value) -> Response {
    let view = &payload["view"];
    if view["callback_id"].as_str() != Some(blocks::MODAL) {
        return StatusCode::OK.into_response();
    }
    let Some(state) = view["private_metadata"]
        .as_str()
        .and_then(|m| serde_json::from_str::<ModalState>(m).ok())
    else {
        return modal_error("this form is not one witness opened");
    };
    let who = match principal(w, slack, payload).await {
        Ok(p) => p,
        Err(text) => return modal_error(&text),
    };
    if let Err(e) = w.admit(&who) {
        return modal_error(&e.to_string());
    }
    let decision = match w.get(&who, &state.decision_id).await {
        Ok(d) => d,
        Err(e) => return modal_error(&e.to_string()),
    };
    let (rationale, answer) = match blocks::submission(view, decision.response_schema.as_ref()) {
        Ok(x) => x,
        Err(errors) => return modal_errors(errors),
    };
    // One modal, one answer: Slack resending the submission replays it.
    let view_id = view["id"].as_str().unwrap_or_default();
    let request_id = if view_id.is_empty() {
        String::new()
    } else {
        format!("slack:{}", crate::core::cut(view_id))
    };
    let input = AnswerInput {
        decision_id: state.decision_id,
        request_id,
        verdict: Some(state.verdict),
        answer,
        rationale,
        current_context: None,
        on_behalf_of: String::new(),
    };
    match w.answer(&who, input).await {
        Ok(_) => json_response(&json!({"response_action": "clear"})),
        Err(e) => {
            let status = tonic::Status::from(e);
            // The same code and counter as a refused Answer RPC.
            let code = crate::metrics::CODES
                .get(status.code() as usize)
                .copied()
                .unwrap_or("UNKNOWN");
            crate::metrics::refused("slack.Answer", code, status.message());
            modal_error(&crate::core::cut(status.message()))
        }
    }
}
