//! `GET /metrics`: the Prometheus scrape target (OpenMetrics text format).

use crate::service::Witness;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The page; the store's gauges are read now, so every replica agrees.
/// 404 when `[metrics] enabled = false`.
pub async fn metrics(State(w): State<Arc<Witness>>) -> Response {
    if !crate::metrics::enabled() {
        return (http::StatusCode::NOT_FOUND, "metrics are disabled\n").into_response();
    }
    let gauges = match w.gauges().await {
        Ok(g) => Some(g),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot read the store's gauges");
            None
        }
    };
    let page = crate::metrics::render(gauges, crate::store::now_micros());
    ([(http::header::CONTENT_TYPE, CONTENT_TYPE)], page).into_response()
}
