//! HTTP beside gRPC on the listen port (DESIGN §7). Everything here calls the
//! same `Witness` service as the gRPC handlers; this module only composes the
//! routes. Each submodule owns one surface:
//!
//! - `/healthz`: readiness for HTTP load balancers.
//! - `/metrics`: Prometheus metrics (`metrics`).
//!
//! gRPC (and, later, Connect and gRPC-Web) requests to
//! `/witness.v1.WitnessService/*` are routed by `server::serve_on`, not here.

pub mod metrics;

use crate::service::Witness;
use axum::{routing::get, Router};
use std::sync::Arc;

/// The HTTP routes served next to gRPC.
pub fn router(w: Arc<Witness>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::metrics))
        .with_state(w)
}

/// 200 while the store answers, 503 while it does not.
async fn healthz(
    axum::extract::State(w): axum::extract::State<Arc<Witness>>,
) -> (http::StatusCode, &'static str) {
    if *w.hub.health().borrow() {
        (http::StatusCode::OK, "ok\n")
    } else {
        (http::StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n")
    }
}
