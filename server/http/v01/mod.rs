//! witness v0.1.1's HTTP API under `/v1/` (DESIGN §7), so programs written
//! for v0.1.1's TypeScript and Python clients work unchanged. Each route
//! parses v0.1.1's body, calls the same `Witness` service as gRPC, and
//! answers in v0.1.1's shapes (`json`) and error bodies (`errors`).
//!
//! Identity. With principals configured, the bearer token decides; a body
//! `operator` must be that principal or one it may act for. In dev mode
//! these routes keep v0.1.1's trust model: reads see every decision (a list
//! filters by its `authorized` roles), and the body `operator` acts holding
//! the decision's authorized roles. That is acceptable only because dev mode
//! listens on loopback alone and any dev-mode caller may claim any name and
//! role through the `x-witness-*` headers anyway; it grants nothing new.

mod errors;
mod json;

use crate::auth::Principal;
use crate::core::{Decision, Outcome, Status};
use crate::service::{AnswerInput, AskInput, ListInput, ServiceError, Visibility, Witness};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use errors::{Route, V01Error};
use http::{HeaderMap, StatusCode};
use json::{bad, string_list, Body};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

type W = State<Arc<Witness>>;
type Reply = Result<Json<Value>, V01Error>;

/// Most decisions one `GET /v1/decisions` returns (v0.1.1 had no limit).
const MAX_LIST: usize = 10_000;

/// The `/v1/` routes.
pub(super) fn router() -> Router<Arc<Witness>> {
    Router::new()
        // A method a route does not serve is 404 `not_found`, as in v0.1.1.
        .route("/v1/health", get(health).fallback(not_found))
        .route("/v1/decisions", post(ask).get(list).fallback(not_found))
        .route("/v1/decisions/{id}", get(get_decision).fallback(not_found))
        .route(
            "/v1/decisions/{id}/answer",
            post(answer).fallback(not_found),
        )
        .route("/v1/decisions/{id}/ack", post(ack).fallback(not_found))
        .route(
            "/v1/decisions/{id}/cancel",
            post(cancel).fallback(not_found),
        )
        .route("/v1", any(not_found))
        .route("/v1/", any(not_found))
        .route("/v1/{*rest}", any(not_found))
}

async fn not_found() -> V01Error {
    V01Error::NotFound
}

/// Mirrors store health; 503 while the store is down.
async fn health(State(w): W) -> (StatusCode, Json<Value>) {
    let up = *w.health().borrow();
    let body = |status| json!({"status": status, "service": "witness", "version": env!("CARGO_PKG_VERSION")});
    if up {
        (StatusCode::OK, Json(body("ok")))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(body("unavailable")))
    }
}

/// Authenticates the caller (bearer token, or dev-mode headers) and takes
/// one request from its rate budget, as every gRPC call does.
fn caller(w: &Witness, headers: &HeaderMap, route: Route) -> Result<Principal, V01Error> {
    let refused = |e: ServiceError| V01Error::Service { route, err: e };
    let who = w
        .auth()
        .authenticate_headers(headers)
        .map_err(|e| refused(e.into()))?;
    w.admit(&who).map_err(refused)?;
    Ok(who)
}

/// Reads a body up to the gRPC message limit and parses it as an object.
/// Only `application/json` is read: the types a cross-site form or a
/// no-cors `fetch` may send (`text/plain`, form encodings) are refused with
/// 415 before the body is touched.
async fn read_body(
    w: &Witness,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<Body, V01Error> {
    use futures::StreamExt;
    let json = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|ct| ct.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(V01Error::UnsupportedMediaType);
    }
    let limit = w.limits().max_message_bytes;
    // An oversized body is read on (and dropped) up to a bound, so an
    // HTTP/1.1 client still sending it receives the 413 instead of a reset
    // connection; past the bound the connection is simply closed.
    let drain_limit = limit.saturating_mul(8);
    let mut data = Vec::new();
    let mut seen = 0usize;
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| {
            if crate::guard::is_body_timeout(&e) {
                V01Error::BodyTimeout(e.to_string())
            } else {
                V01Error::InvalidJson(format!("body: could not be read: {e}"))
            }
        })?;
        seen = seen.saturating_add(chunk.len());
        if seen <= limit {
            data.extend_from_slice(&chunk);
        } else if seen > drain_limit {
            break;
        }
    }
    if seen > limit {
        return Err(V01Error::TooLarge(limit));
    }
    Body::parse(&data)
}

