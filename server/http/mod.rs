//! HTTP beside gRPC on the listen port (DESIGN §7). Everything here calls the
//! same `Witness` service as the gRPC handlers; this module only composes the
//! routes. Each submodule owns one surface:
//!
//! - `/healthz`: readiness for HTTP load balancers.
//! - `v01`: witness v0.1.1's HTTP API under `/v1/`.
//! - `/` and `/console/*`: the web console (`console`).
//! - `/metrics`: Prometheus metrics (`metrics`).
//! - `/auth/*`: console sign-in through an OpenID provider (`signin`).
//! - `/slack/interactions`: the Slack app's buttons and modal (`crate::slack`).
//!
//! `/witness.v1.WitnessService/*` is not routed here: `server::serve_on`
//! mounts `connect::WitnessEndpoint` there, which picks gRPC or Connect by
//! content type; `grpc_web` wraps the whole router for gRPC-Web.

pub mod connect;
pub mod grpc_web;

mod console;
mod signin;
mod v01;

pub mod metrics;

use crate::service::Witness;
use axum::{routing::get, Router};
use std::sync::Arc;

/// The HTTP routes served next to gRPC.
pub fn router(w: Arc<Witness>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .merge(v01::router())
        .merge(console::router())
        .merge(signin::router())
        .route("/metrics", get(metrics::metrics))
        .route(
            "/slack/interactions",
            axum::routing::post(crate::slack::interactions::handle),
        )
        .with_state(w)
}

/// 200 while the store answers, 503 while it does not.
async fn healthz(
    axum::extract::State(w): axum::extract::State<Arc<Witness>>,
) -> (http::StatusCode, &'static str) {
    if *w.health().borrow() {
        (http::StatusCode::OK, "ok\n")
    } else {
        (http::StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n")
    }
}