/// The decision id from the path. Ids are at most 128 characters and never
/// hold control characters (NUL included, which PostgreSQL text refuses),
/// so any other path segment, undecodable ones included, names no decision:
/// 404 without a store read.
fn decision_id(path: Result<Path<String>, PathRejection>) -> Result<String, V01Error> {
    match path {
        Ok(Path(id)) if !id.is_empty() && id.len() <= 128 && !id.chars().any(char::is_control) => {
            Ok(id)
        }
        _ => Err(V01Error::NotFound),
    }
}

/// A decision under v0.1.1's visibility (see the module comment; the
/// service's `Visibility::v01` decides). 404 for any decision not seen.
async fn read(w: &Witness, who: &Principal, id: &str, route: Route) -> Result<Decision, V01Error> {
    let v = Visibility::v01(who.clone(), w.auth().dev_mode());
    match w.read(&v, id).await {
        Err(ServiceError::NotFound(_)) => Err(V01Error::NotFound),
        r => r.map_err(V01Error::service(route)),
    }
}

/// Who performs a write that names `operator`, and the `on_behalf_of` to
/// record. Token mode: the token's principal, acting for `operator` only
/// when its `can_act_for` allows. Dev mode: `operator` (or the header
/// principal) holding the decision's authorized roles.
async fn acting(
    w: &Witness,
    who: Principal,
    id: &str,
    operator: Option<&str>,
    route: Route,
) -> Result<(Principal, String), V01Error> {
    if w.auth().dev_mode() {
        let d = read(w, &who, id, route).await?;
        let name = operator.unwrap_or(&who.name);
        return Ok((Principal::dev(name, d.authorized_roles), String::new()));
    }
    match operator {
        Some(op) if op != who.name => {
            w.auth()
                .actor_for(&who, op)
                .map_err(|e| V01Error::service(route)(e.into()))?;
            Ok((who, op.to_string()))
        }
        _ => Ok((who, String::new())),
    }
}

/// `POST /v1/decisions`: 201 `{"decisionId"}`.
async fn ask(
    State(w): W,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Value>), V01Error> {
    let route = Route::Ask;
    let who = caller(&w, &headers, route)?;
    let b = read_body(&w, &headers, body).await?;
    for field in [
        "kind",
        "input",
        "responseShape",
        "authorizedRoles",
        "surfaces",
    ] {
        b.present(field)?;
    }
    let kind = match b.present("kind")? {
        Value::String(s) => s.clone(),
        _ => return Err(bad(route, "kind", "must be a string")),
    };
    let input = AskInput {
        request_id: b.opt_str(route, "requestId")?.unwrap_or_default(),
        kind,
        input: b.present("input")?.clone(),
        response_schema: b.opt_value("responseShape"),
        authorized_roles: string_list(route, "authorizedRoles", b.present("authorizedRoles")?)?,
        surfaces: string_list(route, "surfaces", b.present("surfaces")?)?,
        // The policy's: v0.1.1 set two-person per kind, as witness policies do.
        required_approvals: 0,
        context_snapshot: b.opt_value("contextSnapshot"),
        timeout_us: json::timeout_us(b.opt_value("timeoutMs"))?,
    };
    let out = w.ask(&who, input).await.map_err(V01Error::service(route))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"decisionId": out.decision.id})),
    ))
}

/// `GET /v1/decisions/:id`: the decision, 404 for any unknown id.
async fn get_decision(
    State(w): W,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Reply {
    let route = Route::Get;
    let who = caller(&w, &headers, route)?;
    let id = decision_id(id)?;
    let d = read(&w, &who, &id, route).await?;
    Ok(Json(json::decision(&d)))
}

/// `GET /v1/decisions?authorized=r1,r2`: open decisions holding one of the
/// roles, newest first.
async fn list(
    State(w): W,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Reply {
    let route = Route::List;
    let who = caller(&w, &headers, route)?;
    let authorized = query
        .as_ref()
        .ok()
        .and_then(|q| q.get("authorized"))
        .filter(|a| !a.is_empty())
        .ok_or(V01Error::MissingQuery("authorized"))?;
    let roles: Vec<String> = authorized
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(String::from)
        .collect();
    w.limits()
        .check_list("authorized", &roles)
        .map_err(|e| V01Error::Service {
            route,
            err: e.into(),
        })?;
    // Dev mode: the roles asked for are the reader's; token mode: the
    // token's principal sees what it may, filtered by the roles asked for.
    let reader = if w.auth().dev_mode() {
        Principal::dev(&who.name, roles.clone())
    } else {
        who
    };
    let mut found = Vec::new();
    let mut page_token = String::new();
    loop {
        let q = ListInput {
            statuses: vec![Status::Open],
            kinds: Vec::new(),
            page_size: 1000,
            page_token,
        };
        let (page, next) = w.list(&reader, q).await.map_err(V01Error::service(route))?;
        found.extend(page.into_iter().filter(|d| d.holds_role(&roles)));
        if next.is_empty() || found.len() >= MAX_LIST {
            break;
        }
        page_token = next;
    }
    found.truncate(MAX_LIST);
    found.sort_by_key(|d| std::cmp::Reverse(d.created_at));
    let decisions: Vec<Value> = found.iter().map(json::decision).collect();
    Ok(Json(json!({ "decisions": decisions })))
}

/// `POST /v1/decisions/:id/answer`: `awaiting-second`, `closed` with the
/// approval, or `context_changed`.
async fn answer(
    State(w): W,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: axum::body::Body,
) -> Reply {
    let route = Route::Answer;
    let who = caller(&w, &headers, route)?;
    let id = decision_id(id)?;
    let b = read_body(&w, &headers, body).await?;
    let operator = b.non_empty_str("operator")?;
    let rationale = b.non_empty_str("rationale")?;
    let answer = b.present("answer")?.clone();
    let request_id = b.opt_str(route, "requestId")?.unwrap_or_default();
    let (actor, on_behalf_of) = acting(&w, who, &id, Some(&operator), route).await?;
    let input = AnswerInput {
        decision_id: id,
        request_id,
        verdict: Some(json::verdict_of(&answer)),
        answer,
        rationale,
        current_context: b.opt_value("currentContext"),
        on_behalf_of,
    };
    let out = w
        .answer(&actor, input)
        .await
        .map_err(V01Error::service(route))?;
    Ok(Json(json::answer_result(&out.decision, out.outcome)))
}

/// `POST /v1/decisions/:id/ack`: `{"accepted", "alreadyAcked"}`.
async fn ack(
    State(w): W,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: axum::body::Body,
) -> Reply {
    let route = Route::Ack;
    let who = caller(&w, &headers, route)?;
    let id = decision_id(id)?;
    let b = read_body(&w, &headers, body).await?;
    let surface = b.non_empty_str("surface")?;
    let operator = b.opt_str(route, "operator")?.filter(|o| !o.is_empty());
    let (actor, _) = acting(&w, who, &id, operator.as_deref(), route).await?;
    let out = w
        .ack(&actor, id, surface)
        .await
        .map_err(V01Error::service(route))?;
    let accepted = out.outcome == Outcome::Accepted;
    Ok(Json(json!({
        "accepted": accepted,
        "alreadyAcked": accepted && out.events.is_empty(),
    })))
}

/// `POST /v1/decisions/:id/cancel`: `{"decisionId", "status": "cancelled"}`.
async fn cancel(
    State(w): W,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: axum::body::Body,
) -> Reply {
    let route = Route::Cancel;
    let who = caller(&w, &headers, route)?;
    let id = decision_id(id)?;
    let b = read_body(&w, &headers, body).await?;
    let operator = b.non_empty_str("operator")?;
    let reason = b.non_empty_str("reason")?;
    let (actor, _) = acting(&w, who, &id, Some(&operator), route).await?;
    let out = w
        .cancel(&actor, id, reason)
        .await
        .map_err(V01Error::service(route))?;
    Ok(Json(
        json!({"decisionId": out.decision.id, "status": json::status(out.decision.status)}),
    ))
}
